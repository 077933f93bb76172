"""The one task the runner executes: run an InferenceRequest and write its outcome.

The runner claims the request in the transaction that takes the job (``RUNNER_HOOKS``), the
task hands the inputs to the model's batcher, and returns the outcome, which the runner writes
in the transaction that records the job as succeeded: a job and its request row change
together, with one round trip for all jobs that move together. Database errors are retried by
Procrastinate's retry strategy; an input the model cannot run, or an error with no retry left,
fails the job and, in the same transaction, the request, with a readable error, so the
request and the queue's admin both show the truth.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback

import psycopg
from django import db
from django.conf import settings
from procrastinate import JobContext, RetryStrategy
from procrastinate.contrib.django import app
from procrastinate.job_context import AbortReason
from procrastinate.jobs import Job

from gpu_runner.coalesce import Coalescer
from gpu_runner.db import in_db
from gpu_runner.models.base import InferenceError
from gpu_runner.runtime import current_runtime
from gpu_runner.worker import TaskHooks
from product.inference import services
from product.inference.jobs import RUN_REQUEST_TASK
from product.inference.models import InferenceRequest, RequestStatus
from product.inference.services import Claim, Outcome

logger = logging.getLogger(__name__)

# A bulk request reports progress at most this often.
PROGRESS_INTERVAL = 0.5


def _claim(jobs: list[Job]) -> dict[int, InferenceRequest]:
    """Mark the jobs' requests running (in the runner's take transaction)."""
    return services.requests_start(
        claims=[Claim(request_id=job.task_kwargs["request_id"], job_id=job.id) for job in jobs]
    )


def _store(outcomes: list[Outcome | None]) -> None:
    """Store results (in the runner's transaction that finishes the jobs)."""
    services.requests_finish(outcomes=[outcome for outcome in outcomes if outcome is not None])


def _store_failures(failures: list[tuple[Job, BaseException]]) -> None:
    """Fail the requests of jobs that failed for good (in the transaction that fails the jobs)."""
    services.requests_finish(
        outcomes=[_failure(Claim(job.task_kwargs["request_id"], job.id), error) for job, error in failures]
    )


def _release_handed_back(jobs: list[Job]) -> None:
    """Show the requests of jobs handed back untried as queued again (in the transaction that
    hands the jobs back, so only requests of jobs this runner still held)."""
    services.requests_release(job_ids=[job.id for job in jobs])


RUNNER_HOOKS = {
    RUN_REQUEST_TASK: TaskHooks(
        on_taken=_claim,
        on_succeeded=_store,
        on_failed=_store_failures,
        on_handed_back=_release_handed_back,
    )
}


class RequestWrites:
    """The task's other writes to request rows (failures, progress, hand-backs), each grouped
    across the jobs doing it together."""

    def __init__(self) -> None:
        self.finishes = Coalescer(in_db(_finish))
        self.progress = Coalescer(in_db(_progress))
        self.releases = Coalescer(in_db(_release))

    def progress_reporter(self, claim: Claim):
        last = 0.0

        def report(done: int) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= PROGRESS_INTERVAL:
                last = now
                self.progress.post((claim, done))

        return report


def _finish(outcomes: list[Outcome]) -> list[None]:
    services.requests_finish(outcomes=outcomes)
    return [None] * len(outcomes)


def _progress(progress: list[tuple[Claim, int]]) -> list[None]:
    services.requests_progress(progress=progress)
    return [None] * len(progress)


def _release(job_ids: list[int]) -> list[None]:
    services.requests_release(job_ids=job_ids)
    return [None] * len(job_ids)


_writes: RequestWrites | None = None


def request_writes() -> RequestWrites:
    global _writes
    if _writes is None:
        _writes = RequestWrites()
    return _writes


# Transient: the database went away. Anything else is a bug or a bad input, not worth a retry.
RETRYABLE = (db.OperationalError, db.InterfaceError, psycopg.OperationalError)


@app.task(
    name=RUN_REQUEST_TASK,
    pass_context=True,
    # Procrastinate counts retries; INFERENCE_MAX_ATTEMPTS counts runs (and 0 retries is None).
    retry=RetryStrategy(
        max_attempts=settings.INFERENCE_MAX_ATTEMPTS - 1,
        exponential_wait=2,
        retry_exceptions=set(RETRYABLE),
    )
    if settings.INFERENCE_MAX_ATTEMPTS > 1
    else None,
)
async def run_request(
    context: JobContext, request_id: int, owner: int | None = None, texts: int | None = None
) -> Outcome | None:
    # ``owner`` and ``texts`` are there for the fair intake's SQL (jobs deferred before they
    # existed have neither). The batcher orders by the job's priority, as the intake did, and
    # takes owners' turns by the request's owner.
    writes = request_writes()
    claim = Claim(request_id=request_id, job_id=context.job.id)
    hooked = "taken" in context.additional_context
    if hooked:
        request = context.additional_context["taken"]
    else:  # Run by a worker without the runner's hooks (e.g. Procrastinate's own).
        request = (await in_db(services.requests_start)(claims=[claim])).get(claim.job_id)
    if request is None:
        logger.info("job %s: request %s is cancelled, gone or requeued; skipping", claim.job_id, request_id)
        return None
    runtime = current_runtime()
    try:
        outputs, compute_ms = await runtime.batcher(request.model).run(
            request.inputs, on_progress=writes.progress_reporter(claim),
            priority=context.job.priority, owner=request.owner_id,
        )
        output = runtime.models[request.model].pack(outputs)
    except asyncio.CancelledError:
        if not hooked and context.abort_reason() is AbortReason.SHUTDOWN:
            await writes.releases.submit(claim.job_id)  # Handed back: show it queued again.
        raise
    except Exception as error:
        # The runner's on_failed hook fails the request with its job; without it, do it here.
        last_attempt = context.job.attempts + 1 >= settings.INFERENCE_MAX_ATTEMPTS
        if not hooked and (last_attempt or not isinstance(error, RETRYABLE)):
            await writes.finishes.submit(_failure(claim, error))
        raise
    outcome = Outcome(
        request_id=request_id, job_id=claim.job_id, status=RequestStatus.SUCCEEDED,
        output=output, compute_ms=compute_ms,
    )
    if not hooked:
        await writes.finishes.submit(outcome)
    return outcome


def _failure(claim: Claim, error: BaseException) -> Outcome:
    """The failed outcome for ``error``: an input the model cannot run says why (its cause is
    the traceback, for staff); anything else is the runner's failure."""
    if isinstance(error, InferenceError):
        message, cause = str(error), error.__cause__
    else:
        message, cause = f"the runner failed: {error}", error
    return Outcome(
        request_id=claim.request_id,
        job_id=claim.job_id,
        status=RequestStatus.FAILED,
        error=message,
        traceback="".join(traceback.format_exception(cause)) if cause is not None else "",
    )
