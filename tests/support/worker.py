"""Run the real inference handler through the real runner inside the test process."""

from __future__ import annotations

import asyncio

from asgiref.sync import sync_to_async
from django import db
from procrastinate.contrib.django import app

from gpu_runner.inference import InferenceHandler
from gpu_runner.runner import Runner
from gpu_runner.runtime import current_runtime


def drain(queues: list[str], *, capacity: int = 16) -> None:
    """Run every job waiting on ``queues`` now, then return."""
    handler = InferenceHandler(current_runtime())

    async def work() -> None:
        with app.replace_connector(app.connector.get_worker_connector()):
            async with app.open_async():
                runner = Runner(
                    app=app, queues=queues, handlers=[handler], capacity=capacity,
                    heartbeat_interval=5.0, shutdown_grace=5.0,
                )
                await runner.run(wait=False, install_signal_handlers=False)
        # The runner's database work ran in asgiref's thread: close that thread's connection.
        await sync_to_async(db.connections.close_all)()

    asyncio.run(work())
