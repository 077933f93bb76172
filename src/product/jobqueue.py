"""Bulk operations on Procrastinate's job table: how runners take, finish and hand back many
jobs per SQL round trip, and how jobs of dead runners are rescued.

Procrastinate's own worker fetches one job per round trip and finishes each with another. These
statements make the same state changes on many rows at once, with the same rules as
``procrastinate_fetch_job_v2`` (highest priority first; ``FOR UPDATE SKIP LOCKED``; jobs sharing
a ``lock`` run one at a time, in order), on the same tables, so Procrastinate's triggers record
the same events and its admin, CLI and worker heartbeats keep telling the truth. Within a
priority, runners take jobs in fair turns between owners rather than oldest first (``fetch``).

Everything here is synchronous Django database code; the runner calls it from its database
thread, operators through management commands.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from procrastinate.jobs import Job

# Which waiting jobs may be taken at all: procrastinate_fetch_job_v2's rule. Within one snapshot
# a job whose lock is shared by an earlier (or higher-priority) waiting job is never a candidate,
# so one fetch takes at most one job per lock, and never one whose lock is running. (Written
# "lock IS NULL OR NOT EXISTS" so that jobs without a lock, nearly all, cost no look-up: as a
# plain NOT EXISTS PostgreSQL hashes the whole table for an anti-join at every fetch.)
_TAKEABLE = """
       jobs.status = 'todo'
   AND jobs.queue_name = ANY(%(queues)s)
   AND (jobs.scheduled_at IS NULL OR jobs.scheduled_at <= now())
   AND (jobs.lock IS NULL OR NOT EXISTS (
        SELECT 1
          FROM procrastinate_jobs AS other
         WHERE other.lock = jobs.lock
           AND (other.status = 'doing'
                OR (other.status = 'todo'
                    AND (other.priority > jobs.priority
                         OR (other.priority = jobs.priority AND other.id < jobs.id))))))
"""

_TAKE = """
UPDATE procrastinate_jobs AS jobs
   SET status = 'doing', worker_id = %(worker_id)s
  FROM {chosen}
 WHERE jobs.id = chosen.id
RETURNING jobs.id, jobs.status, jobs.priority, jobs.lock, jobs.queueing_lock, jobs.task_name,
          jobs.args, jobs.scheduled_at, jobs.queue_name, jobs.attempts, jobs.abort_requested,
          jobs.worker_id
