"""Reads of batches, with the access rules of requests (``inference.selectors``): users see and
act on their own batches; operators who see all requests see all batches, and those who change
all requests may cancel any batch. Progress is read from the parts' requests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import QuerySet

from product.batches.models import Batch, BatchPart, BatchStatus
from product.inference import selectors as inference_selectors
from product.inference.durations import format_duration
from product.inference.models import InferenceRequest

PART_TABLE = BatchPart._meta.db_table
REQUEST_TABLE = InferenceRequest._meta.db_table


def visible_batches(*, user: Any) -> QuerySet[Batch]:
    batches = Batch.objects.select_related("owner")
    if not inference_selectors.sees_all_requests(user):
        batches = batches.filter(owner=user)
    return batches


def batch_get(*, user: Any, batch_id: int) -> Batch:
    """The batch if this user may see it; Batch.DoesNotExist otherwise (as for a missing id)."""
    return visible_batches(user=user).get(pk=batch_id)


def batch_get_for_change(*, user: Any, batch_id: int) -> Batch:
    """The batch if this user may act on it: Batch.DoesNotExist when they may not see it,
    PermissionDenied when they may see it but not change it."""
    batch = batch_get(user=user, batch_id=batch_id)
    if batch.owner_id != user.pk and not inference_selectors.changes_all_requests(user):
        raise PermissionDenied(
            f"batch {batch_id} belongs to another user; acting on it needs the "
            "inference.change_inferencerequest permission."
        )
    return batch


def batch_page(*, user: Any, before: int | None = None, limit: int = 50) -> tuple[list[Batch], int | None]:
    """The batches ``user`` sees, newest first, ``limit`` of them with ids below ``before``,
    and the cursor of the next page (None: the last)."""
    batches = visible_batches(user=user).order_by("-id")
    if before is not None:
        batches = batches.filter(pk__lt=before)
    rows = list(batches[: limit + 1])
    return rows[:limit], (rows[limit - 1].pk if len(rows) > limit else None)


@dataclass(frozen=True)
class Progress:
    """How far a batch is: texts done, failed and cancelled of its total, and the rate so far.

    ``eta_seconds`` is the texts left at the rate since its first part started (None before a
    rate is known, or when nothing is left to run)."""

    total: int
    done: int
    failed: int
    cancelled: int
    parts_queued: int
    parts_running: int
    parts_done: int
    started_at: datetime | None
    texts_per_second: float | None
    eta_seconds: float | None

    @property
    def left(self) -> int:
        return self.total - self.done - self.failed - self.cancelled

    @property
    def eta(self) -> str:
        """``eta_seconds`` as people read it ("4m05s"), or "-" when unknown."""
        return format_duration(None if self.eta_seconds is None else timedelta(seconds=self.eta_seconds))

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 0.0


_PROGRESS = f"""
SELECT COALESCE(SUM(CASE WHEN r.status = 'succeeded' THEN r.item_count
                         WHEN r.status = 'running' THEN r.items_done ELSE 0 END), 0),
       COALESCE(SUM(r.item_count) FILTER (WHERE r.status = 'failed'), 0),
       COALESCE(SUM(r.item_count) FILTER (WHERE r.status = 'cancelled'), 0),
       COUNT(*) FILTER (WHERE r.status = 'queued'),
       COUNT(*) FILTER (WHERE r.status = 'running'),
       COUNT(*) FILTER (WHERE r.status IN ('succeeded', 'failed', 'cancelled')),
       MIN(r.started_at),
       EXTRACT(EPOCH FROM COALESCE(MAX(r.finished_at) FILTER (WHERE b.status <> 'running'), now())
                          - MIN(r.started_at))
  FROM {PART_TABLE} AS p
  JOIN {Batch._meta.db_table} AS b ON b.id = p.batch_id
  JOIN {REQUEST_TABLE} AS r ON r.id = p.request_id
 WHERE p.batch_id = %(batch)s
"""
_UNQUEUED_TEXTS = f"""
SELECT COALESCE(SUM(text_count), 0) FROM {PART_TABLE}
 WHERE batch_id = %(batch)s AND request_id IS NULL AND index < %(fed)s
"""


def batch_progress(batch: Batch) -> Progress:
    """The batch's progress, in one statement over its queued parts' requests (PostgreSQL's
    clock for the rate). Parts never queued count as cancelled once the batch is."""
    with connection.cursor() as cursor:
        cursor.execute(_PROGRESS, {"batch": batch.pk})
        done, failed, cancelled, queued, running, ended, started_at, elapsed = cursor.fetchone()
        cursor.execute(_UNQUEUED_TEXTS, {"batch": batch.pk, "fed": batch.parts_fed})
        pruned = cursor.fetchone()[0]  # Queued once, their requests since deleted (retention).
    cancelled += pruned
    if batch.status == BatchStatus.CANCELLED:
        cancelled = batch.text_count - done - failed
    rate = done / float(elapsed) if elapsed and done else None
    left = batch.text_count - done - failed - cancelled
    eta = left / rate if rate and left and batch.status == BatchStatus.RUNNING else None
    return Progress(
        total=batch.text_count, done=done, failed=failed, cancelled=cancelled,
        parts_queued=queued, parts_running=running, parts_done=ended, started_at=started_at,
        texts_per_second=rate, eta_seconds=eta,
    )


def batch_line_errors(batch: Batch, *, limit: int | None = None) -> list[tuple[int, str]]:
    """The stored bad lines of a batch, ``(line number, message)``, in line order."""
    errors = batch.line_errors.order_by("line").values_list("line", "message")
    return list(errors if limit is None else errors[:limit])


def batch_parts(batch: Batch, *, page: int = 64) -> Any:
    """Every part of the batch in input order, with its request's status and error, read a page
    at a time (keyset by index): ``(index, text_count, lines, request_id, status, error)``."""
    after = -1
    while True:
        rows = list(
            BatchPart.objects.filter(batch=batch, index__gt=after).order_by("index")
            .values_list("index", "text_count", "lines", "request_id", "request__status", "request__error")[:page]
        )
        yield from rows
        if len(rows) < page:
            return
        after = rows[-1][0]


# Running batches with their parts queued or running: the active requests (few, by the index on
# their status) joined to their parts, not every part of every batch.
_RUNNING = f"""
SELECT b.id, b.parts_fed, b.part_count, COALESCE(a.active, 0)
  FROM {Batch._meta.db_table} AS b
  LEFT JOIN (SELECT p.batch_id, COUNT(*) AS active
               FROM {REQUEST_TABLE} AS r JOIN {PART_TABLE} AS p ON p.request_id = r.id
              WHERE r.status IN ('queued', 'running')
              GROUP BY p.batch_id) AS a ON a.batch_id = b.id
 WHERE b.status = 'running'
 ORDER BY b.id
"""


def batches_to_feed(*, queued_parts: int) -> list[int]:
    """Ids of the running batches a feed would change now: with parts left to queue and fewer
    than ``queued_parts`` queued or running, or with every part queued and none active (to
    complete)."""
    with connection.cursor() as cursor:
        cursor.execute(_RUNNING)
        rows = cursor.fetchall()
    return [
        batch_id for batch_id, fed, parts, active in rows
        if (fed < parts and active < queued_parts) or (fed == parts and active == 0)
    ]
