"""Refuse a request body over MAX_REQUEST_BODY_BYTES (or its path's own limit: batch uploads,
BATCH_MAX_UPLOAD_BYTES) with 413 before it is read whole.

Django's ASGI handler reads the whole body into a spooled temporary file before any
middleware or view runs, so without this an unauthenticated client could make the web write
a 1 GiB chunked upload to disk before its 401. This wraps the ASGI application (product.asgi):

- a ``Content-Length`` over the limit is answered at once, before a byte of the body is read;
- otherwise (chunked bodies, or a client sending more than it announced) the bytes are counted
  as ``receive`` delivers them, and past the limit reading stops: the 413 is sent from here and
  Django is handed ``http.disconnect``, on which its ``read_body`` gives up without answering.

The 413 is the API's JSON error under /api/ (and /v1/) and plain text elsewhere, with ``Connection:
close``: the rest of the body is never read, so the connection cannot carry another request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from product.api_errors import error_body, is_api_path

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_DISCONNECT: Message = {"type": "http.disconnect"}


class BodyLimit:
    """ASGI middleware: bodies over ``limit`` bytes get a 413 instead of being read."""

    def __init__(self, app: Callable, *, limit: int, limits_by_path: dict[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.limits_by_path = limits_by_path or {}  # Exact paths with a limit of their own.

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limits_by_path.get(scope.get("path", ""), self.limit)
        announced = _content_length(scope)
        if announced is not None and announced > limit:
            return await self._refuse(scope, send, limit)

        received = 0
        refused = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            if refused:
                return _DISCONNECT
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    await self._refuse(scope, send, limit)
                    return _DISCONNECT
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:  # After our 413 the response is complete; nothing more may go out.
                await send(message)

        await self.app(scope, counting_receive, guarded_send)

    async def _refuse(self, scope: Scope, send: Send, limit: int) -> None:
        logger.warning(
            "refused a request body over %d bytes: %s %s",
            limit, scope.get("method", ""), scope.get("path", ""),
        )
        path = scope.get("path", "")
        if is_api_path(path):
            message = f"the request body is larger than {limit} bytes."
            body = json.dumps(error_body(path, 413, "too_large", message)).encode()
            content_type = b"application/json"
        else:
            body = f"The request body is larger than {limit} bytes.\n".encode()
            content_type = b"text/plain; charset=utf-8"
        await send({
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        })
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # The server refuses a malformed length itself.
    return None
