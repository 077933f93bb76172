"""Retention: deleting finished requests, with their finished Procrastinate jobs and events.

Both tables only grow: every request leaves its row, and every run (a requeue makes another)
leaves a job and a handful of events. ``requests_prune`` deletes what has been finished for
longer than an operator chooses. It never touches a queued or running request, nor a job that
waits or runs: a cancelled request whose job is still being aborted keeps that job. Which
requests go is decided here; their jobs and events are deleted by the queue engine
(``product.queue.retention``), in the same transaction.

Before anything goes, ``before_prune`` is sent: an app that keeps its own copy of results
(search copies its chunks' vectors) takes it then, so no result is pruned before it is copied.

Work goes in batches, each its own transaction, so a large backlog neither holds locks for long
nor is undone as a whole by one failure; rows another transaction holds are skipped, not waited
for (a request being requeued right now is left for the next run).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Now
from django.dispatch import Signal

from product.inference.jobs import RUN_REQUEST_TASK
from product.inference.models import (
    FINAL_STATUSES,
    IdempotencyKey,
    InferenceRequest,
    RequestStatus,
)
from product.queue import retention as queue_retention

TABLE = InferenceRequest._meta.db_table
KEY_TABLE = IdempotencyKey._meta.db_table

# Sent (no arguments) before ``requests_prune`` deletes anything.
before_prune = Signal()


@dataclass(frozen=True)
class Pruned:
    """Rows deleted (or, in a dry run, that would be)."""

    requests: int = 0
    jobs: int = 0
    events: int = 0

    def __add__(self, other: Pruned) -> Pruned:
        return Pruned(
            self.requests + other.requests, self.jobs + other.jobs, self.events + other.events
        )


def prunable_requests(
    *, older_than: timedelta, keep_failed: bool = False
) -> QuerySet[InferenceRequest]:
    """Requests finished (succeeded, failed or cancelled) more than ``older_than`` ago.

    Age counts from ``finished_at``: a request queued for a week and finished a minute ago is
    recent. A final row without one (written before it was kept) counts from ``created_at``."""
    statuses = [s for s in FINAL_STATUSES if not (keep_failed and s == RequestStatus.FAILED)]
    cutoff = Now() - older_than  # PostgreSQL's clock, the one finished_at was written with.
    return InferenceRequest.objects.filter(status__in=statuses).filter(
        Q(finished_at__lte=cutoff) | Q(finished_at__isnull=True, created_at__lte=cutoff)
    )


def prune_preview(*, older_than: timedelta, keep_failed: bool = False) -> Pruned:
    """What ``requests_prune`` would delete now, counted without deleting anything."""
    doomed = (
        prunable_requests(older_than=older_than, keep_failed=keep_failed).order_by().values("id")
    )
    jobs, events = queue_retention.count_finished_jobs_of_requests(
        task_name=RUN_REQUEST_TASK, requests=doomed.query.sql_with_params()
    )
    return Pruned(requests=doomed.count(), jobs=jobs, events=events)


def requests_prune(
    *,
    older_than: timedelta,
    keep_failed: bool = False,
    batch_size: int = 500,
    progress: Callable[[Pruned], None] | None = None,
) -> Pruned:
    """Delete requests finished more than ``older_than`` ago, with their finished jobs and
    those jobs' events; returns the counts. ``progress`` is called after each batch with the
    totals so far."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    before_prune.send(sender=requests_prune)
    total = Pruned()
    while True:
        batch = _prune_batch(older_than=older_than, keep_failed=keep_failed, limit=batch_size)
        if not batch.requests:
            return total
        total += batch
        if progress is not None:
            progress(total)


def _prune_batch(*, older_than: timedelta, keep_failed: bool, limit: int) -> Pruned:
    with transaction.atomic():
        ids = list(
            prunable_requests(older_than=older_than, keep_failed=keep_failed)
            .select_for_update(skip_locked=True)
            .order_by("id")
            .values_list("id", flat=True)[:limit]
        )
        if not ids:
            return Pruned()
        jobs, events = queue_retention.delete_finished_jobs_of_requests(
            task_name=RUN_REQUEST_TASK, request_ids=ids
        )
        with connection.cursor() as cursor:
            # A request's Idempotency-Keys go with it (the foreign key would refuse otherwise).
            cursor.execute(f"DELETE FROM {KEY_TABLE} WHERE request_id = ANY(%s)", [ids])
            cursor.execute(
                f"DELETE FROM {TABLE} WHERE id = ANY(%s) AND status = ANY(%s)",
                [ids, [str(s) for s in FINAL_STATUSES]],
            )
            requests = cursor.rowcount
    return Pruned(requests=requests, jobs=jobs, events=events)


def idempotency_keys_prune(*, batch_size: int = 5000) -> int:
    """Delete Idempotency-Keys older than INFERENCE_IDEMPOTENCY_TTL hours (by PostgreSQL's
    clock), in batches; returns how many. A retry with such a key makes a new request (a submit
    would replace the key anyway: this keeps the table from growing)."""
    deleted = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                DELETE FROM {KEY_TABLE} WHERE id IN (
                    SELECT id FROM {KEY_TABLE}
                     WHERE created_at <= now() - make_interval(secs => %(ttl)s)
                     LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
                """,
                {"ttl": settings.INFERENCE_IDEMPOTENCY_TTL * 3600, "limit": batch_size},
            )
            deleted += cursor.rowcount
            if cursor.rowcount < batch_size:
                return deleted
