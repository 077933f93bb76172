"""A clear 503 instead of a 500 and a traceback while PostgreSQL is down or restarting.

Every page and API call touches the database (sessions, users, tokens, rows), so during a
database restart each request would otherwise fail with "Internal Server Error" and a
traceback in the log. This middleware answers those requests with 503 and ``Retry-After``:
JSON in the API's error shape under /api/ (and /v1/), a small page elsewhere. It logs one line per
failed request.

Django turns an exception into a response at every middleware layer, so an error is caught in
two places: ``process_exception`` for views and template rendering (where nearly all queries
run, including the lazy session and user loads), and Django's ``got_request_exception`` signal
for an error raised by another middleware (a session saved after the view). The latter has
already produced a 500 when this middleware sees it; it is swapped for the 503, and the
``DatabaseUnavailableLogFilter`` keeps Django from logging its traceback.
"""

from __future__ import annotations

import logging
import sys

from django.conf import settings
from django.core.signals import got_request_exception
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

from product.api_errors import error_body, is_api
from product.queue.errors import DATABASE_UNAVAILABLE

logger = logging.getLogger(__name__)

MESSAGE = "the database is unavailable right now; try again in a few seconds."
_MARK = "_database_unavailable"


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if getattr(request, _MARK, False) and response.status_code == 500:
            return unavailable_response(request)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DATABASE_UNAVAILABLE):
            return None
        _log(request, exception)
        return unavailable_response(request)


def unavailable_response(request: HttpRequest) -> HttpResponse:
    """The 503 for this request: the API's JSON error, or the HTML page."""
    if is_api(request):
        response: HttpResponse = JsonResponse(
            error_body(request.path, 503, "database_unavailable", MESSAGE), status=503
        )
    else:
        # Rendered without the request: context processors would read the session and user.
        page = render_to_string("503.html")
        response = HttpResponse(page, status=503)
    response["Retry-After"] = str(settings.DATABASE_UNAVAILABLE_RETRY_AFTER)
    response["Cache-Control"] = "no-store"
    response._has_been_logged = True  # One line was logged already; Django need not add one.
    return response


def _log(request: HttpRequest, error: BaseException) -> None:
    text = str(error).strip()
    detail = text.splitlines()[0] if text else ""
    logger.warning(
        "database unavailable: %s %s answered 503 (%s%s)",
        request.method, request.path, type(error).__name__, f": {detail}" if detail else "",
    )


def _mark_unavailable(sender, request=None, **kwargs) -> None:
    """An exception escaped a middleware: remember on the request if the database caused it."""
    error = sys.exc_info()[1]
    if request is not None and isinstance(error, DATABASE_UNAVAILABLE):
        setattr(request, _MARK, True)
        _log(request, error)


got_request_exception.connect(_mark_unavailable, dispatch_uid="product.outage")


class DatabaseUnavailableLogFilter(logging.Filter):
    """Drop Django's "Internal Server Error" record (with its traceback) for a database outage:
    the middleware has logged it in one line and answers 503 instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc_info = record.exc_info
        return not (exc_info and isinstance(exc_info[1], DATABASE_UNAVAILABLE))
