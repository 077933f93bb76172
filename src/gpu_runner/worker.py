"""The runner's worker: takes Procrastinate jobs many at a time and runs their tasks.

Procrastinate's own worker does one SQL round trip to take a job and another to finish it, which
caps it at a few hundred jobs per second, far below what one GPU can serve. This worker keeps
Procrastinate's tables, tasks, retry strategies, heartbeats and abort requests, and changes how
jobs move: it takes every waiting job it has room for in one statement (``jobqueue.fetch``, the
same ordering, lock and SKIP LOCKED rules), runs them concurrently so the model's batcher can
put their inputs in one forward pass, and finishes them in groups (``Coalescer``).

Stopping (SIGTERM, SIGINT): no new jobs are taken; jobs held finish within ``shutdown_grace``
seconds, and whatever has not finished by then is handed back to the queue at once, untried.
A second signal hands back at once. Jobs of a runner that died without stopping (kill -9, lost
machine) are found by their stale heartbeat and put back by ``rescue``, which every runner runs.

A forward pass that never returns (``ModelHung``) stops the runner the same way, except that the
jobs whose inputs were in that pass are left to the rescue (their run counts as an attempt), the
liveness file is removed, and ``hung`` is set so the process exits non-zero to be restarted.

Writes are fenced by ownership: outcomes change only jobs this worker still runs, and a job's
request row is written only in the transaction that changed its job, after it (job, then request:
the lock order every transaction keeps). A runner taken for dead, whose jobs were rescued and run
elsewhere meanwhile, finds them gone and writes nothing over the run that replaced it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from django.db import IntegrityError
from procrastinate import App, JobContext
from procrastinate.exceptions import JobAborted
from procrastinate.job_context import AbortReason
from procrastinate.jobs import Job

from gpu_runner import metrics
from gpu_runner.batcher import ModelHung
from gpu_runner.coalesce import Coalescer
from gpu_runner.db import DATABASE_ERRORS, in_db, until_done
from product import jobqueue

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskHooks:
    """Database work the runner does for one task's jobs inside its own transactions, so a
    job and the rows it touches change together and no job pays a round trip of its own.

    ``on_taken(jobs)`` runs in the transaction that takes the jobs; what it returns for a job
    id reaches that job's task as ``context.additional_context["taken"]``.
    ``on_succeeded(results)`` runs in the transaction that records jobs as succeeded, with
    what their tasks returned; ``on_failed([(job, error), ...])`` in the one that records jobs
    as failed for good (no retry left), with the errors their tasks raised;
    ``on_handed_back(jobs)`` in the one that returns jobs to the queue untried. Each is called
    after the jobs' rows changed, and only with the jobs this worker still owned.
    """

    on_taken: Callable[[list[Job]], Mapping[int, Any]] | None = None
    on_succeeded: Callable[[list[Any]], None] | None = None
    on_failed: Callable[[list[tuple[Job, BaseException]]], None] | None = None
    on_handed_back: Callable[[list[Job]], None] | None = None


@dataclass(frozen=True)
class _Finished:
    status: str  # "succeeded" | "failed" | "aborted"
    result: Any = None
    error: BaseException | None = None  # Why it failed.


@dataclass(frozen=True)
class _Retry:
    retry_at: datetime | None
    priority: int | None
    queue: str | None
    lock: str | None


class _HandBack:
    """The job was not run (the runner is stopping): return it to the queue untried."""


class _Lost:
    """The job's inputs were in a forward pass that hung: nothing is written; the job stays
    ``doing`` until the rescue counts the lost run as an attempt (see ``_shutdown``)."""


_Outcome = _Finished | _Retry | _HandBack | _Lost


class OutcomeNotStored(Exception):
    """A job's outcome could not be written (e.g. a result PostgreSQL refuses); the job and its
    request are failed with this instead."""


@dataclass
class _Held:
    job: Job
    task: asyncio.Task


class Runner:
    def __init__(
        self,
        *,
        app: App,
        queues: Sequence[str],
        name: str,
        capacity: int,
        heartbeat_interval: float,
        shutdown_grace: float,
        hooks: Mapping[str, TaskHooks] | None = None,
        rescue: Callable[[], object] | None = None,
        poll_interval: float = 1.0,
        heartbeat_file: Path | None = None,
        max_held_texts: int | None = None,
        urgent_priority: int | None = None,
        fair: bool = True,
    ) -> None:
        """``capacity`` bounds the jobs held at once; ``max_held_texts`` the texts (a job's
        ``texts`` argument, 1 without one) up to which more jobs below ``urgent_priority`` are
        taken, so a runner does not sit on a backlog the next user's job would wait behind.
        ``fair=False`` takes the oldest work of all owners first (for comparing)."""
        self.app = app
        self.queues = list(queues)
        self.name = name
        self.capacity = capacity
        self.heartbeat_interval = heartbeat_interval
        self.shutdown_grace = shutdown_grace
        self.hooks = dict(hooks or {})
        self.rescue = rescue
        self.poll_interval = poll_interval
        self.heartbeat_file = heartbeat_file
        self.max_held_texts = max_held_texts if fair else None
        self.urgent_priority = urgent_priority
        self.fair = fair
        self.worker_id: int | None = None
        self.hung: ModelHung | None = None  # Set when a forward pass hung: exit non-zero.
        self._held: dict[int, _Held] = {}
        self._abort: dict[int, AbortReason] = {}
        self._finisher: Coalescer[tuple[Job, _Outcome], None] = Coalescer(self._persist)
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
        self.worker_id = await until_done(jobqueue.register_worker)
        logger.info("worker %s taking jobs from %s", self.worker_id, ", ".join(self.queues))
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
        delay = 0.1
        while not self._stopping.is_set():
            room = self.capacity - len(self._held)
            taken: list[Job] = []
            self._wake.clear()
            if room > 0:
                try:
                    taken, contexts = await in_db(self._take)(room, self._room_in_texts())
                    delay = 0.1
                except IntegrityError:
                    # A race on a job lock (try again), or our worker row was pruned because we
                    # were silent too long (join again).
                    alive, _ = await until_done(jobqueue.heartbeat, worker_id=self.worker_id, running=[])
                    if not alive:
                        self.worker_id = await until_done(jobqueue.register_worker)
                        logger.warning("this runner was taken for dead; now worker %s", self.worker_id)
                    continue
                except DATABASE_ERRORS as error:
                    logger.warning("cannot take jobs (%s); retrying in %.1f s", _first_line(error), delay)
                    await _wait_any(self._stopping.wait(), asyncio.sleep(delay))
                    delay = min(delay * 2, 5.0)
                    continue
                for job in taken:
                    self._start(job, contexts.get(job.id, {}))
                metrics.JOBS_TAKEN.inc(len(taken))
            if not wait and not taken and not self._held:
                return  # Drained.
            if room <= 0 or len(taken) < room:
                # Full (in jobs or texts), or the queue is empty: wait for a job to end, a new
                # job, or the poll.
                await _wait_any(self._wake.wait(), asyncio.sleep(self.poll_interval))

    async def _shutdown(self, side_tasks: list[asyncio.Task]) -> None:
        held = [held.task for held in self._held.values()]
        if held:
            logger.info("waiting up to %.0f s for %d held jobs", self.shutdown_grace, len(held))
            await _wait_any(asyncio.wait(held, timeout=self.shutdown_grace), self._hurry.wait())
        unfinished = list(self._held.values())
        if unfinished:
            logger.info("handing back %d unfinished jobs", len(unfinished))
            for held in unfinished:
                self._abort[held.job.id] = AbortReason.SHUTDOWN
                held.task.cancel()
            await asyncio.gather(*(held.task for held in unfinished), return_exceptions=True)
        await self._finisher.wait_idle()
        for task in side_tasks:
            task.cancel()
        await asyncio.gather(*side_tasks, return_exceptions=True)
        with contextlib.suppress(*DATABASE_ERRORS):
            await in_db(jobqueue.unregister_worker)(self.worker_id)
            if self.hung is not None and self.rescue is not None:
                # Without a worker, the jobs of the pass that hung are stalled at once: put
                # them back now, counting the lost run (the rescue fails a job that keeps
                # hanging its runners once its attempts are used up).
                await in_db(self.rescue)()
        logger.info("worker %s stopped", self.worker_id)

    # --- one job -----------------------------------------------------------------------------

    def _room_in_texts(self) -> int | None:
        """Texts this runner may take now (None: no bound). A fetch with room ranks every
        waiting job (tens of ms with a queue of 20,000), one without looks up interactive jobs
        only (an index scan): until a quarter of the room is free, only those are looked for,
        so a deep backlog is not ranked again each time one of its jobs ends."""
        if self.max_held_texts is None:
            return None
        free = self.max_held_texts - sum(_texts(held.job) for held in self._held.values())
        return free if free >= self.max_held_texts // 4 else 0

    def _take(self, limit: int, room: int | None = None) -> tuple[list[Job], dict[int, dict]]:
        """Take up to ``limit`` jobs (and ``room`` texts, see ``jobqueue.fetch``) and run their
        tasks' ``on_taken`` hooks, in one transaction."""
        from django.db import transaction

        with transaction.atomic():
            jobs = jobqueue.fetch(
                worker_id=self.worker_id, queues=self.queues, limit=limit, room=room,
                urgent=self.urgent_priority, fair=self.fair,
            )
            context: dict[int, dict] = {}
            for task_name, group in _by_task(jobs).items():
                hooks = self.hooks.get(task_name)
                if hooks is not None and hooks.on_taken is not None:
                    taken = hooks.on_taken(group)
                    for job in group:
                        context[job.id] = {"taken": taken.get(job.id)}
        return jobs, context

    def _start(self, job: Job, additional_context: dict) -> None:
        task = asyncio.get_running_loop().create_task(
            self._run(job, additional_context), name=f"job {job.id}"
        )
        self._held[job.id] = _Held(job=job, task=task)

    async def _run(self, job: Job, additional_context: dict) -> None:
        started = time.perf_counter()
        try:
            outcome = await self._execute(job, additional_context)
            if not isinstance(outcome, _Lost):
                await self._finisher.submit((job, outcome))
        finally:
            del self._held[job.id]
            self._abort.pop(job.id, None)
            self._wake.set()
        metrics.JOB_SECONDS.labels(job.task_name, _outcome_name(outcome)).observe(
            time.perf_counter() - started
        )

    async def _execute(self, job: Job, additional_context: dict) -> _Outcome:
        task = self.app.tasks.get(job.task_name)
        if task is None:
            logger.error("job %s: no task named %r in this runner", job.id, job.task_name)
            return _Finished("failed")
        context = JobContext(
            app=self.app,
            worker_name=self.name,
            worker_queues=self.queues,
            job=job,
            start_timestamp=time.time(),
            abort_reason=lambda: self._abort.get(job.id),
            additional_context=additional_context,
        )
        args = [context] if task.pass_context else []
        try:
            if inspect.iscoroutinefunction(task.func):
                result = await task(*args, **job.task_kwargs)
            else:
                result = await asyncio.to_thread(task, *args, **job.task_kwargs)
            return _Finished("succeeded", result)
        except (asyncio.CancelledError, JobAborted):
            reason = self._abort.get(job.id)
            if reason is AbortReason.SHUTDOWN:
                return _HandBack()
            if reason is AbortReason.USER_REQUEST:
                return _Finished("aborted")
            raise
        except ModelHung as error:
            self.model_hung(error)
            return _Lost() if error.ran else _HandBack()
        except Exception as error:
            job_retry = task.get_retry_exception(exception=error, job=job)
            if job_retry is not None:
                decision = job_retry.retry_decision
                logger.warning("job %s failed (%s); retrying", job.id, _first_line(error))
                return _Retry(decision.retry_at, decision.priority, decision.queue, decision.lock)
            logger.error("job %s failed", job.id, exc_info=error)
            return _Finished("failed", error=error)

    async def _persist(self, finished: list[tuple[Job, _Outcome]]) -> list[None]:
        """Write the outcomes of many jobs in one transaction, waiting out a database outage.

        A group whose transaction fails for another reason (a result PostgreSQL refuses, a bug
        in a hook) is written again job by job, so one bad outcome cannot roll back the others
        and leave them ``doing``; a job whose own write fails is failed, saying why."""
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

    async def _write(self, finished: list[tuple[Job, _Outcome]]) -> None:
        await until_done(
            _persist_outcomes, worker_id=self.worker_id, finished=finished, hooks=self.hooks
        )

    async def _write_failure(self, item: tuple[Job, _Outcome], error: Exception) -> None:
        job, outcome = item
        logger.error(
            "job %s: its outcome (%s) could not be written; failing it",
            job.id, _outcome_name(outcome), exc_info=error,
        )
        failure = OutcomeNotStored(f"its outcome could not be stored: {_first_line(error)}")
        failure.__cause__ = error
        try:
            await self._write([(job, _Finished("failed", error=failure))])
        except Exception:  # A bug: the job stays doing until the rescue after a restart.
            logger.critical("job %s: it could not be failed either", job.id, exc_info=True)

    # --- side tasks --------------------------------------------------------------------------

    async def _keep_heartbeat(self) -> None:
        while True:
            try:
                alive, to_abort = await in_db(jobqueue.heartbeat)(
                    worker_id=self.worker_id, running=list(self._held)
                )
                if not alive:
                    # Pruned as stalled (e.g. the database was unreachable for too long): the
                    # rescue may run our jobs elsewhere, whose results win only if first.
                    self.worker_id = await in_db(jobqueue.register_worker)()
                    logger.warning("heartbeat was missed for too long; now worker %s", self.worker_id)
                for job_id in to_abort:
                    self._abort_job(job_id)
                metrics.HEARTBEAT.set_to_current_time()
            except DATABASE_ERRORS as error:
                logger.warning("heartbeat failed: %s", _first_line(error))
            if self.heartbeat_file is not None and self.hung is None:
                # Liveness of this process, not of the database: an outage must not get
                # runners restarted (and their models reloaded) by a liveness probe; a model
                # that hung must (model_hung removed the file).
                self.heartbeat_file.touch()
            await asyncio.sleep(self.heartbeat_interval)

    async def _keep_rescuing(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                await in_db(self.rescue)()
            except DATABASE_ERRORS as error:
                logger.warning("rescue of stalled jobs failed: %s", _first_line(error))

    async def _listen(self) -> None:
        """Wake up on new jobs and abort requests (Procrastinate's NOTIFY channels)."""

        async def on_notification(*, channel: str, notification: dict) -> None:
            if notification["type"] == "job_inserted":
                self._wake.set()
            elif notification["type"] == "abort_job_requested":
                self._abort_job(notification["job_id"])

        delay = 0.5
        while True:
            try:
                await self.app.job_manager.listen_for_jobs(
                    on_notification=on_notification, queues=self.queues
                )
            except Exception as error:  # Connection lost: the poll covers the gap.
                logger.warning("listening for jobs failed (%s); again in %.1f s", _first_line(error), delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _abort_job(self, job_id: int) -> None:
        held = self._held.get(job_id)
        if held is not None and job_id not in self._abort:
            logger.info("job %s: abort requested", job_id)
            self._abort[job_id] = AbortReason.USER_REQUEST
            held.task.cancel()


def _persist_outcomes(
    *, worker_id: int, finished: list[tuple[Job, _Outcome]], hooks: Mapping[str, TaskHooks]
) -> None:
    """Write many jobs' outcomes in one transaction: each job's row first, then, through its
    task's hooks, the rows of exactly the jobs that changed. A job no longer running here (this
    runner was taken for dead and the job rescued meanwhile) is skipped, and so is its request."""
    from django.db import transaction

    ended = [(job, outcome) for job, outcome in finished if isinstance(outcome, _Finished)]
    retries = [(job, outcome) for job, outcome in finished if isinstance(outcome, _Retry)]
    handed = [job for job, outcome in finished if isinstance(outcome, _HandBack)]
    with transaction.atomic():
        owned = jobqueue.finish(
            worker_id=worker_id, outcomes=[(job.id, outcome.status) for job, outcome in ended]
        )
        _run_outcome_hooks(hooks, [(job, outcome) for job, outcome in ended if job.id in owned])
        owned |= jobqueue.retry(
            worker_id=worker_id,
            retries=[
                jobqueue.Retry(job.id, o.retry_at, o.priority, o.queue, o.lock) for job, o in retries
            ],
        )
        handed_back = jobqueue.hand_back(worker_id=worker_id, job_ids=[job.id for job in handed])
        _run_hand_back_hooks(hooks, [job for job in handed if job.id in handed_back])
    dropped = [job.id for job, _ in finished if job.id not in owned | handed_back]
    if dropped:
        logger.warning(
            "jobs %s are no longer this runner's (it was taken for dead and they were rescued); "
            "their outcomes here are dropped", dropped,
        )


def _run_outcome_hooks(hooks: Mapping[str, TaskHooks], ended: list[tuple[Job, _Finished]]) -> None:
    """Each task's ``on_succeeded`` and ``on_failed`` hooks, once with all its jobs."""
    by_task: dict[str, list[tuple[Job, _Finished]]] = {}
    for job, outcome in ended:
        by_task.setdefault(job.task_name, []).append((job, outcome))
    for task_name, group in by_task.items():
        task_hooks = hooks.get(task_name)
        if task_hooks is None:
            continue
        results = [outcome.result for _, outcome in group if outcome.status == "succeeded"]
        if results and task_hooks.on_succeeded is not None:
            task_hooks.on_succeeded(results)
        failures = [(job, outcome.error) for job, outcome in group if outcome.error is not None]
        if failures and task_hooks.on_failed is not None:
            task_hooks.on_failed(failures)


def _run_hand_back_hooks(hooks: Mapping[str, TaskHooks], jobs: list[Job]) -> None:
    """Each task's ``on_handed_back`` hook, once with all its jobs."""
    for task_name, group in _by_task(jobs).items():
        task_hooks = hooks.get(task_name)
        if task_hooks is not None and task_hooks.on_handed_back is not None:
            task_hooks.on_handed_back(group)


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
    if isinstance(outcome, _Finished):
        return outcome.status
    if isinstance(outcome, _Lost):
        return "lost"
    return "retried" if isinstance(outcome, _Retry) else "handed_back"


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
