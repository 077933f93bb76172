"""How a request looks outside the database: the JSON the API returns, the stream events."""

from __future__ import annotations

import json

from django.urls import reverse

from product.inference.models import InferenceRequest, RequestStatus


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
        "url": reverse("api:request_detail", args=[request.pk]),
        "result_url": None,
    }
    if request.status == RequestStatus.SUCCEEDED:
        data["result_url"] = reverse("api:request_result", args=[request.pk])
    return data


def result_json(request: InferenceRequest) -> dict:
    return {"id": request.pk, "model": request.model, **(request.output or {})}


def sse_event(data: dict, event: str = "status") -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"
