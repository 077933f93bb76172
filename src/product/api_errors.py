"""Every error under /api/ is JSON: ``{"error": {"code": ..., "message": ...}}``.

The API's own views answer their errors in that shape, but a request can fail before or
around them: a path no route takes (404), a method a view refuses (405), more query fields
than Django allows (400, ``TooManyFieldsSent``), a refused permission (403), a bug (500).
Django answers those with HTML pages, and under ``DEBUG`` with its technical pages, bypassing
``handler404``/``handler500``. So the answer is built in one place, three ways in:

- ``ApiErrorsMiddleware`` (first in MIDDLEWARE) turns any error response under /api/ that is
  not JSON into the JSON shape with the same status and headers (``Allow``, ``Retry-After``),
  in both DEBUG modes;
- its ``process_exception`` answers an exception raised in a view: a JSON 500 for a bug (its
  traceback logged once), or the 4xx that Django would give (404, 403, 400, 413) with a
  message naming the problem;
- ``bad_request`` … ``server_error`` are the site's handler400/403/404/500 (product.urls): JSON
  under /api/, Django's pages elsewhere.

A database outage is not a 500: product.outage answers it with a 503 (its process_exception
runs before this one, and its answer is JSON already).

Under /v1/, the OpenAI-compatible API (product.inference.openai_api), every error has OpenAI's
shape instead: ``{"error": {"message", "type", "param", "code"}}``, so OpenAI's SDKs read it.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import (
    BadRequest,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.urls import Resolver404
from django.utils.log import log_response
from django.views import defaults

API_PREFIX = "/api/"
OPENAI_PREFIX = "/v1/"
# Headers of the original answer that the JSON one keeps; the rest describe the HTML body.
_DROPPED_HEADERS = {"content-type", "content-length", "content-disposition"}
_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


def is_api(request: HttpRequest) -> bool:
    """Whether ``request`` is an API call, whose errors must be JSON."""
    return is_api_path(request.path)


def is_api_path(path: str) -> bool:
    return path.startswith((API_PREFIX, OPENAI_PREFIX))


def error_response(status: int, code: str, message: str) -> JsonResponse:
    """The API's error answer: ``{"error": {"code", "message"}}`` with ``status``."""
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


def openai_error_body(status: int, code: str, message: str, param: str | None = None) -> dict:
    """An error in OpenAI's shape; its ``type`` follows the status as OpenAI's do."""
    if status >= 500:
        kind = "server_error"
    else:
        kind = _OPENAI_TYPES.get(status, "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


_OPENAI_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


def openai_error_response(
    status: int, code: str, message: str, param: str | None = None
) -> JsonResponse:
    """The OpenAI-compatible API's error answer (``openai_error_body``) with ``status``."""
    return JsonResponse(openai_error_body(status, code, message, param), status=status)


def error_body(path: str, status: int, code: str, message: str) -> dict:
    """The JSON of an error answered at ``path``: OpenAI's shape under /v1/, ours elsewhere."""
    if path.startswith(OPENAI_PREFIX):
        return openai_error_body(status, code, message)
    return {"error": {"code": code, "message": message}}


def _error_for(request: HttpRequest, status: int, exception: BaseException | None) -> JsonResponse:
    status, code, message = _error_of(request, status, exception)
    return JsonResponse(error_body(request.path, status, code, message), status=status)


def _error_of(request: HttpRequest, status: int, exception: BaseException | None) -> tuple[int, str, str]:
    """The status, code and message of the JSON error for ``status``, the message naming
    the problem when the exception that caused it is known."""
    if isinstance(exception, TooManyFieldsSent):
        return (
            400, "too_many_fields",
            f"the request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} fields.",
        )
    if isinstance(exception, TooManyFilesSent):
        return (
            400, "too_many_files",
            f"the request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FILES} files.",
        )
    if isinstance(exception, RequestDataTooBig):
        return 413, "too_large", "the request body is too large."
    if status == 404 and not isinstance(exception, Resolver404) and _text(exception):
        return 404, "not_found", _text(exception)
    if isinstance(exception, (PermissionDenied, BadRequest)) and _text(exception):
        return status, _code(status), _text(exception)
    return status, _code(status), _message(request, status)


def _text(exception: BaseException | None) -> str:
    return str(exception).strip() if exception is not None else ""


def _code(status: int) -> str:
    if status in _CODES:
        return _CODES[status]
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def _message(request: HttpRequest, status: int) -> str:
    if status == 404:
        return f"no endpoint at {request.path}."
    if status == 405:
        return f"{request.method} is not allowed at {request.path}."
    if status == 400:
        return "the request is malformed."
    if status == 403:
        return "you may not do this."
    if status >= 500:
        return "the server failed to answer this request; the error has been logged."
    try:
        return HTTPStatus(status).phrase.lower() + "."
    except ValueError:
        return f"the request failed ({status})."


def _is_json(response: HttpResponse) -> bool:
    return response.get("Content-Type", "").split(";")[0].strip().endswith("json")


class ApiErrorsMiddleware:
    """First in MIDDLEWARE: every error answer under /api/ is the API's JSON error."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code < 400 or not is_api(request) or _is_json(response):
            return response
        converted = _error_for(request, response.status_code, None)
        for header, value in response.items():
            if header.lower() not in _DROPPED_HEADERS:
                converted[header] = value
        converted._has_been_logged = getattr(response, "_has_been_logged", False)
        response.close()
        return converted

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_api(request):
            return None
        # Answered here rather than left to Django: under DEBUG its technical page for a
        # TooManyFieldsSent reads request.GET again and fails itself.
        response = _error_for(request, _status_of(exception), exception)
        if isinstance(exception, SuspiciousOperation):
            # Where Django logs these itself: the django.security loggers.
            log_response(
                str(exception), response=response, request=request, exception=exception,
                level="error", logger=logging.getLogger(f"django.security.{type(exception).__name__}"),
            )
        elif response.status_code >= 500:
            log_response(
                "Internal Server Error: %s", request.path,
                response=response, request=request, exception=exception,
            )
        return response


def _status_of(exception: BaseException) -> int:
    if isinstance(exception, Http404):
        return 404
    if isinstance(exception, PermissionDenied):
        return 403
    if isinstance(exception, RequestDataTooBig):
        return 413
    if isinstance(exception, (SuspiciousOperation, BadRequest, MultiPartParserError)):
        return 400
    return 500


# --- The site's error handlers (handler400, handler403, handler404, handler500) --------------


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400: JSON under /api/, Django's page elsewhere."""
    if is_api(request):
        return _error_for(request, 400, exception)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler403: JSON under /api/, Django's page elsewhere."""
    if is_api(request):
        return _error_for(request, 403, exception)
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: under /api/ a path that names no endpoint (an id the route does not take,
    such as -1) gets the API's JSON error, not Django's page."""
    if is_api(request):
        return _error_for(request, 404, exception)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: JSON under /api/, Django's page elsewhere."""
    if is_api(request):
        return _error_for(request, 500, None)
    return defaults.server_error(request)
