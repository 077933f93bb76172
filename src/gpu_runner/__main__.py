"""Entry point of the gpu process: ``python -m gpu_runner`` (or ``gpu-runner``).

Loads and warms every hosted model first, then runs a Procrastinate worker on those models'
queues. SIGTERM/SIGINT stop taking jobs and let jobs in flight finish (up to
GPU_RUNNER_SHUTDOWN_GRACE seconds) before exiting.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
import time


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

    logger = logging.getLogger("gpu_runner")
    runtime = load_runtime()
    import gpu_runner.tasks  # noqa: F401  (registers the task with the Procrastinate app)

    queues = [spec.queue for spec in runtime.specs]
    logger.info("ready in %.2f s; taking jobs from %s", time.perf_counter() - started, queues)
    asyncio.run(_work(queues, settings, wait=not options.drain))
    logger.info("stopped")


async def _work(queues: list[str], settings, *, wait: bool) -> None:
    from procrastinate.contrib.django import app

    with app.replace_connector(app.connector.get_worker_connector()):
        async with app.open_async():
            await app.run_worker_async(
                queues=queues,
                wait=wait,
                name=f"gpu-runner@{socket.gethostname()}:{os.getpid()}",
                concurrency=settings.GPU_RUNNER_CONCURRENCY,
                shutdown_graceful_timeout=settings.GPU_RUNNER_SHUTDOWN_GRACE,
                install_signal_handlers=True,
            )


if __name__ == "__main__":
    sys.exit(main())
