"""Live status for browsers: one LISTEN connection per web process, routed to streams.

The runner and the services NOTIFY ``settings.INFERENCE_STATUS_CHANNEL`` when a request
changes, with ``{"id", "owner", "status"}`` (and ``"done"``, the inputs finished, when a
running request reports progress). Each web process holds a single async connection
listening on it and hands each notification to the open Server-Sent Events streams of the
request's owner, and to those of users who see every request; no stream scans the others'.
An open stream holds no database connection of its own (the views give theirs back before
streaming), so a thousand open pages cost one connection, not a thousand.

A call that waits inline for one request to finish (``POST /v1/embeddings``) is ``watching``
that request's id instead: it is woken when the request reaches a final status (or the listener
reconnected, so it should read again), and is counted apart from the streams' limits. The
process's own background work (the batch feeder) may ``follow_every_change``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import psycopg
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from procrastinate.contrib.django.utils import connector_params

from product.inference.models import FINAL_STATUSES
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


class RequestWatch:
    """One inline waiter on one request: ``finished`` wakes when the request reaches a final
    status, or when the listener reconnected (a notification may have been missed: read the
    request again). Made and dropped by ``StatusHub.watching``, on the event loop."""

    __slots__ = ("request_id", "_woken")

    def __init__(self, request_id: int) -> None:
        self.request_id = request_id
        self._woken = asyncio.Event()

    async def finished(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds to be woken; whether it was (then read the
        request: it is final, or may be)."""
        try:
            async with asyncio.timeout(max(timeout, 0)):
                await self._woken.wait()
        except TimeoutError:
            return False
        self._woken.clear()
        return True

    def wake(self) -> None:
        self._woken.set()


class StatusHub:
    """The process's LISTEN and its subscribers, kept by the owner whose changes they want."""

    def __init__(self) -> None:
        self._by_owner: dict[int, set[Subscription]] = {}
        self._everyone: set[Subscription] = set()  # Streams of users who see all requests.
        self._per_viewer: Counter[int] = Counter()
        self._count = 0
        self._watches: dict[int, set[RequestWatch]] = {}  # Inline waiters by request id.
        self._listener: asyncio.Task | None = None
        self._listening: asyncio.Event | None = None
        self._followers: list = []  # Called with every notification (the batch feeder).

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

    def watch_count(self) -> int:
        """Inline waiters of this process (not counted against the streams' limits)."""
        return sum(len(watches) for watches in self._watches.values())

    @contextlib.asynccontextmanager
    async def watching(self, request_id: int) -> AsyncIterator[RequestWatch]:
        """A waiter woken when request ``request_id`` finishes, for the ``async with`` block.

        Enters once the LISTEN is in place, so a change committed after that is delivered:
        read the request's state inside the block, then wait, and nothing falls in between.
        """
        watch = RequestWatch(request_id)
        watches = self._watches.setdefault(request_id, set())
        watches.add(watch)
        try:
            await self._wait_listening()
            yield watch
        finally:
            watches.discard(watch)
            if not watches and self._watches.get(request_id) is watches:
                del self._watches[request_id]

    async def follow_every_change(self, callback) -> None:
        """Call ``callback(message)`` on the event loop with every notification from now on
        (no stream, no limits: for this process's own background work), and listen."""
        if callback not in self._followers:
            self._followers.append(callback)
        await self._wait_listening()

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
        for callback in self._followers:
            try:
                callback(message)
            except Exception:  # A follower's bug must not cost the streams their notes.
                logger.exception("a status follower failed")
        if message.get("resync"):
            groups = [self._everyone, *self._by_owner.values()]
            woken = [watch for watches in self._watches.values() for watch in watches]
        else:
            groups = [self._everyone, self._by_owner.get(message.get("owner"), ())]
            finished = message.get("status") in FINAL_STATUSES
            woken = self._watches.get(message.get("id"), ()) if finished else ()
        for group in groups:
            for subscription in tuple(group):
                subscription.offer(message)
        for watch in woken:
            watch.wake()

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
            except Exception as error:
                # One line, as for every database outage (product.outage): it is expected, and
                # the web process now listens from its start (the batch feeder watches).
                logger.warning("status listener lost its connection; retrying (%s)", type(error).__name__)
            listening.clear()
            reconnecting = True
            await asyncio.sleep(backoff.next())


hub = StatusHub()


T = TypeVar("T")


def released(read: Callable[..., T]) -> Callable[..., T]:
    """``read`` as a coroutine function run in the request's thread, which then gives its
    database connection back to the pool (Django would keep it until the response ends)."""

    def run(*args, **kwargs):
        try:
            return read(*args, **kwargs)
        finally:
            if not connection.in_atomic_block:  # An enclosing transaction (a test's) keeps it.
                connection.close()

    return sync_to_async(run, thread_sensitive=True)


async def read_when_final(
    request_id: int, read: Callable[[int], T], *, final: Callable[[T], bool], timeout: float
) -> tuple[T, bool]:
    """``read(request_id)`` once what it reads shows the request final, and whether it did
    within ``timeout`` seconds (else the last read). Between reads it waits on the process's
    LISTEN (``hub.watching``) and holds no database connection: each read is ``released``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with hub.watching(request_id) as watch:
        # Read after the watch is in place: a finish committed meanwhile is not missed.
        seen = await released(read)(request_id)
        while not final(seen):
            if not await watch.finished(deadline - loop.time()):
                return seen, False
            seen = await released(read)(request_id)
    return seen, True
