"""Run the real task through a real Procrastinate worker inside the test process."""

from __future__ import annotations

import asyncio

from asgiref.sync import sync_to_async
from django import db
from procrastinate.contrib.django import app


def drain(queues: list[str]) -> None:
    """Run every job waiting on ``queues`` now, then return."""
    import gpu_runner.tasks  # noqa: F401  (registers the task, as the runner does)

    async def work() -> None:
        with app.replace_connector(app.connector.get_worker_connector()):
            async with app.open_async():
                await app.run_worker_async(
                    queues=queues, wait=False, concurrency=4, install_signal_handlers=False
                )
        # The task's database work ran in asgiref's thread: close that thread's connection.
        await sync_to_async(db.connections.close_all)()

    asyncio.run(work())
