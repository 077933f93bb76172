"""The runner's handler of inference jobs: a job runs one InferenceRequest on its model.

claim   the requests of the jobs taken are marked running, in the transaction that takes them
        (a request cancelled, requeued or deleted meanwhile is not claimed: its job just ends);
start   every claimed request's inputs go to its model's batcher in one ``submit``, so jobs
        taken together share forward passes; large requests report progress as batches finish;
        as a request's outputs are all there, the model packs them into its outcome;
store   outcomes are written in the transaction that records the jobs as succeeded; ``fail`` writes the readable error (an input the model cannot run) or the
        runner's failure, in the one that fails them; ``release`` shows requests of jobs handed
        back as queued again.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Callable
from typing import Any

from procrastinate.jobs import Job

from gpu_runner.batcher import Done, Work
from gpu_runner.coalesce import Coalescer
from gpu_runner.db import in_db
from gpu_runner.handlers import JobHandler, Run
from gpu_runner.models.base import InferenceError
from gpu_runner.runtime import Runtime
from product.inference import services
from product.inference.jobs import RUN_REQUEST_TASK
from product.inference.models import RequestStatus
from product.inference.services import Claim, Outcome, Started

# A large request reports progress at most this often.
PROGRESS_INTERVAL = 0.5


class InferenceHandler(JobHandler):
    task_name = RUN_REQUEST_TASK

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._progress: Coalescer[tuple[Claim, int], None] = Coalescer(in_db(_write_progress))

    def claim(self, jobs: list[Job]) -> dict[int, Started]:
        return services.requests_start(claims=[_claim(job) for job in jobs])

    def start(self, runs: list[Run]) -> list[asyncio.Future]:
        futures: dict[int, asyncio.Future] = {}
        by_model: dict[str, list[Run]] = {}
        for run in runs:
            by_model.setdefault(run.work.model, []).append(run)
        for model, group in by_model.items():
            works = [
                Work(
                    run.work.inputs, priority=run.job.priority, owner=run.work.owner_id,
                    on_progress=self._reporter(run) if len(run.work.inputs) > 1 else None,
                )
                for run in group
            ]
            for run, done in zip(group, self.runtime.batcher(model).submit(works), strict=True):
                futures[id(run)] = _then(done, lambda done, run=run: self._succeeded(run, done))
        return [futures[id(run)] for run in runs]

    def store(self, runs: list[Run]) -> None:
        services.requests_finish(outcomes=[run.result for run in runs])

    def fail(self, runs: list[Run]) -> None:
        services.requests_finish(outcomes=[_failed(run) for run in runs])

    def release(self, jobs: list[Job]) -> None:
        services.requests_release(job_ids=[job.id for job in jobs])

    def _succeeded(self, run: Run, done: Done) -> Outcome:
        """The request's outcome from its outputs (a model that cannot pack them fails it)."""
        packed = self.runtime.models[run.work.model].pack(done.outputs)
        return Outcome(
            request_id=run.work.request_id, job_id=run.job.id, status=RequestStatus.SUCCEEDED,
            output=packed.output, embeddings=packed.embeddings, compute_ms=done.compute_ms,
            input_tokens=done.tokens,
        )

    def _reporter(self, run: Run):
        claim = _claim(run.job)
        last = 0.0

        def report(done: int) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= PROGRESS_INTERVAL:
                last = now
                self._progress.post((claim, done))  # Best effort: the result follows anyway.

        return report


def _then(future: asyncio.Future, make: Callable[[Any], Any]) -> asyncio.Future:
    """A future of ``make(result)`` once ``future`` succeeds (its error if it fails, or if
    ``make`` raises); cancelling it cancels ``future``."""
    then = future.get_loop().create_future()

    def settle(future: asyncio.Future) -> None:
        if then.done():
            return
        if future.cancelled():
            then.cancel()
        elif future.exception() is not None:
            then.set_exception(future.exception())
        else:
            try:
                then.set_result(make(future.result()))
            except Exception as error:
                then.set_exception(error)

    future.add_done_callback(settle)
    then.add_done_callback(lambda then: future.cancel() if then.cancelled() else None)
    return then


def _claim(job: Job) -> Claim:
    return Claim(request_id=job.task_kwargs["request_id"], job_id=job.id)


def _write_progress(progress: list[tuple[Claim, int]]) -> list[None]:
    services.requests_progress(progress=progress)
    return [None] * len(progress)


def _failed(run: Run) -> Outcome:
    """The failed outcome of ``run``: an input the model cannot run says why (its cause is the
    traceback, for staff); anything else is the runner's failure."""
    error = run.error
    if isinstance(error, InferenceError):
        message, cause = str(error), error.__cause__
    else:
        message, cause = f"the runner failed: {error}", error
    return Outcome(
        request_id=run.job.task_kwargs["request_id"],
        job_id=run.job.id,
        status=RequestStatus.FAILED,
        error=message,
        traceback="".join(traceback.format_exception(cause)) if cause is not None else "",
    )
