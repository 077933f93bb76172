"""The batch feeder: in each web process, one asyncio task that queues batches' next parts.

It runs ``services.batches_feed`` in a thread of its own when a request ends (any final status
note on the process's single LISTEN, ``inference.live.hub``), and every
``BATCH_FEED_INTERVAL`` seconds regardless (a missed note, a batch whose user's queued-texts
limit was full). Several web processes feed the same batches safely: each batch is fed under
its row's lock, SKIP LOCKED. Nothing lives only here: a process that dies loses no part; the
next look of any feeder carries on. ``FeedingBatches`` (``product.asgi``) runs it from the
server's lifespan startup to its shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import connection

from product.inference.live import hub
from product.inference.models import FINAL_STATUSES
from product.queue.errors import DATABASE_UNAVAILABLE

logger = logging.getLogger(__name__)

# After a look, the feeder waits at least this long before the next one a note asks for, so a
# burst of ends costs one look.
_MIN_GAP_SECONDS = 0.05


class BatchFeeder:
    def __init__(self) -> None:
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-feeder")

    def start(self) -> None:
        """Start feeding on the running event loop, unless it feeds there already."""
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._run())

    async def stop(self) -> None:
        """Stop feeding (a look in progress finishes in its thread; its transaction is its own)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._task = None

    def _noticed(self, message: dict) -> None:
        if self._task is None or self._task.get_loop() is not asyncio.get_running_loop():
            return  # A note on another loop than the feeder's (an application run again).
        if message.get("status") in FINAL_STATUSES or message.get("resync"):
            self._wake.set()

    async def _run(self) -> None:
        await hub.follow_every_change(self._noticed)
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            try:
                fed = await loop.run_in_executor(self._thread, _feed)
                if fed:
                    logger.info("queued %d batch parts", fed)
            except DATABASE_UNAVAILABLE as error:  # One line, as every outage (product.outage).
                logger.warning("batch feed: database unavailable (%s); trying again", type(error).__name__)
            except Exception:
                logger.exception("batch feed failed; trying again")
            await asyncio.sleep(_MIN_GAP_SECONDS)
            try:
                async with asyncio.timeout(settings.BATCH_FEED_INTERVAL):
                    await self._wake.wait()
            except TimeoutError:
                pass


def _feed() -> int:
    from product.batches.services import batches_feed

    try:
        return batches_feed()
    finally:
        connection.close()  # Back to the pool until the next look.


feeder = BatchFeeder()


class FeedingBatches:
    """ASGI wrapper: answers the server's lifespan events (Django's handler takes none), and
    runs this process's batch feeder from startup to shutdown (``BATCH_FEEDER``). HTTP passes
    through untouched. uvicorn sends lifespan events by default (``--lifespan auto``); with
    ``--lifespan off`` this process feeds no batches."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if settings.BATCH_FEEDER:
                    feeder.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await feeder.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return
