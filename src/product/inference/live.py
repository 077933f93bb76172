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


class StatusHub:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[dict]] = set()
        self._listener: asyncio.Task | None = None

    def subscribe(self) -> asyncio.Queue[dict]:
        """A queue that receives every status notification until unsubscribed."""
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen())
        queue: asyncio.Queue[dict] = asyncio.Queue(maxsize=_SUBSCRIBER_BACKLOG)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict]) -> None:
        self._subscribers.discard(queue)

    def _publish(self, message: dict) -> None:
        for queue in self._subscribers:
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:  # A stuck client misses updates; it re-syncs on reconnect.
                pass

    async def _listen(self) -> None:
        delay = 0.5
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    **connector_params(), autocommit=True
                )
                async with conn:
                    await conn.execute(f"LISTEN {settings.INFERENCE_STATUS_CHANNEL}")
                    delay = 0.5
                    # Streams re-read their state after a reconnect, so nothing is missed.
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
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RECONNECT_MAX_SECONDS)


hub = StatusHub()
