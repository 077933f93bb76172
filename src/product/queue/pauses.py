"""Pausing a queue: runners take no new jobs from it and finish the ones they hold.

Procrastinate 3.10.0, the newest release, has no pause of its own (no paused-queue table, no
rule in its fetch function, no notification on resume), so the product keeps its own table,
``queue_paused_queues`` (``product.queue.models.PausedQueue``), and the runners' intake skips
the queues it names (``intake.sql``, fragment ``takeable``). Jobs keep being deferred to a
paused queue and wait there; a resume wakes the runners that serve it at once, through the
channels they LISTEN on for new jobs.

Operators pause with ``manage.py pause_queue`` and resume with ``resume_queue``; pages call
the same functions. The pause takes effect for every fetch that starts after it commits: a
runner's fetch already under way may still take that queue's jobs once. Procrastinate's own
``procrastinate worker`` does not read the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection

from product.queue.queries import query


@dataclass(frozen=True)
class QueuePause:
    queue_name: str
    paused_at: datetime
    paused_by: str  # Who paused it: an operator's user name, or the account a command ran as.
    reason: str
    paused_for: timedelta  # How long it has been paused, by the database's clock.


def pause(*, queue: str, paused_by: str, reason: str = "") -> tuple[QueuePause, bool]:
    """Pause ``queue``: its pause, and whether this call paused it (False: it was paused
    already, and its first pause is kept, with who and when)."""
    with connection.cursor() as cursor:
        cursor.execute(
            query("pause_queue"), {"queue": queue, "paused_by": paused_by, "reason": reason}
        )
        *fields, added = cursor.fetchone()
    return QueuePause(*fields), added


def resume(*, queue: str) -> QueuePause | None:
    """Resume ``queue`` and wake the runners serving it (when the transaction commits): the
    pause that ended, None when the queue was not paused."""
    with connection.cursor() as cursor:
        cursor.execute(query("resume_queue"), {"queue": queue})
        row = cursor.fetchone()
    return QueuePause(*row) if row else None


def paused_queues() -> list[QueuePause]:
    """Every paused queue, by name."""
    with connection.cursor() as cursor:
        cursor.execute(query("paused_queues"))
        return [QueuePause(*row) for row in cursor.fetchall()]
