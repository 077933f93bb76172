"""Bases for the project's middleware, which run in Django's sync and async chains alike.

Under ASGI the chain is async; a sync-only middleware there makes Django hop to a thread and
back around it for every request, so ours stay async-capable, and only their own answers
(which may touch the database) run in a thread.
"""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse


class DualModeMiddleware:
    """Takes the mode (sync or async) of the chain it is put in."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)


class AnsweringMiddleware(DualModeMiddleware):

    def answers(self, request: HttpRequest) -> bool:
        """Whether this middleware answers ``request`` itself (cheap: no database)."""
        raise NotImplementedError

    def answer(self, request: HttpRequest) -> HttpResponse:
        """The response to a request ``answers`` took (sync code; may use the database)."""
        raise NotImplementedError

    def __call__(self, request: HttpRequest):
        if self._async:
            return self._acall(request)
        if self.answers(request):
            return self.answer(request)
        return self.get_response(request)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        if self.answers(request):
            return await sync_to_async(self.answer)(request)
        return await self.get_response(request)
