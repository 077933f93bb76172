"""Cancels racing a real runner: the API's cancel and the runner's take and finish lock a job
and its request in one order (job, then request), so they never deadlock. Hundreds of small
requests are cancelled while a real runner process takes and runs them with the real model:
no cancel answers 500, and a cancel that answered 200 always sticks."""

from __future__ import annotations

import pytest
from django.test import Client
from procrastinate.contrib.django.models import ProcrastinateJob

from product.inference import services
from product.inference.models import InferenceRequest, RequestStatus
from inference_models.sentence_embedding.spec import SPEC as MINILM
from tests.e2e.test_fault_injection import all_final, wait_until, worker_id_of
from tests.support.processes import start_runner

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean_queue")]

REQUESTS = 300


def test_cancels_racing_the_runner_never_fail_and_always_stick(make_user, token_for, tmp_path, capsys):
    user = make_user()
    client = Client(
        raise_request_exception=False, HTTP_X_FORWARDED_PROTO="https",
        HTTP_AUTHORIZATION=token_for(user),
    )
    ids = [
        services.request_submit(user=user, model=MINILM.name, raw_input=f"text {n}").pk
        for n in range(REQUESTS)
    ]
    # Few jobs held at once: the runner takes the oldest waiting ones whenever one ends, so it
    # keeps taking (and finishing) the very requests cancelled next.
    runner = start_runner(
        tmp_path, GPU_RUNNER_CONCURRENCY="2", GPU_RUNNER_MAX_BATCH_SIZE="2",
    )
    answers: dict[int, int] = {}
    active = InferenceRequest.objects.filter(
        pk__in=ids, status__in=[RequestStatus.QUEUED, RequestStatus.RUNNING]
    )
    try:
        worker_id_of(runner)
        while True:
            # The oldest request not yet done: the one being taken or run right now, or next.
            head = active.exclude(pk__in=answers).order_by("pk").values_list("pk", flat=True).first()
            if head is None:
                break
            answers[head] = client.post(f"/api/v1/requests/{head}/cancel").status_code
        wait_until(lambda: all_final(ids), 120, "requests did not finish")
        wait_until(
            lambda: not ProcrastinateJob.objects.filter(status__in=["todo", "doing"]).exists(),
            60, "jobs did not finish",
        )
    finally:
        runner.terminate()
    assert runner.popen.returncode == 0, runner.output()

    statuses = dict(InferenceRequest.objects.filter(pk__in=answers).values_list("pk", "status"))
    codes = sorted(set(answers.values()))
    assert set(codes) <= {200, 409}, f"cancels answered {codes}"
    not_sticking = [pk for pk, code in answers.items() if code == 200 and statuses[pk] != RequestStatus.CANCELLED]
    assert not not_sticking, f"cancelled requests that did not stay cancelled: {not_sticking}"
    refused = [pk for pk, code in answers.items() if code == 409]
    assert all(statuses[pk] == RequestStatus.SUCCEEDED for pk in refused)
    assert "deadlock" not in runner.output().lower()
    with capsys.disabled():
        print(
            f"\n[cancel race] cancels {len(answers)}: 200 (cancelled) "
            f"{sum(code == 200 for code in answers.values())}, 409 (already finished) {len(refused)}"
        )
