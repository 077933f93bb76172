"""The web's single-job operations (product.queue.jobs) on real PostgreSQL: a deferred job is
Procrastinate's own in every way (its JobManager lists it, its triggers record the event and
wake the runners), it belongs to the caller's transaction, and cancel follows Procrastinate's
rule for waiting and running jobs."""

from __future__ import annotations

import asyncio
import json

import psycopg
import pytest
from django.db import connection, transaction
from procrastinate.contrib.django import app
from procrastinate.contrib.django.models import ProcrastinateEvent, ProcrastinateJob
from procrastinate.contrib.django.utils import connector_params

from product.queue import intake, jobs, workers

pytestmark = pytest.mark.usefixtures("clean_queue")

QUEUE = "tests.defer"
ARGS = {"request_id": 7, "owner": 3, "texts": 2, "note": "é \" ' %s"}


def defer(**overrides) -> int:
    return jobs.defer(
        **{"task_name": "tests.defer.task", "queue": QUEUE, "priority": 10, "args": ARGS,
           **overrides}
    )


def listed(job_id: int):
    """The job as Procrastinate's JobManager lists it over its worker's own connector (which
    decodes jsonb, where Django's connection hands it over as text)."""

    async def list_job():
        with app.replace_connector(app.connector.get_worker_connector()):
            async with app.open_async():
                return list(await app.job_manager.list_jobs_async(id=job_id))

    return asyncio.run(list_job())


def test_a_deferred_job_is_seen_by_procrastinates_job_manager_as_deferred():
    job_id = defer()

    [job] = listed(job_id)

    assert (job.task_name, job.queue, job.priority, job.status) == (
        "tests.defer.task", QUEUE, 10, "todo"
    )
    assert job.task_kwargs == ARGS
    assert (job.lock, job.queueing_lock, job.scheduled_at, job.attempts) == (None, None, None, 0)


def test_deferring_records_procrastinates_deferred_event():
    job_id = defer()

    assert list(ProcrastinateEvent.objects.filter(job_id=job_id).values_list("type", flat=True)) \
        == ["deferred"]


def test_a_committed_job_wakes_the_runners_listening_on_its_queue():
    with psycopg.connect(**connector_params(), autocommit=True) as listener:
        listener.execute(f'LISTEN "procrastinate_queue_v1#{QUEUE}"')
        with transaction.atomic():
            job_id = defer()

        [notification] = list(listener.notifies(timeout=10, stop_after=1))

    assert json.loads(notification.payload) == {"type": "job_inserted", "job_id": job_id}


def test_a_job_deferred_in_a_transaction_that_rolls_back_is_gone():
    with pytest.raises(RuntimeError), transaction.atomic():
        job_id = defer()
        raise RuntimeError("the request's row could not be written")

    assert not ProcrastinateJob.objects.filter(id=job_id).exists()


def test_a_deferred_job_is_taken_by_the_runners_intake():
    job_id = defer()

    [job] = intake.fetch(worker_id=workers.register(), queues=[QUEUE], limit=10)

    assert (job.id, job.task_kwargs) == (job_id, ARGS)


def test_cancel_cancels_a_waiting_job_and_asks_a_running_one_to_abort():
    running, waiting = defer(), defer()  # The older is taken first.
    intake.fetch(worker_id=workers.register(), queues=[QUEUE], limit=1, fair=False)

    assert jobs.cancel(waiting) and jobs.cancel(running)

    states = dict(
        ProcrastinateJob.objects.filter(id__in=[waiting, running]).values_list("id", "status")
    )
    assert states == {waiting: "cancelled", running: "doing"}
    assert ProcrastinateJob.objects.get(id=running).abort_requested


def test_cancel_of_a_finished_or_missing_job_does_nothing():
    job_id = defer()
    jobs.cancel(job_id)

    assert not jobs.cancel(job_id)
    assert not jobs.cancel(job_id + 1000)


def test_lock_holds_the_jobs_row_until_the_transaction_ends():
    job_id = defer()
    with transaction.atomic():
        jobs.lock(job_id)
        with psycopg.connect(**connector_params(), autocommit=True) as other:
            locked = other.execute(
                "SELECT id FROM procrastinate_jobs WHERE id = %s FOR UPDATE SKIP LOCKED", [job_id]
            ).fetchall()
    assert locked == []
    with connection.cursor() as cursor:  # Free again once the transaction ended.
        cursor.execute("SELECT id FROM procrastinate_jobs WHERE id = %s FOR UPDATE", [job_id])
        assert cursor.fetchone() == (job_id,)
