"""A real runner reports itself through the database at each heartbeat (device, models, jobs
held, texts and batches per second, draining), and its report goes when it stops cleanly."""

import signal
import time

import pytest

from product.inference import services
from product.inference.models import InferenceRequest, RequestStatus
from inference_models.sentence_embedding.spec import SPEC as MINILM
from product.runners.models import RunnerReport
from product.runners.selectors import runner_rows
from tests.support.processes import start_runner

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean_queue")]


def _wait_for(condition, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.1)
    return found


def test_a_runner_reports_its_work_and_draining_and_its_report_goes_when_it_stops(make_user, tmp_path):
    user = make_user("alice")
    texts = [f"Text {n}: the quick brown fox jumps over the lazy dog." for n in range(8)]
    first = services.request_submit(user=user, model=MINILM.name, raw_input=texts)

    runner = start_runner(
        tmp_path, GPU_RUNNER_NAME="reporter-1", GPU_RUNNER_HEARTBEAT_INTERVAL="0.3",
        GPU_RUNNER_CONCURRENCY="1", GPU_RUNNER_MAX_BATCH_SIZE="2", GPU_RUNNER_SHUTDOWN_GRACE="60",
    )
    _wait_for(lambda: InferenceRequest.objects.get(pk=first.pk).status == RequestStatus.SUCCEEDED, "result")
    report = _wait_for(
        lambda: RunnerReport.objects.filter(name="reporter-1", texts_per_second__gt=0).first(),
        "report of the work done",
    )
    assert (report.device, report.model_names, report.draining) == ("cpu", [MINILM.name], False)
    assert report.batches_per_second > 0 and report.texts_per_second >= report.batches_per_second
    assert [row.state for row in runner_rows()] == ["live"]

    # Enough work to still be running when told to stop: the runner drains, and says so.
    for _ in range(20):
        services.request_submit(user=user, model=MINILM.name, raw_input=texts * 8)
    _wait_for(lambda: RunnerReport.objects.filter(name="reporter-1", jobs_held=1).exists(), "job held")
    runner.popen.send_signal(signal.SIGTERM)
    _wait_for(lambda: [row.state for row in runner_rows()] == ["draining"], "draining report")

    assert runner.terminate() == 0, runner.output()
    assert not RunnerReport.objects.exists()
