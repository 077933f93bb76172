"""Every write to an InferenceRequest, from the web and from the runner.

Each function is one transaction that keeps the request row, its Procrastinate job and the
live-status notification consistent. Runner-side writes are conditional on the row still being
run by that job, so a retried or cancelled job can never write a second, stale outcome.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from product.inference import jobs
from product.inference.models import ACTIVE_STATUSES, InferenceRequest, RequestStatus
from product.inference.specs import get_spec


class RequestStateError(Exception):
    """The request is not in a state that allows the action; the message says why."""


def _notify(request: InferenceRequest) -> None:
    """NOTIFY web processes of a status change; Postgres delivers it only if we commit."""
    payload = json.dumps({"id": request.pk, "owner": request.owner_id, "status": request.status})
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [settings.INFERENCE_STATUS_CHANNEL, payload])


def request_submit(*, user: Any, model: str, raw_input: Any) -> InferenceRequest:
    """Validate input, write the request row and defer its job in one transaction.

    Raises ``specs.InputError`` (and writes nothing) when the model or input is invalid.
    """
    spec = get_spec(model)
    texts = spec.parse_input(raw_input)
    with transaction.atomic():
        request = InferenceRequest.objects.create(
            owner=user, model=spec.name, inputs=texts, item_count=len(texts)
        )
        request.job_id = jobs.defer_run(request_id=request.pk, model=spec.name)
        request.save(update_fields=["job_id"])
        _notify(request)
    return request


def request_cancel(*, request: InferenceRequest) -> InferenceRequest:
    """Cancel a queued request, or abort a running one. Final requests cannot be cancelled."""
    with transaction.atomic():
        request = InferenceRequest.objects.select_for_update().get(pk=request.pk)
        if request.status not in ACTIVE_STATUSES:
            raise RequestStateError(f"request {request.pk} is already {request.status}.")
        if request.job_id is not None:
            jobs.cancel_job(request.job_id)
        request.status = RequestStatus.CANCELLED
        request.finished_at = timezone.now()
        request.save(update_fields=["status", "finished_at"])
        _notify(request)
    return request


def request_requeue(*, request: InferenceRequest) -> InferenceRequest:
    """Run a finished request again on a fresh job; its previous outcome is cleared."""
    with transaction.atomic():
        request = InferenceRequest.objects.select_for_update().get(pk=request.pk)
        if request.status in ACTIVE_STATUSES:
            raise RequestStateError(f"request {request.pk} is already {request.status}.")
        request.status = RequestStatus.QUEUED
        request.output = None
        request.error = ""
        request.started_at = request.finished_at = request.compute_ms = None
        request.job_id = jobs.defer_run(request_id=request.pk, model=request.model)
        request.save(
            update_fields=[
                "status", "output", "error", "started_at", "finished_at", "compute_ms", "job_id"
            ]
        )
        _notify(request)
    return request


def requests_requeue(*, requests: Iterable[InferenceRequest]) -> list[InferenceRequest]:
    """Requeue each request (one transaction each, so one conflict does not undo the rest)."""
    return [request_requeue(request=request) for request in requests]


# --- Runner-side writes ------------------------------------------------------------------------


def request_start(*, request_id: int, job_id: int) -> InferenceRequest | None:
    """Mark the request running for this job; None when it should not run (cancelled, gone,
    or now owned by another job)."""
    with transaction.atomic():
        started = InferenceRequest.objects.filter(
            pk=request_id, job_id=job_id, status__in=ACTIVE_STATUSES
        ).update(
            status=RequestStatus.RUNNING, started_at=timezone.now(), attempts=F("attempts") + 1
        )
        if not started:
            return None
        request = InferenceRequest.objects.get(pk=request_id)
        _notify(request)
    return request


def _finish(*, request_id: int, job_id: int, **fields: Any) -> bool:
    with transaction.atomic():
        finished = InferenceRequest.objects.filter(
            pk=request_id, job_id=job_id, status=RequestStatus.RUNNING
        ).update(finished_at=timezone.now(), **fields)
        if finished:
            _notify(InferenceRequest.objects.only("id", "owner_id", "status").get(pk=request_id))
    return bool(finished)


def request_succeed(
    *, request_id: int, job_id: int, output: dict, compute_ms: float
) -> bool:
    """Store the result; False (and no write) if the request is no longer run by this job."""
    return _finish(
        request_id=request_id,
        job_id=job_id,
        status=RequestStatus.SUCCEEDED,
        output=output,
        error="",
        compute_ms=compute_ms,
    )


def request_fail(*, request_id: int, job_id: int, error: str) -> bool:
    """Store a readable error; False (and no write) if no longer run by this job."""
    return _finish(
        request_id=request_id, job_id=job_id, status=RequestStatus.FAILED, error=error
    )
