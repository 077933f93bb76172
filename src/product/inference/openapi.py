"""The OpenAPI 3.1 document of the JSON API, built from the model registry."""

from __future__ import annotations

from django.conf import settings

from product.batches.openapi import batch_paths, batch_schemas
from product.inference.models import RequestPriority, RequestStatus
from product.inference.presenters import ENCODING_FORMATS
from product.inference.registry import REGISTRY
from product.search.openapi import search_path


def _error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _json(ref: str, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": ref}}}}


def _result_schema(spec) -> dict:
    return {
        "type": "object",
        "title": spec.title,
        "properties": {
            "id": {"type": "integer"},
            "model": {"const": spec.name},
            **spec.result_schema(),
        },
    }


def _openai_error(description: str) -> dict:
    return _json("#/components/schemas/OpenAIError", description)


def _openai_paths(idempotency_key: dict) -> dict:
    """The OpenAI-compatible API (product.inference.openai_api): its paths, errors in OpenAI's shape."""
    embedding_models = [spec.name for spec in REGISTRY.values() if spec.returns_embeddings]
    texts = {"oneOf": [spec.input_schema() for spec in REGISTRY.values() if spec.returns_embeddings]}
    body = {
        "type": "object",
        "required": ["model", "input"],
        "additionalProperties": False,
        "properties": {
            "model": {"enum": embedding_models},
            "input": texts,
            "encoding_format": {"enum": list(ENCODING_FORMATS), "default": "float",
                                "description": "base64: each embedding the base64 of its float32 values, little-endian."},
            "dimensions": {"type": "integer", "description": "Only for a model that lists shorter sizes; none here does, so it is refused."},
            "user": {"type": "string", "description": "Accepted and ignored."},
        },
    }
    return {
        "/v1/embeddings": {
            "post": {
                "summary": "Embeddings, answered inline (OpenAI-compatible)",
                "operationId": "createEmbeddings",
                "parameters": [idempotency_key],
                "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
                "responses": {
                    "200": _json("#/components/schemas/Embeddings", "The embeddings, one per input, in order"),
                    "202": {
                        **_json("#/components/schemas/Request", f"Not finished within {settings.INFERENCE_INLINE_WAIT:g} s (INFERENCE_INLINE_WAIT): the request, still running (Location: its URL); fetch its result_url once it succeeded"),
                        "headers": {"Location": {"description": "The request's URL", "schema": {"type": "string"}}},
                    },
                    "400": _openai_error("Invalid input, a model that returns no embeddings, or dimensions it does not support; nothing was created"),
                    "401": _openai_error("Missing or bad token (code invalid_api_key)"),
                    "404": _openai_error("Unknown model (code model_not_found)"),
                    "409": _openai_error("The request was cancelled before it finished"),
                    "413": _openai_error("Body too large"),
                    "422": _openai_error("The Idempotency-Key was used with a different body"),
                    "429": {
                        **_openai_error("Over a limit of yours; nothing was created; retry after Retry-After seconds"),
                        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                    },
                    "500": _openai_error("The request failed (code request_failed; the message says why)"),
                },
            },
        },
        "/v1/models": {
            "get": {"summary": "List models (OpenAI-compatible)", "operationId": "listOpenAIModels",
                    "responses": {"200": _json("#/components/schemas/OpenAIModelList", "Every model; those that return embeddings serve /v1/embeddings"),
                                  "401": _openai_error("Missing or bad token")}},
        },
        "/v1/models/{model}": {
            "get": {"summary": "Get a model (OpenAI-compatible)", "operationId": "getOpenAIModel",
                    "parameters": [{"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {"200": _json("#/components/schemas/OpenAIModel", "The model"),
                                  "401": _openai_error("Missing or bad token"),
                                  "404": _openai_error("Unknown model (code model_not_found)")}},
        },
    }


_OPENAI_SCHEMAS = {
    "OpenAIError": {
        "type": "object",
        "properties": {"error": {"type": "object", "properties": {
            "message": {"type": "string"}, "type": {"type": "string"},
            "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}},
    },
    "Embeddings": {
        "type": "object",
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": {"type": "object", "properties": {
                "object": {"const": "embedding"},
                "index": {"type": "integer"},
                "embedding": {"oneOf": [{"type": "array", "items": {"type": "number"}},
                                        {"type": "string", "contentEncoding": "base64"}]},
            }}},
            "model": {"type": "string"},
            "usage": {"type": "object", "properties": {
                "prompt_tokens": {"type": "integer", "description": "Tokens of the inputs as the model counted them."},
                "total_tokens": {"type": "integer"}}},
        },
    },
    "OpenAIModel": {
        "type": "object",
        "properties": {"id": {"type": "string"}, "object": {"const": "model"},
                       "created": {"type": "integer"}, "owned_by": {"type": "string"}},
    },
    "OpenAIModelList": {
        "type": "object",
        "properties": {"object": {"const": "list"},
                       "data": {"type": "array", "items": {"$ref": "#/components/schemas/OpenAIModel"}}},
    },
}


def openapi_document() -> dict:
    priority_input = {
        "enum": [*RequestPriority.values, None],
        "description": (
            "interactive runs before bulk; within each, users take turns. Omitted or null: "
            f"interactive up to {settings.INFERENCE_INTERACTIVE_MAX_TEXTS} texts, bulk above."
        ),
    }
    submit_variants = [
        {
            "type": "object",
            "title": spec.title,
            "required": ["model", "input"],
            "additionalProperties": False,
            "properties": {
                "model": {"const": spec.name},
                "input": spec.input_schema(),
                "priority": priority_input,
            },
        }
        for spec in REGISTRY.values()
    ]
    idempotency_key = {
        "name": "Idempotency-Key", "in": "header", "required": False,
        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"},
        "description": (
            "Any 1 to 255 printable ASCII characters, unique per request you mean: the same key with "
            "the same body returns the request it created (200), with another body is a 422. Keys "
            f"are yours alone and kept {settings.INFERENCE_IDEMPOTENCY_TTL:g} hours."
        ),
    }
    request_id = {"name": "request_id", "in": "path", "required": True, "schema": {"type": "integer"}}
    encoding_format = {
        "name": "encoding_format", "in": "query", "required": False,
        "schema": {"enum": list(ENCODING_FORMATS), "default": "float"},
        "description": (
            "float: each embedding a list of numbers. base64: each embedding one string, the "
            "base64 of its float32 values, little-endian (as OpenAI's API does; "
            "numpy.frombuffer(base64.b64decode(s), '<f4'))."
        ),
    }
    timings = {
        "type": "object",
        "properties": {
            key: {"type": ["number", "null"]} for key in ("queue", "run", "compute", "total")
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Inference API",
            "version": "1",
            "description": (
                "Submit work to GPU runners through a PostgreSQL queue and fetch results. "
                "Authenticate with `Authorization: Bearer <token>` (`manage.py create_api_token`)."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/search": search_path(),
            "/api/v1/usage": {
                "get": {"summary": "My usage and limits", "operationId": "getUsage",
                        "responses": {"200": _json("#/components/schemas/Usage", "Queued texts, texts this month (UTC), submits available now, and the limits that apply"),
                                      "401": _error("Not authenticated")}},
            },
            "/api/v1/models": {
                "get": {"summary": "List models", "operationId": "listModels",
                        "responses": {"200": {"description": "Registered models"}, "401": _error("Not authenticated")}},
            },
            "/api/v1/requests": {
                "post": {
                    "summary": "Submit a request",
                    "operationId": "submitRequest",
                    "parameters": [idempotency_key],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": submit_variants}}}},
                    "responses": {
                        "201": _json("#/components/schemas/Request", "Accepted and queued"),
                        "200": _json("#/components/schemas/Request", "The request this Idempotency-Key created before (header Idempotent-Replayed: true); nothing new was created"),
                        "400": _error("Invalid input or Idempotency-Key, or a request over the queued-texts limit on its own (code quota_exceeded: split it); nothing was created"),
                        "401": _error("Not authenticated"),
                        "413": _error("Body too large"),
                        "415": _error("Body is not JSON"),
                        "422": _error("The Idempotency-Key was used with a different body (code idempotency_conflict); nothing was created"),
                        "429": {
                            **_error("Over a limit of yours (code rate_limited: submits per minute; quota_exceeded: queued texts); the message names it. Nothing was created; retry after Retry-After seconds"),
                            "headers": {"Retry-After": {"description": "Seconds to wait before the same submit can pass", "schema": {"type": "integer"}}},
                        },
                    },
                },
                "get": {
                    "summary": "List my requests (staff: all)",
                    "operationId": "listRequests",
                    "parameters": [
                        {"name": "status", "in": "query", "description": "One status, or several separated by commas", "schema": {"type": "string", "example": "failed,cancelled"}},
                        {"name": "model", "in": "query", "schema": {"type": "string"}},
                        {"name": "priority", "in": "query", "schema": {"enum": RequestPriority.values}},
                        {"name": "q", "in": "query", "description": "Only requests with an input containing this text (ignoring case)", "schema": {"type": "string", "maxLength": 200}},
                        {"name": "error", "in": "query", "description": "Only requests whose error contains this text (ignoring case)", "schema": {"type": "string", "maxLength": 200}},
                        {"name": "from", "in": "query", "description": "Created on or after this day", "schema": {"type": "string", "format": "date"}},
                        {"name": "to", "in": "query", "description": "Created on or before this day", "schema": {"type": "string", "format": "date"}},
                        {"name": "owner", "in": "query", "description": "A username (only for those who see every request)", "schema": {"type": "string"}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}},
                        {"name": "before", "in": "query", "description": "Cursor: requests older than this id (take it from the previous page's next link)", "schema": {"type": "integer", "minimum": 1}},
                    ],
                    "responses": {"200": _json("#/components/schemas/RequestPage", "Newest first"), "400": _error("Bad query; the message names the parameter"), "401": _error("Not authenticated")},
                },
            },
            "/api/v1/requests/{request_id}": {
                "get": {"summary": "Get a request", "operationId": "getRequest", "parameters": [request_id],
                        "responses": {"200": _json("#/components/schemas/Request", "The request"), "401": _error("Not authenticated"), "404": _error("No such request of yours")}},
            },
            "/api/v1/requests/{request_id}/result": {
                "get": {"summary": "Download the result", "operationId": "getResult", "parameters": [request_id, encoding_format],
                        "responses": {"200": _json("#/components/schemas/Result", "The model's output (sent as an attachment, request-{id}.json)"),
                                      "400": _error("Bad encoding_format"), "401": _error("Not authenticated"),
                                      "404": _error("No such request of yours"), "409": _error("Not succeeded (yet)")}},
            },
            "/api/v1/requests/{request_id}/result.npy": {
                "get": {"summary": "Download the embeddings as a NumPy .npy file", "operationId": "getResultNpy", "parameters": [request_id],
                        "responses": {"200": {"description": "One float32 array of shape (texts, dim), row i for input i, for numpy.load (an attachment, request-{id}.npy)",
                                              "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                                      "401": _error("Not authenticated"), "404": _error("No such request of yours, or a result without embeddings"),
                                      "409": _error("Not succeeded (yet)")}},
            },
            "/api/v1/requests/{request_id}/cancel": {
                "post": {"summary": "Cancel a queued or running request", "operationId": "cancelRequest", "parameters": [request_id],
                         "responses": {"200": _json("#/components/schemas/Request", "Cancelled"), "401": _error("Not authenticated"),
                                       "404": _error("No such request of yours"), "409": _error("Already finished")}},
            },
            "/api/v1/requests/{request_id}/run-again": {
                "post": {"summary": "Submit a failed or cancelled request of mine again, as a new request", "operationId": "runRequestAgain", "parameters": [request_id],
                         "responses": {"201": _json("#/components/schemas/Request", "The new request (Location: its URL)"), "401": _error("Not authenticated"),
                                       "403": _error("Another user's request"), "404": _error("No such request of yours"),
                                       "409": _error("Not failed or cancelled"), "429": _error("Over a limit of yours; retry after Retry-After seconds")}},
            },
            **_openai_paths(idempotency_key),
            **batch_paths(),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                **_OPENAI_SCHEMAS,
                **batch_schemas(),
                "Error": {
                    "type": "object",
                    "properties": {"error": {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}},
                },
                "Usage": {
                    "type": "object",
                    "properties": {
                        **{name: {"type": "integer"} for name in (
                            "queued_requests", "queued_texts", "requests_this_month", "texts_this_month",
                            "submits_available")},
                        "limits": {"type": "object", "properties": {
                            name: {"type": "integer"} for name in ("max_queued_texts", "submits_per_minute", "submit_burst")}},
                    },
                },
                "Result": {
                    "description": "The result of a succeeded request; its shape is its model's.",
                    "oneOf": [_result_schema(spec) for spec in REGISTRY.values()],
                },
                "RequestPage": {
                    "type": "object",
                    "properties": {
                        "results": {"type": "array", "items": {"$ref": "#/components/schemas/Request"}},
                        "next": {"type": ["string", "null"], "description": "The next (older) page with the same filters; null on the last page."},
                    },
                },
                "Request": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "model": {"type": "string"},
                        "status": {"enum": RequestStatus.values},
                        "priority": {"enum": RequestPriority.values},
                        "item_count": {"type": "integer"},
                        "items_done": {"type": "integer", "description": "Texts finished so far (progress of a running bulk request)."},
                        "attempts": {"type": "integer"},
                        "error": {"type": ["string", "null"]},
                        "created_at": {"type": "string", "format": "date-time"},
                        "started_at": {"type": ["string", "null"], "format": "date-time"},
                        "finished_at": {"type": ["string", "null"], "format": "date-time"},
                        "timings_ms": timings,
                        "input_tokens": {"type": ["integer", "null"], "description": "Tokens of the inputs as the model counted them (once succeeded)."},
                        "url": {"type": "string"},
                        "result_url": {"type": ["string", "null"]},
                        "ahead": {
                            "type": "object",
                            "description": "Only on GET of a queued request: about how much of its model's work goes first (running, and queued at a higher priority or earlier).",
                            "properties": {"requests": {"type": "integer"}, "texts": {"type": "integer"}},
                        },
                    },
                },
            },
        },
    }
