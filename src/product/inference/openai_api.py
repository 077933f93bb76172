"""The OpenAI-compatible API at /v1/: ``POST /v1/embeddings`` answered inline, ``GET /v1/models``.

A thin translation over the project's own API (as TEI serves /v1/embeddings beside its native
API): the same bearer tokens, limits and Idempotency-Key (``product.inference.api``), the same
submit (``services.request_submit``, at interactive priority), queue and runners, so
``openai.OpenAI(base_url="http://host/v1", api_key=<token>)`` works unchanged.

A call waits for its request on the process's single LISTEN (``live.read_when_final``) and holds
no database connection while it waits: each read runs in the request's thread, which then gives
its connection back (``live.released``). Past INFERENCE_INLINE_WAIT seconds it answers 202 with the
request's id and URL, and the request runs on. Errors have OpenAI's shape
(``api_errors.openai_error_response``) and create nothing.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from product.api_errors import openai_error_response
from product.inference import api, services
from product.inference.live import read_when_final, released
from product.inference.models import InferenceRequest, RequestPriority, RequestStatus
from product.inference.presenters import ENCODING_FORMATS, encoded_embeddings, request_json, stored_embeddings
from product.inference.registry import REGISTRY
from product.inference.specs import InputError, ModelSpec
from product.quotas.services import LimitExceeded

EMBEDDINGS_FIELDS = ("input", "model", "encoding_format", "dimensions", "user")
# What GET /v1/models says owns each model (OpenAI's field; "openai", "system" there).
OWNED_BY = "gpu-queue-product"


class _Refused(Exception):
    """The call is answered with ``response`` (an error) before anything waits."""

    def __init__(self, response: HttpResponse) -> None:
        super().__init__(response.status_code)
        self.response = response


def _error(status: int, code: str, message: str, param: str | None = None) -> JsonResponse:
    response = openai_error_response(status, code, message, param)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def _refused(status: int, code: str, message: str, param: str | None = None) -> _Refused:
    return _Refused(_error(status, code, message, param))


def _checked(step: Callable, *args):
    """``step(*args)`` of the project's API, its ApiError answered in OpenAI's shape (a bad
    token is OpenAI's ``invalid_api_key``)."""
    try:
        return step(*args)
    except api.ApiError as error:
        code = "invalid_api_key" if error.status == 401 else error.code
        raise _refused(error.status, code, error.message) from None


def _not_allowed(request: HttpRequest, method: str) -> JsonResponse:
    response = _error(405, "method_not_allowed", f"use {method} at {request.path}.")
    response["Allow"] = method
    return response


# --- POST /v1/embeddings ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Submitted:
    request_id: int
    encoding_format: str
    dimensions: int | None


@csrf_exempt
async def embeddings(request: HttpRequest) -> HttpResponse:
    """Embed ``input`` (a string or a list of strings) with ``model``, waiting for the result."""
    if request.method != "POST":
        return _not_allowed(request, "POST")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.INFERENCE_INLINE_WAIT
    try:
        submitted = await released(_submit)(request)
    except _Refused as refused:
        return refused.response
    (row, vectors), final = await read_when_final(
        submitted.request_id, _outcome, final=lambda outcome: outcome[0].is_final,
        timeout=deadline - loop.time(),
    )
    return _answer(row, vectors, submitted) if final else _accepted(row)


def _submit(request: HttpRequest) -> _Submitted:
    """Authenticate, check the body and submit it (as the project's API does, at interactive
    priority); raises _Refused with the error answer, having created nothing."""
    request.user = _checked(api.authenticate, request)
    body = _checked(api.json_body, request)
    unknown = [field for field in body if field not in EMBEDDINGS_FIELDS]
    if unknown:
        raise _refused(
            400, "invalid_request", f"unrecognized request argument(s): {', '.join(unknown)}.",
            unknown[0],
        )
    spec = _embedding_model(body.get("model"))
    encoding_format = body.get("encoding_format") or "float"
    if encoding_format not in ENCODING_FORMATS:
        raise _refused(
            400, "invalid_request",
            f"encoding_format must be one of: {', '.join(ENCODING_FORMATS)}.", "encoding_format",
        )
    dimensions = _dimensions(spec, body.get("dimensions"))
    if body.get("user") is not None and not isinstance(body["user"], str):
        raise _refused(400, "invalid_request", "user must be a string.", "user")
    raw_input = _input(body)
    key = _checked(api.idempotency_key, request)
    submit = {
        "user": request.user, "model": spec.name, "raw_input": raw_input,
        "priority": RequestPriority.INTERACTIVE,
    }
    try:
        if key is None:
            row = services.request_submit(**submit)
        else:
            row, _ = services.request_submit_idempotent(
                key=key, body_digest=api.body_digest(body), **submit
            )
    except InputError as error:
        raise _refused(400, "invalid_input", str(error), "input") from None
    except services.IdempotencyConflict as error:
        raise _refused(422, "idempotency_conflict", str(error)) from None
    except LimitExceeded as limit:
        raise _Refused(api.limit_response(limit, _error)) from None
    return _Submitted(row.pk, encoding_format, dimensions)


def _embedding_model(name) -> ModelSpec:
    if name is None:
        raise _refused(400, "invalid_request", "model is required.", "model")
    if not isinstance(name, str):
        raise _refused(400, "invalid_request", "model must be a string.", "model")
    spec = REGISTRY.get(name)
    if spec is None:
        raise _refused(
            404, "model_not_found",
            f"the model {name!r} does not exist; embedding models: {_embedding_models()}.", "model",
        )
    if not spec.returns_embeddings:
        raise _refused(
            400, "model_not_supported",
            f"the model {name!r} does not return embeddings (submit its work to POST "
            f"/api/v1/requests); embedding models: {_embedding_models()}.", "model",
        )
    return spec


def _embedding_models() -> str:
    return ", ".join(sorted(spec.name for spec in REGISTRY.values() if spec.returns_embeddings))


def _dimensions(spec: ModelSpec, dimensions) -> int | None:
    if dimensions is None:
        return None
    if not spec.embedding_dimensions:
        raise _refused(
            400, "invalid_request",
            f"the model {spec.name!r} does not support dimensions: its embeddings have one "
            "size; leave dimensions out.", "dimensions",
        )
    if isinstance(dimensions, bool) or dimensions not in spec.embedding_dimensions:
        sizes = ", ".join(map(str, spec.embedding_dimensions))
        raise _refused(
            400, "invalid_request", f"dimensions must be one of: {sizes}.", "dimensions"
        )
    return dimensions


def _input(body: dict):
    if "input" not in body:
        raise _refused(400, "invalid_request", "input is required.", "input")
    raw_input = body["input"]
    if isinstance(raw_input, list) and raw_input and isinstance(raw_input[0], (int, list)):
        raise _refused(
            400, "invalid_input",
            "input as token ids is not supported; send a string or a list of strings.", "input",
        )
    return raw_input


def _outcome(request_id: int) -> tuple[InferenceRequest, np.ndarray | None]:
    """The request as it is now, and its embeddings once it succeeded."""
    row = InferenceRequest.objects.defer("inputs", "output", "traceback").get(pk=request_id)
    vectors = stored_embeddings(row) if row.status == RequestStatus.SUCCEEDED else None
    return row, vectors


def _accepted(row: InferenceRequest) -> JsonResponse:
    """Still running past the wait: 202 with the request (its ``id`` and ``url``: poll it, or
    its ``result_url`` once it succeeded)."""
    data = request_json(row)
    response = JsonResponse(data, status=202)
    response["Location"] = data["url"]
    return response


def _answer(row: InferenceRequest, vectors: np.ndarray | None, submitted: _Submitted) -> HttpResponse:
    if row.status == RequestStatus.CANCELLED:
        return _error(409, "request_cancelled", f"request {row.pk} was cancelled before it finished.")
    if row.status == RequestStatus.FAILED or vectors is None:
        return _error(500, "request_failed", f"request {row.pk} failed: {row.error or 'no result'}")
    if submitted.dimensions is not None:
        vectors = shortened(vectors, submitted.dimensions)
    tokens = row.input_tokens or 0
    body = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": embedding}
            for index, embedding in enumerate(encoded_embeddings(vectors, submitted.encoding_format))
        ],
        "model": row.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return HttpResponse(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), content_type="application/json"
    )


