"""The runner: takes Procrastinate jobs many at a time and runs them through their handlers.

A job's way, in one direction:

    intake (``_take_jobs``)   one statement takes every waiting job there is room for
                              (``intake.fetch``: priority, fair turns between owners, locks,
                              SKIP LOCKED), and in the same transaction each task's handler
                              claims its jobs (``JobHandler.claim``);
    run (``_start``)          each handler starts its group at once (``JobHandler.start``; for
                              inference, one ``Batcher.submit``), one future per job;
    store (``_persist``)      as futures resolve, outcomes are written in groups, one
                              transaction per group: the jobs' rows first (only those this
                              runner still owns), then the handler's rows of exactly those.

Procrastinate's own worker does one SQL round trip to take a job and another to finish it, which
caps it at a few hundred jobs per second, far below what one GPU can serve. This runner keeps
Procrastinate's tables, triggers, events, heartbeats and abort requests, and moves jobs in groups.

A paused queue (``product.queue.pauses``) is skipped by the intake's statement itself: jobs
held when it was paused run to their end, and its resume wakes the runner like a new job.

Stopping (SIGTERM, SIGINT): no new jobs are taken; jobs held finish within ``shutdown_grace``
seconds, and whatever has not finished by then is handed back to the queue at once, untried.
A second signal hands back at once. Jobs of a runner that died without stopping (kill -9, lost
machine) are found by their stale heartbeat and put back by ``rescue``, which every runner runs.

A forward pass that never returns (``ModelHung``) stops the runner the same way, except that the
jobs whose inputs were in that pass are left to the rescue (their run counts as an attempt), the
liveness file is removed, and ``hung`` is set so the process exits non-zero to be restarted.

Writes are fenced by ownership: outcomes change only jobs this runner still runs, and a job's
handler rows are written only in the transaction that changed its job, after it. A runner taken
for dead, whose jobs were rescued and run elsewhere meanwhile, finds them gone and writes nothing
over the run that replaced it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from django.db import IntegrityError
from procrastinate import App
from procrastinate.jobs import Job

from gpu_runner import metrics
from gpu_runner.batcher import ModelHung
from gpu_runner.coalesce import Coalescer
from gpu_runner.db import DatabaseThread, in_db, until_done
from gpu_runner.handlers import JobHandler, Run
from product.queue import intake, outcomes, pauses, workers
from product.queue.backoff import Backoff
from product.queue.errors import DATABASE_UNAVAILABLE

if TYPE_CHECKING:
    from gpu_runner.report import Reporter

logger = logging.getLogger(__name__)


class _Stop(enum.Enum):
    """Why the runner cancelled a run's future."""

    ABORT = "abort"  # An operator asked: the job ends aborted.
    HAND_BACK = "hand back"  # The runner is stopping: the job goes back untried.


@dataclass(frozen=True)
class _Finished:
    status: str  # "succeeded" | "failed" | "aborted"


_SUCCEEDED, _FAILED, _ABORTED = _Finished("succeeded"), _Finished("failed"), _Finished("aborted")


class _HandBack:
    """The job was not run (the runner is stopping): return it to the queue untried."""


_Outcome = _Finished | _HandBack


class OutcomeNotStored(Exception):
    """A job's outcome could not be written (e.g. a result PostgreSQL refuses); the job and its
    handler's rows are failed with this instead."""


@dataclass(eq=False)
class _Held:
    run: Run
    handler: JobHandler | None  # None: no handler for its task (the job fails).
    started: float
    future: asyncio.Future | None = None
    stop: _Stop | None = None


