"""How runners take waiting jobs: every job there is room for in one statement.

Procrastinate's own worker fetches one job per round trip. ``fetch`` makes the same state
change on many rows at once, with the same rules as ``procrastinate_fetch_job_v2`` (highest
priority first; ``FOR UPDATE SKIP LOCKED``; jobs sharing a ``lock`` run one at a time, in
order), so Procrastinate's triggers record the same events and its admin, CLI and worker
heartbeats keep telling the truth. Jobs of paused queues (``pauses``) are not taken. Within a priority, jobs are taken in fair turns between
owners rather than oldest first (the statements are in ``intake.sql``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from django.db import connection
from procrastinate.jobs import Job

from product.queue.queries import query

# A room so large that texts never limit a fetch.
UNLIMITED = 2**40


def fetch(
    *, worker_id: int, queues: Sequence[str], limit: int, room: int | None = None,
    urgent: int | None = None, fair: bool = True,
) -> list[Job]:
    """Take up to ``limit`` waiting jobs for this worker: highest priority first, and within a
    priority in fair turns between owners (``fetch_fair``), or oldest first with
    ``fair=False`` (Procrastinate's own order, ``fetch_oldest``).

    ``room`` bounds the texts taken (summed over the jobs, from their ``texts`` argument):
    jobs are taken while the texts before them fit, so at least one when ``room`` > 0, none
    below ``urgent`` priority otherwise; jobs of ``urgent`` priority or more are taken while
    ``limit`` allows. None: no bound."""
    if limit <= 0:
        return []
    params = {
        "queues": list(queues), "limit": limit, "worker_id": worker_id,
        "room": UNLIMITED if room is None else room,
        "urgent": UNLIMITED if urgent is None else urgent,
    }
    with connection.cursor() as cursor:  # One statement: atomic by itself.
        cursor.execute(query("fetch_fair" if fair else "fetch_oldest"), params)
        columns = [column.name for column in cursor.description]
        rows = [dict(zip(columns, row)) for row in cursor.fetchall()]
    for row in rows:  # Django's connection hands jsonb over as text.
        if isinstance(row["args"], str):
            row["args"] = json.loads(row["args"])
    jobs = [Job.from_row(row) for row in rows]
    jobs.sort(key=lambda job: (-job.priority, job.id))
    return jobs
