"""Bulk operations on Procrastinate's job table: how runners take, finish and hand back many
jobs per SQL round trip, and how jobs of dead runners are rescued.

Procrastinate's own worker fetches one job per round trip and finishes each with another. These
statements make the same state changes on many rows at once, with the same rules as
``procrastinate_fetch_job_v2`` (highest priority, then oldest; ``FOR UPDATE SKIP LOCKED``; jobs
sharing a ``lock`` run one at a time, in order), on the same tables, so Procrastinate's triggers
record the same events and its admin, CLI and worker heartbeats keep telling the truth.

Everything here is synchronous Django database code; the runner calls it from its database
thread, operators through management commands.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from procrastinate.jobs import Job

# The candidate rule is procrastinate_fetch_job_v2's, with LIMIT n instead of LIMIT 1. Within one
# snapshot a job whose lock is shared by an earlier (or higher-priority) waiting job is never a
# candidate, so one fetch takes at most one job per lock, and never one whose lock is running.
_FETCH = """
WITH candidate AS (
    SELECT jobs.id
      FROM procrastinate_jobs AS jobs
     WHERE jobs.status = 'todo'
       AND jobs.queue_name = ANY(%(queues)s)
       AND (jobs.scheduled_at IS NULL OR jobs.scheduled_at <= now())
       AND NOT EXISTS (
            SELECT 1
              FROM procrastinate_jobs AS other
             WHERE jobs.lock IS NOT NULL
               AND other.lock = jobs.lock
               AND (other.status = 'doing'
                    OR (other.status = 'todo'
                        AND (other.priority > jobs.priority
                             OR (other.priority = jobs.priority AND other.id < jobs.id)))))
     ORDER BY jobs.priority DESC, jobs.id ASC
     LIMIT %(limit)s
       FOR UPDATE OF jobs SKIP LOCKED
)
UPDATE procrastinate_jobs AS jobs
   SET status = 'doing', worker_id = %(worker_id)s
  FROM candidate
 WHERE jobs.id = candidate.id
RETURNING jobs.id, jobs.status, jobs.priority, jobs.lock, jobs.queueing_lock, jobs.task_name,
          jobs.args, jobs.scheduled_at, jobs.queue_name, jobs.attempts, jobs.abort_requested,
          jobs.worker_id
"""

# procrastinate_finish_job_v1 for many jobs: only jobs still running here are finished, so a job
# that was rescued and taken by another runner meanwhile is left to that runner.
_FINISH = """
UPDATE procrastinate_jobs AS jobs
   SET status = outcome.status::procrastinate_job_status,
       abort_requested = false,
       attempts = jobs.attempts + 1
  FROM unnest(%(ids)s::bigint[], %(statuses)s::text[]) AS outcome(id, status)
 WHERE jobs.id = outcome.id
   AND jobs.status = 'doing'
   AND (jobs.worker_id = %(worker_id)s OR jobs.worker_id IS NULL)
RETURNING jobs.id
"""

# A job handed back was not tried, so its attempts stay; one whose abort was asked for ends
# aborted instead (Procrastinate forbids a waiting job with a pending abort).
_HAND_BACK = """
UPDATE procrastinate_jobs AS jobs
   SET status = CASE WHEN abort_requested THEN 'aborted'::procrastinate_job_status
                     ELSE 'todo'::procrastinate_job_status END,
       abort_requested = false
 WHERE jobs.id = ANY(%(ids)s)
   AND jobs.status = 'doing'
   AND (jobs.worker_id = %(worker_id)s OR jobs.worker_id IS NULL)
RETURNING jobs.id
"""

_STALLED = """
SELECT jobs.id, jobs.queue_name, jobs.task_name, jobs.args, jobs.attempts, jobs.worker_id,
       workers.last_heartbeat
  FROM procrastinate_jobs AS jobs
  LEFT JOIN procrastinate_workers AS workers ON workers.id = jobs.worker_id
 WHERE jobs.status = 'doing'
   AND (workers.id IS NULL
        OR workers.last_heartbeat < now() - make_interval(secs => %(stalled_after)s))
 ORDER BY jobs.id
"""

# A rescued job counts the lost run as an attempt and waits (attempts)² seconds before its next
# one, so a job that kills its runner every time stops after max_attempts instead of cycling.
_RESCUE = """
WITH stalled AS (
    SELECT jobs.id
      FROM procrastinate_jobs AS jobs
      LEFT JOIN procrastinate_workers AS workers ON workers.id = jobs.worker_id
     WHERE jobs.status = 'doing'
       AND (workers.id IS NULL
            OR workers.last_heartbeat < now() - make_interval(secs => %(stalled_after)s))
       FOR UPDATE OF jobs SKIP LOCKED
)
UPDATE procrastinate_jobs AS jobs
   SET status = CASE WHEN jobs.attempts + 1 >= %(max_attempts)s OR jobs.abort_requested
                     THEN (CASE WHEN jobs.abort_requested THEN 'aborted' ELSE 'failed' END)
                          ::procrastinate_job_status
                     ELSE 'todo'::procrastinate_job_status END,
       attempts = jobs.attempts + 1,
       abort_requested = false,
       scheduled_at = CASE WHEN jobs.attempts + 1 >= %(max_attempts)s OR jobs.abort_requested
                           THEN jobs.scheduled_at
                           ELSE now() + make_interval(secs => (jobs.attempts + 1) ^ 2) END
  FROM stalled
 WHERE jobs.id = stalled.id
