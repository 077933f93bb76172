"""Every read of InferenceRequest rows, with the access rules in one place (users see and
act on their own requests; operators see all with ``inference.view_inferencerequest`` and act
on others' with ``inference.change_inferencerequest``), and the reads of the queue's state that operators see
(``queue_status``, the web's /metrics)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q, QuerySet
from django.db.models.functions import Now
from procrastinate.contrib.django.models import ProcrastinateJob, ProcrastinateWorker

from product.inference.models import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    InferenceRequest,
    RequestStatus,
)

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


def queue_overview() -> dict:
    """Requests by model and status, the age of the oldest queued one, and jobs by queue
    and status (straight from Procrastinate's table, so both sides can be compared)."""
    counts = (
        InferenceRequest.objects.order_by()
        .values("model", "status")
        .annotate(n=Count("id"))
        .order_by("model", "status")
    )
    oldest_age = InferenceRequest.objects.filter(status=RequestStatus.QUEUED).aggregate(
        age=ExpressionWrapper(Now() - Min("created_at"), output_field=DurationField())
    )["age"]
    jobs = (
        ProcrastinateJob.objects.order_by()
        .values("queue_name", "status")
        .annotate(n=Count("id"))
        .order_by("queue_name", "status")
    )
    return {
        "counts": list(counts),
        "oldest_queued_age": oldest_age,
        "jobs": list(jobs),
        "throughput": throughput(),
        "runners": runners(),
    }


# --- Operations: what the queue is doing now (queue_status and the web's /metrics) -----------
# Each read is one statement, cheap enough to run at every Prometheus scrape: finished rows are
# counted only within a recent window, and jobs only while waiting or running.

THROUGHPUT_WINDOWS_MINUTES = (1, 5, 15)


def requests_active() -> list[dict]:
    """Queued and running requests by model and status: ``[{model, status, n}]``."""
    return list(
        InferenceRequest.objects.filter(status__in=ACTIVE_STATUSES)
        .order_by()
        .values("model", "status")
        .annotate(n=Count("id"))
        .order_by("model", "status")
    )


def requests_finished(*, windows: Sequence[timedelta]) -> list[dict]:
    """Requests that reached a final status within each window, by model and status:
    ``[{model, status, counts: [n per window]}]``, measured from ``finished_at``."""
    if not windows:
        return []
    now = Now()
    rows = (
        InferenceRequest.objects.filter(
            status__in=FINAL_STATUSES, finished_at__gte=now - max(windows)
        )
        .order_by()
        .values("model", "status")
        .annotate(
            **{
                f"n{i}": Count("id", filter=Q(finished_at__gte=now - window))
                for i, window in enumerate(windows)
            }
        )
        .order_by("model", "status")
    )
    return [
        {
            "model": row["model"],
            "status": row["status"],
            "counts": [row[f"n{i}"] for i in range(len(windows))],
        }
        for row in rows
    ]


def throughput(*, windows_minutes: Sequence[int] = THROUGHPUT_WINDOWS_MINUTES) -> list[dict]:
    """Requests finished per minute by model over each window (1, 5 and 15 minutes).

    ``finished`` counts requests a runner completed (succeeded or failed); cancelled ones did
    no work to speak of and are counted apart. ``[{model, minutes, finished, succeeded,
    failed, cancelled, per_minute}]``, ordered by model then window."""
    rows = requests_finished(windows=[timedelta(minutes=m) for m in windows_minutes])
    by_model: dict[str, dict[str, list[int]]] = {}
    for row in rows:
        by_model.setdefault(row["model"], {})[row["status"]] = row["counts"]
    result = []
    for model in sorted(by_model):
        statuses = by_model[model]
        for i, minutes in enumerate(windows_minutes):
            count = {status: statuses.get(status, [0] * len(windows_minutes))[i]
                     for status in FINAL_STATUSES}
            finished = count[RequestStatus.SUCCEEDED] + count[RequestStatus.FAILED]
            result.append({
                "model": model,
                "minutes": minutes,
                "finished": finished,
                "succeeded": count[RequestStatus.SUCCEEDED],
                "failed": count[RequestStatus.FAILED],
                "cancelled": count[RequestStatus.CANCELLED],
                "per_minute": round(finished / minutes, 2),
            })
    return result


def runners(*, stale_after: float | None = None) -> list[dict]:
    """Registered workers (runners) with the age of their last heartbeat and the jobs they are
    running: ``[{id, heartbeat_age, doing, live}]``. A runner is live while its heartbeat is
    younger than ``stale_after`` seconds (default: settings.RUNNER_STALE_AFTER); the ages come
    from the database's clock, as the runners' own stalled-job rule does."""
    if stale_after is None:
        stale_after = settings.RUNNER_STALE_AFTER
    rows = (
        ProcrastinateWorker.objects.order_by("id")
        .annotate(
            heartbeat_age=ExpressionWrapper(
                Now() - F("last_heartbeat"), output_field=DurationField()
            ),
            doing=Count("procrastinatejob", filter=Q(procrastinatejob__status="doing")),
        )
        .values("id", "heartbeat_age", "doing")
    )
    limit = timedelta(seconds=stale_after)
    return [{**row, "live": row["heartbeat_age"] <= limit} for row in rows]


def jobs_active() -> list[dict]:
    """Procrastinate jobs waiting (todo) or running (doing), by queue: ``[{queue_name, status,
    n}]``. Finished jobs are left out: they pile up until pruned and are not queue depth."""
    return list(
        ProcrastinateJob.objects.filter(status__in=("todo", "doing"))
        .order_by()
        .values("queue_name", "status")
        .annotate(n=Count("id"))
        .order_by("queue_name", "status")
    )


# A waiting job has waited since it was deferred, or since the time it was scheduled for (a
# retry). Ids grow with deferral, so the first unscheduled job per queue is the oldest of those,
# and only its 'deferred' event is looked up rather than one per waiting job.
_OLDEST_WAITING_JOBS = """
WITH ready AS (
    SELECT queue_name,
           min(id) FILTER (WHERE scheduled_at IS NULL) AS first_id,
           min(scheduled_at) AS first_scheduled
      FROM procrastinate_jobs
     WHERE status = 'todo' AND (scheduled_at IS NULL OR scheduled_at <= now())
     GROUP BY queue_name
)
SELECT ready.queue_name,
       EXTRACT(EPOCH FROM now() - LEAST(
           (SELECT min(at) FROM procrastinate_events
             WHERE job_id = ready.first_id AND type = 'deferred'),
           ready.first_scheduled))::float8
  FROM ready
 ORDER BY ready.queue_name
"""


def oldest_waiting_jobs() -> dict[str, float]:
    """Seconds the longest-waiting ready job of each queue has waited, by queue name (queues
    with no job ready to run are absent)."""
    with connection.cursor() as cursor:
        cursor.execute(_OLDEST_WAITING_JOBS)
        return {queue: max(age or 0.0, 0.0) for queue, age in cursor.fetchall()}
