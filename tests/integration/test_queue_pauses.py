"""Pausing a queue (product.queue.pauses; Procrastinate 3.10.0 has no pause of its own):
runners take none of its jobs and finish those they hold, a resume wakes them at once, and
operators see the pause. Real PostgreSQL, a real runner, Procrastinate's own LISTEN."""

from __future__ import annotations

import asyncio
import inspect
import time
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from django import db
from django.core.management import CommandError, call_command
from django.db import connection
from procrastinate.contrib.django import app
from procrastinate.contrib.django.models import ProcrastinateJob

from gpu_runner.handlers import JobHandler
from gpu_runner.runner import Runner
from inference_models.sentence_embedding.spec import SPEC as MINILM
from product.queue import intake, pauses, workers

PAUSED, OPEN = "tests.pause.paused", "tests.pause.open"
TASK = "tests.pause.record"


def defer(queue: str) -> int:
    return app.configure_task(name=TASK, queue=queue).defer(label=queue)


def run_command(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=out)
    return out.getvalue()


# --- the intake and the service --------------------------------------------------------------


@pytest.mark.django_db
def test_a_fetch_skips_a_paused_queue_and_takes_it_again_once_resumed(empty_queue):
    paused_job, open_job = defer(PAUSED), defer(OPEN)
    pauses.pause(queue=PAUSED, paused_by="alice")
    worker_id = workers.register()

    for fair in (True, False):
        taken = intake.fetch(worker_id=worker_id, queues=[PAUSED, OPEN], limit=10, fair=fair)
        assert [job.id for job in taken] == ([open_job] if fair else [])

    pauses.resume(queue=PAUSED)
    taken = intake.fetch(worker_id=worker_id, queues=[PAUSED, OPEN], limit=10)
    assert [job.id for job in taken] == [paused_job]


@pytest.mark.django_db
def test_a_pause_records_who_paused_when_and_why_and_a_second_pause_keeps_the_first():
    first, added = pauses.pause(queue=PAUSED, paused_by="alice", reason="driver update")
    again, added_again = pauses.pause(queue=PAUSED, paused_by="bob", reason="other")

    assert added and not added_again
    assert (again.paused_by, again.reason, again.paused_at) == ("alice", "driver update",
                                                                 first.paused_at)
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")  # The column's default (Django's Now()).
        assert first.paused_at <= cursor.fetchone()[0]
    assert [pause.queue_name for pause in pauses.paused_queues()] == [PAUSED]

    ended = pauses.resume(queue=PAUSED)
    assert ended is not None and ended.paused_by == "alice"
    assert pauses.resume(queue=PAUSED) is None
    assert pauses.paused_queues() == []


# --- commands --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_pause_queue_and_resume_queue_act_on_a_models_queue_and_queue_status_shows_it():
    out = run_command("pause_queue", MINILM.name, "--by", "ops-alice", "--reason", "reindex")
    assert f"Paused {MINILM.queue} (by ops-alice)." in out
    assert "was already paused, by ops-alice" in run_command("pause_queue", MINILM.name)

    status = run_command("queue_status")
    assert "Paused queues (runners take none of their jobs until resume_queue)" in status
    assert "ops-alice: reindex" in status and MINILM.queue in status
    as_json = run_command("queue_status", "--json")
    assert '"paused_by": "ops-alice"' in as_json and '"reason": "reindex"' in as_json

    assert f"Resumed {MINILM.queue} (paused by ops-alice" in run_command("resume_queue", MINILM.name)
    assert "Paused queues: none" in run_command("queue_status")
    assert f"{MINILM.queue} was not paused." in run_command("resume_queue", MINILM.name)


@pytest.mark.django_db
@pytest.mark.parametrize("command", ["pause_queue", "resume_queue"])
def test_an_unknown_model_is_refused_naming_the_known_ones(command):
    with pytest.raises(CommandError, match=f"unknown model 'nope'; known models: {MINILM.name}"):
        run_command(command, "nope")
    assert pauses.paused_queues() == []


# --- a real runner ---------------------------------------------------------------------------


