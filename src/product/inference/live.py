"""Live status for browsers: one LISTEN connection per web process, fanned out to streams.

The runner and the services NOTIFY ``settings.INFERENCE_STATUS_CHANNEL`` when a request
changes. Each web process holds a single async connection listening on it and hands each
notification to the in-process queues of the open Server-Sent Events streams, so a thousand
open pages cost one database connection, not a thousand.
"""

from __future__ import annotations

import asyncio
import json
import logging

import psycopg
from django.conf import settings
from procrastinate.contrib.django.utils import connector_params

logger = logging.getLogger(__name__)

_RECONNECT_MAX_SECONDS = 10.0
_SUBSCRIBER_BACKLOG = 256
# How long a new stream waits for the LISTEN to be in place before it goes on regardless
# (while the database is away; a "resync" follows once the listener is back).
_READY_TIMEOUT_SECONDS = 5.0


class StatusHub:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[dict]] = set()
        self._listener: asyncio.Task | None = None
        self._listening: asyncio.Event | None = None

    async def subscribe(self) -> asyncio.Queue[dict]:
        """A queue that receives every status notification until unsubscribed.

        Returns once the LISTEN is in place, so any change committed after this returns is
        delivered: read the current state after subscribing and nothing falls in between.
        """
        if self._listener is None or self._listener.done():
            self._listening = asyncio.Event()
            self._listener = asyncio.get_running_loop().create_task(self._listen(self._listening))
        queue: asyncio.Queue[dict] = asyncio.Queue(maxsize=_SUBSCRIBER_BACKLOG)
        self._subscribers.add(queue)
        try:
            await asyncio.wait_for(self._listening.wait(), _READY_TIMEOUT_SECONDS)
        except TimeoutError:
            logger.warning("status listener is not connected; the stream starts without it")
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict]) -> None:
        self._subscribers.discard(queue)

    def _publish(self, message: dict) -> None:
        for queue in self._subscribers:
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:  # A stuck client misses updates; it re-syncs on reconnect.
                pass

    async def _listen(self, listening: asyncio.Event) -> None:
        delay, reconnecting = 0.5, False
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    **connector_params(), autocommit=True
                )
                async with conn:
                    await conn.execute(f"LISTEN {settings.INFERENCE_STATUS_CHANNEL}")
                    listening.set()
                    delay = 0.5
                    if reconnecting:  # Streams re-read their state: nothing missed stays missed.
                        self._publish({"resync": True})
                    async for notification in conn.notifies():
                        try:
                            self._publish(json.loads(notification.payload))
                        except ValueError:
                            logger.warning("ignoring malformed notification %r", notification)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("status listener lost its connection; retrying", exc_info=True)
            listening.clear()
            reconnecting = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RECONNECT_MAX_SECONDS)


hub = StatusHub()
