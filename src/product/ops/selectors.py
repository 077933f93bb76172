"""What the operations page reads: the queue's depth, the activity of the last hour and day,
failures grouped by their normalised error, and the audit trail. Each is one statement over
indexed columns (``bench/ops_seed.py`` fills a million requests to check them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection

from product.inference.models import InferenceRequest
from product.inference.registry import REGISTRY
from product.ops.models import FailureDismissal, OpsAction
from product.queue import pauses
from product.queue.pauses import QueuePause

REQUESTS = InferenceRequest._meta.db_table
DISMISSALS = FailureDismissal._meta.db_table


@dataclass(frozen=True)
class Depth:
    model: str
    priority: str
    status: str
    requests: int
    texts_left: int
    oldest_queued_seconds: float | None


_DEPTH = f"""
SELECT model, priority, status, count(*), COALESCE(sum(item_count - items_done), 0),
       EXTRACT(EPOCH FROM now() - min(created_at) FILTER (WHERE status = 'queued'))::float8
  FROM {REQUESTS}
 WHERE status IN ('queued', 'running')
 GROUP BY model, priority, status
 ORDER BY model, priority, status
"""


def queue_depth() -> list[Depth]:
    """Queued and running requests by model, priority and status, with the texts they have
    left and the age of the oldest queued one."""
    with connection.cursor() as cursor:
        cursor.execute(_DEPTH)
        return [Depth(*row) for row in cursor.fetchall()]


@dataclass(frozen=True)
class Bucket:
    start: datetime
    texts_per_second: float
    requests_per_minute: float
    wait_p50_seconds: float | None
    wait_p95_seconds: float | None
    failures: int


_ACTIVITY = f"""
SELECT date_bin(make_interval(secs => %(bucket)s), finished_at, 'epoch'::timestamptz) AS start,
       COALESCE(sum(item_count) FILTER (WHERE status = 'succeeded'), 0),
       count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM started_at - created_at))
           FILTER (WHERE started_at IS NOT NULL),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM started_at - created_at))
           FILTER (WHERE started_at IS NOT NULL),
       count(*) FILTER (WHERE status = 'failed')
  FROM {REQUESTS}
 WHERE finished_at >= now() - make_interval(secs => %(window)s)
 GROUP BY start
 ORDER BY start
"""


def activity(*, window: timedelta, bucket: timedelta) -> list[Bucket]:
    """Requests that finished within ``window``, in buckets of ``bucket``: texts per second
    (of those that succeeded), requests per minute, the p50 and p95 of their wait in the queue
    (created to started), and failures. Buckets with nothing are there too, with zeros."""
    seconds = bucket.total_seconds()
    with connection.cursor() as cursor:
        cursor.execute("SELECT date_bin(make_interval(secs => %s), now(), 'epoch'::timestamptz)", [seconds])
        (last,) = cursor.fetchone()
        cursor.execute(_ACTIVITY, {"bucket": seconds, "window": window.total_seconds()})
        found = {row[0]: row for row in cursor.fetchall()}
    buckets = []
    count = int(window / bucket)
    for n in range(count - 1, -1, -1):
        start = last - n * bucket
        _, texts, requests, p50, p95, failures = found.get(start, (start, 0, 0, None, None, 0))
        buckets.append(Bucket(start, texts / seconds, requests * 60 / seconds, p50, p95, failures))
    return buckets


@dataclass(frozen=True)
class FailureGroup:
    model: str
    error_key: str
    example: str
    count: int
    first_seen: datetime
    last_seen: datetime


# Grouped from the index on (model, error_key, finished_at) of failed requests; one example
# error per group (its latest) is read afterwards.
_FAILURES = f"""
WITH groups AS (
    SELECT failed.model, failed.error_key, count(*) AS n, min(failed.finished_at) AS first_seen,
           max(failed.finished_at) AS last_seen
      FROM {REQUESTS} AS failed
      LEFT JOIN LATERAL (
           SELECT max(d.dismissed_at) AS until FROM {DISMISSALS} AS d
            WHERE d.model = failed.model AND d.error_key = failed.error_key) AS dismissed ON true
     WHERE failed.status = 'failed'
       AND (dismissed.until IS NULL OR failed.finished_at > dismissed.until)
     GROUP BY failed.model, failed.error_key
     ORDER BY max(failed.finished_at) DESC
     LIMIT %(limit)s
)
SELECT groups.model, groups.error_key,
       (SELECT example.error FROM {REQUESTS} AS example
         WHERE example.status = 'failed' AND example.model = groups.model
           AND example.error_key = groups.error_key
         ORDER BY example.finished_at DESC NULLS LAST LIMIT 1),
       groups.n, groups.first_seen, groups.last_seen
  FROM groups
 ORDER BY groups.last_seen DESC
"""


def failure_groups(*, limit: int = 20) -> list[FailureGroup]:
    """Failed requests grouped by model and normalised error, the latest first, leaving out
    those that failed before their group was dismissed."""
    with connection.cursor() as cursor:
        cursor.execute(_FAILURES, {"limit": limit})
        return [FailureGroup(*row) for row in cursor.fetchall()]


@dataclass(frozen=True)
class ModelQueue:
    model: str
    pause: QueuePause | None  # None: running.


def model_queues() -> list[ModelQueue]:
    """Each registered model's queue, paused (with who, when and why) or not."""
    paused = {pause.queue_name: pause for pause in pauses.paused_queues()}
    return [ModelQueue(spec.name, paused.get(spec.queue)) for spec in REGISTRY.values()]


def recent_actions(*, limit: int = 20) -> list[OpsAction]:
    return list(OpsAction.objects.select_related("by")[:limit])
