"""Dynamic batching across jobs: inputs of jobs that wait together run in one forward pass.

The runner hands the inputs of every job it claimed together to its model's batcher in one call
(``submit``), and gets one future per job. The batcher

- prepares (tokenises) the inputs of a group of jobs in one call, in its own thread, so
  preparing the next batch overlaps the forward pass of the current one;
- keeps waiting inputs by priority, then by owner, and takes them in fair turns: a window of a
  few batches' worth of the highest priority waiting (interactive before bulk, and not topped
  up with bulk work), owners in deficit round-robin by tokens from the least served. It sorts
  the window by length to cut padding and cuts it into batches bounded by a token budget
  (padded tokens: longest input × count) and a count, but runs only the batch holding the
  window's first input (the least served owner's oldest), charges each owner the tokens it got
  and puts the rest back in place. A newcomer counts as served just less than those waiting,
  so it goes next: it waits about one batch, not behind anyone's backlog. Within one owner the
  oldest input always goes first, so nothing waits behind inputs that arrived later;
- when the model is idle and other jobs' inputs are still being prepared, waits at most
  ``max_wait`` for them to join, so a burst becomes one batch and a lone request is not
  delayed at all;
- resolves each job's future with exactly its own outputs, and reports progress of large jobs;
- when a batch fails (CUDA out of memory, a bad input), splits it in two and runs each half, so
  only an input that cannot run even alone fails, with its own error (its job's future raises it);
- drops the inputs of a job whose future was cancelled (the job was aborted or handed back).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from gpu_runner import metrics
from gpu_runner.models.base import InferenceError, RunnerModel

logger = logging.getLogger(__name__)

# How many batches' worth of waiting inputs are sorted together.
WINDOW_BATCHES = 16

_Owner = Hashable  # Whose turn an input takes (a user id); None for callers that name none.


@dataclass(frozen=True)
class Work:
    """One job's inputs, as the runner submits them: its ``values`` (raw inputs, prepared by the
    model), its ``priority`` (higher goes first) and ``owner`` (owners take turns within a
    priority), and ``on_progress(done)``, called as its batches finish."""

    values: list[Any]
    priority: int = 0
    owner: _Owner = None
    on_progress: Callable[[int], None] | None = None


@dataclass(frozen=True)
class Done:
    """What a job's future gives: its outputs in input order, the model time spent on them,
    and the size of its inputs as prepared (``count_tokens``, e.g. tokens after tokenising)."""

    outputs: list[Any]
    compute_ms: float
    tokens: int = 0


@dataclass(eq=False)
class _Job:
    """A submitted job: its future, and its outputs as they come back."""

    future: asyncio.Future = field(repr=False)
    on_progress: Callable[[int], None] | None
    outputs: list[Any] = field(repr=False)
    remaining: int
    compute_ms: float = 0.0
    tokens: int = 0

    @property
    def dropped(self) -> bool:
        """Cancelled, failed or done: nothing more of it needs to run."""
        return self.future.done()


@dataclass(eq=False)
class _Item:
    prepared: Any
    tokens: int
    job: _Job
    index: int  # Where its output goes in the job's outputs.
    priority: int = 0
    owner: _Owner = None


class _Turns:
    """Waiting inputs by priority, then by owner (each owner's in arrival order); the tokens
    each owner has been served, which decide whose turn it is; and how many inputs and tokens
    wait in all."""

    def __init__(self, quantum: int) -> None:
        self.quantum = quantum  # Tokens each owner may add to a window per round.
        self.queues: dict[int, dict[_Owner, deque[_Item]]] = {}
        self.served: dict[int, dict[_Owner, int]] = {}
        self.items = 0
        self.tokens = 0

    def __bool__(self) -> bool:
        return self.items > 0

    def add(self, items: list[_Item]) -> None:
        for item in items:
            owners = self.queues.setdefault(item.priority, {})
            queue = owners.get(item.owner)
            if queue is None:
                queue = owners[item.owner] = deque()
                self._join(item.priority, item.owner)
            queue.append(item)
        self.items += len(items)
        self.tokens += sum(item.tokens for item in items)

    def _join(self, priority: int, owner: _Owner) -> None:
        """``owner`` starts waiting: it counts as served one token less than the least served
        owner waiting now, so a newcomer goes next, unless it was served more than that
        already (an owner whose queue ran dry for a moment gains nothing by coming back)."""
        served = self.served.setdefault(priority, {})
        others = [served.get(o, 0) for o, queue in self.queues[priority].items() if queue]
        if others:
            served[owner] = max(served.get(owner, min(others) - 1), min(others) - 1)

    def window(self, max_items: int, max_tokens: int) -> list[_Item]:
        """Up to ``max_items`` inputs and ``max_tokens`` tokens (at least one input) of the
        highest priority with inputs waiting (interactive batches are not topped up with bulk
        work: they run as fast as the model allows), taken out in fair turns: owners from the
        least served, each in turn adding ``quantum`` tokens of its oldest inputs (deficit
        round-robin), so owners get equal shares of tokens whatever their backlogs. The first
        input is the least served owner's oldest. ``put_back`` returns those not run."""
        window: list[_Item] = []
        tokens = 0
        for priority in sorted(self.queues, reverse=True):
            owners = self.queues[priority]
            served = self.served.get(priority, {})
            waiting = sorted((o for o, queue in owners.items() if queue),
                             key=lambda owner: served.get(owner, 0))
            deficit = dict.fromkeys(waiting, 0)
            while waiting:
                for owner in waiting:
                    queue = owners[owner]
                    deficit[owner] += self.quantum
                    while queue and queue[0].tokens <= deficit[owner]:
                        item = queue[0]
                        if window and (
                            len(window) >= max_items or tokens + item.tokens > max_tokens
                        ):
                            return window
                        queue.popleft()
                        self.items -= 1
                        self.tokens -= item.tokens
                        deficit[owner] -= item.tokens
                        if not item.job.dropped:  # A cancelled job's input is dropped here.
                            window.append(item)
                            tokens += item.tokens
                waiting = [owner for owner in waiting if owners[owner]]
            if window:
                return window
        return window

    def put_back(self, items: list[_Item]) -> None:
        """Return ``items`` (taken by ``window``, in its order) to the front of their owners'
        queues, in their order."""
        by_owner: dict[tuple[int, _Owner], list[_Item]] = {}
        for item in items:
            by_owner.setdefault((item.priority, item.owner), []).append(item)
        for (priority, owner), returned in by_owner.items():
            self.queues[priority][owner].extendleft(reversed(returned))
        self.items += len(items)
        self.tokens += sum(item.tokens for item in items)

    def charge(self, batch: list[_Item]) -> None:
        """``batch`` is about to run: its owners are counted as served its tokens. Owners with
        nothing waiting leave the turns; what they were served is kept while it is more than
        the least served owner's still waiting (so it still counts if they come back)."""
        for item in batch:
            served = self.served.setdefault(item.priority, {})
            served[item.owner] = served.get(item.owner, 0) + item.tokens
        for priority, owners in list(self.queues.items()):
            for owner in [owner for owner, queue in owners.items() if not queue]:
                del owners[owner]
            served = self.served.get(priority, {})
            if not owners:
                del self.queues[priority]
                self.served.pop(priority, None)
                continue
            least = min(served.get(owner, 0) for owner in owners)
            for owner in [o for o, n in served.items() if o not in owners and n <= least]:
                del served[owner]


class ModelHung(Exception):
    """A forward pass did not return within the batch timeout. The model's thread cannot be
    interrupted, so nothing more can run in this process: the runner stops and exits.

    ``ran`` tells an input that was in the pass that hung (its job's run is lost, and counts
    as an attempt) from one that only waited behind it (its job goes back untried)."""

    def __init__(self, model: str, timeout: float, *, ran: bool) -> None:
        self.ran = ran
        where = "" if ran else " (this input was waiting behind it)"
        super().__init__(f"a forward pass of {model} did not return within {timeout:g} s{where}")


class Batcher:
    def __init__(
        self,
        model: RunnerModel,
        *,
        max_batch_size: int,
        max_batch_tokens: int,
        max_wait: float,
        fair: bool = True,
        batch_timeout: float = 0.0,
    ) -> None:
        """``fair=False`` restores the old order, for comparing: all inputs in one queue,
        oldest first, and every batch of a window run before looking again.
        ``batch_timeout``: seconds a forward pass may take before its inputs, and every input
        after them, fail with ``ModelHung`` (0: no limit)."""
        if max_batch_tokens < model.max_input_tokens:
            raise ValueError(
                f"GPU_RUNNER_MAX_BATCH_TOKENS={max_batch_tokens} is smaller than one input of "
                f"{model.spec.name} can be ({model.max_input_tokens} tokens)"
            )
        self.model = model
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.max_wait = max_wait
        self.fair = fair
        self.batch_timeout = batch_timeout
        self._stuck = False  # A pass never returned: the model thread is still in it.
        self._pending = _Turns(quantum=max(model.max_input_tokens, 1))
        self._preparing = 0  # Groups of jobs whose inputs are being prepared: more work coming.
        self._preparations: set[asyncio.Task] = set()
        self._arrived: asyncio.Event | None = None
        self._loop_task: asyncio.Task | None = None
        name = model.spec.name
        self._prepare_thread = ThreadPoolExecutor(1, thread_name_prefix=f"{name}-prepare")
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix=f"{name}-model")

    def submit(self, works: list[Work]) -> list[asyncio.Future]:
        """Queue the inputs of many jobs, batched with whatever else is waiting; returns one
        future per job, in order, giving its ``Done`` (or raising InferenceError for an input
        the model cannot run, or ModelHung). Cancelling a future drops its inputs not run yet.
        The jobs' inputs are prepared together, in one call of the model's ``prepare``."""
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in works]
        if works:
            self._start_preparing(works, futures)
        return futures

    def _start_preparing(self, works: list[Work], futures: list[asyncio.Future]) -> None:
        self._preparing += 1
        task = asyncio.get_running_loop().create_task(self._prepare(works, futures))
        self._preparations.add(task)
        task.add_done_callback(self._preparations.discard)

    async def _prepare(self, works: list[Work], futures: list[asyncio.Future]) -> None:
        loop = asyncio.get_running_loop()
        try:
            values = [value for work in works for value in work.values]
            prepared = await loop.run_in_executor(self._prepare_thread, self.model.prepare, values)
            items = self._items(works, futures, prepared)
        except Exception as error:
            if len(works) > 1:  # Prepared alone, only the job with the bad input fails.
                for work, future in zip(works, futures):
                    self._start_preparing([work], [future])
                return
            failure = InferenceError(f"the model could not prepare this input: {error}")
            failure.__cause__ = error
            if not futures[0].done():
                futures[0].set_exception(failure)
            return
        finally:
            self._preparing -= 1
        self._ensure_loop(loop)
        self._pending.add(items)
        self._arrived.set()

    def _items(
        self, works: list[Work], futures: list[asyncio.Future], prepared: list[Any]
    ) -> list[_Item]:
        items: list[_Item] = []
        count_tokens = self.model.count_tokens
        start = 0
        for work, future in zip(works, futures, strict=True):
            n = len(work.values)
            job = _Job(future, work.on_progress, [None] * n, n)
            priority, owner = (work.priority, work.owner) if self.fair else (0, None)
            job_items = [
                _Item(p, count_tokens(p), job, index, priority, owner)
                for index, p in enumerate(prepared[start : start + n])
            ]
            job.tokens = sum(item.tokens for item in job_items)
            items.extend(job_items)
            start += n
            if n == 0 and not future.done():
                future.set_result(Done([], 0.0))
        return items

    def _ensure_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop_task is None or self._loop_task.done():
            # An Event belongs to the loop it is used on, so it is made with the loop task.
            self._arrived = asyncio.Event()
            self._loop_task = loop.create_task(self._batch_loop(self._arrived))

    async def _batch_loop(self, arrived: asyncio.Event) -> None:
        while True:
            await arrived.wait()
            deadline = asyncio.get_running_loop().time() + self.max_wait
            while self._preparing and not self._window_is_full():
                # The model was idle and more inputs are on their way: let the burst gather.
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                await asyncio.sleep(min(remaining, 0.0005))
            while self._pending:
                for batch in self._next_batches():
                    batch = [item for item in batch if not item.job.dropped]
                    if batch:
                        await self._run_batch(batch)
            arrived.clear()

    def _window_is_full(self) -> bool:
        return (
            self._pending.items >= self.max_batch_size
            or self._pending.tokens >= self.max_batch_tokens
        )

    def _next_batches(self) -> list[list[_Item]]:
        """What to run before looking at the waiting inputs again: the batch holding the
        window's first input (the least served owner's oldest; the rest go back), or, in the
        old order, all of the window's batches."""
        window = self._pending.window(
            WINDOW_BATCHES * self.max_batch_size, WINDOW_BATCHES * self.max_batch_tokens
        )
        batches = self.plan(window)
        if self.fair and batches:
            first = window[0]
            batches = [next(batch for batch in batches if any(item is first for item in batch))]
            running = set(map(id, batches[0]))
            self._pending.put_back([item for item in window if id(item) not in running])
        self._pending.charge([item for batch in batches for item in batch])
        return batches

    def plan(self, items: list[_Item]) -> list[list[_Item]]:
        """Sort by length and cut into batches whose padded size fits the budget."""
        batches: list[list[_Item]] = []
        batch: list[_Item] = []
        for item in sorted(items, key=lambda item: item.tokens):
            # Sorted ascending, so the newcomer is the longest: padded size = its length × n.
            if batch and (
                len(batch) == self.max_batch_size
                or item.tokens * (len(batch) + 1) > self.max_batch_tokens
            ):
                batches.append(batch)
                batch = []
            batch.append(item)
        if batch:
            batches.append(batch)
        return batches

    async def _run_batch(self, batch: list[_Item]) -> None:
        name = self.model.spec.name
        if self._stuck:  # Nothing queued behind the stuck pass can ever run.
            self._fail(batch, lambda: ModelHung(name, self.batch_timeout, ran=False))
            return
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        forward = loop.run_in_executor(
            self._model_thread, self.model.run_batch, [item.prepared for item in batch]
        )
        try:
            # A thread cannot be cancelled: a pass that hangs is noticed here, on the event
            # loop, and only its inputs' callers are told (the runner then stops).
            done, _ = await asyncio.wait({forward}, timeout=self.batch_timeout or None)
            if not done:
                self._stuck = True
                logger.critical(
                    "%s: a forward pass of %d inputs did not return within %g s "
                    "(GPU_RUNNER_BATCH_TIMEOUT); the model's thread is stuck",
                    name, len(batch), self.batch_timeout,
                )
                self._fail(batch, lambda: ModelHung(name, self.batch_timeout, ran=True))
                return
            outputs = forward.result()
        except Exception as error:
            await self._split(batch, error)
            return
        elapsed = time.perf_counter() - started
        tokens = sum(item.tokens for item in batch)
        metrics.BATCH_SECONDS.labels(name).observe(elapsed)
        metrics.BATCH_ITEMS.labels(name).observe(len(batch))
        metrics.BATCH_TOKENS.labels(name).observe(tokens)
        metrics.RECENT_BATCHES.record(len(batch))
        logger.debug("batch of %d (%d tokens) ran in %.1f ms", len(batch), tokens, elapsed * 1000)
        touched: dict[int, _Job] = {}
        for item, output in zip(batch, outputs, strict=True):
            job = item.job
            # Each input's share of the pass, by its tokens.
            job.compute_ms += elapsed * 1000 * item.tokens / max(tokens, 1)
            job.outputs[item.index] = output
            job.remaining -= 1
            touched[id(job)] = job
        for job in touched.values():
            if job.dropped:
                continue
            if job.remaining == 0:
                job.future.set_result(Done(job.outputs, job.compute_ms, job.tokens))
            elif job.on_progress is not None:
                job.on_progress(len(job.outputs) - job.remaining)

    async def _split(self, batch: list[_Item], error: Exception) -> None:
        self.model.recover(error)
        if len(batch) == 1:
            item = batch[0]
            metrics.INPUT_FAILURES.labels(self.model.spec.name).inc()
            failure = self.model.explain(error, item.prepared)
            if failure is not error:
                failure.__cause__ = error  # Kept as the request's traceback.
            if not item.job.dropped:
                item.job.future.set_exception(failure)
            return
        metrics.BATCH_SPLITS.labels(self.model.spec.name).inc()
        logger.warning("batch of %d failed (%s); splitting it in two", len(batch), error)
        middle = len(batch) // 2
        for half in (batch[:middle], batch[middle:]):
            await self._run_batch(half)

    @staticmethod
    def _fail(batch: list[_Item], error: Callable[[], Exception]) -> None:
        for item in batch:
            if not item.job.dropped:
                item.job.future.set_exception(error())


__all__ = ["Batcher", "Done", "InferenceError", "ModelHung", "Work"]
