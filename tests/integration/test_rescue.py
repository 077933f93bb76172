"""Jobs of a runner that died are found by its stale heartbeat and rescued: back to the queue
while attempts remain, failed with a readable error on the request when they are used up."""

import pytest
from django.core.management import call_command
from django.db import connection
from procrastinate.contrib.django.models import ProcrastinateJob

from product.inference import services
from product.inference.models import InferenceRequest, RequestStatus
from inference_models.sentence_embedding.spec import SPEC as MINILM
from product.queue import intake, workers

pytestmark = pytest.mark.usefixtures("clean_queue")


def taken_by_a_dead_runner(user, text="hello") -> InferenceRequest:
    """A request whose job a runner took, started, and then died holding (no heartbeat since)."""
    request = services.request_submit(user=user, model=MINILM.name, raw_input=text)
    worker_id = workers.register()
    [job] = intake.fetch(worker_id=worker_id, queues=[MINILM.queue], limit=1)
    services.requests_start(claims=[services.Claim(request.pk, job.id)])
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 hour' WHERE id = %s",
            [worker_id],
        )
    return request


def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("rescue_stalled", *args, stdout=out)
    return out.getvalue()


def test_dry_run_lists_the_stalled_job_and_changes_nothing(make_user):
    request = taken_by_a_dead_runner(make_user())

    output = run("--dry-run")

    assert f"job {request.job_id}" in output and "1 stalled jobs" in output
    assert ProcrastinateJob.objects.get(id=request.job_id).status == "doing"


def test_a_rescued_job_goes_back_to_the_queue_and_its_request_shows_queued(make_user):
    request = taken_by_a_dead_runner(make_user())

    assert "1 requeued" in run()

    job = ProcrastinateJob.objects.get(id=request.job_id)
    assert (job.status, job.attempts) == ("todo", 1)
    request.refresh_from_db()
    assert request.status == RequestStatus.QUEUED
    assert run("--dry-run").startswith("0 stalled jobs")


def test_a_job_out_of_attempts_fails_its_request_with_a_readable_error(make_user):
    request = taken_by_a_dead_runner(make_user())

    rescue = services.requests_rescue(stalled_after=10, max_attempts=1)

    assert rescue.failed == [request.job_id]
    assert ProcrastinateJob.objects.get(id=request.job_id).status == "failed"
    request.refresh_from_db()
    assert request.status == RequestStatus.FAILED
    assert "tried 1 times without finishing" in request.error


def test_live_runners_jobs_are_left_alone(make_user):
    request = services.request_submit(user=make_user(), model=MINILM.name, raw_input="hi")
    worker_id = workers.register()
    intake.fetch(worker_id=worker_id, queues=[MINILM.queue], limit=1)

    rescue = services.requests_rescue(stalled_after=10, max_attempts=3)

    assert rescue.requeued == rescue.failed == []
    assert ProcrastinateJob.objects.get(id=request.job_id).status == "doing"
