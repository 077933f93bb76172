"""The search endpoint's part of the OpenAPI document (``inference.openapi`` includes it)."""

from product.search.querying import MAX_K, MAX_QUERY_CHARS


def search_path() -> dict:
    error = {"$ref": "#/components/schemas/Error"}
    return {
        "post": {
            "summary": "Search my documents", "operationId": "search",
            "description": (
                "Embeds the query (all-MiniLM-L6-v2, interactive priority), waits for it, and "
                "answers the k passages of your collections nearest in meaning (cosine), best "
                "first, from an HNSW index. Only your own collections: staff too, unless they "
                "send all=true."
            ),
            "security": [{"bearer": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["query"], "additionalProperties": False,
                "properties": {
                    "query": {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS},
                    "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 10},
                    "collection": {"type": "integer", "description": "Search only this collection of yours."},
                    "all": {"type": "boolean", "default": False, "description": "Staff only: everyone's collections."},
                },
            }}}},
            "responses": {
                "200": {"description": "The nearest passages.", "content": {"application/json": {"schema": {
                    "type": "object",
                    "properties": {"query": {"type": "string"}, "results": {"type": "array", "items": {
                        "type": "object",
                        "properties": {
                            "score": {"type": "number", "description": "Cosine similarity, 1 is the same meaning."},
                            "document": {"type": "object", "properties": {
                                "id": {"type": "integer"}, "title": {"type": "string"},
                                "collection": {"type": "integer"},
                            }},
                            "chunk": {"type": "integer"},
                            "start": {"type": "integer", "description": "Offset of the passage in the document's text."},
                            "end": {"type": "integer"},
                            "text": {"type": "string"},
                            "highlighted_html": {"type": "string", "description": "The passage as escaped HTML, query words in <mark>."},
                        },
                    }}},
                }}}},
                **{code: {"description": why, "content": {"application/json": {"schema": error}}}
                   for code, why in {"400": "Invalid query.", "401": "No valid token.",
                                     "403": "all=true from a non-staff user.", "404": "No such collection of yours.",
                                     "429": "Over a limit.", "504": "The query was not embedded in time."}.items()},
            },
        }
    }
