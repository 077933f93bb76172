"""How runners end the jobs they took, many per statement: finish, hand back.

Each is Procrastinate's own state change (``procrastinate_finish_job_v1``; a hand-back is
``procrastinate_retry_job_v2`` without a wait or an attempt) made on many rows at once, and
fenced: a job no longer
running here (rescued and taken by another runner meanwhile) is skipped and left to that
runner. Each returns the ids it changed, so the caller writes exactly those jobs' requests.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db import connection

from product.queue import statuses
from product.queue.queries import query


def finish(*, worker_id: int, outcomes: Iterable[tuple[int, str]]) -> set[int]:
    """Finish many running jobs: (job id, "succeeded" | "failed" | "aborted") pairs.

    Returns the ids finished; a job no longer running here (rescued meanwhile) is skipped."""
    outcomes = list(outcomes)
    if not outcomes:
        return set()
    for _, status in outcomes:
        if status not in statuses.RUN_OUTCOMES:
            raise ValueError(f"cannot finish a job as {status!r}")
    return _changed(
        "finish",
        {
            "ids": [job_id for job_id, _ in outcomes],
            "statuses": [status for _, status in outcomes],
            "worker_id": worker_id,
        },
    )


def hand_back(*, worker_id: int, job_ids: Sequence[int]) -> set[int]:
    """Put jobs this worker took but will not run back in the queue at once, untried."""
    if not job_ids:
        return set()
    return _changed("hand_back", {"ids": list(job_ids), "worker_id": worker_id})


def _changed(statement: str, params: dict) -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute(query(statement), params)
        return {row[0] for row in cursor.fetchall()}
