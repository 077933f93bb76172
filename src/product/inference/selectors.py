"""Every read of InferenceRequest rows for a user or an operator's filters, with the access
rules in one place: users see and act on their own requests; operators see all with
``inference.view_inferencerequest`` and act on others' with ``inference.change_inferencerequest``.

What operators see of the queue as a whole (``queue_status``, the web's /metrics) is
``product.inference.telemetry``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.db.models.functions import Now

from product.inference.models import InferenceRequest

# Columns a list shows; inputs and outputs can be large and stay in the database.
LIST_FIELDS = (
    "id", "owner_id", "model", "item_count", "items_done", "status", "attempts", "error",
    "created_at", "started_at", "finished_at", "compute_ms",
)


def _operator_has(user: Any, permission: str) -> bool:
    """Whether ``user`` is an operator holding ``permission``: a superuser, or staff granted it
    (directly or through a group). ``is_staff`` alone is not enough, and the permission alone
    neither; checking staff first also spares every other user the two permission queries."""
    if not (user.is_active and user.is_staff):
        return False
    return user.is_superuser or user.has_perm(permission)


def sees_all_requests(user: Any) -> bool:
    """Whether ``user`` may see every user's requests (``inference.view_inferencerequest``)."""
    return _operator_has(user, "inference.view_inferencerequest")


def changes_all_requests(user: Any) -> bool:
    """Whether ``user`` may act on (cancel) every user's requests
    (``inference.change_inferencerequest``; seeing them does not suffice)."""
    return _operator_has(user, "inference.change_inferencerequest")


def may_change_request(user: Any, request: InferenceRequest) -> bool:
    """Whether ``user`` may act on ``request``: its owner, or an operator who changes all."""
    return request.owner_id == user.pk or changes_all_requests(user)


def visible_requests(*, user: Any) -> QuerySet[InferenceRequest]:
    requests = InferenceRequest.objects.all()
    if not sees_all_requests(user):
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


def request_get_for_change(*, user: Any, request_id: int) -> InferenceRequest:
    """The request if this user may act on it. Raises InferenceRequest.DoesNotExist when they
    may not see it, and PermissionDenied when they may see it but not change it."""
    request = request_get(user=user, request_id=request_id)
    if not may_change_request(user, request):
        raise PermissionDenied(
            f"request {request_id} belongs to another user; acting on it needs the "
            "inference.change_inferencerequest permission."
        )
    return request


def requests_matching(
    *,
    ids: list[int] | None = None,
    statuses: list[str] | None = None,
    model: str | None = None,
    older_than: timedelta | None = None,
    newer_than: timedelta | None = None,
    owner: str | None = None,
    error_contains: str | None = None,
) -> QuerySet[InferenceRequest]:
    """Requests selected by an operator's filters (for management commands).

    ``owner`` is a username; ``error_contains`` matches the stored error, ignoring case."""
    requests = InferenceRequest.objects.order_by("id")
    if ids:
        requests = requests.filter(pk__in=ids)
    if statuses:
        requests = requests.filter(status__in=statuses)
    if model:
        requests = requests.filter(model=model)
    if owner:
        requests = requests.filter(owner__username=owner)
    if error_contains:
        requests = requests.filter(error__icontains=error_contains)
    # Ages are measured on PostgreSQL's clock, the one created_at comes from.
    if older_than is not None:
        requests = requests.filter(created_at__lte=Now() - older_than)
    if newer_than is not None:
        requests = requests.filter(created_at__gte=Now() - newer_than)
    return requests
