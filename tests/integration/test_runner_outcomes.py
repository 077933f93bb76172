"""The runner's task through a real Procrastinate worker and real PostgreSQL: failures are
stored readably on the request, and operators requeue them with the management command."""

import pytest
from django.core.management import call_command
from procrastinate.contrib.django.models import ProcrastinateJob

from gpu_runner import runtime
from product.inference import results, services
from product.inference.models import InferenceRequest, RequestStatus
from product.inference.registry import REGISTRY
from tests.support.refusing_model import SPEC, RefusingModel
from tests.support.worker import drain

pytestmark = pytest.mark.usefixtures("clean_queue")


@pytest.fixture
def refusing_model(settings, monkeypatch):
    monkeypatch.setitem(REGISTRY, SPEC.name, SPEC)
    settings.GPU_RUNNER_MODELS = [SPEC.name]
    monkeypatch.setattr(RefusingModel, "refuse", False)  # Warm-up must pass.
    monkeypatch.setattr(runtime, "_current", None)
    runtime.load_runtime()
    RefusingModel.refuse = True
    return RefusingModel


def run_command(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out, stderr=out)
    return out.getvalue()


def test_an_input_the_model_refuses_fails_the_request_with_a_readable_error(
    make_user, refusing_model
):
    request = services.request_submit(user=make_user(), model=SPEC.name, raw_input="x")

    drain([SPEC.queue])

    request.refresh_from_db()
    assert request.status == RequestStatus.FAILED
    assert request.error == "this test model refuses its input"
    assert request.finished_at is not None and request.output is None
    assert ProcrastinateJob.objects.get(id=request.job_id).status == "failed"


def test_a_runner_error_fails_the_request_with_its_job(make_user, refusing_model, monkeypatch):
    refusing_model.refuse = False
    monkeypatch.setattr(refusing_model, "crash", True)
    request = services.request_submit(user=make_user(), model=SPEC.name, raw_input="x")

    drain([SPEC.queue])

    request.refresh_from_db()
    assert request.status == RequestStatus.FAILED
    assert request.error == "the runner failed: the test model crashed"
    assert "RuntimeError: the test model crashed" in request.traceback
    assert ProcrastinateJob.objects.get(id=request.job_id).status == "failed"


def test_requeue_command_runs_a_failed_request_again(make_user, refusing_model):
    request = services.request_submit(user=make_user(), model=SPEC.name, raw_input="four")
    drain([SPEC.queue])
    failed_job = InferenceRequest.objects.get(pk=request.pk).job_id

    dry = run_command("requeue_requests", "--failed", "--dry-run")
    assert f"would requeue request {request.pk}" in dry
    assert InferenceRequest.objects.get(pk=request.pk).status == RequestStatus.FAILED

    out = run_command("requeue_requests", "--failed", "--model", SPEC.name)
    assert "1 request(s) requeued" in out
    request.refresh_from_db()
    assert request.status == RequestStatus.QUEUED and request.error == ""
    new_job = ProcrastinateJob.objects.get(id=request.job_id)
    assert new_job.status == "todo"
    assert new_job.args == {"request_id": request.pk, "owner": request.owner_id, "texts": 1}
    assert ProcrastinateJob.objects.get(id=failed_job).status == "failed"

    refusing_model.refuse = False
    drain([SPEC.queue])

    request.refresh_from_db()
    assert request.status == RequestStatus.SUCCEEDED
    assert request.output == {"dim": 1}
    assert results.embeddings_read(request_id=request.pk).tolist() == [[4.0]]
    assert request.attempts == 2
    assert ProcrastinateJob.objects.get(id=request.job_id).status == "succeeded"


def test_requeue_filters_select_only_matching_requests(make_user, refusing_model):
    request = services.request_submit(user=make_user(), model=SPEC.name, raw_input="x")
    drain([SPEC.queue])

    assert "0 request(s) would" in run_command("requeue_requests", "--failed", "--model", "other", "--dry-run")
    assert "0 request(s) would" in run_command("requeue_requests", "--failed", "--older-than", "1h", "--dry-run")
    assert "1 request(s) would" in run_command("requeue_requests", "--failed", "--newer-than", "1h", "--dry-run")
    assert "1 request(s) requeued" in run_command("requeue_requests", str(request.pk))


def test_requeue_leaves_active_requests_alone(make_user, refusing_model):
    request = services.request_submit(user=make_user(), model=SPEC.name, raw_input="x")
    out = run_command("requeue_requests", str(request.pk))
    assert f"request {request.pk}: skipped, it is queued" in out
    assert "0 request(s) requeued" in out


def test_requeue_needs_a_selection():
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="name request ids"):
        call_command("requeue_requests")


def test_queue_status_shows_counts_by_model_and_status_and_the_oldest_wait(make_user, refusing_model):
    services.request_submit(user=make_user(), model=SPEC.name, raw_input="x")
    out = run_command("queue_status")
    assert SPEC.name in out and "queued" in out
    assert "Oldest queued request: " in out and "Oldest queued request: -" not in out
    assert SPEC.queue in out and "todo" in out
