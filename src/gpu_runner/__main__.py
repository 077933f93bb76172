"""Entry point of the gpu process: ``python -m gpu_runner`` (or ``gpu-runner``).

Loads and warms every hosted model first, then takes jobs from those models' queues (see
``gpu_runner.runner``). SIGTERM/SIGINT stop taking jobs, let held jobs finish for up to
GPU_RUNNER_SHUTDOWN_GRACE seconds and hand the rest back to the queue; a second signal hands
back at once. A forward pass that does not return within GPU_RUNNER_BATCH_TIMEOUT stops the
runner too, and the process exits with EXIT_MODEL_HUNG so its manager starts a fresh one.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
import time
from pathlib import Path

# Exit status of a runner whose model hung (sysexits' EX_SOFTWARE): restart me.
EXIT_MODEL_HUNG = 70


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gpu_runner", description=__doc__)
    parser.add_argument(
        "--drain", action="store_true",
        help="Run the jobs waiting now, then exit (for batch jobs and tests).",
    )
    options = parser.parse_args(argv)
    # Models load from installed packages only: never reach for a model hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "product.settings")
    import django

    started = time.perf_counter()
    django.setup()
    from django.conf import settings

    from gpu_runner.runtime import load_runtime

    if settings.GPU_RUNNER_HEARTBEAT_FILE:  # A file left by an earlier run must not pass a probe.
        Path(settings.GPU_RUNNER_HEARTBEAT_FILE).unlink(missing_ok=True)

    logger = logging.getLogger("gpu_runner")
    runtime = load_runtime()
    if settings.GPU_RUNNER_METRICS_PORT:
        from gpu_runner import metrics

        metrics.serve(settings.GPU_RUNNER_METRICS_PORT)
    queues = [spec.queue for spec in runtime.specs]
    logger.info("ready in %.2f s", time.perf_counter() - started)
    status = asyncio.run(_work(runtime, queues, settings, wait=not options.drain))
    if status:
        logger.critical("exiting with status %d", status)
        # The model's thread is stuck in its pass, and a normal exit would wait for it forever.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


async def _work(runtime, queues: list[str], settings, *, wait: bool) -> int:
    """Take and run jobs until stopped; the process's exit status (0, or EXIT_MODEL_HUNG)."""
    from procrastinate.contrib.django import app

    from gpu_runner.inference import InferenceHandler
    from gpu_runner.report import Reporter
    from gpu_runner.runner import Runner
    from product.inference import services
    from product.inference.jobs import INTERACTIVE_JOB_PRIORITY

    def rescue() -> None:
        rescued = services.requests_rescue(
            stalled_after=settings.GPU_RUNNER_STALLED_AFTER,
            max_attempts=settings.INFERENCE_MAX_ATTEMPTS,
        )
        if rescued.requeued or rescued.failed:
            logging.getLogger("gpu_runner").warning(
                "rescued jobs of stalled runners: requeued %s, failed (out of attempts) %s",
                rescued.requeued, rescued.failed,
            )

    heartbeat_file = settings.GPU_RUNNER_HEARTBEAT_FILE
    # The worker connector's pool serves the LISTEN connection; the rest goes through Django.
    with app.replace_connector(app.connector.get_worker_connector()):
        async with app.open_async():
            runner = Runner(
                app=app,
                queues=queues,
                handlers=[InferenceHandler(runtime)],
                capacity=settings.GPU_RUNNER_CONCURRENCY,
                heartbeat_interval=settings.GPU_RUNNER_HEARTBEAT_INTERVAL,
                shutdown_grace=settings.GPU_RUNNER_SHUTDOWN_GRACE,
                poll_interval=settings.GPU_RUNNER_POLL_INTERVAL,
                rescue=rescue,
                heartbeat_file=Path(heartbeat_file) if heartbeat_file else None,
                max_held_texts=settings.GPU_RUNNER_MAX_HELD_TEXTS,
                urgent_priority=INTERACTIVE_JOB_PRIORITY,
                fair=settings.GPU_RUNNER_FAIR,
                reporter=Reporter(runtime, settings.GPU_RUNNER_NAME),
            )
            await runner.run(wait=wait)
    return EXIT_MODEL_HUNG if runner.hung is not None else 0


if __name__ == "__main__":
    sys.exit(main())
