"""The runner's writes of outcomes, through the real in-process runner and real PostgreSQL: one
outcome PostgreSQL refuses fails its own request and job, never the others written with it,
and no job is left running behind a write that was rolled back."""

import pytest
from procrastinate.contrib.django.models import ProcrastinateJob

from gpu_runner import runtime
from product.inference import services
from product.inference.models import InferenceRequest, RequestStatus
from product.inference.registry import REGISTRY
from tests.support.hanging_model import SPEC
from tests.support.worker import drain

pytestmark = pytest.mark.usefixtures("clean_queue")


@pytest.fixture
def hanging_model(settings, monkeypatch):
    """The test model of tests.support.hanging_model, hosted by the in-process runner."""
    monkeypatch.setitem(REGISTRY, SPEC.name, SPEC)
    settings.GPU_RUNNER_MODELS = [SPEC.name]
    monkeypatch.setattr(runtime, "_current", None)
    runtime.load_runtime()
    yield
    runtime._current = None


def test_an_outcome_postgresql_refuses_fails_its_own_request_and_no_other(
    make_user, hanging_model, caplog
):
    user = make_user()
    # The last input is the longest, so its job finishes last, in a group with the others.
    texts = ["a", "bb", "ccc", "dddd", "nul: an output PostgreSQL cannot store"]
    requests = [services.request_submit(user=user, model=SPEC.name, raw_input=text) for text in texts]

    drain([SPEC.queue])

    *good, bad = [InferenceRequest.objects.get(pk=r.pk) for r in requests]
    assert [r.status for r in good] == [RequestStatus.SUCCEEDED] * len(good)
    assert bad.status == RequestStatus.FAILED and bad.output is None
    assert bad.error.startswith("the runner failed: its outcome could not be stored: ")
    assert "unsupported Unicode escape sequence" in bad.traceback
    statuses = dict(ProcrastinateJob.objects.values_list("id", "status"))
    assert [statuses[r.job_id] for r in good] == ["succeeded"] * len(good)
    assert statuses[bad.job_id] == "failed"
    assert "writing each alone" in caplog.text  # The group was written again, job by job.
