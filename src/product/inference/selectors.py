"""Every read of InferenceRequest rows, with the visibility rule in one place:
users see their own requests, staff see all."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count, Min, QuerySet
from django.utils import timezone
from procrastinate.contrib.django.models import ProcrastinateJob

from product.inference.models import InferenceRequest, RequestStatus

# Columns a list shows; inputs and outputs can be large and stay in the database.
LIST_FIELDS = (
    "id", "owner_id", "model", "item_count", "status", "attempts", "error",
    "created_at", "started_at", "finished_at", "compute_ms",
)


def visible_requests(*, user: Any) -> QuerySet[InferenceRequest]:
    requests = InferenceRequest.objects.all()
    if not user.is_staff:
        requests = requests.filter(owner=user)
    return requests


def request_list(*, user: Any, status: str | None = None, limit: int = 50) -> list[InferenceRequest]:
    requests = visible_requests(user=user).only(*LIST_FIELDS).select_related("owner")
    if status:
        requests = requests.filter(status=status)
    return list(requests[:limit])


def request_get(*, user: Any, request_id: int) -> InferenceRequest:
    """The request if this user may see it; raises InferenceRequest.DoesNotExist otherwise
    (the same answer as for a missing id, so ids of others' requests are not revealed)."""
    return visible_requests(user=user).select_related("owner").get(pk=request_id)


def requests_matching(
    *,
    ids: list[int] | None = None,
    statuses: list[str] | None = None,
    model: str | None = None,
    older_than: timedelta | None = None,
    newer_than: timedelta | None = None,
) -> QuerySet[InferenceRequest]:
    """Requests selected by an operator's filters (for management commands)."""
    requests = InferenceRequest.objects.order_by("id")
    if ids:
        requests = requests.filter(pk__in=ids)
    if statuses:
        requests = requests.filter(status__in=statuses)
    if model:
        requests = requests.filter(model=model)
    now = timezone.now()
    if older_than is not None:
        requests = requests.filter(created_at__lte=now - older_than)
    if newer_than is not None:
        requests = requests.filter(created_at__gte=now - newer_than)
    return requests


def queue_overview() -> dict:
    """Requests by model and status, the age of the oldest queued one, and jobs by queue
    and status (straight from Procrastinate's table, so both sides can be compared)."""
    counts = (
        InferenceRequest.objects.order_by()
        .values("model", "status")
        .annotate(n=Count("id"))
        .order_by("model", "status")
    )
    oldest = InferenceRequest.objects.filter(status=RequestStatus.QUEUED).aggregate(
        oldest=Min("created_at")
    )["oldest"]
    jobs = (
        ProcrastinateJob.objects.order_by()
        .values("queue_name", "status")
        .annotate(n=Count("id"))
        .order_by("queue_name", "status")
    )
    return {
        "counts": list(counts),
        "oldest_queued_age": (timezone.now() - oldest) if oldest else None,
        "jobs": list(jobs),
    }
