"""The queue side of a request: the task's name, its priorities, deferring and cancelling its
jobs (through the queue engine, ``product.queue.jobs``), and pausing a model's queue
(``product.queue.pauses``).

The task body lives in the runner; the web defers it by name, so the web never imports the
runner or torch. The job is deferred on Django's connection, so inside ``transaction.atomic()``
it commits or rolls back with the request's row.

A job carries what the runners' fair intake (``product.queue.intake.fetch``) needs without a
join: its Procrastinate priority comes from the request's priority (interactive above bulk),
and its arguments name the owner and the number of texts.
"""

from __future__ import annotations

from django.conf import settings

from product.inference.models import RequestPriority
from product.inference.registry import get_spec
from product.inference.specs import InputError
from product.queue import jobs as queue_jobs
from product.queue import pauses

RUN_REQUEST_TASK = "inference.run_request"

# Procrastinate priorities (higher runs first). Jobs deferred before priorities existed have 0,
# so they wait with bulk work.
JOB_PRIORITY = {RequestPriority.INTERACTIVE: 10, RequestPriority.BULK: 0}
INTERACTIVE_JOB_PRIORITY = JOB_PRIORITY[RequestPriority.INTERACTIVE]


def choose_priority(requested: str | None, text_count: int) -> str:
    """The request's priority: the one asked for, or by size when none is (interactive up to
    ``INFERENCE_INTERACTIVE_MAX_TEXTS`` texts, bulk above). Raises InputError for another value."""
    if requested is None:
        if text_count <= settings.INFERENCE_INTERACTIVE_MAX_TEXTS:
            return RequestPriority.INTERACTIVE
        return RequestPriority.BULK
    if requested not in RequestPriority.values:
        allowed = ", ".join(RequestPriority.values)
        raise InputError(f"priority must be one of: {allowed} (got {requested!r}).")
    return RequestPriority(requested)


def defer_run(*, request_id: int, model: str, owner: int, texts: int, priority: str) -> int:
    """Defer the job that runs one request on its model's queue; return the job id."""
    return queue_jobs.defer(
        task_name=RUN_REQUEST_TASK, queue=get_spec(model).queue, priority=JOB_PRIORITY[priority],
        args={"request_id": request_id, "owner": owner, "texts": texts},
    )


def defer_run_sql(
    *, model: str, priority: str, source: str, request_id: str, owner: str, texts: str
) -> tuple[str, dict]:
    """``defer_run`` as a piece of a statement: one job per row of the caller's CTE ``source``,
    whose request id, owner and number of texts are the SQL expressions given; the SELECT and
    its parameters (``queue.jobs.defer_per_row_sql``)."""
    return queue_jobs.defer_per_row_sql(
        task_name=RUN_REQUEST_TASK, queue=get_spec(model).queue, priority=JOB_PRIORITY[priority],
        source=source,
        args=f"jsonb_build_object('request_id', {request_id}, 'owner', {owner}, 'texts', {texts})",
    )


def cancel_job(job_id: int) -> bool:
    """Cancel a waiting job, or ask the runner to abort it if it is running."""
    return queue_jobs.cancel(job_id)


def pause_model(*, model: str, paused_by: str, reason: str = "") -> tuple[pauses.QueuePause, bool]:
    """Pause ``model``'s queue: runners take none of its jobs (they finish those they hold)
    until it is resumed; requests are still accepted and wait. The pause, and whether this call
    paused it (False: it was paused already). Raises InputError for an unknown model."""
    return pauses.pause(queue=get_spec(model).queue, paused_by=paused_by, reason=reason)


def resume_model(*, model: str) -> pauses.QueuePause | None:
    """Resume ``model``'s queue and wake its runners (when the transaction commits): the pause
    that ended, None when it was not paused. Raises InputError for an unknown model."""
    return pauses.resume(queue=get_spec(model).queue)
