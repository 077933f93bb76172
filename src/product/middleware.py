"""The project's middleware base, and the marker that keeps Django's chain in one thread.

Under ASGI, Django builds the middleware chain in async mode from the inside out, for as long
as each middleware can run async. The classic middleware (``MiddlewareMixin``: sessions, CSRF,
auth, messages, ...) can, but in async mode every one of its hooks hops to a thread and back:
about a dozen thread hand-offs per request for the default stack. ``SyncChain``, last in
MIDDLEWARE, can only run sync, so Django builds the whole chain in sync mode instead: a
request goes to a thread once, every middleware and the (sync) view run there, and only async
views (the live status streams) go back to the event loop.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse


class SyncChain:
    """Last in MIDDLEWARE: makes Django build a sync chain (see the module's docstring)."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)


class AnsweringMiddleware:
    """Answers some requests itself (a probe, a scrape) before the rest of the chain runs."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def answers(self, request: HttpRequest) -> bool:
        """Whether this middleware answers ``request`` itself (cheap: no database)."""
        raise NotImplementedError

    def answer(self, request: HttpRequest) -> HttpResponse:
        """The response to a request ``answers`` took (may use the database)."""
        raise NotImplementedError

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self.answers(request):
            return self.answer(request)
        return self.get_response(request)
