"""The web's ASGI handler: a request to a sync view costs one thread hand-off, not five.

Django's ``ASGIHandler`` serves a sync view through asgiref: it starts a new thread for each
request (``ThreadSensitiveContext``), hops to it for the ``request_started`` signal, again for
the middleware chain, back to the event loop and into the thread again for the view
(``async_to_sync`` / ``sync_to_async`` around the chain's end), and once more to close the
response. Measured with py-spy on a one-text submit, that machinery was about a third of the
web's CPU per request (bench/web_cost.py).

``SyncViewsInOneHop`` keeps Django's handler for async views (the live-status streams) and
serves every other request as Django's WSGI handler would, in one call on one thread: the
``request_started`` signal, the request, the sync middleware chain and view, and, for a
response that is not streamed, its close (``request_finished``, which gives the thread's
database connection back to the pool). Threads are kept for the next request rather than
started anew; each serves one request at a time, so a request's sync code, its database
connection and its transaction stay on one thread, as under asgiref. A streamed response (a
static file) is read and closed on the thread that made it.

The body is read on the event loop before the thread is taken (as Django does), so a slow
upload holds no thread; ``product.body_limit`` refuses one that is too large before that.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import queue
import threading
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.http import FileResponse, HttpResponseBase
from django.urls import Resolver404, get_resolver, set_script_prefix


class SyncViewsInOneHop(ASGIHandler):
    """Django's ASGI handler for async views; one thread hop for everything else."""

    def __init__(self) -> None:
        super().__init__()  # The async chain, for async views.
        self._sync = BaseHandler()
        self._sync.load_middleware(is_async=False)
        self._idle: list[_RequestThread] = []  # Touched only on the event loop.

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or self._routes_to_async_view(scope):
            return await super().__call__(scope, receive, send)
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        thread = self._idle.pop() if self._idle else _RequestThread()
        try:
            response = await thread.run(self._respond, scope, body_file)
            if response.streaming:
                await self._send_streamed(thread, response, send)
            else:
                await self.send_response(response, send)
        finally:
            self._idle.append(thread)

    @staticmethod
    def _routes_to_async_view(scope) -> bool:
        return _is_async_view(scope["path"].removeprefix(scope.get("root_path", "")) or "/")

    def _respond(self, scope, body_file) -> HttpResponseBase:
        """What Django's handlers do around ``get_response``, on the request's thread; a
        response that is not streamed comes back closed, its bytes ready to send."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self._sync.get_response(request)
            response._handler_class = self.__class__
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size
        if not response.streaming:
            _close(response, body_file)
        else:
            response._resource_closers.append(body_file.close)
        return response

    async def _send_streamed(self, thread: _RequestThread, response, send) -> None:
        """Send a streamed response's parts, read from its (sync) iterator on the thread
        that made it, about ``_STREAM_HOP_BYTES`` per hop (a batch's results are far larger
        than memory should hold), then close it there. The first parts are read before the
        response starts, so an error there is still a 500."""
        try:
            parts = iter(response.streaming_content)
            taken = await thread.run(_take, parts)
            await send({
                "type": "http.response.start",
                "status": response.status_code,
                "headers": _headers(response),
            })
            while taken:
                for part in taken:
                    for chunk, _ in self.chunk_bytes(part):
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                taken = await thread.run(_take, parts)
            await send({"type": "http.response.body"})
        finally:
            await thread.run(response.close)


# Bytes of a streamed response read on its thread per hop to the event loop.
_STREAM_HOP_BYTES = 1024 * 1024


def _take(parts) -> list[bytes]:
    """The next parts of a streamed response, about ``_STREAM_HOP_BYTES`` of them ([]: the
    end)."""
    taken, size = [], 0
    for part in parts:
        taken.append(part)
        size += len(part)
        if size >= _STREAM_HOP_BYTES:
            break
    return taken


def _close(response: HttpResponseBase, body_file) -> None:
    try:
        response.close()  # request_finished: the thread's connection goes back to the pool.
    finally:
        body_file.close()


def _headers(response: HttpResponseBase) -> list[tuple[bytes, bytes]]:
    """The response's headers and cookies as ASGI sends them (``ASGIHandler.send_response``)."""
    headers = [
        (name.encode("ascii"), value.encode("latin1")) for name, value in response.items()
    ]
    for cookie in response.cookies.values():
        headers.append((b"Set-Cookie", cookie.output(header="").encode("ascii").strip()))
    return headers


@functools.lru_cache(maxsize=4096)
def _is_async_view(path: str) -> bool:
    """Whether ``path`` routes to an async view (the URLconf does not change while serving)."""
    try:
        match = get_resolver(settings.ROOT_URLCONF).resolve(path)
    except Resolver404:
        return False  # Answered by middleware (probes, static files) or a 404: sync.
    return iscoroutinefunction(match.func)


class _RequestThread:
    """A thread that runs the sync work it is given, one piece at a time, for the event loop.

    Lighter than ``loop.run_in_executor``: no concurrent.futures Future chained to an asyncio
    one, just the result handed back with ``call_soon_threadsafe``."""

    def __init__(self) -> None:
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="request", daemon=True).start()

    def run(self, function: Callable, *args: Any) -> asyncio.Future:
        """``function(*args)`` on this thread, in a copy of the caller's context (as asgiref's
        ``sync_to_async`` runs it); await the future for its result."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._work.put((loop, future, contextvars.copy_context(), function, args))
        return future

    def _serve(self) -> None:
        while True:
            loop, future, context, function, args = self._work.get()
            try:
                result = context.run(function, *args)
            except BaseException as error:  # Handed to the awaiting request, as asgiref does.
                loop.call_soon_threadsafe(_settle, future, None, error)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
