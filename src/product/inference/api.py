"""The JSON API: submit, get, list, cancel, download results. Bearer-token authentication.

Views parse and check input, call one service or selector, and answer JSON. Every error is
``{"error": {"code": ..., "message": ...}}`` with a 4xx status and a message naming the problem.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
from collections.abc import Callable
from urllib.parse import urlencode

import numpy as np
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from product.accounts.services import TokenRejected, token_user
from product.api_errors import error_response
from product.inference import selectors, services
from product.inference.filters import RequestFilterForm
from product.inference.models import InferenceRequest, RequestStatus
from product.inference.openapi import openapi_document
from product.inference.presenters import (
    ENCODING_FORMATS,
    request_json,
    result_json,
    stored_embeddings,
)
from product.inference.registry import REGISTRY
from product.inference.specs import InputError
from product.quotas import selectors as quota_selectors
from product.quotas.services import LimitExceeded

REQUIRED_SUBMIT_FIELDS = {"model", "input"}
SUBMIT_FIELDS = REQUIRED_SUBMIT_FIELDS | {"priority"}
MAX_LIST_LIMIT = 200
MAX_IDEMPOTENCY_KEY = 255


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def authenticate(request: HttpRequest):
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise ApiError(401, "unauthenticated", "Authorization must be 'Bearer <token>'.")
        try:
            return token_user(secret.strip())
        except TokenRejected as rejected:  # Unknown, expired or revoked: the message says which.
            raise ApiError(401, "unauthenticated", str(rejected)) from None
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
                request.user = authenticate(request)
                return view(request, *args, **kwargs)
            except ApiError as error:
                response = error_response(error.status, error.code, error.message)
                if error.status == 401:
                    response["WWW-Authenticate"] = 'Bearer realm="api"'
                return response

        return wrapper

    return decorator


def json_body(request: HttpRequest) -> dict:
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
    filters = RequestFilterForm(request.GET, sees_all=selectors.sees_all_requests(request.user))
    if not filters.is_valid():
        raise ApiError(400, "invalid_query", filters.error_message())
    limit = query_int(request, "limit", default=50, low=1, high=MAX_LIST_LIMIT)
    before = query_int(request, "before", default=None, low=1)
    request_filter = filters.request_filter()
    page = selectors.request_page(
        user=request.user, request_filter=request_filter, before=before, limit=limit
    )
    following = None
    if page.next_before is not None:
        query = {**request_filter.query(), "limit": limit, "before": page.next_before}
        following = request.build_absolute_uri(f"{request.path}?{urlencode(query)}")
    return JsonResponse({"results": [request_json(row) for row in page.requests], "next": following})


def query_int(request: HttpRequest, name: str, *, default: int | None, low: int, high: int | None = None) -> int | None:
    """An integer query parameter within its bounds; a 400 naming them otherwise."""
    value = request.GET.get(name)
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ApiError(400, "invalid_query", f"{name} must be an integer.") from None
    if number < low or (high is not None and number > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ApiError(400, "invalid_query", f"{name} must be {bounds}.")
    return number


def _submit(request: HttpRequest) -> JsonResponse:
    body = json_body(request)
    unknown = sorted(set(body) - SUBMIT_FIELDS)
    if unknown:
        raise ApiError(400, "invalid_input", f"unknown field(s): {', '.join(unknown)}.")
    for field in sorted(REQUIRED_SUBMIT_FIELDS):
        if field not in body:
            raise ApiError(400, "invalid_input", f"{field} is required.")
    if not isinstance(body["model"], str):
        raise ApiError(400, "invalid_input", "model must be a string.")
    submit = {
        "user": request.user, "model": body["model"], "raw_input": body["input"],
        "priority": body.get("priority"),
    }
    key = idempotency_key(request)
    try:
        if key is None:
            row, created = services.request_submit(**submit), True
        else:
            row, created = services.request_submit_idempotent(
                key=key, body_digest=body_digest(body), **submit
            )
    except InputError as error:
        raise ApiError(400, "invalid_input", str(error)) from None
    except services.IdempotencyConflict as error:
        raise ApiError(422, "idempotency_conflict", str(error)) from None
    except LimitExceeded as limit:
        return limit_response(limit)
    data = request_json(row)
    response = JsonResponse(data, status=201 if created else 200)
    response["Location"] = data["url"]
    if not created:
        response["Idempotent-Replayed"] = "true"
    return response


def idempotency_key(request: HttpRequest) -> str | None:
    """The Idempotency-Key header's value: 1 to 255 printable ASCII characters."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not all(" " <= c <= "~" for c in key):
        raise ApiError(
            400, "invalid_idempotency_key",
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters.",
        )
    return key


