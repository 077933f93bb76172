"""What operators see of the work as a whole (``queue_status`` and the web's /metrics):
requests by model and status, how fast they finish, and the queue's jobs and runners beside
them (read from Procrastinate's tables by ``product.queue.telemetry``, so both sides can be
compared).

Each read is one statement, cheap enough to run at every Prometheus scrape: finished requests
are counted only within a recent window. The reads of single requests, with their access
rules, are ``product.inference.selectors``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from django.db.models import Count, DurationField, ExpressionWrapper, Min, Q, Sum
from django.db.models.functions import Coalesce, Now

from product.inference.models import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    InferenceRequest,
    RequestStatus,
)
from product.inference.registry import REGISTRY
from product.queue import pauses
from product.queue import telemetry as queue_telemetry

THROUGHPUT_WINDOWS_MINUTES = (1, 5, 15)


def queue_overview() -> dict:
    """Requests by model and status, the age of the oldest queued one, each model's depth,
    jobs by queue and status, paused queues, throughput and runners."""
    counts = (
        InferenceRequest.objects.order_by()
        .values("model", "status")
        .annotate(n=Count("id"))
        .order_by("model", "status")
    )
    oldest_age = InferenceRequest.objects.filter(status=RequestStatus.QUEUED).aggregate(
        age=ExpressionWrapper(Now() - Min("created_at"), output_field=DurationField())
    )["age"]
    return {
        "counts": list(counts),
        "oldest_queued_age": oldest_age,
        "depth": depth_by_model(),
        "jobs": queue_telemetry.job_counts(),
        "paused": pauses.paused_queues(),
        "throughput": throughput(),
        "runners": queue_telemetry.runners(),
    }


# The depth of a model with nothing queued or running.
IDLE_DEPTH = {"queued": 0, "queued_inputs": 0, "running": 0, "running_inputs": 0, "oldest_queued_age": None}


def depth_by_model() -> list[dict]:
    """Each model's backlog, in one statement: requests and their inputs queued and running,
    and how long the oldest queued request has waited (None: none waits). Every registered
    model has its row, zeros included (a runner group's depth is the sum of its models'), and
    so does any other model with active requests (one no longer registered):
    ``[{model, queued, queued_inputs, running, running_inputs, oldest_queued_age}]``."""
    queued, running = Q(status=RequestStatus.QUEUED), Q(status=RequestStatus.RUNNING)
    rows = (
        InferenceRequest.objects.filter(status__in=ACTIVE_STATUSES)
        .order_by()
        .values("model")
        .annotate(
            queued=Count("id", filter=queued),
            queued_inputs=Coalesce(Sum("item_count", filter=queued), 0),
            running=Count("id", filter=running),
            running_inputs=Coalesce(Sum("item_count", filter=running), 0),
            oldest_queued_age=ExpressionWrapper(
                Now() - Min("created_at", filter=queued), output_field=DurationField()
            ),
        )
    )
    by_model = {row["model"]: row for row in rows}
    return [
        by_model.get(model, {"model": model, **IDLE_DEPTH})
        for model in sorted(set(REGISTRY) | set(by_model))
    ]


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
