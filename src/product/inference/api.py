"""The JSON API: submit, get, list, cancel, download results. Bearer-token authentication.

Views parse and check input, call one service or selector, and answer JSON. Every error is
``{"error": {"code": ..., "message": ...}}`` with a 4xx status and a message naming the problem.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt

from product.accounts.services import token_user
from product.inference import selectors, services
from product.inference.models import InferenceRequest, RequestStatus
from product.inference.openapi import openapi_document
from product.inference.presenters import request_json, result_json
from product.inference.specs import REGISTRY, InputError

REQUIRED_SUBMIT_FIELDS = {"model", "input"}
SUBMIT_FIELDS = REQUIRED_SUBMIT_FIELDS | {"priority"}
MAX_LIST_LIMIT = 200


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


def _authenticate(request: HttpRequest):
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise ApiError(401, "unauthenticated", "Authorization must be 'Bearer <token>'.")
        user = token_user(secret.strip())
        if user is None:
            raise ApiError(401, "unauthenticated", "the API token is not valid.")
        return user
    # A signed-in browser may read (downloads); writes need a token, so no CSRF exposure.
    if request.method in ("GET", "HEAD") and request.user.is_authenticated:
        return request.user
    raise ApiError(401, "unauthenticated", "send 'Authorization: Bearer <token>'.")


def api_view(*methods: str) -> Callable:
    """Token auth, method check and JSON errors for an API endpoint."""

    def decorator(view: Callable) -> Callable:
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            if request.method not in methods:
                response = error_response(
                    405, "method_not_allowed", f"use {' or '.join(methods)} here."
                )
                response["Allow"] = ", ".join(methods)
                return response
            try:
                request.user = _authenticate(request)
                return view(request, *args, **kwargs)
            except ApiError as error:
                response = error_response(error.status, error.code, error.message)
                if error.status == 401:
                    response["WWW-Authenticate"] = 'Bearer realm="api"'
                return response

        return wrapper

    return decorator


def _json_body(request: HttpRequest) -> dict:
    content_type = request.content_type or ""
    if content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json.")
    try:
        body = json.loads(request.body)
    except RequestDataTooBig:
        raise ApiError(413, "too_large", "the request body is too large.") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {error}.") from None
    except RecursionError:  # json.loads recurses once per nesting level.
        raise ApiError(400, "malformed_json", "the body's JSON is nested too deeply.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object.")
    return body


def _get_visible(request: HttpRequest, request_id: int) -> InferenceRequest:
    try:
        return selectors.request_get(user=request.user, request_id=request_id)
    except InferenceRequest.DoesNotExist:
        raise ApiError(404, "not_found", f"no request {request_id}.") from None


@api_view("GET", "POST")
def requests_collection(request: HttpRequest) -> JsonResponse:
    if request.method == "POST":
        return _submit(request)
    status = request.GET.get("status") or None
    if status is not None and status not in RequestStatus.values:
        known = ", ".join(RequestStatus.values)
        raise ApiError(400, "invalid_query", f"status must be one of: {known}.")
    try:
        limit = int(request.GET.get("limit", 50))
    except ValueError:
        raise ApiError(400, "invalid_query", "limit must be an integer.") from None
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise ApiError(400, "invalid_query", f"limit must be between 1 and {MAX_LIST_LIMIT}.")
    rows = selectors.request_list(user=request.user, status=status, limit=limit)
    return JsonResponse({"results": [request_json(row) for row in rows]})


def _submit(request: HttpRequest) -> JsonResponse:
    body = _json_body(request)
    unknown = sorted(set(body) - SUBMIT_FIELDS)
    if unknown:
        raise ApiError(400, "invalid_input", f"unknown field(s): {', '.join(unknown)}.")
    for field in sorted(REQUIRED_SUBMIT_FIELDS):
        if field not in body:
            raise ApiError(400, "invalid_input", f"{field} is required.")
    if not isinstance(body["model"], str):
        raise ApiError(400, "invalid_input", "model must be a string.")
    try:
        created = services.request_submit(
            user=request.user, model=body["model"], raw_input=body["input"],
            priority=body.get("priority"),
        )
    except InputError as error:
        raise ApiError(400, "invalid_input", str(error)) from None
    data = request_json(created)
    response = JsonResponse(data, status=201)
    response["Location"] = data["url"]
    return response


@api_view("GET")
def request_detail(request: HttpRequest, request_id: int) -> JsonResponse:
    return JsonResponse(request_json(_get_visible(request, request_id)))


@api_view("GET")
def request_result(request: HttpRequest, request_id: int) -> JsonResponse:
    row = _get_visible(request, request_id)
    if row.status != RequestStatus.SUCCEEDED:
        raise ApiError(409, "not_ready", f"request {row.pk} is {row.status}; it has no result.")
    response = JsonResponse(result_json(row))
    response["Content-Disposition"] = f'attachment; filename="request-{row.pk}.json"'
    return response


@api_view("POST")
def request_cancel(request: HttpRequest, request_id: int) -> JsonResponse:
    row = _get_visible(request, request_id)
    try:
        row = services.request_cancel(request=row)
    except services.RequestStateError as error:
        raise ApiError(409, "conflict", str(error)) from None
    return JsonResponse(request_json(row))


@api_view("GET")
def model_list(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "results": [
                {
                    "name": spec.name,
                    "title": spec.title,
                    "description": spec.description,
                    "max_texts": spec.max_texts,
                    "max_chars": spec.max_chars,
                    "output_dim": spec.output_dim,
                }
                for spec in REGISTRY.values()
            ]
        }
    )


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """The site's 404 handler (``handler404``): under /api/ a path that names no endpoint (an
    id the route does not take, such as -1) gets the API's JSON error, not Django's page."""
    if request.path.startswith("/api/"):
        return error_response(404, "not_found", f"no endpoint at {request.path}.")
    return defaults.page_not_found(request, exception)


def openapi(request: HttpRequest) -> JsonResponse:
    """The OpenAPI 3.1 document; public, so clients can be generated before signing up."""
    return JsonResponse(openapi_document())
