"""What operators see of the queue: jobs by queue and status, how long the oldest has waited,
and the runners with their heartbeats (``queue_status`` and the web's /metrics, through
``product.inference.telemetry`` and ``product.metrics``).

Each read is one statement, cheap enough to run at every Prometheus scrape; ages come from
the database's clock, the one the runners' stalled-job rule uses.
"""

from __future__ import annotations

from django.conf import settings
from django.db import connection

from product.queue import statuses
from product.queue.queries import query


def job_counts() -> list[dict]:
    """Every job by queue and status, finished ones included: ``[{queue_name, status, n}]``."""
    return _rows("job_counts", {})


def jobs_active() -> list[dict]:
    """Jobs waiting (todo) or running (doing), by queue: ``[{queue_name, status, n}]``.
    Finished jobs are left out: they pile up until pruned and are not queue depth."""
    return _rows("job_counts_in", {"statuses": list(statuses.ACTIVE)})


def runners(*, stale_after: float | None = None) -> list[dict]:
    """Registered workers (runners) with the age of their last heartbeat and the jobs they are
    running: ``[{id, heartbeat_age, doing, live}]``. A runner is live while its heartbeat is
    younger than ``stale_after`` seconds (default: settings.RUNNER_STALE_AFTER)."""
    if stale_after is None:
        stale_after = settings.RUNNER_STALE_AFTER
    return _rows("runners", {"stale_after": stale_after})


def oldest_waiting_jobs() -> dict[str, float]:
    """Seconds the longest-waiting ready job of each queue has waited, by queue name (queues
    with no job ready to run are absent)."""
    with connection.cursor() as cursor:
        cursor.execute(query("oldest_waiting_jobs"))
        return {queue: max(age or 0.0, 0.0) for queue, age in cursor.fetchall()}


def _rows(statement: str, params: dict) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(query(statement), params)
        columns = [column.name for column in cursor.description]
        return [dict(zip(columns, row)) for row in cursor.fetchall()]
