"""Group commit for the runner's database writes.

Jobs that reach the same step together (started, progressed, finished) share one statement: the
first caller starts a flush at once, and everything submitted while it runs goes into the next
one. Nothing waits on a timer, so a lone job pays one round trip and a busy runner pays one per
group instead of one per job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


class Coalescer(Generic[Item, Result]):
    def __init__(self, flush: Callable[[list[Item]], Awaitable[Sequence[Result]]]) -> None:
        self._flush = flush
        self._waiting: list[tuple[Item, asyncio.Future]] = []
        self._draining: asyncio.Task | None = None

    async def submit(self, item: Item) -> Result:
        """Queue ``item`` for the next flush and return its result (or raise its error)."""
        return await self._enqueue(item)

    def post(self, item: Item) -> None:
        """Queue ``item`` for the next flush without waiting for it (best effort: a failure
        is logged)."""
        self._enqueue(item).add_done_callback(_log_failure)

    def _enqueue(self, item: Item) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiting.append((item, future))
        if self._draining is None or self._draining.done():
            self._draining = loop.create_task(self._drain())
        return future

    async def wait_idle(self) -> None:
        """Return once everything submitted so far has been flushed."""
        while self._draining is not None and not self._draining.done():
            await asyncio.shield(self._draining)

    async def _drain(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting, []
            try:
                results = await self._flush([item for item, _ in group])
            except Exception as error:  # Each submitter decides what a failed write means.
                for _, future in group:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), result in zip(group, results, strict=True):
                if not future.done():
                    future.set_result(result)


def _log_failure(future: asyncio.Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.warning("a best-effort write failed: %s", future.exception())
