"""Dynamic batching across jobs: inputs of jobs that wait together run in one forward pass.

Each job hands its items to its model's batcher and awaits them. The batcher takes up to
``max_batch_size`` waiting items (waiting at most ``max_wait`` for more once the first one
arrives, so a lone request is barely delayed), runs them in the model's own thread, and gives
each job back exactly its own outputs. If a batch fails, its items are run one by one so only
the input that cannot run fails.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from gpu_runner.models.base import InferenceError, RunnerModel

logger = logging.getLogger(__name__)


@dataclass
class _Item:
    value: str
    future: asyncio.Future
    # Share of forward-pass time spent on this item, in milliseconds.
    compute_ms: float = field(default=0.0)


class Batcher:
    def __init__(self, model: RunnerModel, *, max_batch_size: int, max_wait: float) -> None:
        self.model = model
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait
        self._pending: list[_Item] = []
        self._arrived: asyncio.Event | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=model.spec.name)
        self._loop_task: asyncio.Task | None = None

    async def run(self, values: list[str]) -> tuple[list[Any], float]:
        """Run ``values`` (batched with whatever else is waiting); return their outputs in
        order and the model time spent on them in ms. Raises InferenceError for a bad input."""
        loop = asyncio.get_running_loop()
        if self._loop_task is None or self._loop_task.done():
            # Bound to the running event loop, so it is created with the loop task.
            self._arrived = asyncio.Event()
            self._loop_task = loop.create_task(self._batch_loop(self._arrived))
        items = [_Item(value, loop.create_future()) for value in values]
        self._pending.extend(items)
        self._arrived.set()
        try:
            outputs = await asyncio.gather(*(item.future for item in items))
        except BaseException:
            for item in items:  # The job failed or was aborted: drop what has not run yet.
                item.future.cancel()
            raise
        return list(outputs), sum(item.compute_ms for item in items)

    async def _batch_loop(self, arrived: asyncio.Event) -> None:
        while True:
            await arrived.wait()
            if len(self._pending) < self.max_batch_size and self.max_wait > 0:
                await asyncio.sleep(self.max_wait)  # Let jobs arriving together join in.
            batch = [item for item in self._pending[: self.max_batch_size] if not item.future.done()]
            del self._pending[: self.max_batch_size]
            if not self._pending:
                arrived.clear()
            if batch:
                await self._run_batch(batch)

    async def _run_batch(self, batch: list[_Item]) -> None:
        loop = asyncio.get_running_loop()
        values = [item.value for item in batch]
        started = time.perf_counter()
        try:
            outputs = await loop.run_in_executor(self._executor, self.model.run_batch, values)
        except Exception as error:
            if len(batch) == 1:
                self._settle(batch[0], error=error)
                return
            logger.warning("batch of %d failed (%s); running its items one by one", len(batch), error)
            for item in batch:
                await self._run_batch([item])
            return
        elapsed_ms = (time.perf_counter() - started) * 1000
        logger.debug("batch of %d ran in %.1f ms", len(batch), elapsed_ms)
        for item, output in zip(batch, outputs, strict=True):
            item.compute_ms = elapsed_ms / len(batch)
            self._settle(item, output=output)

    @staticmethod
    def _settle(item: _Item, *, output: Any = None, error: Exception | None = None) -> None:
        if item.future.done():  # Its job was cancelled meanwhile.
            return
        if error is None:
            item.future.set_result(output)
        else:
            item.future.set_exception(
                error if isinstance(error, InferenceError)
                else InferenceError(f"the model could not run this input: {error}")
            )