class Runner:
    def __init__(
        self,
        *,
        app: App,
        queues: Sequence[str],
        handlers: Sequence[JobHandler],
        capacity: int,
        heartbeat_interval: float,
        shutdown_grace: float,
        rescue: Callable[[], object] | None = None,
        poll_interval: float = 1.0,
        heartbeat_file: Path | None = None,
        max_held_texts: int | None = None,
        urgent_priority: int | None = None,
        fair: bool = True,
        reporter: Reporter | None = None,
    ) -> None:
        """``capacity`` bounds the jobs held at once; ``max_held_texts`` the texts (a job's
        ``texts`` argument, 1 without one) up to which more jobs below ``urgent_priority`` are
        taken, so a runner does not sit on a backlog the next user's job would wait behind.
        ``fair=False`` takes the oldest work of all owners first (for comparing). ``app`` is
        Procrastinate's, for its LISTEN. ``reporter`` records, at each heartbeat, what the runner
        tells operators of itself (``gpu_runner.report``)."""
        self.app = app
        self.queues = list(queues)
        self.handlers: Mapping[str, JobHandler] = {h.task_name: h for h in handlers}
        self.capacity = capacity
        self._min_fetch = max(1, capacity // 4)
        self.heartbeat_interval = heartbeat_interval
        self.shutdown_grace = shutdown_grace
        self.rescue = rescue
        self.poll_interval = poll_interval
        self.heartbeat_file = heartbeat_file
        self.max_held_texts = max_held_texts if fair else None
        self.urgent_priority = urgent_priority
        self.fair = fair
        self.reporter = reporter
        self.worker_id: int | None = None
        self.hung: ModelHung | None = None  # Set when a forward pass hung: exit non-zero.
        self._held: dict[int, _Held] = {}  # Jobs taken and not yet ended, by id.
        self._held_texts = 0
        # Outcomes are written in a database thread of their own, beside the one taking jobs.
        self._store_thread = DatabaseThread("store")
        self._finisher: Coalescer[tuple[_Held, _Outcome], None] = Coalescer(self._persist)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._hurry = asyncio.Event()

    # --- lifecycle ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop taking jobs; a second call stops waiting for the jobs held."""
        if self._stopping.is_set():
            logger.info("stop requested again: handing back held jobs now")
            self._hurry.set()
        else:
            logger.info("stop requested: taking no new jobs")
            self._stopping.set()
        self._wake.set()

    def model_hung(self, error: ModelHung) -> None:
        """A forward pass did not return in time, and its thread cannot be stopped: take no
        more jobs, remove the liveness file (a probe restarts the process even if stopping
        wedges too), and stop. Held jobs end by themselves, as the batcher fails every input
        with ``ModelHung``: those in the pass that hung are left to the rescue, the others are
        handed back untried. ``hung`` tells the caller to exit non-zero."""
        if self.hung is not None:
            return
        self.hung = error
        logger.critical(
            "%s: this runner stops taking jobs, gives back the ones it holds and exits so "
            "that it is restarted", error,
        )
        if self.heartbeat_file is not None:
            self.heartbeat_file.unlink(missing_ok=True)
        self._stopping.set()
        self._wake.set()

    async def run(self, *, wait: bool = True, install_signal_handlers: bool = True) -> None:
        """Take and run jobs until stopped; with ``wait=False``, until the queues are empty."""
        loop = asyncio.get_running_loop()
        if install_signal_handlers:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self.stop)
        self.worker_id = await until_done(workers.register)
        logger.info("worker %s taking jobs from %s", self.worker_id, ", ".join(self.queues))
        for pause in await until_done(pauses.paused_queues):
            if pause.queue_name in self.queues:
                logger.warning("queue %s is paused (by %s): none of its jobs are taken until "
                               "it is resumed", pause.queue_name, pause.paused_by)
        side_tasks = [
            loop.create_task(self._keep_heartbeat(), name="heartbeat"),
            loop.create_task(self._listen(), name="listen"),
        ]
        if self.rescue is not None:
            side_tasks.append(loop.create_task(self._keep_rescuing(), name="rescue"))
        try:
            await self._take_jobs(wait=wait)
        finally:
            await self._shutdown(side_tasks)
            if install_signal_handlers:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(signum)

    async def _take_jobs(self, *, wait: bool) -> None:
        backoff = Backoff(first=0.1, cap=5.0)
        while not self._stopping.is_set():
            room = self.capacity - len(self._held)
            taken = 0
            self._wake.clear()
            # A fetch of a few jobs costs about what one of many does: while jobs are held, take
            # more once a quarter of the room is free (the held ones keep the model busy).
            if room >= self._min_fetch or (room > 0 and not self._held):
                try:
                    claimed = await in_db(self._take)(room, self._room_in_texts())
                    backoff.reset()
                except IntegrityError:
                    # A race on a job lock (try again), or our worker row was pruned because we
                    # were silent too long (join again).
                    alive, _ = await until_done(workers.heartbeat, worker_id=self.worker_id, running=[])
                    if not alive:
                        self.worker_id = await until_done(workers.register)
                        logger.warning("this runner was taken for dead; now worker %s", self.worker_id)
                    continue
                except DATABASE_UNAVAILABLE as error:
                    delay = backoff.next()
                    logger.warning("cannot take jobs (%s); retrying in %.1f s", _first_line(error), delay)
                    await _wait_any(self._stopping.wait(), asyncio.sleep(delay))
                    continue
                taken = sum(len(runs) for _, runs in claimed)
                for handler, runs in claimed:
                    self._start(handler, runs)
                metrics.JOBS_TAKEN.inc(taken)
            if not wait and not taken and not self._held:
                return  # Drained.
            if room <= 0 or taken < room:
                # Full (in jobs or texts), or the queue is empty: wait for a job to end, a new
                # job, or the poll.
                await _wait_any(self._wake.wait(), asyncio.sleep(self.poll_interval))

    async def _shutdown(self, side_tasks: list[asyncio.Task]) -> None:
        running = [held.future for held in self._held.values() if held.future is not None]
        if running:
            logger.info("waiting up to %.0f s for %d held jobs", self.shutdown_grace, len(running))
            await _wait_any(asyncio.wait(running, timeout=self.shutdown_grace), self._hurry.wait())
        unfinished = [held for held in self._held.values() if held.future is not None]
        if unfinished:
            logger.info("handing back %d unfinished jobs", len(unfinished))
            for held in unfinished:
                held.stop = _Stop.HAND_BACK
                held.future.cancel()
        while self._held:  # Their futures' callbacks run on the next turns of the loop.
            await asyncio.sleep(0)
        await self._finisher.wait_idle()
        await self._store_thread.close()
        for task in side_tasks:
            task.cancel()
        await asyncio.gather(*side_tasks, return_exceptions=True)
        with contextlib.suppress(*DATABASE_UNAVAILABLE):
            await in_db(workers.unregister)(self.worker_id)
            if self.reporter is not None:
                await in_db(self.reporter.forget)(worker_id=self.worker_id)
            if self.hung is not None and self.rescue is not None:
                # Without a worker, the jobs of the pass that hung are stalled at once: put
                # them back now, counting the lost run (the rescue fails a job that keeps
                # hanging its runners once its attempts are used up).
                await in_db(self.rescue)()
        logger.info("worker %s stopped", self.worker_id)

    # --- intake ------------------------------------------------------------------------------

    def _room_in_texts(self) -> int | None:
        """Texts this runner may take now (None: no bound). A fetch with room ranks every
        waiting owner's first jobs, one without looks up interactive jobs only (an index
        scan): until a quarter of the room is free, only those are looked for, so a deep
        backlog is not ranked again each time one of its jobs ends."""
        if self.max_held_texts is None:
            return None
        free = self.max_held_texts - self._held_texts
        return free if free >= self.max_held_texts // 4 else 0

    def _take(self, limit: int, room: int | None) -> list[tuple[JobHandler | None, list[Run]]]:
        """Take up to ``limit`` jobs (and ``room`` texts, see ``intake.fetch``) and let their
        handlers claim them, in one transaction; the runs, by handler."""
        from django.db import transaction

        claimed: list[tuple[JobHandler | None, list[Run]]] = []
        with transaction.atomic():
            jobs = intake.fetch(
                worker_id=self.worker_id, queues=self.queues, limit=limit, room=room,
                urgent=self.urgent_priority, fair=self.fair,
            )
            for task_name, group in _by_task(jobs).items():
                handler = self.handlers.get(task_name)
                work = handler.claim(group) if handler is not None else {}
                claimed.append((handler, [Run(job, work.get(job.id)) for job in group]))
        return claimed

    # --- run ---------------------------------------------------------------------------------

    def _start(self, handler: JobHandler | None, runs: list[Run]) -> None:
        now = time.perf_counter()
        held = [_Held(run, handler, now) for run in runs]
        for item in held:
            self._held[item.run.job.id] = item
            self._held_texts += _texts(item.run.job)
        if handler is None:
            for item in held:
                logger.error("job %s: no handler for task %r in this runner",
                             item.run.job.id, item.run.job.task_name)
                self._end(item, _FAILED)
            return
        to_run = [item for item in held if item.run.work is not None]
        for item in held:
            if item.run.work is None:  # Nothing to run (e.g. its request was cancelled).
                self._end(item, _SUCCEEDED)
        if not to_run:
            return
        try:
            futures = handler.start([item.run for item in to_run])
        except Exception as error:  # A bug in the handler: its jobs fail, saying so.
            logger.error("starting %d jobs of %s failed", len(to_run), handler.task_name, exc_info=True)
            for item in to_run:
                item.run.error = error
                self._end(item, _FAILED)
            return
        for item, future in zip(to_run, futures, strict=True):
            item.future = future
            future.add_done_callback(lambda future, item=item: self._ended(item, future))

    def _ended(self, held: _Held, future: asyncio.Future) -> None:
        """A run's future is done: decide its job's outcome and queue it for writing."""
        run = held.run
        if future.cancelled():
            if held.stop is _Stop.ABORT:
                self._end(held, _ABORTED)
            else:
                self._end(held, _HandBack())
            return
        error = future.exception()
        if error is None:
            run.result = future.result()
            self._end(held, _SUCCEEDED)
        elif isinstance(error, ModelHung):
            self.model_hung(error)
            if error.ran:
                # Its inputs were in the pass that hung: nothing is written; the job stays
                # ``doing`` until the rescue counts the lost run as an attempt.
                self._release(held, "lost")
            else:
                self._end(held, _HandBack())
        else:
            if not isinstance(error, Exception):
                logger.error("job %s ended with %r", run.job.id, error)
            else:
                logger.error("job %s failed", run.job.id, exc_info=error)
            run.error = error
            self._end(held, _FAILED)

    def _end(self, held: _Held, outcome: _Outcome) -> None:
        self._release(held, _outcome_name(outcome))
        self._finisher.post((held, outcome))

    def _release(self, held: _Held, outcome: str) -> None:
        """The job no longer holds room in this runner."""
        job = held.run.job
        if self._held.pop(job.id, None) is None:
            return
        self._held_texts -= _texts(job)
        self._wake.set()
        metrics.JOB_SECONDS.labels(job.task_name, outcome).observe(time.perf_counter() - held.started)

    # --- store -------------------------------------------------------------------------------

    async def _persist(self, finished: list[tuple[_Held, _Outcome]]) -> list[None]:
        """Write the outcomes of many jobs in one transaction, waiting out a database outage.

        A group whose transaction fails for another reason (a result PostgreSQL refuses, a bug
        in a handler) is written again job by job, so one bad outcome cannot roll back the
        others and leave them ``doing``; a job whose own write fails is failed, saying why."""
        try:
            await self._write(finished)
        except Exception as error:
            if len(finished) == 1:
                await self._write_failure(finished[0], error)
            else:
                logger.error(
                    "writing the outcomes of %d jobs together failed (%s); writing each alone",
                    len(finished), _first_line(error),
                )
                for item in finished:
                    try:
                        await self._write([item])
                    except Exception as error:
                        await self._write_failure(item, error)
        return [None] * len(finished)

    async def _write(self, finished: list[tuple[_Held, _Outcome]]) -> None:
        await until_done(
            _write_outcomes, worker_id=self.worker_id, finished=finished, thread=self._store_thread
        )

    async def _write_failure(self, item: tuple[_Held, _Outcome], error: Exception) -> None:
        held, outcome = item
        logger.error(
            "job %s: its outcome (%s) could not be written; failing it",
            held.run.job.id, _outcome_name(outcome), exc_info=error,
        )
        failure = OutcomeNotStored(f"its outcome could not be stored: {_first_line(error)}")
        failure.__cause__ = error
        held.run.error = failure
        try:
            await self._write([(held, _FAILED)])
        except Exception:  # A bug: the job stays doing until the rescue after a restart.
            logger.critical("job %s: it could not be failed either", held.run.job.id, exc_info=True)

    # --- side tasks --------------------------------------------------------------------------

    async def _keep_heartbeat(self) -> None:
        while True:
            try:
                alive, to_abort = await in_db(workers.heartbeat)(
                    worker_id=self.worker_id, running=list(self._held)
                )
                if not alive:
                    # Pruned as stalled (e.g. the database was unreachable for too long): the
                    # rescue may run our jobs elsewhere, whose results win only if first.
                    self.worker_id = await in_db(workers.register)()
                    logger.warning("heartbeat was missed for too long; now worker %s", self.worker_id)
                for job_id in to_abort:
                    self._abort_job(job_id)
                metrics.HEARTBEAT.set_to_current_time()
                await self._report()
            except DATABASE_UNAVAILABLE as error:
                logger.warning("heartbeat failed: %s", _first_line(error))
            if self.heartbeat_file is not None and self.hung is None:
                # Liveness of this process, not of the database: an outage must not get
                # runners restarted (and their models reloaded) by a liveness probe; a model
                # that hung must (model_hung removed the file).
                self.heartbeat_file.touch()
            await asyncio.sleep(self.heartbeat_interval)

    async def _report(self) -> None:
        """Tell operators how this runner is doing; a report that fails is only logged (the
        heartbeat, which keeps the jobs held, must go on)."""
        if self.reporter is None:
            return
        try:
            await in_db(self.reporter.report)(
                worker_id=self.worker_id, jobs_held=len(self._held), draining=self._stopping.is_set()
            )
        except DATABASE_UNAVAILABLE:
            raise
        except Exception:
            logger.exception("the runner's report could not be written")

    async def _keep_rescuing(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                await in_db(self.rescue)()
            except DATABASE_UNAVAILABLE as error:
                logger.warning("rescue of stalled jobs failed: %s", _first_line(error))

    async def _listen(self) -> None:
        """Wake up on new jobs, resumed queues (``product.queue.pauses``) and abort requests
        (Procrastinate's NOTIFY channels)."""

        async def on_notification(*, channel: str, notification: dict) -> None:
            if notification["type"] == "job_inserted":
                self._wake.set()
            elif notification["type"] == "queue_resumed":
                logger.info("queue %s resumed: taking its jobs again", notification.get("queue"))
                self._wake.set()
            elif notification["type"] == "abort_job_requested":
                self._abort_job(notification["job_id"])

        backoff = Backoff(first=0.5, cap=5.0)
        while True:
            try:
                await self.app.job_manager.listen_for_jobs(
                    on_notification=on_notification, queues=self.queues
                )
            except Exception as error:  # Connection lost: the poll covers the gap.
                logger.warning("listening for jobs failed (%s); listening again soon", _first_line(error))
            await asyncio.sleep(backoff.next())

    def _abort_job(self, job_id: int) -> None:
        held = self._held.get(job_id)
        if held is not None and held.future is not None and held.stop is None:
            logger.info("job %s: abort requested", job_id)
            held.stop = _Stop.ABORT
            held.future.cancel()


def _write_outcomes(*, worker_id: int, finished: list[tuple[_Held, _Outcome]]) -> None:
    """Write many jobs' outcomes in one transaction: each job's row first, then, through its
    handler, the rows of exactly the jobs that changed. A job no longer running here (this
    runner was taken for dead and the job rescued meanwhile) is skipped, and so are its rows."""
    from django.db import transaction

    ended = [(held, outcome) for held, outcome in finished if isinstance(outcome, _Finished)]
    handed = [held for held, outcome in finished if isinstance(outcome, _HandBack)]
    with transaction.atomic():
        owned = outcomes.finish(
            worker_id=worker_id,
            outcomes=[(held.run.job.id, outcome.status) for held, outcome in ended],
        )
        status = {id(held): outcome.status for held, outcome in ended}
        for handler, group in _by_handler(held for held, _ in ended if held.run.job.id in owned):
            succeeded = [held.run for held in group
                         if status[id(held)] == "succeeded" and held.run.work is not None]
            failed = [held.run for held in group if status[id(held)] == "failed"]
            if succeeded:
                handler.store(succeeded)
            if failed:
                handler.fail(failed)
        handed_back = outcomes.hand_back(
            worker_id=worker_id, job_ids=[held.run.job.id for held in handed]
        )
        for handler, group in _by_handler(h for h in handed if h.run.job.id in handed_back):
            handler.release([held.run.job for held in group])
    dropped = [held.run.job.id for held, _ in finished if held.run.job.id not in owned | handed_back]
    if dropped:
        logger.warning(
            "jobs %s are no longer this runner's (it was taken for dead and they were rescued); "
            "their outcomes here are dropped", dropped,
        )


def _by_handler(helds) -> list[tuple[JobHandler, list[_Held]]]:
    grouped: dict[int, tuple[JobHandler, list[_Held]]] = {}
    for held in helds:
        if held.handler is not None:
            grouped.setdefault(id(held.handler), (held.handler, []))[1].append(held)
    return list(grouped.values())


def _texts(job: Job) -> int:
    """The texts a job brings (its ``texts`` argument; 1 for a job without one)."""
    texts = job.task_kwargs.get("texts")
    return texts if isinstance(texts, int) else 1


def _by_task(jobs: list[Job]) -> dict[str, list[Job]]:
    grouped: dict[str, list[Job]] = {}
    for job in jobs:
        grouped.setdefault(job.task_name, []).append(job)
    return grouped


def _outcome_name(outcome: _Outcome) -> str:
    return outcome.status if isinstance(outcome, _Finished) else "handed_back"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


async def _wait_any(*awaitables) -> None:
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