class HeldHandler(JobHandler):
    """Runs each job until the test ends it (``finish``); records what it claimed and stored."""

    task_name = TASK

    def __init__(self) -> None:
        self.claimed: list[int] = []
        self.stored: list[int] = []
        self.running: dict[int, asyncio.Future] = {}

    def claim(self, jobs):
        self.claimed.extend(job.id for job in jobs)
        return {job.id: job.task_kwargs["label"] for job in jobs}

    def start(self, runs):
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in runs]
        self.running.update((run.job.id, future) for run, future in zip(runs, futures))
        return futures

    def finish(self, *job_ids: int) -> None:
        for job_id in job_ids:
            self.running.pop(job_id).set_result(True)

    def store(self, runs):
        self.stored.extend(run.job.id for run in runs)

    def fail(self, runs):
        raise AssertionError(f"jobs failed: {[(run.job.id, run.error) for run in runs]}")

    def release(self, jobs):
        pass


async def eventually(condition, what: str, timeout: float = 60) -> None:
    """Wait until ``condition()`` (true, or a coroutine that returns true); fail naming
    ``what``."""
    deadline = time.monotonic() + timeout
    while not await _value(condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        await asyncio.sleep(0.02)


async def _value(result):
    return await result if inspect.isawaitable(result) else result


@sync_to_async
def job_status(job_id: int) -> str:
    return ProcrastinateJob.objects.get(id=job_id).status


def status_is(job_id: int, status: str):
    async def check() -> bool:
        return await job_status(job_id) == status

    return check


@sync_to_async
def someone_listens() -> bool:
    """A connection has run LISTEN (Procrastinate's listener: it shows its last statement)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND query LIKE 'LISTEN %%'"
        )
        return cursor.fetchone()[0] > 0


@pytest.mark.usefixtures("clean_queue")
def test_a_runner_finishes_held_jobs_takes_none_of_a_paused_queue_and_resumes_when_woken():
    held = defer(PAUSED)
    handler = HeldHandler()

    async def scenario(runner: Runner) -> None:
        await eventually(status_is(held, "doing"), "the runner takes the first job")
        await eventually(someone_listens, "the runner's LISTEN")
        await sync_to_async(pauses.pause)(queue=PAUSED, paused_by="ops")

        waiting = await sync_to_async(defer)(PAUSED)
        # A job of another queue, deferred after it: once it is taken, a fetch has run that
        # saw the paused queue's job waiting and left it.
        other = await sync_to_async(defer)(OPEN)
        await eventually(lambda: other in handler.claimed, "the open queue's job is taken")
        assert await job_status(waiting) == "todo"
        assert waiting not in handler.claimed

        # The job held since before the pause runs to its end.
        handler.finish(held)
        await eventually(status_is(held, "succeeded"), "the held job succeeds")
        assert await job_status(waiting) == "todo"

        # The runner polls once an hour here: only the resume's notification can wake it.
        await sync_to_async(pauses.resume)(queue=PAUSED)
        await eventually(lambda: waiting in handler.claimed, "the resumed queue's job is taken")
        handler.finish(waiting, other)
        await eventually(status_is(waiting, "succeeded"), "the resumed job succeeds")

    run_runner(handler, scenario)

    assert sorted(handler.stored) == sorted(handler.claimed)
    assert set(ProcrastinateJob.objects.values_list("status", flat=True)) == {"succeeded"}


def run_runner(handler: JobHandler, scenario) -> None:
    """A runner on both test queues that polls only once an hour, while ``scenario(runner)``
    runs; then it is stopped."""

    async def work() -> None:
        try:
            with app.replace_connector(app.connector.get_worker_connector()):
                async with app.open_async():
                    runner = Runner(
                        app=app, queues=[PAUSED, OPEN], handlers=[handler], capacity=8,
                        heartbeat_interval=0.5, shutdown_grace=5.0, poll_interval=3600,
                    )
                    task = asyncio.ensure_future(runner.run(install_signal_handlers=False))
                    try:
                        await scenario(runner)
                    finally:
                        runner.stop()
                        runner.stop()  # Hand back at once what a failed scenario left held.
                        await task
        finally:
            await sync_to_async(db.connections.close_all)()  # The runner's database thread.

    asyncio.run(work())
