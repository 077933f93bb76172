"""How a request looks outside the database: the JSON the API returns, the stream events."""

from __future__ import annotations

import base64
import json

import numpy as np
import orjson
from django.urls import reverse

from product.inference import results
from product.inference.models import InferenceRequest, RequestStatus
from product.inference.registry import REGISTRY
from product.inference.specs import plain_inputs


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def _ms(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


def request_json(request: InferenceRequest) -> dict:
    data = {
        "id": request.pk,
        "model": request.model,
        "status": request.status,
        "priority": request.priority,
        "item_count": request.item_count,
        "items_done": request.items_done,
        "attempts": request.attempts,
        "error": request.error or None,
        "created_at": _iso(request.created_at),
        "started_at": _iso(request.started_at),
        "finished_at": _iso(request.finished_at),
        "timings_ms": {
            "queue": _ms(request.queue_ms),
            "run": _ms(request.run_ms),
            "compute": _ms(request.compute_ms),
            "total": _ms(request.total_ms),
        },
        "input_tokens": request.input_tokens,
        "url": reverse("api:request_detail", args=[request.pk]),
        "result_url": None,
    }
    if request.status == RequestStatus.SUCCEEDED:
        data["result_url"] = reverse("api:request_result", args=[request.pk])
    return data


# How embeddings are written in a result: JSON numbers, or (as OpenAI's API does) each one a
# base64 string of its float32 values, little-endian: a quarter of the characters, exact.
ENCODING_FORMATS = ("float", "base64")


def result_json(
    request: InferenceRequest, embeddings: np.ndarray | None, *, encoding_format: str = "float"
) -> bytes:
    """A succeeded request's result as JSON: its id, model, the small JSON part of its output
    (e.g. ``dim``) and, when it has them, its ``embeddings`` as ``encoding_format`` says.

    orjson writes the float32 array itself (~20x faster than lists through json), each value
    in the fewest digits that read back as the same float32."""
    output = {key: value for key, value in (request.output or {}).items() if key != "embeddings"}
    data = {"id": request.pk, "model": request.model, **output}
    if embeddings is not None:
        data["embeddings"] = encoded_embeddings(embeddings, encoding_format)
    return orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)


def encoded_embeddings(embeddings: np.ndarray, encoding_format: str) -> np.ndarray | list[str]:
    """The rows of ``embeddings`` as ``encoding_format`` says, for orjson (OPT_SERIALIZE_NUMPY):
    a float32 array, or one base64 string of float32 values, little-endian, per row."""
    if encoding_format == "base64":
        little_endian = np.ascontiguousarray(embeddings, dtype="<f4")
        return [base64.b64encode(row).decode("ascii") for row in little_endian]
    return np.ascontiguousarray(embeddings, dtype=np.float32)


def stored_embeddings(request: InferenceRequest) -> np.ndarray | None:
    """A succeeded request's embeddings, or None; no query for a model that returns none."""
    spec = REGISTRY.get(request.model)
    if spec is not None and not spec.returns_embeddings:
        return None
    return results.request_embeddings(request)


def shown_request(request: InferenceRequest) -> dict:
    """The request page's context for its model's part: the spec, what its inputs are called,
    and what its ``inputs.html`` and (once succeeded) ``result.html`` show."""
    spec = REGISTRY.get(request.model)
    if spec is None:  # A model no longer registered: its rows are still shown, plainly.
        return {"spec": None, "inputs_noun": "inputs", "result": None,
                "shown_inputs": {"inputs": plain_inputs(request.inputs)}}
    result = None
    if request.status == RequestStatus.SUCCEEDED:
        result = spec.present_result(request.inputs, request.output or {}, stored_embeddings(request))
    return {"spec": spec, "inputs_noun": spec.inputs_noun, "result": result,
            "shown_inputs": spec.present_inputs(request.inputs)}


def sse_event(data: dict, event: str = "status") -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"
