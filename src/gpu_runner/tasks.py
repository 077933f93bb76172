"""The one task the runner executes: run an InferenceRequest and write its outcome.

The task takes an id, loads what it needs and calls services (the task is an API). Database
errors are retried by Procrastinate; an input the model cannot run fails the request with a
readable error and fails the job, so the queue's admin shows the truth.
"""

from __future__ import annotations

import logging

import psycopg
from asgiref.sync import sync_to_async
from django import db
from django.conf import settings
from procrastinate import JobContext, RetryStrategy
from procrastinate.contrib.django import app

from gpu_runner.models.base import InferenceError
from gpu_runner.runtime import current_runtime
from product.inference import services
from product.inference.jobs import RUN_REQUEST_TASK

logger = logging.getLogger(__name__)


def _in_db(function):
    """Run a service in Django's database thread, on a connection known to be usable."""

    def call(**kwargs):
        db.close_old_connections()
        return function(**kwargs)

    return sync_to_async(call)


@app.task(
    name=RUN_REQUEST_TASK,
    pass_context=True,
    retry=RetryStrategy(
        max_attempts=settings.INFERENCE_MAX_ATTEMPTS,
        exponential_wait=2,
        retry_exceptions={db.OperationalError, db.InterfaceError, psycopg.OperationalError},
    ),
)
async def run_request(context: JobContext, request_id: int) -> None:
    job_id = context.job.id
    request = await _in_db(services.request_start)(request_id=request_id, job_id=job_id)
    if request is None:
        logger.info("job %s: request %s is cancelled, gone or requeued; skipping", job_id, request_id)
        return
    runtime = current_runtime()
    try:
        outputs, compute_ms = await runtime.batcher(request.model).run(request.inputs)
    except InferenceError as error:
        await _in_db(services.request_fail)(request_id=request_id, job_id=job_id, error=str(error))
        raise
    output = runtime.models[request.model].pack(outputs)
    await _in_db(services.request_succeed)(
        request_id=request_id, job_id=job_id, output=output, compute_ms=compute_ms
    )