RETURNING jobs.id, jobs.status::text, jobs.attempts
"""

FINAL_JOB_STATUSES = ("succeeded", "failed", "aborted")


@dataclass(frozen=True)
class StalledJob:
    id: int
    queue: str
    task_name: str
    args: dict
    attempts: int
    worker_id: int | None
    last_heartbeat: datetime | None


@dataclass(frozen=True)
class Rescue:
    """What a rescue did: jobs put back in the queue, and jobs that ran out of attempts."""

    requeued: list[int]
    failed: list[int]
    aborted: list[int]


def register_worker() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT worker_id FROM procrastinate_register_worker_v1()")
        return cursor.fetchone()[0]


def heartbeat(*, worker_id: int, running: Sequence[int]) -> tuple[bool, list[int]]:
    """Record that the worker is alive, and return which of its running jobs an operator asked
    to abort (the fallback for a missed NOTIFY). ``alive`` is False when the worker's row is
    gone (pruned as stalled)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE procrastinate_workers SET last_heartbeat = now() WHERE id = %s", [worker_id]
        )
        alive = cursor.rowcount == 1
        to_abort: list[int] = []
        if running:
            cursor.execute(
                "SELECT id FROM procrastinate_jobs WHERE id = ANY(%s) AND abort_requested",
                [list(running)],
            )
            to_abort = [row[0] for row in cursor.fetchall()]
    return alive, to_abort


def unregister_worker(worker_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT procrastinate_unregister_worker_v1(%s)", [worker_id])


def fetch(*, worker_id: int, queues: Sequence[str], limit: int) -> list[Job]:
    """Take up to ``limit`` waiting jobs for this worker, in the order Procrastinate would."""
    if limit <= 0:
        return []
    with connection.cursor() as cursor:  # One statement: atomic by itself.
        cursor.execute(_FETCH, {"queues": list(queues), "limit": limit, "worker_id": worker_id})
        columns = [column.name for column in cursor.description]
        rows = [dict(zip(columns, row)) for row in cursor.fetchall()]
    for row in rows:  # Django's connection hands jsonb over as text.
        if isinstance(row["args"], str):
            row["args"] = json.loads(row["args"])
    jobs = [Job.from_row(row) for row in rows]
    jobs.sort(key=lambda job: (-job.priority, job.id))
    return jobs


def finish(*, worker_id: int, outcomes: Iterable[tuple[int, str]]) -> set[int]:
    """Finish many running jobs: (job id, "succeeded" | "failed" | "aborted") pairs.

    Returns the ids finished; a job no longer running here (rescued meanwhile) is skipped."""
    outcomes = list(outcomes)
    if not outcomes:
        return set()
    for _, status in outcomes:
        if status not in FINAL_JOB_STATUSES:
            raise ValueError(f"cannot finish a job as {status!r}")
    with connection.cursor() as cursor:
        cursor.execute(
            _FINISH,
            {
                "ids": [job_id for job_id, _ in outcomes],
                "statuses": [status for _, status in outcomes],
                "worker_id": worker_id,
            },
        )
        return {row[0] for row in cursor.fetchall()}


def retry(*, job: Job, retry_at: datetime | None, priority: int | None, queue: str | None,
          lock: str | None) -> None:
    """Schedule another attempt of a failed job (Procrastinate's own retry, one job)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT procrastinate_retry_job_v2(%s, %s, %s, %s, %s)",
            [job.id, retry_at, priority, queue, lock],
        )


def hand_back(*, worker_id: int, job_ids: Sequence[int]) -> set[int]:
    """Put jobs this worker took but will not run back in the queue at once, untried."""
    if not job_ids:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(_HAND_BACK, {"ids": list(job_ids), "worker_id": worker_id})
        return {row[0] for row in cursor.fetchall()}


def stalled_jobs(*, stalled_after: float) -> list[StalledJob]:
    """Running jobs whose worker is gone or has not sent a heartbeat for ``stalled_after`` s."""
    with connection.cursor() as cursor:
        cursor.execute(_STALLED, {"stalled_after": stalled_after})
        return [
            StalledJob(id, queue, task, json.loads(args) if isinstance(args, str) else args,
                       attempts, worker, heartbeat)
            for id, queue, task, args, attempts, worker, heartbeat in cursor.fetchall()
        ]


def rescue_stalled(*, stalled_after: float, max_attempts: int) -> Rescue:
    """Put stalled jobs back in the queue; fail those that have used their attempts.

    Also removes the stalled workers' rows, as Procrastinate's worker does at start."""
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(
            "SELECT worker_id FROM procrastinate_prune_stalled_workers_v1(%s)", [stalled_after]
        )
        cursor.execute(_RESCUE, {"stalled_after": stalled_after, "max_attempts": max_attempts})
        rows = cursor.fetchall()
    by_status: dict[str, list[int]] = {"todo": [], "failed": [], "aborted": []}
    for job_id, status, _ in rows:
        by_status[status].append(job_id)
    return Rescue(
        requeued=sorted(by_status["todo"]),
        failed=sorted(by_status["failed"]),
        aborted=sorted(by_status["aborted"]),
    )
