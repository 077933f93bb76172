"""Runners as Procrastinate workers: registering, heartbeats, and rescuing the jobs of runners
that died.

A runner registers as a Procrastinate worker and sends heartbeats, so Procrastinate's CLI and
admin show it. A runner that dies leaves its jobs in ``doing``; once its heartbeat is older
than ``stalled_after`` seconds, ``rescue_stalled`` (run by every live runner, and by the
``rescue_stalled`` command) puts them back in the queue, or fails them once they have used
their attempts. Procrastinate itself finds stalled jobs but never retries them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.db import connection, transaction

from product.queue.backoff import Backoff
from product.queue.queries import query

# How long a rescued job waits before its next run, by the runs it has lost: 2, 4, 8, ... s,
# at most 5 minutes (a job that kills its runner should not take the next one down at once).
RESCUE_BACKOFF = Backoff(first=2.0, factor=2.0, cap=300.0)


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


def register() -> int:
    """Register a new worker; returns its id."""
    with connection.cursor() as cursor:
        cursor.execute(query("register_worker"))
        return cursor.fetchone()[0]


def heartbeat(*, worker_id: int, running: Sequence[int]) -> tuple[bool, list[int]]:
    """Record that the worker is alive, and return which of its running jobs an operator asked
    to abort (the fallback for a missed NOTIFY). ``alive`` is False when the worker's row is
    gone (pruned as stalled)."""
    with connection.cursor() as cursor:
        cursor.execute(query("heartbeat"), {"worker_id": worker_id})
        alive = cursor.rowcount == 1
        to_abort: list[int] = []
        if running:
            cursor.execute(query("abort_requested"), {"ids": list(running)})
            to_abort = [row[0] for row in cursor.fetchall()]
    return alive, to_abort


def unregister(worker_id: int) -> None:
    """Remove the worker's row (its running jobs keep no worker: they are stalled at once)."""
    with connection.cursor() as cursor:
        cursor.execute(query("unregister_worker"), {"worker_id": worker_id})


def stalled_jobs(*, stalled_after: float) -> list[StalledJob]:
    """Running jobs whose worker is gone or has not sent a heartbeat for ``stalled_after`` s."""
    with connection.cursor() as cursor:
        cursor.execute(query("stalled_jobs"), {"stalled_after": stalled_after})
        return [
            StalledJob(id, queue, task, json.loads(args) if isinstance(args, str) else args,
                       attempts, worker, silent)
            for id, queue, task, args, attempts, worker, silent in cursor.fetchall()
        ]


def rescue_stalled(
    *, stalled_after: float, max_attempts: int, backoff: Backoff = RESCUE_BACKOFF
) -> Rescue:
    """Put stalled jobs back in the queue; fail those that have used their attempts, and abort
    those whose abort was asked for. A job that had run ``n`` times before the run that was
    lost is due again after ``backoff.delay(n)`` seconds.

    Also removes the stalled workers' rows, as Procrastinate's worker does at start."""
    params = {
        "stalled_after": stalled_after,
        "max_attempts": max_attempts,
        "delays": [backoff.delay(runs) for runs in range(max(max_attempts, 1))],
    }
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(query("prune_stalled_workers"), {"stalled_after": stalled_after})
        cursor.execute(query("rescue_stalled"), params)
        rows = cursor.fetchall()
    by_status: dict[str, list[int]] = {"todo": [], "failed": [], "aborted": []}
    for job_id, status, _ in rows:
        by_status[status].append(job_id)
    return Rescue(
        requeued=sorted(by_status["todo"]),
        failed=sorted(by_status["failed"]),
        aborted=sorted(by_status["aborted"]),
    )
