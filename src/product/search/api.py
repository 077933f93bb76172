"""``POST /api/v1/search``: the search as JSON, with the API's bearer tokens and errors.

An async view (the wait for the query's embedding holds no thread's database connection); the
token check and body parsing are the API's own (``inference.api``), run in the request's thread.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from product.api_errors import error_response
from product.inference.api import ApiError, authenticate, json_body
from product.inference.live import released
from product.inference.specs import InputError
from product.quotas.services import LimitExceeded
from product.search import querying, selectors
from product.search.models import Collection

FIELDS = {"query", "k", "collection", "all"}


def _parsed(request: HttpRequest):
    """(user, query, k, collection ids, everyone) of a search request, or ApiError."""
    request.user = user = authenticate(request)
    body = json_body(request)
    unknown = set(body) - FIELDS
    if unknown:
        raise ApiError(400, "invalid_body", f"unknown fields: {', '.join(sorted(unknown))}.")
    query, k, collection, everyone = body.get("query"), body.get("k", 10), body.get("collection"), body.get("all", False)
    if not isinstance(query, str):
        raise ApiError(400, "invalid_query", "'query' must be a string.")
    if not isinstance(k, int) or isinstance(k, bool):
        raise ApiError(400, "invalid_k", "'k' must be an integer.")
    if not isinstance(everyone, bool):
        raise ApiError(400, "invalid_all", "'all' must be true or false.")
    collection_ids = None
    if collection is not None:
        if not isinstance(collection, int) or isinstance(collection, bool):
            raise ApiError(400, "invalid_collection", "'collection' must be an integer.")
        try:
            selectors.collection_get(user=user, collection_id=collection)
        except Collection.DoesNotExist:
            raise ApiError(404, "not_found", f"no collection {collection}.") from None
        collection_ids = [collection]
    return user, query, k, collection_ids, everyone


def _hit_json(result: querying.Result) -> dict:
    hit = result.hit
    return {
        "score": round(hit.score, 6),
        "document": {"id": hit.document_id, "title": hit.document_title, "collection": hit.collection_id},
        "chunk": hit.chunk_id, "start": hit.start, "end": hit.end, "text": hit.text,
        "highlighted_html": str(result.passage_html),
    }


@csrf_exempt
async def search(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        response = error_response(405, "method_not_allowed", "use POST here.")
        response["Allow"] = "POST"
        return response
    try:
        user, query, k, collection_ids, everyone = await released(_parsed)(request)
        results = await querying.search(
            user=user, query=query, k=k, collection_ids=collection_ids, everyone=everyone
        )
    except ApiError as error:
        response = error_response(error.status, error.code, error.message)
        if error.status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="api"'
        return response
    except querying.SearchError as error:
        return error_response(error.status, "invalid_search" if error.status < 500 else "unavailable", str(error))
    except InputError as error:
        return error_response(400, "invalid_input", str(error))
    except LimitExceeded as limit:
        response = error_response(429, limit.code, limit.message)
        if limit.retry_after is not None:
            response["Retry-After"] = str(limit.retry_after)
        return response
    return JsonResponse({"query": query, "results": [_hit_json(r) for r in results]})