def body_digest(body: dict) -> str:
    """SHA-256 of the body as parsed: key order and white space do not make it another body."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def limit_response(limit: LimitExceeded, respond: Callable = error_response) -> JsonResponse:
    """429 with Retry-After when waiting lets the same submit pass; 400 when it cannot
    (``respond(status, code, message)`` makes the error answer: the OpenAI API's has its shape)."""
    if limit.retry_after is None:
        return respond(400, limit.code, limit.message)
    response = respond(429, limit.code, limit.message)
    response["Retry-After"] = str(limit.retry_after)
    return response


@api_view("GET")
def request_detail(request: HttpRequest, request_id: int) -> JsonResponse:
    row = _get_visible(request, request_id)
    data = request_json(row)
    ahead = selectors.work_ahead(row)
    if ahead is not None:  # Queued: about how much of its model's work goes first.
        data["ahead"] = {"requests": ahead.requests, "texts": ahead.texts}
    return JsonResponse(data)


def _succeeded(request: HttpRequest, request_id: int) -> InferenceRequest:
    row = _get_visible(request, request_id)
    if row.status != RequestStatus.SUCCEEDED:
        raise ApiError(409, "not_ready", f"request {row.pk} is {row.status}; it has no result.")
    return row


def _encoding_format(request: HttpRequest) -> str:
    encoding_format = request.GET.get("encoding_format", "float")
    if encoding_format not in ENCODING_FORMATS:
        raise ApiError(
            400, "invalid_query", f"encoding_format must be one of: {', '.join(ENCODING_FORMATS)}."
        )
    return encoding_format


def _attachment(response: HttpResponse, filename: str) -> HttpResponse:
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@api_view("GET")
def request_result(request: HttpRequest, request_id: int) -> HttpResponse:
    """The result as JSON; ``?encoding_format=base64`` gives each embedding as base64 of its
    float32 values, little-endian."""
    encoding_format = _encoding_format(request)
    row = _succeeded(request, request_id)
    body = result_json(row, stored_embeddings(row), encoding_format=encoding_format)
    return _attachment(
        HttpResponse(body, content_type="application/json"), f"request-{row.pk}.json"
    )


@api_view("GET")
def request_result_npy(request: HttpRequest, request_id: int) -> HttpResponse:
    """The embeddings as a NumPy ``.npy`` file: one float32 array of shape (texts, dim)."""
    row = _succeeded(request, request_id)
    embeddings = stored_embeddings(row)
    if embeddings is None:
        raise ApiError(
            404, "no_embeddings", f"request {row.pk}'s result has no embeddings; get it as JSON."
        )
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(embeddings, dtype="<f4"), allow_pickle=False)
    return _attachment(
        HttpResponse(buffer.getvalue(), content_type="application/octet-stream"),
        f"request-{row.pk}.npy",
    )


@api_view("POST")
def request_cancel(request: HttpRequest, request_id: int) -> JsonResponse:
    try:
        # PermissionDenied (another's request, no change permission) is a JSON 403 (api_errors).
        row = selectors.request_get_for_change(user=request.user, request_id=request_id)
    except InferenceRequest.DoesNotExist:
        raise ApiError(404, "not_found", f"no request {request_id}.") from None
    try:
        row = services.request_cancel(request=row)
    except services.RequestStateError as error:
        raise ApiError(409, "conflict", str(error)) from None
    return JsonResponse(request_json(row))


@api_view("POST")
def request_run_again(request: HttpRequest, request_id: int) -> JsonResponse:
    """A new request with the inputs of the caller's own failed or cancelled one."""
    row = _get_visible(request, request_id)
    try:
        again = services.request_run_again(user=request.user, request=row)
    except services.RequestStateError as error:
        raise ApiError(409, "conflict", str(error)) from None
    except LimitExceeded as limit:
        return limit_response(limit)
    data = request_json(again)
    response = JsonResponse(data, status=201)
    response["Location"] = data["url"]
    return response


@api_view("GET")
def usage(request: HttpRequest) -> JsonResponse:
    """The caller's usage (queued texts, texts this month, submits available) and limits."""
    own = quota_selectors.usage_of(user=request.user)
    return JsonResponse(
        {
            "queued_requests": own.queued_requests,
            "queued_texts": own.queued_texts,
            "requests_this_month": own.requests_this_month,
            "texts_this_month": own.texts_this_month,
            "submits_available": own.submits_available,
            "limits": {
                "max_queued_texts": own.max_queued_texts,
                "submits_per_minute": own.submits_per_minute,
                "submit_burst": own.submit_burst,
            },
        }
    )


@api_view("GET")
def model_list(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "results": [
                {
                    "name": spec.name,
                    "title": spec.title,
                    "description": spec.description,
                    **spec.facts(),
                }
                for spec in REGISTRY.values()
            ]
        }
    )


def openapi(request: HttpRequest) -> JsonResponse:
    """The OpenAPI 3.1 document; public, so clients can be generated before signing up."""
    return JsonResponse(openapi_document())
