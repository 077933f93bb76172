"""Deleting finished jobs, with their events, when the requests they ran are deleted.

Both Procrastinate tables only grow: every run of a request (a requeue makes another) leaves a
job and a handful of events. The request side (``product.inference.retention``) decides which
requests go; this module finds their jobs by the jobs' arguments and deletes those that are
finished, never one that waits or runs (a cancelled request whose job is still being aborted
keeps that job).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection

from product.queue import statuses
from product.queue.queries import query


def count_finished_jobs_of_requests(
    *, task_name: str, requests: tuple[str, Sequence]
) -> tuple[int, int]:
    """``(jobs, events)`` that ``delete_finished_jobs_of_requests`` would delete for the
    requests that ``requests`` selects: a SELECT of their ids and its positional parameters,
    as ``QuerySet.query.sql_with_params()`` gives (so millions of ids never travel)."""
    sql, params = requests
    with connection.cursor() as cursor:
        cursor.execute(
            query("count_finished_jobs_of_requests", requests=sql),
            [*params, task_name, list(statuses.FINISHED)],
        )
        jobs, events = cursor.fetchone()
    return jobs, events


def delete_finished_jobs_of_requests(
    *, task_name: str, request_ids: Sequence[int]
) -> tuple[int, int]:
    """Delete the finished jobs of ``task_name`` that ran these requests, and their events;
    returns ``(jobs, events)`` deleted. Jobs another transaction holds are skipped (left for
    the next run). Call it inside the transaction that deletes the requests."""
    with connection.cursor() as cursor:
        cursor.execute(
            query("delete_events_of_finished_jobs"),
            {
                "task": task_name,
                "statuses": list(statuses.FINISHED),
                "request_ids": [str(pk) for pk in request_ids],
            },
        )
        job_ids, events = cursor.fetchone()
        cursor.execute(
            query("delete_finished_jobs"),
            {"ids": job_ids or [], "statuses": list(statuses.FINISHED)},
        )
        return cursor.rowcount, events
