"""The runner keeps Procrastinate's guarantees while taking many jobs per round trip and running
them through batch-shaped handlers: priority order, locks, aborts, heartbeats and hand-back,
on real PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django import db
from django.db import connection
from procrastinate.contrib.django import app
from procrastinate.contrib.django.models import ProcrastinateEvent, ProcrastinateJob

from gpu_runner.handlers import JobHandler
from gpu_runner.runner import Runner
from product.queue import intake, outcomes, workers

pytestmark = pytest.mark.usefixtures("clean_queue")

QUEUE = "tests.runner"


def _deferrer(task_name: str):
    """Jobs of ``task_name`` on QUEUE, deferred as the web defers them (by name)."""

    class Deferrer:
        def configure(self, **options):
            return app.configure_task(name=task_name, queue=QUEUE, **options)

        def defer(self, **args):
            return self.configure().defer(**args)

    return Deferrer()


record, broken, slow = (_deferrer(name) for name in ("tests.record", "tests.broken", "tests.slow"))


class Handler(JobHandler):
    """Claims every job with its ``label``; runs with ``outcome`` (a result, an error to
    raise, or None: never ends); records what the runner gave it at each step."""

    def __init__(self, task_name: str, outcome=True) -> None:
        self.task_name = task_name
        self.outcome = outcome
        self.claimed, self.stored, self.failed, self.released = [], [], [], []

    def claim(self, jobs):
        self.claimed.extend(job.id for job in jobs)
        return {job.id: job.task_kwargs.get("label", "") for job in jobs}

    def start(self, runs):
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in runs]
        for future in futures:
            if isinstance(self.outcome, BaseException):
                future.set_exception(self.outcome)
            elif self.outcome is not None:
                future.set_result(self.outcome)
        return futures

    def store(self, runs):
        self.stored.extend((run.work, run.job.id) for run in runs)

    def fail(self, runs):
        self.failed.extend((run.job.id, str(run.error)) for run in runs)

    def release(self, jobs):
        self.released.extend(job.id for job in jobs)


def run_runner(*handlers, capacity=64, stop_after: float | None = None, during=None, grace=5.0) -> None:
    """Run a runner on QUEUE until the queue is empty (or for ``stop_after`` seconds)."""

    async def work() -> None:
        with app.replace_connector(app.connector.get_worker_connector()):
            async with app.open_async():
                runner = Runner(
                    app=app, queues=[QUEUE], handlers=handlers, capacity=capacity,
                    heartbeat_interval=0.2, shutdown_grace=grace, poll_interval=0.05,
                )
                task = asyncio.ensure_future(runner.run(wait=stop_after is not None,
                                                        install_signal_handlers=False))
                if stop_after is not None:
                    await asyncio.sleep(stop_after)
                    if during is not None:
                        await during(runner)
                    runner.stop()
                await task
        await sync_to_async(db.connections.close_all)()  # The runner's database thread.

    asyncio.run(work())


def statuses() -> dict[int, str]:
    return dict(ProcrastinateJob.objects.values_list("id", "status"))


def test_one_fetch_takes_many_jobs_in_priority_then_age_order():
    low = record.configure(priority=0).defer(label="low")
    high = record.configure(priority=5).defer(label="high")
    mid = record.configure(priority=1).defer(label="mid")
    worker_id = workers.register()

    taken = intake.fetch(worker_id=worker_id, queues=[QUEUE], limit=10)

    assert [job.id for job in taken] == [high, mid, low]
    assert set(statuses().values()) == {"doing"}


def waiting_job(owner: str, texts: int, priority: int = 0) -> int:
    """A waiting job that names its owner and texts, as an inference job does (never run)."""
    return record.configure(priority=priority).defer(label="x", owner=owner, texts=texts)


def test_within_a_priority_owners_take_turns_by_texts_not_by_age():
    backlog = [waiting_job("A", 64) for _ in range(5)]
    newcomer = waiting_job("B", 1)
    worker_id = workers.register()

    # B's one text goes before A's second job; then A's jobs while the texts before them fit.
    taken = intake.fetch(worker_id=worker_id, queues=[QUEUE], limit=10, room=100)

    assert {job.id for job in taken} == {newcomer, backlog[0], backlog[1]}


def test_urgent_jobs_are_taken_when_the_room_in_texts_is_used_up():
    waiting_job("A", 64)
    urgent = waiting_job("B", 500, priority=10)
    worker_id = workers.register()

    taken = intake.fetch(worker_id=worker_id, queues=[QUEUE], limit=10, room=0, urgent=10)
    assert [job.id for job in taken] == [urgent]
    # With room, at least one job is taken even when it is bigger than the room.
    assert len(intake.fetch(worker_id=worker_id, queues=[QUEUE], limit=10, room=1)) == 1


def test_the_old_order_takes_the_oldest_jobs_of_all_owners_first():
    backlog = [waiting_job("A", 64) for _ in range(3)]
    waiting_job("B", 1)
    worker_id = workers.register()

    taken = intake.fetch(worker_id=worker_id, queues=[QUEUE], limit=3, fair=False)

    assert [job.id for job in taken] == backlog


def test_jobs_sharing_a_lock_run_one_at_a_time_in_order():
    first = record.configure(lock="L").defer(label="L1")
    second = record.configure(lock="L").defer(label="L2")
    free = record.defer(label="free")
    worker_id = workers.register()

    assert [j.id for j in intake.fetch(worker_id=worker_id, queues=[QUEUE], limit=10)] == [first, free]
    assert intake.fetch(worker_id=worker_id, queues=[QUEUE], limit=10) == []
    outcomes.finish(worker_id=worker_id, outcomes=[(first, "succeeded")])
    assert [j.id for j in intake.fetch(worker_id=worker_id, queues=[QUEUE], limit=10)] == [second]


def test_a_queueing_lock_still_refuses_a_second_waiting_job():
    from procrastinate.exceptions import AlreadyEnqueued

    record.configure(queueing_lock="once").defer(label="a")
    with pytest.raises(AlreadyEnqueued):
        record.configure(queueing_lock="once").defer(label="b")


def test_the_runner_runs_every_job_once_and_procrastinate_records_it():
    ids = [record.defer(label=f"job {n}") for n in range(300)]
    handler = Handler("tests.record")

    run_runner(handler, capacity=64)

    assert sorted(handler.claimed) == sorted(ids)
    assert sorted(job_id for _, job_id in handler.stored) == sorted(ids)
    assert dict((job_id, label) for label, job_id in handler.stored)[ids[7]] == "job 7"
    jobs = ProcrastinateJob.objects.filter(id__in=ids)
    assert {(job.status, job.attempts) for job in jobs} == {("succeeded", 1)}
    events = ProcrastinateEvent.objects.filter(job_id__in=ids)
    assert sorted(events.values_list("type", flat=True).distinct()) == [
        "deferred", "started", "succeeded"
    ]
    assert events.filter(type="succeeded").count() == 300


def test_a_failing_job_fails_once_and_its_handler_records_why():
    job_id = broken.defer()
    handler = Handler("tests.broken", outcome=RuntimeError("still broken"))

    run_runner(handler)

    job = ProcrastinateJob.objects.get(id=job_id)
    assert (job.status, job.attempts) == ("failed", 1)
    assert handler.failed == [(job_id, "still broken")] and handler.stored == []
    types = list(
        ProcrastinateEvent.objects.filter(job_id=job_id).order_by("id").values_list("type", flat=True)
    )
    assert types == ["deferred", "started", "failed"]


def test_a_job_of_a_task_without_a_handler_fails():
    job_id = record.defer(label="nobody handles me")

    run_runner(Handler("tests.other"))

    assert ProcrastinateJob.objects.get(id=job_id).status == "failed"


def test_a_job_its_handler_does_not_claim_succeeds_without_running():
    job_id = record.defer(label="x")
    handler = Handler("tests.record")
    handler.claim = lambda jobs: {}  # E.g. its request was cancelled meanwhile.

    run_runner(handler)

    assert ProcrastinateJob.objects.get(id=job_id).status == "succeeded"
    assert handler.stored == []


def test_an_abort_request_stops_a_running_job():
    job_id = slow.defer()
    handler = Handler("tests.slow", outcome=None)

    async def abort(runner):
        await sync_to_async(app.job_manager.cancel_job_by_id)(job_id, abort=True)
        await asyncio.sleep(0.5)

    run_runner(handler, stop_after=0.5, during=abort)

    assert ProcrastinateJob.objects.get(id=job_id).status == "aborted"
    assert handler.stored == handler.failed == handler.released == []


def test_a_stopping_runner_hands_unfinished_jobs_back_untried():
    job_id = slow.defer()
    handler = Handler("tests.slow", outcome=None)

    run_runner(handler, stop_after=0.5, grace=0.2)

    job = ProcrastinateJob.objects.get(id=job_id)
    assert (job.status, job.attempts) == ("todo", 0)
    assert handler.released == [job_id]
    types = list(ProcrastinateEvent.objects.filter(job_id=job_id).values_list("type", flat=True))
    assert "deferred_for_retry" in types


def test_a_running_runner_keeps_its_heartbeat_and_leaves_no_trace_when_stopped():
    beats, worker = [], []

    async def watch(runner):
        worker.append(runner.worker_id)
        for _ in range(3):
            beats.append(await _heartbeat(runner.worker_id))
            await asyncio.sleep(0.3)

    run_runner(Handler("tests.record"), stop_after=0.1, during=watch)

    assert beats[0] < beats[1] < beats[2]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM procrastinate_workers WHERE id = %s", worker)
        assert cursor.fetchone()[0] == 0


async def _heartbeat(worker_id):
    def read():
        with connection.cursor() as cursor:
            cursor.execute("SELECT last_heartbeat FROM procrastinate_workers WHERE id = %s", [worker_id])
            return cursor.fetchone()[0]

    return await sync_to_async(read)()
