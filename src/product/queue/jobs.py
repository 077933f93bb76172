"""One job at a time, as the web handles them: defer a job, lock it, cancel it.

Each is one statement on Django's connection, so it belongs to the caller's transaction: a job
deferred inside ``transaction.atomic()`` commits or rolls back with the request's row, and
nobody sees a job without its request. The statements call Procrastinate's own functions
(``jobs.sql``), so its triggers record the same events and send the same NOTIFY as
``Task.defer`` and ``JobManager.cancel_job_by_id`` would.
"""

from __future__ import annotations

from typing import Any

import orjson
from django.db import connection

from product.queue.queries import query


def defer(*, task_name: str, queue: str, priority: int, args: dict[str, Any]) -> int:
    """Add a job that runs ``task_name`` with ``args`` (JSON-able keyword arguments) on
    ``queue`` (higher ``priority`` runs first); returns its id."""
    with connection.cursor() as cursor:
        cursor.execute(
            query("defer_job"),
            {
                "task_name": task_name, "queue": queue, "priority": priority,
                "args": orjson.dumps(args).decode(),
            },
        )
        return cursor.fetchone()[0]


def cancel(job_id: int) -> bool:
    """Cancel a waiting job, or ask the runner to abort it if it is running. False: the job
    had already ended (or does not exist)."""
    with connection.cursor() as cursor:
        cursor.execute(query("cancel_job"), {"job_id": job_id})
        return cursor.fetchone()[0] is not None


def lock(job_id: int) -> None:
    """Lock a job's row until the transaction ends. Transactions that change a job and its
    request lock the job first (the runner's order), so they can never deadlock."""
    with connection.cursor() as cursor:
        cursor.execute(query("lock_job"), {"job_id": job_id})


def defer_per_row_sql(
    *, task_name: str, queue: str, priority: int, source: str, args: str
) -> tuple[str, dict]:
    """A SELECT that defers one job per row of the caller's CTE ``source`` with ``args`` (SQL,
    a jsonb expression over its columns), for a CTE of the caller's own statement, and the
    parameters it needs (named ``queue``, ``task_name`` and ``priority``: the caller's must not
    clash). Each new job's id is its column ``id``."""
    return (
        query("defer_job_per_row", source=source, args=args),
        {"task_name": task_name, "queue": queue, "priority": priority},
    )
