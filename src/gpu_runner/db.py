"""The runner's way into Django's database code: off the event loop, in threads of their own,
each on one long-lived connection that is dropped after a database error so the next call
reconnects. ``in_db`` runs in the runner's main database thread (taking jobs, heartbeats,
rescues); a ``DatabaseThread`` is another, so that storing outcomes does not wait for taking
jobs and PostgreSQL works on both at once."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django import db

from product.queue.backoff import Backoff
from product.queue.errors import DATABASE_UNAVAILABLE

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def _reconnecting(function: Callable[P, R]) -> Callable[P, R]:
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except DATABASE_UNAVAILABLE:
            db.connection.close()  # Broken by an outage or restart: reconnect next time.
            raise

    return call


def in_db(function: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Run ``function`` in the runner's main database thread (one connection, reused)."""
    return sync_to_async(_reconnecting(function), thread_sensitive=True)


class DatabaseThread:
    """A database thread of its own, with its own connection (Django's are per thread)."""

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"gpu-runner-db-{name}")

    def run(self, function: Callable[P, R]) -> Callable[P, Awaitable[R]]:
        """``function`` run in this thread."""
        function = _reconnecting(function)

        async def call(*args: P.args, **kwargs: P.kwargs) -> R:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, functools.partial(function, *args, **kwargs)
            )

        return call

    async def close(self) -> None:
        """Give this thread's connection back and end the thread."""
        await self.run(db.connections.close_all)()
        self._executor.shutdown(wait=False)


async def until_done(
    function: Callable[P, R], *args: P.args, thread: DatabaseThread | None = None,
    **kwargs: P.kwargs,
) -> R:
    """Call ``function`` in the main database thread (or ``thread``) until the database answers.

    For writes that must not be dropped (a job's outcome): while PostgreSQL is down or
    restarting, wait with capped exponential backoff and try again."""
    backoff = Backoff(first=0.1, cap=5.0)
    call = in_db(function) if thread is None else thread.run(function)
    while True:
        try:
            return await call(*args, **kwargs)
        except DATABASE_UNAVAILABLE as error:
            delay = backoff.next()
            logger.warning(
                "database unavailable (%s); retrying %s in %.1f s",
                str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__,
                function.__name__, delay,
            )
            await asyncio.sleep(delay)
