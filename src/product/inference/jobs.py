"""The queue side of a request: the task's name and how the web defers and cancels its jobs.

The task body lives in the runner (``gpu_runner.tasks``); the web defers it by name, so the
web never imports the runner or torch. Procrastinate's Django connector uses Django's own
connection, so a job deferred inside ``transaction.atomic()`` commits or rolls back with it.
"""

from __future__ import annotations

from procrastinate.contrib.django import app

from product.inference.specs import get_spec

RUN_REQUEST_TASK = "inference.run_request"


def defer_run(*, request_id: int, model: str) -> int:
    """Defer the job that runs one request on its model's queue; return the job id."""
    task = app.configure_task(name=RUN_REQUEST_TASK, queue=get_spec(model).queue)
    return task.defer(request_id=request_id)


def cancel_job(job_id: int) -> bool:
    """Cancel a waiting job, or ask the runner to abort it if it is running."""
    return app.job_manager.cancel_job_by_id(job_id, abort=True)
