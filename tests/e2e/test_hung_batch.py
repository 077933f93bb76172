"""A forward pass that never returns (a wedged GPU or driver): the runner process gives back
what it holds, stops feeding its liveness file and exits non-zero, so that its process manager
restarts it; nothing is lost. Real runner processes, real PostgreSQL, a test model that hangs."""

from __future__ import annotations

import sys

import pytest
from django.db import connection
from procrastinate.contrib.django.models import ProcrastinateEvent, ProcrastinateJob

from gpu_runner.__main__ import EXIT_MODEL_HUNG
from product.inference import services
from product.inference.models import InferenceRequest, RequestStatus
from product.inference.registry import REGISTRY
from tests.e2e.test_fault_injection import wait_until
from tests.support.hanging_model import SPEC
from tests.support.processes import Process, child_env

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean_queue")]


def start_runner(log_dir, name: str, *args: str, **env: str) -> Process:
    """A real runner process that hosts the test model."""
    return Process(
        name,
        [sys.executable, "-m", "tests.support.runner_with_test_models", *args],
        child_env(GPU_RUNNER_MODELS=SPEC.name, **env),
        log_dir,
    )


def job_of(request) -> ProcrastinateJob:
    return ProcrastinateJob.objects.get(id=InferenceRequest.objects.get(pk=request.pk).job_id)


def test_a_hung_forward_pass_makes_the_runner_give_back_its_jobs_and_exit(
    make_user, tmp_path, monkeypatch
):
    monkeypatch.setitem(REGISTRY, SPEC.name, SPEC)
    hang = tmp_path / "hang"  # The test model's passes of "hang" inputs block while it exists.
    hang.touch()
    heartbeat = tmp_path / "heartbeat"
    env = {
        "GPU_RUNNER_BATCH_TIMEOUT": "5",
        "GPU_RUNNER_HEARTBEAT_FILE": str(heartbeat),
        "GPU_RUNNER_HEARTBEAT_INTERVAL": "0.5",
        "GPU_RUNNER_STALLED_AFTER": "2",
        "INFERENCE_MAX_ATTEMPTS": "3",
        "HANGING_MODEL_FLAG": str(hang),
    }
    user = make_user()
    runner = start_runner(tmp_path, "hung", **env)
    try:
        runner.wait_for_output("taking jobs from")
        stuck = services.request_submit(user=user, model=SPEC.name, raw_input="hang here")
        wait_until(lambda: job_of(stuck).status == "doing", 30, "the runner never took the job")
        # Taken while the pass hangs: it waits in the batcher behind the stuck pass.
        behind = services.request_submit(user=user, model=SPEC.name, raw_input="waiting behind")
        wait_until(lambda: job_of(behind).status == "doing", 30, "the runner never took the second job")
        assert heartbeat.exists()
        status = runner.popen.wait(60)
    finally:
        runner.terminate()

    output = runner.output()
    assert status == EXIT_MODEL_HUNG, output
    assert "did not return within 5 s (GPU_RUNNER_BATCH_TIMEOUT)" in output
    assert "this runner stops taking jobs, gives back the ones it holds and exits" in output
    assert not heartbeat.exists(), "the liveness file outlived the hang"

    # Nothing is left running and nothing is lost: the job that was waiting went back untried;
    # the one whose pass hung went back too, its lost run counted (so a job that hangs every
    # runner fails once its attempts are used up).
    assert not ProcrastinateJob.objects.filter(status="doing").exists()
    behind_job, stuck_job = job_of(behind), job_of(stuck)
    assert (behind_job.status, behind_job.attempts) == ("todo", 0)
    assert ProcrastinateEvent.objects.filter(job_id=behind_job.id, type="started").exists()
    assert (stuck_job.status, stuck_job.attempts) == ("todo", 1)
    for request in (stuck, behind):
        request.refresh_from_db()
        assert request.status == RequestStatus.QUEUED and request.started_at is None

    # The restarted runner, on a model that no longer hangs, runs both.
    hang.unlink()

    def due() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT scheduled_at IS NULL OR scheduled_at <= now() FROM procrastinate_jobs "
                "WHERE id = %s", [stuck_job.id],
            )
            return cursor.fetchone()[0]

    wait_until(due, 30, "the rescued job never became due")
    restarted = start_runner(tmp_path, "restarted", "--drain", **env)
    try:
        assert restarted.popen.wait(120) == 0, restarted.output()
    finally:
        restarted.terminate()
    for request in (stuck, behind):
        request.refresh_from_db()
        assert request.status == RequestStatus.SUCCEEDED, request.error
        assert job_of(request).status == "succeeded"
    assert job_of(stuck).attempts == 2 and job_of(behind).attempts == 1
