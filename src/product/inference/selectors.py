"""Every read of InferenceRequest rows for a user or an operator's filters, with the access
rules in one place: users see and act on their own requests; operators see all with
``inference.view_inferencerequest`` and act on others' with ``inference.change_inferencerequest``.

What operators see of the queue as a whole (``queue_status``, the web's /metrics) is
``product.inference.telemetry``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Count, F, Q, QuerySet, Sum

from product.inference.filters import RequestFilter
from product.inference.models import InferenceRequest, RequestPriority, RequestStatus

# Columns a list shows; inputs and outputs can be large and stay in the database.
LIST_FIELDS = (
    "id", "owner_id", "model", "priority", "item_count", "items_done", "status", "attempts", "error",
    "created_at", "started_at", "finished_at", "compute_ms", "input_tokens",
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


@dataclass(frozen=True)
class RequestPage:
    """One page of a list, newest first, and the cursor of the page after it (None: the
    last page)."""

    requests: list[InferenceRequest]
    next_before: int | None


def request_page(
    *, user: Any, request_filter: RequestFilter = RequestFilter(), before: int | None = None,
    limit: int = 50,
) -> RequestPage:
    """The requests ``user`` sees that match the filter, newest first, ``limit`` of them with
    ids below ``before`` (the cursor: a keyset, so a page costs the same however deep it is
    and a request submitted meanwhile does not shift the next page)."""
    requests = request_filter.apply(
        visible_requests(user=user).only(*LIST_FIELDS).select_related("owner").order_by("-id")
    )
    if before is not None:
        requests = requests.filter(pk__lt=before)
    rows = list(requests[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return RequestPage(rows, rows[-1].pk if more else None)


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


def requests_matching(request_filter: RequestFilter) -> QuerySet[InferenceRequest]:
    """Every request the filter selects, whoever owns it, oldest first (for operators'
    actions: the management commands and the operations page)."""
    return request_filter.apply(InferenceRequest.objects.order_by("id"))


@dataclass(frozen=True)
class WorkAhead:
    """About how much of its model's work runs before a queued request: the requests running
    now and those queued ahead of it (a higher priority, or the same and submitted earlier),
    with their texts left. Fair turns between users can let it go sooner than this says."""

    requests: int
    texts: int


def work_ahead(request: InferenceRequest) -> WorkAhead | None:
    """What is ahead of ``request`` in its model's queue; None unless it is queued."""
    if request.status != RequestStatus.QUEUED:
        return None
    queued_before = Q(priority=request.priority, pk__lt=request.pk)
    if request.priority == RequestPriority.BULK:
        queued_before |= Q(priority=RequestPriority.INTERACTIVE)
    ahead = InferenceRequest.objects.filter(
        Q(status=RequestStatus.RUNNING) | Q(queued_before, status=RequestStatus.QUEUED),
        model=request.model,
    ).aggregate(requests=Count("id"), texts=Sum(F("item_count") - F("items_done")))
    return WorkAhead(ahead["requests"], ahead["texts"] or 0)