"""

# The old order (GPU_RUNNER_FAIR=0, for comparing): procrastinate_fetch_job_v2 with LIMIT n,
# the oldest work of all owners first.
_FETCH_OLDEST = f"""
WITH chosen AS (
    SELECT jobs.id
      FROM procrastinate_jobs AS jobs
     WHERE {_TAKEABLE}
     ORDER BY jobs.priority DESC, jobs.id ASC
     LIMIT %(limit)s
       FOR UPDATE OF jobs SKIP LOCKED
)
{_TAKE.format(chosen="chosen")}"""

# Fair turns: within a priority, weighted fair queueing by texts. A job's "virtual finish" is
# the number of texts its owner has waiting up to and including it, and the lowest goes first:
# an owner with one small job waiting goes before the second job of a backlog, whatever their
# ages; owners with backlogs alternate by texts. Jobs are taken in that order while the texts
# before them fit the runner's room (``room``: at least one job when there is room at all);
# jobs of ``urgent`` priority or more are taken whatever their texts.
#
# Window functions cannot sit with FOR UPDATE in one SELECT level, so ``ordered`` ranks in a
# snapshot and ``locked`` locks in that order, skipping rows other runners hold; the texts are
# summed again over what was locked, so rows skipped do not use up this runner's room. Rows
# locked beyond the room stay untouched and are free again when the transaction ends.
# ``args->>'owner'`` and ``args->>'texts'`` come from the job (jobs without them: one owner,
# one text each, so they keep their priority-then-age order).
#
# Ranking every waiting job costs tens of milliseconds with 20,000 of them, so the statement
# only looks at what can be taken: ``owners`` lists the (priority, owner) pairs waiting by
# skipping through the index ``inference_fair_intake`` (migration 0005), one probe each, and
# ``waiting`` takes each owner's first ``limit`` jobs from it (no later job of an owner can be
# among the first ``limit`` overall: its owner's earlier ones all rank before it).
_OWNER = "COALESCE(jobs.args->>'owner', '')"
_FETCH_FAIR = f"""
WITH RECURSIVE owners AS (
    (SELECT jobs.priority, {_OWNER} AS owner
       FROM procrastinate_jobs AS jobs
      WHERE jobs.status = 'todo' AND (%(room)s > 0 OR jobs.priority >= %(urgent)s)
      ORDER BY jobs.priority, {_OWNER}
      LIMIT 1)
    UNION ALL
    SELECT next.priority, next.owner
      FROM owners, LATERAL (
           SELECT jobs.priority, {_OWNER} AS owner
             FROM procrastinate_jobs AS jobs
            WHERE jobs.status = 'todo' AND (%(room)s > 0 OR jobs.priority >= %(urgent)s)
              AND (jobs.priority, {_OWNER}) > (owners.priority, owners.owner)
            ORDER BY jobs.priority, {_OWNER}
            LIMIT 1) AS next
),
waiting AS (
    SELECT first.id, first.priority, first.texts,
           sum(first.texts) OVER (PARTITION BY first.priority, first.owner
                                  ORDER BY first.id) AS finish
      FROM owners, LATERAL (
           SELECT jobs.id, jobs.priority, owners.owner,
                  COALESCE((jobs.args->>'texts')::int, 1) AS texts
             FROM procrastinate_jobs AS jobs
            WHERE {_TAKEABLE}
              AND jobs.priority = owners.priority AND {_OWNER} = owners.owner
            ORDER BY jobs.id
            LIMIT %(limit)s) AS first
),
ordered AS (
    SELECT waiting.*,
           (sum(texts) OVER (ORDER BY priority DESC, finish, id))::bigint - texts AS before
      FROM waiting
),
locked AS (
    SELECT jobs.id, ordered.priority, ordered.texts, ordered.finish
      FROM ordered
      JOIN procrastinate_jobs AS jobs ON jobs.id = ordered.id
     WHERE jobs.status = 'todo'
       AND (ordered.priority >= %(urgent)s OR ordered.before < 2 * %(room)s)
     ORDER BY ordered.priority DESC, ordered.finish, ordered.id
     LIMIT %(limit)s
       FOR UPDATE OF jobs SKIP LOCKED
),
chosen AS (
    SELECT id
      FROM (SELECT id, priority,
                   (sum(texts) OVER (ORDER BY priority DESC, finish, id))::bigint - texts AS before
              FROM locked) AS taking
     WHERE priority >= %(urgent)s OR before < %(room)s
)
{_TAKE.format(chosen="chosen")}"""

# A room so large that texts never limit a fetch.
_UNLIMITED = 2**40


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

# procrastinate_retry_job_v2 for many jobs, fenced like _FINISH: a runner taken for dead whose
# job was rescued meanwhile must not put that job back in the queue under its new runner. As in
# Procrastinate, a job whose abort was asked for fails instead of waiting again.
_RETRY = """
UPDATE procrastinate_jobs AS jobs
   SET status = CASE WHEN jobs.abort_requested THEN 'failed'::procrastinate_job_status
                     ELSE 'todo'::procrastinate_job_status END,
       attempts = CASE WHEN jobs.abort_requested THEN jobs.attempts ELSE jobs.attempts + 1 END,
       scheduled_at = CASE WHEN jobs.abort_requested THEN jobs.scheduled_at
                           ELSE retry.retry_at END,
       priority = CASE WHEN jobs.abort_requested THEN jobs.priority
                       ELSE COALESCE(retry.priority, jobs.priority) END,
       queue_name = CASE WHEN jobs.abort_requested THEN jobs.queue_name
                         ELSE COALESCE(retry.queue, jobs.queue_name) END,
       lock = CASE WHEN jobs.abort_requested THEN jobs.lock ELSE COALESCE(retry.lock, jobs.lock) END
  FROM unnest(%(ids)s::bigint[], %(retry_at)s::timestamptz[], %(priorities)s::int[],
              %(queues)s::text[], %(locks)s::text[]) AS retry(id, retry_at, priority, queue, lock)
 WHERE jobs.id = retry.id
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
       now() - workers.last_heartbeat
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
    silent_for: timedelta | None  # Since its runner's last heartbeat (None: the runner is gone).


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


def fetch(
    *, worker_id: int, queues: Sequence[str], limit: int, room: int | None = None,
    urgent: int | None = None, fair: bool = True,
) -> list[Job]:
    """Take up to ``limit`` waiting jobs for this worker: highest priority first, and within a
    priority in fair turns between owners (``_FETCH_FAIR``), or oldest first with
    ``fair=False`` (Procrastinate's own order).

    ``room`` bounds the texts taken (summed over the jobs, from their ``texts`` argument):
    jobs are taken while the texts before them fit, so at least one when ``room`` > 0, none
    below ``urgent`` priority otherwise; jobs of ``urgent`` priority or more are taken while
    ``limit`` allows. None: no bound."""
    if limit <= 0:
        return []
    params = {
        "queues": list(queues), "limit": limit, "worker_id": worker_id,
        "room": _UNLIMITED if room is None else room,
        "urgent": _UNLIMITED if urgent is None else urgent,
    }
    with connection.cursor() as cursor:  # One statement: atomic by itself.
        cursor.execute(_FETCH_FAIR if fair else _FETCH_OLDEST, params)
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


@dataclass(frozen=True)
class Retry:
    """Another attempt of a failed job, as its task's retry strategy decided."""

    job_id: int
    retry_at: datetime | None
    priority: int | None = None
    queue: str | None = None
    lock: str | None = None


def retry(*, worker_id: int, retries: Sequence[Retry]) -> set[int]:
    """Schedule another attempt of many failed jobs (Procrastinate's retry); returns the ids
    scheduled. A job no longer running here (rescued meanwhile) is skipped."""
    if not retries:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            _RETRY,
            {
                "ids": [r.job_id for r in retries],
                "retry_at": [r.retry_at for r in retries],
                "priorities": [r.priority for r in retries],
                "queues": [r.queue for r in retries],
                "locks": [r.lock for r in retries],
                "worker_id": worker_id,
            },
        )
        return {row[0] for row in cursor.fetchall()}


def lock_job(job_id: int) -> None:
    """Lock a job's row until the transaction ends. Transactions that change a job and its
    request lock the job first (the runner's order), so they can never deadlock."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM procrastinate_jobs WHERE id = %s FOR UPDATE", [job_id])


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
                       attempts, worker, silent)
            for id, queue, task, args, attempts, worker, silent in cursor.fetchall()
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
