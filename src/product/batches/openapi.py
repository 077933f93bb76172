"""The batch endpoints' part of the OpenAPI document (``inference.openapi`` merges it in)."""

from __future__ import annotations

from product.batches.models import BatchStatus


def _error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _batch(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Batch"}}}}


_BATCH_ID = {"name": "batch_id", "in": "path", "required": True, "schema": {"type": "integer"}}
_BINARY = {"type": "string", "format": "binary"}


def batch_paths() -> dict:
    not_found = _error("No such batch of yours")
    return {
        "/api/v1/batches": {
            "post": {
                "summary": "Upload a batch file (docs/api.md#batch-jobs-from-files)", "operationId": "createBatch",
                "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                    "type": "object", "required": ["file"],
                    "properties": {
                        "file": {**_BINARY, "description": "JSONL of OpenAI batch-input lines, or one text a line (a line beginning with { is JSON)"},
                        "model": {"type": "string", "description": "The model (one that returns embeddings); without it, the first line's body.model"},
                    },
                }}}},
                "responses": {
                    "201": _batch("Created; its first parts are queued (Location: its URL)"),
                    "400": _error("The file cannot be a batch (no text, too many texts, unknown model, no file); nothing was created"),
                    "401": _error("Not authenticated"), "413": _error("Body over BATCH_MAX_UPLOAD_BYTES"),
                    "415": _error("Not multipart/form-data"),
                },
            },
            "get": {
                "summary": "List my batches (staff: all)", "operationId": "listBatches",
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}},
                    {"name": "before", "in": "query", "description": "Cursor from the previous page's next link", "schema": {"type": "integer", "minimum": 1}},
                ],
                "responses": {"200": {"description": "Newest first: {results: [Batch], next}"}, "401": _error("Not authenticated")},
            },
        },
        "/api/v1/batches/{batch_id}": {
            "get": {"summary": "Get a batch: progress, ETA, bad lines", "operationId": "getBatch", "parameters": [_BATCH_ID],
                    "responses": {"200": _batch("The batch, with line_errors"), "401": _error("Not authenticated"), "404": not_found}},
        },
        "/api/v1/batches/{batch_id}/output.jsonl": {
            "get": {"summary": "Download the results so far as JSONL (OpenAI batch-output lines)", "operationId": "getBatchOutputJsonl",
                    "parameters": [_BATCH_ID],
                    "responses": {"200": {"description": "One line per input line of the parts that ended, streamed", "content": {"application/x-ndjson": {"schema": _BINARY}}},
                                  "401": _error("Not authenticated"), "404": not_found}},
        },
        "/api/v1/batches/{batch_id}/output.npy": {
            "get": {"summary": "Download every text's embedding as a NumPy .npy file", "operationId": "getBatchOutputNpy",
                    "parameters": [_BATCH_ID],
                    "responses": {"200": {"description": "float32 (texts, dim), input order, NaN rows for texts without an embedding; streamed", "content": {"application/octet-stream": {"schema": _BINARY}}},
                                  "401": _error("Not authenticated"), "404": not_found}},
        },
        "/api/v1/batches/{batch_id}/cancel": {
            "post": {"summary": "Cancel a running batch (finished parts keep their results)", "operationId": "cancelBatch",
                     "parameters": [_BATCH_ID],
                     "responses": {"200": _batch("Cancelled"), "401": _error("Not authenticated"), "403": _error("Another user's batch"),
                                   "404": not_found, "409": _error("No longer running")}},
        },
    }


def batch_schemas() -> dict:
    count = {"type": "integer"}
    return {"Batch": {
        "type": "object",
        "properties": {
            "id": count, "object": {"const": "batch"}, "model": {"type": "string"}, "filename": {"type": "string"},
            "owner": {"type": "string"}, "status": {"enum": BatchStatus.values},
            "created_at": {"type": "string", "format": "date-time"},
            "finished_at": {"type": ["string", "null"], "format": "date-time"},
            "lines": count, "requests": count, "texts": count, "bad_lines": count,
            "progress": {"type": "object", "properties": {
                "done": count, "failed": count, "cancelled": count, "left": count, "percent": {"type": "number"},
                "texts_per_second": {"type": ["number", "null"]},
                "eta_seconds": {"type": ["number", "null"], "description": "Texts left at the rate since the first part started"},
                "parts": {"type": "object", "properties": {name: count for name in ("total", "queued", "running", "ended")}},
            }},
            "line_errors": {"type": "array", "description": "The stored bad lines (GET of one batch)", "items": {
                "type": "object", "properties": {"line": count, "message": {"type": "string"}}}},
            "line_errors_stored_max": count,
            **{name: {"type": "string"} for name in ("url", "page_url", "output_jsonl_url", "output_npy_url", "cancel_url")},
        },
    }}
