"""A runner taken for dead that wakes up can never overwrite the run that replaced it: a real
runner process is paused (SIGSTOP) mid-batch past the stalled timeout, another runner rescues
and runs its jobs, and the first is resumed (SIGCONT) while the second still runs them."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest
from django.db.models import Count
from procrastinate.contrib.django.models import ProcrastinateEvent, ProcrastinateJob

from product.inference import services
from product.inference.models import InferenceRequest, RequestStatus
from product.inference.registry import REGISTRY
from product.queue.statuses import RUN_OUTCOMES
from tests.e2e.test_fault_injection import FAST_RESCUE, all_final, wait_until, worker_id_of
from tests.e2e.test_hung_batch import start_runner
from tests.support.hanging_model import SPEC

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean_queue")]

REQUESTS = 6
PASS_SECONDS = 3  # Each forward pass of the test model sleeps this long.


def test_a_paused_runner_that_wakes_up_never_overwrites_the_run_that_replaced_it(
    make_user, tmp_path, monkeypatch
):
    monkeypatch.setitem(REGISTRY, SPEC.name, SPEC)
    user = make_user()
    ids = [
        services.request_submit(user=user, model=SPEC.name, raw_input=f"sleep:{PASS_SECONDS} {n}").pk
        for n in range(REQUESTS)
    ]
    job_ids = list(InferenceRequest.objects.filter(pk__in=ids).values_list("job_id", flat=True))
    jobs = ProcrastinateJob.objects.filter(id__in=job_ids)
    sleeper = start_runner(tmp_path, "sleeper", **FAST_RESCUE)
    rescuer = None
    try:
        sleeper_worker = worker_id_of(sleeper)
        wait_until(
            lambda: jobs.filter(status="doing", worker_id=sleeper_worker).count() == REQUESTS,
            60, "the first runner never took every job",
        )
        time.sleep(0.5)  # Into its forward pass.
        os.kill(sleeper.popen.pid, signal.SIGSTOP)
        rescuer = start_runner(tmp_path, "rescuer", **FAST_RESCUE)
        rescuer_worker = worker_id_of(rescuer)
        wait_until(
            lambda: jobs.filter(status="doing", worker_id=rescuer_worker).count() == REQUESTS,
            60, "the second runner never rescued and took every job",
        )
        # The sleeper wakes with its pass done while the rescuer's runs: it tries to store the
        # outcomes of jobs that are no longer its own.
        os.kill(sleeper.popen.pid, signal.SIGCONT)
        wait_until(
            lambda: all_final(ids) and not jobs.exclude(status__in=RUN_OUTCOMES).exists(),
            60, "requests and jobs did not finish",
        )
        # Which runner's finish won (read before the runners stop: a stopping runner's worker
        # row goes, and its jobs' worker_id with it).
        finished_by = dict(jobs.values_list("id", "worker_id"))
        wait_until(lambda: "no longer this runner's" in sleeper.output(), 30,
                   "the woken runner never tried to write its outcomes")
    finally:
        os.kill(sleeper.popen.pid, signal.SIGCONT)
        for process in filter(None, [sleeper, rescuer]):
            process.terminate()
    assert sleeper.popen.returncode == 0, sleeper.output()
    assert rescuer.popen.returncode == 0, rescuer.output()

    # One outcome per request, the one of the run whose job finish won.
    for request in InferenceRequest.objects.filter(pk__in=ids):
        job = ProcrastinateJob.objects.get(id=request.job_id)
        assert request.status == RequestStatus.SUCCEEDED and job.status == "succeeded"
        assert finished_by[job.id] == rescuer_worker
        assert request.output["pid"] == rescuer.popen.pid, "the woken runner overwrote a request"
        assert request.finished_at >= request.started_at >= request.created_at
    finishes = (
        ProcrastinateEvent.objects.filter(job_id__in=job_ids, type="succeeded")
        .values("job_id").annotate(n=Count("id"))
    )
    assert sorted(row["n"] for row in finishes) == [1] * REQUESTS
    assert re.search(r"heartbeat was missed for too long|taken for dead", sleeper.output())
