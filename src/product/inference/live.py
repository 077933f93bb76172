"""Live status for browsers: one LISTEN connection per web process, routed to streams.

The runner and the services NOTIFY ``settings.INFERENCE_STATUS_CHANNEL`` when a request
changes, with ``{"id", "owner", "status"}`` (and ``"done"``, the inputs finished, when a
running request reports progress). Each web process holds a single async connection
listening on it and hands each notification to the open Server-Sent Events streams of the
request's owner, and to those of users who see every request; no stream scans the others'.
An open stream holds no database connection of its own (the views give theirs back before
streaming), so a thousand open pages cost one connection, not a thousand.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter

import psycopg
from django.conf import settings
from procrastinate.contrib.django.utils import connector_params

from product.queue.backoff import Backoff

logger = logging.getLogger(__name__)

_SUBSCRIBER_BACKLOG = 256
# How long a new stream waits for the LISTEN to be in place before it goes on regardless
# (while the database is away; a "resync" follows once the listener is back).
_READY_TIMEOUT_SECONDS = 5.0
# Retry-After of a stream refused over a limit: long enough for a tab to close or a stream
# to reach its maximum age, short enough that a page left open soon gets its updates back.
_LIMIT_RETRY_AFTER_SECONDS = 30
_RESYNC = {"resync": True}


class StreamLimitReached(Exception):
    """A stream was refused: its user or this process has as many open as allowed."""

    retry_after = _LIMIT_RETRY_AFTER_SECONDS


class Subscription:
    """One open stream's inbox. ``close`` it (any thread, any number of times) when done."""

    __slots__ = ("viewer", "owner", "_queue", "_hub", "_loop", "_closed")

    def __init__(self, hub: StatusHub, viewer: int, owner: int | None) -> None:
        self.viewer = viewer
        self.owner = owner  # None: every request's changes (a user who sees all requests).
        self._queue: asyncio.Queue[dict] = asyncio.Queue(maxsize=_SUBSCRIBER_BACKLOG)
        self._hub = hub
        self._loop = asyncio.get_running_loop()
        self._closed = False

    async def get(self) -> dict:
        """The next notification for this stream (or ``{"resync": True}``)."""
        return await self._queue.get()

    def offer(self, message: dict) -> None:
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            # A stuck client: drop its backlog for one "resync", so when it reads again it
            # re-reads the state instead of missing the changes that did not fit.
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(_RESYNC)

    def close(self) -> None:
        """Unsubscribe. Safe from any thread: Django closes a response in a worker thread."""
        if self._closed:
            return
        self._closed = True
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop or self._loop.is_closed():
            self._hub._remove(self)
            return
        try:
            self._loop.call_soon_threadsafe(self._hub._remove, self)
        except RuntimeError:  # The loop closed meanwhile: nothing iterates the hub any more.
            self._hub._remove(self)