def shortened(vectors: np.ndarray, dimensions: int) -> np.ndarray:
    """Each vector's first ``dimensions`` numbers, renormalised to unit length (how a model
    trained for it, Matryoshka-style, gives a shorter embedding)."""
    head = np.asarray(vectors[:, :dimensions], dtype=np.float32)
    norms = np.linalg.norm(head, axis=1, keepdims=True)
    return head / np.where(norms == 0, 1, norms)


# --- GET /v1/models -----------------------------------------------------------------------------


def _get_endpoint(view: Callable) -> Callable:
    """A GET of the OpenAI-compatible API: bearer token (or a signed-in session), errors in
    OpenAI's shape."""

    @csrf_exempt
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method != "GET":
            return _not_allowed(request, "GET")
        try:
            request.user = _checked(api.authenticate, request)
            return view(request, *args, **kwargs)
        except _Refused as refused:
            return refused.response

    return wrapper


def _model_json(spec: ModelSpec) -> dict:
    # ``created`` is when the model was made available; the registry has no such date.
    return {"id": spec.name, "object": "model", "created": 0, "owned_by": OWNED_BY}


@_get_endpoint
def model_list(request: HttpRequest) -> JsonResponse:
    """Every model, in OpenAI's shape (those that return embeddings serve /v1/embeddings)."""
    return JsonResponse({"object": "list", "data": [_model_json(spec) for spec in REGISTRY.values()]})


@_get_endpoint
def model_detail(request: HttpRequest, model: str) -> JsonResponse:
    spec = REGISTRY.get(model)
    if spec is None:
        raise _refused(404, "model_not_found", f"the model {model!r} does not exist.", "model")
    return JsonResponse(_model_json(spec))
