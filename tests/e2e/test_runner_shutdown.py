"""SIGTERM stops a runner cleanly: jobs in flight finish, waiting jobs stay waiting."""

import time

import pytest
from procrastinate.contrib.django.models import ProcrastinateJob

from product.inference import results, services
from product.inference.models import InferenceRequest, RequestStatus
from inference_models.sentence_embedding.spec import SPEC as MINILM
from tests.support.processes import run_drain, start_runner

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean_queue")]


def test_sigterm_stops_the_runner_cleanly_without_losing_or_repeating_a_job(make_user, tmp_path):
    user = make_user("alice")
    texts = [f"Text {n}: the quick brown fox jumps over the lazy dog." for n in range(8)]
    requests = [
        services.request_submit(user=user, model=MINILM.name, raw_input=texts) for _ in range(60)
    ]
    ids = [request.pk for request in requests]

    runner = start_runner(tmp_path, GPU_RUNNER_CONCURRENCY="2", GPU_RUNNER_MAX_BATCH_SIZE="8")
    runner.wait_for_output("taking jobs from")
    # Stop it as soon as it holds work: what it holds then is in flight and must finish.
    while not InferenceRequest.objects.filter(pk__in=ids, status=RequestStatus.RUNNING).exists():
        time.sleep(0.02)
    assert runner.terminate() == 0, runner.output()

    statuses = set(InferenceRequest.objects.filter(pk__in=ids).values_list("status", flat=True))
    assert statuses <= {RequestStatus.SUCCEEDED, RequestStatus.QUEUED}
    assert RequestStatus.SUCCEEDED in statuses, "the jobs in flight should have finished"
    assert RequestStatus.QUEUED in statuses, "the runner should have stopped before the end"
    assert not ProcrastinateJob.objects.filter(status="doing").exists()

    drain = run_drain(tmp_path)
    assert drain.popen.returncode == 0, drain.output()

    finished = InferenceRequest.objects.filter(pk__in=ids)
    assert all(r.status == RequestStatus.SUCCEEDED for r in finished)
    assert all(r.attempts == 1 for r in finished), "a request ran twice"
    assert all(
        results.embeddings_read(request_id=r.pk).shape == (8, MINILM.output_dim)
        for r in finished
    )