class StatusHub:
    """The process's LISTEN and its subscribers, kept by the owner whose changes they want."""

    def __init__(self) -> None:
        self._by_owner: dict[int, set[Subscription]] = {}
        self._everyone: set[Subscription] = set()  # Streams of users who see all requests.
        self._per_viewer: Counter[int] = Counter()
        self._count = 0
        self._listener: asyncio.Task | None = None
        self._listening: asyncio.Event | None = None

    def subscriber_count(self, viewer: int | None = None) -> int:
        """Open subscriptions: all of this process's, or those of user ``viewer``."""
        return self._count if viewer is None else self._per_viewer[viewer]

    async def subscribe(self, *, viewer: int, owner: int | None) -> Subscription:
        """An inbox for the changes of ``owner``'s requests (``None``: everyone's), opened
        for user ``viewer`` and counted against the per-user and per-process limits.

        Raises ``StreamLimitReached`` (and subscribes nothing) beyond a limit. Returns once
        the LISTEN is in place, so any change committed after this returns is delivered:
        read the current state after subscribing and nothing falls in between.
        """
        per_process, per_user = settings.INFERENCE_STREAMS_PER_PROCESS, settings.INFERENCE_STREAMS_PER_USER
        if self._count >= per_process:
            raise StreamLimitReached(
                f"This server has {per_process} live status streams open, the most it serves "
                "at once. Try again shortly."
            )
        if self._per_viewer[viewer] >= per_user:
            raise StreamLimitReached(
                f"You have {per_user} live status streams open, the most one user may have. "
                "Close a page or tab showing requests, then try again."
            )
        subscription = Subscription(self, viewer, owner)
        group = self._everyone if owner is None else self._by_owner.setdefault(owner, set())
        group.add(subscription)
        self._per_viewer[viewer] += 1
        self._count += 1
        try:
            await self._wait_listening()
        except BaseException:  # Cancelled (the client left) before the stream began.
            subscription.close()
            raise
        return subscription

    def _remove(self, subscription: Subscription) -> None:
        owner = subscription.owner
        group = self._everyone if owner is None else self._by_owner.get(owner)
        if group is None or subscription not in group:
            return
        group.discard(subscription)
        if owner is not None and not group:
            del self._by_owner[owner]
        self._per_viewer[subscription.viewer] -= 1
        if not self._per_viewer[subscription.viewer]:
            del self._per_viewer[subscription.viewer]
        self._count -= 1

    async def _wait_listening(self) -> None:
        if self._listener is None or self._listener.done():
            self._listening = asyncio.Event()
            self._listener = asyncio.get_running_loop().create_task(self._listen(self._listening))
        try:
            await asyncio.wait_for(self._listening.wait(), _READY_TIMEOUT_SECONDS)
        except TimeoutError:
            logger.warning("status listener is not connected; the stream starts without it")

    def publish(self, message: dict) -> None:
        """Hand ``message`` to the streams that want it: a change goes to its owner's streams
        and to those who see everything; a resync goes to every stream."""
        if message.get("resync"):
            groups = [self._everyone, *self._by_owner.values()]
        else:
            groups = [self._everyone, self._by_owner.get(message.get("owner"), ())]
        for group in groups:
            for subscription in tuple(group):
                subscription.offer(message)

    async def _listen(self, listening: asyncio.Event) -> None:
        backoff, reconnecting = Backoff(first=0.5, cap=10.0), False
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    **connector_params(), autocommit=True
                )
                async with conn:
                    await conn.execute(f"LISTEN {settings.INFERENCE_STATUS_CHANNEL}")
                    listening.set()
                    backoff.reset()
                    if reconnecting:  # Streams re-read their state: nothing missed stays missed.
                        self.publish(_RESYNC)
                    async for notification in conn.notifies():
                        try:
                            message = json.loads(notification.payload)
                        except ValueError:
                            logger.warning("ignoring malformed notification %r", notification)
                            continue
                        if isinstance(message, dict):
                            self.publish(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("status listener lost its connection; retrying", exc_info=True)
            listening.clear()
            reconnecting = True
            await asyncio.sleep(backoff.next())


hub = StatusHub()


def _final_status(request_id: int) -> tuple[bool, str | None]:
    """(whether the request exists, its status if final); gives this thread's connection back."""
    from django.db import connection

    from product.inference.models import FINAL_STATUSES, InferenceRequest

    try:
        status = InferenceRequest.objects.filter(pk=request_id).values_list("status", flat=True).first()
    finally:
        if not connection.in_atomic_block:
            connection.close()
    return status is not None, status if status in FINAL_STATUSES else None


async def wait_for_request(request_id: int, owner: int, timeout: float) -> str | None:
    """Wait until request ``request_id`` (of user ``owner``) is final, on this process's single
    LISTEN, holding no database connection while it waits; its final status (None: the request
    is gone). Raises TimeoutError after ``timeout`` seconds, StreamLimitReached over a limit."""
    from asgiref.sync import sync_to_async

    read = sync_to_async(_final_status, thread_sensitive=True)
    async with asyncio.timeout(timeout):
        subscription = await hub.subscribe(viewer=owner, owner=owner)
        try:
            # Subscribed first, then read: a change in between is not missed.
            exists, status = await read(request_id)
            while exists and status is None:
                message = await subscription.get()
                if message.get("resync") or message.get("id") == request_id:
                    exists, status = await read(request_id)
            return status
        finally:
            subscription.close()

