"""Submitting writes the request row and its Procrastinate job in one transaction."""

import numpy as np
import pytest
from django.db import transaction
from procrastinate.contrib.django.models import ProcrastinateJob

from product.inference import results, services
from product.inference.jobs import RUN_REQUEST_TASK
from product.inference.models import InferenceRequest, RequestStatus
from inference_models.sentence_embedding.spec import SPEC as MINILM

pytestmark = pytest.mark.django_db


def test_submit_writes_the_row_and_defers_its_job_on_the_models_queue(make_user):
    request = services.request_submit(user=make_user(), model=MINILM.name, raw_input=["a", "b"])

    job = ProcrastinateJob.objects.get(id=request.job_id)
    assert job.task_name == RUN_REQUEST_TASK
    assert job.queue_name == MINILM.queue
    # What fair intake orders by travels with the job (product.queue.intake.fetch).
    assert job.args == {"request_id": request.pk, "owner": request.owner_id, "texts": 2}
    assert job.status == "todo"
    assert request.status == RequestStatus.QUEUED
    assert request.inputs == ["a", "b"] and request.item_count == 2


def test_a_rolled_back_submit_leaves_neither_row_nor_job(make_user):
    user = make_user()
    jobs_before = ProcrastinateJob.objects.count()

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        services.request_submit(user=user, model=MINILM.name, raw_input="hello")
        assert ProcrastinateJob.objects.count() == jobs_before + 1
        raise Abort

    assert not InferenceRequest.objects.exists()
    assert ProcrastinateJob.objects.count() == jobs_before


def test_cancelling_a_queued_request_cancels_its_job(make_user):
    request = services.request_submit(user=make_user(), model=MINILM.name, raw_input="hello")

    services.request_cancel(request=request)

    request.refresh_from_db()
    assert request.status == RequestStatus.CANCELLED
    assert ProcrastinateJob.objects.get(id=request.job_id).status == "cancelled"


def test_a_finished_request_cannot_be_cancelled(make_user):
    request = services.request_submit(user=make_user(), model=MINILM.name, raw_input="hello")
    services.request_cancel(request=request)
    with pytest.raises(services.RequestStateError, match="already cancelled"):
        services.request_cancel(request=request)


def _start(request) -> dict:
    return services.requests_start(claims=[services.Claim(request.pk, request.job_id)])


def test_runner_writes_are_ignored_once_the_request_is_cancelled(make_user):
    request = services.request_submit(user=make_user(), model=MINILM.name, raw_input="hello")
    assert request.job_id in _start(request)
    services.request_cancel(request=request)

    written = services.requests_finish(
        outcomes=[
            services.Outcome(
                request.pk, request.job_id, RequestStatus.SUCCEEDED,
                output={"dim": 2}, embeddings=np.ones((1, 2), dtype=np.float32), compute_ms=1.0,
            )
        ]
    )

    request.refresh_from_db()
    assert written == set()
    assert request.status == RequestStatus.CANCELLED and request.output is None
    assert results.request_embeddings(request) is None


def test_a_stale_job_cannot_overwrite_a_requeued_request(make_user):
    request = services.request_submit(user=make_user(), model=MINILM.name, raw_input="hello")
    old_job = request.job_id
    _start(request)
    services.requests_finish(
        outcomes=[
            services.Outcome(request.pk, old_job, RequestStatus.FAILED, error="first try failed")
        ]
    )
    request = services.request_requeue(request=InferenceRequest.objects.get(pk=request.pk))

    assert services.requests_start(claims=[services.Claim(request.pk, old_job)]) == {}
    assert request.job_id != old_job
    assert request.status == RequestStatus.QUEUED and request.error == ""


def test_bulk_writes_touch_only_the_requests_their_jobs_still_own(make_user):
    user = make_user()
    kept, cancelled = (
        services.request_submit(user=user, model=MINILM.name, raw_input=text)
        for text in ("kept", "cancelled")
    )
    started = services.requests_start(
        claims=[services.Claim(r.pk, r.job_id) for r in (kept, cancelled)]
    )
    assert set(started) == {kept.job_id, cancelled.job_id}
    services.request_cancel(request=cancelled)

    services.requests_progress(
        progress=[(services.Claim(r.pk, r.job_id), 1) for r in (kept, cancelled)]
    )
    written = services.requests_finish(
        outcomes=[
            services.Outcome(r.pk, r.job_id, RequestStatus.SUCCEEDED, output={"n": r.pk})
            for r in (kept, cancelled)
        ]
    )

    assert written == {kept.pk}
    kept.refresh_from_db()
    cancelled.refresh_from_db()
    assert (kept.status, kept.output, kept.items_done) == ("succeeded", {"n": kept.pk}, 1)
    assert (cancelled.status, cancelled.output, cancelled.items_done) == ("cancelled", None, 0)
