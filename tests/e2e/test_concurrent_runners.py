"""Several runner processes on one queue never run the same job, and share the work."""

import time

import pytest
from django.db.models import Count
from procrastinate.contrib.django.models import ProcrastinateEvent, ProcrastinateJob

from product.inference import services
from product.inference.models import InferenceRequest, RequestStatus
from inference_models.sentence_embedding.spec import SPEC as MINILM
from tests.support.processes import start_runner

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean_queue")]

RUNNERS = 3
REQUESTS = 400


def test_concurrent_runners_run_each_job_exactly_once(make_user, tmp_path):
    # Small holds make the runners come back to the queue often, racing for the same rows.
    runners = [
        start_runner(tmp_path, name=f"runner-{n}", GPU_RUNNER_CONCURRENCY="8",
                     GPU_RUNNER_MAX_BATCH_SIZE="8", GPU_RUNNER_POLL_INTERVAL="0.05")
        for n in range(RUNNERS)
    ]
    try:
        for runner in runners:
            runner.wait_for_output("taking jobs from")
        user = make_user("alice")
        ids = [
            services.request_submit(user=user, model=MINILM.name, raw_input=f"Sentence {n}.").pk
            for n in range(REQUESTS)
        ]
        deadline = time.monotonic() + 240
        while InferenceRequest.objects.filter(pk__in=ids, status=RequestStatus.SUCCEEDED).count() < REQUESTS:
            assert time.monotonic() < deadline, "the runners did not finish in time"
            time.sleep(0.1)
        # While the runners live, each finished job still names the worker that ran it.
        workers = set(
            ProcrastinateJob.objects.filter(id__in=[r.job_id for r in InferenceRequest.objects.filter(pk__in=ids)])
            .values_list("worker_id", flat=True)
        )
    finally:
        for runner in runners:
            assert runner.terminate() == 0, runner.output()

    requests = InferenceRequest.objects.filter(pk__in=ids)
    assert {r.attempts for r in requests} == {1}
    job_ids = [r.job_id for r in requests]
    jobs = ProcrastinateJob.objects.filter(id__in=job_ids)
    assert {(j.status, j.attempts) for j in jobs} == {("succeeded", 1)}
    started = (
        ProcrastinateEvent.objects.filter(job_id__in=job_ids, type="started")
        .values("job_id").annotate(n=Count("id"))
    )
    assert len(started) == REQUESTS and {row["n"] for row in started} == {1}
    assert len(workers) > 1, "one runner took every job; the test did not exercise concurrency"
