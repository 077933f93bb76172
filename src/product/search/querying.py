"""A search, start to end: embed the query at interactive priority, wait for it on the
process's LISTEN (no database connection held while the model runs), then read the nearest
chunks. Called from async views (the page and the API)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from product.inference import results
from product.inference import services as inference
from product.inference.live import read_when_final, released
from product.inference.models import FINAL_STATUSES, InferenceRequest, RequestPriority, RequestStatus
from product.search import selectors, services
from product.search.highlight import highlighted
from product.search.models import EMBEDDING_MODEL

#: Seconds a search waits for its query's embedding.
QUERY_TIMEOUT = 30.0
MAX_QUERY_CHARS = 1000
MAX_K = 50


class SearchError(Exception):
    """The search could not be answered; ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Result:
    hit: selectors.Hit
    passage_html: str


def _submit(user: Any, query: str):
    return inference.request_submit(
        user=user, model=EMBEDDING_MODEL, raw_input=[query], priority=RequestPriority.INTERACTIVE
    )


def _status(request_id: int) -> str | None:
    """The request's status (None: it is gone)."""
    return InferenceRequest.objects.filter(pk=request_id).values_list("status", flat=True).first()


def _nearest(user, request_id, k, collection_ids, everyone):
    query = results.embeddings_read(request_id=request_id)[0]
    if collection_ids is None and not everyone:
        collection_ids = list(selectors.collections_of(user=user).values_list("pk", flat=True))
    services.chunks_collect(collection_ids=collection_ids)
    return selectors.chunks_nearest(
        user=user, query=query, k=k, collection_ids=collection_ids, everyone=everyone
    )


async def search(
    *, user: Any, query: str, k: int = 10, collection_ids: list[int] | None = None,
    everyone: bool = False,
) -> list[Result]:
    """The ``k`` passages of ``user``'s collections nearest ``query``, best first. Raises
    SearchError (400 bad input, 403 ``everyone`` for non-staff, 504 the model did not answer),
    or the submit's own errors (InputError, LimitExceeded)."""
    query = query.strip()
    if not query:
        raise SearchError(400, "the query is empty.")
    if len(query) > MAX_QUERY_CHARS:
        raise SearchError(400, f"the query has {len(query)} characters; at most {MAX_QUERY_CHARS}.")
    if not 1 <= k <= MAX_K:
        raise SearchError(400, f"k must be between 1 and {MAX_K}.")
    if everyone and not user.is_staff:
        raise SearchError(403, "only staff may search everyone's collections.")
    request = await released(_submit)(user, query)
    status, final = await read_when_final(
        request.pk, _status, final=lambda status: status is None or status in FINAL_STATUSES,
        timeout=QUERY_TIMEOUT,
    )
    if not final:
        raise SearchError(504, f"the query was not embedded within {QUERY_TIMEOUT:.0f} s; try again.")
    if status != RequestStatus.SUCCEEDED:
        raise SearchError(502, f"the query could not be embedded (its request {status}).")
    hits = await released(_nearest)(user, request.pk, k, collection_ids, everyone)
    return [Result(hit, highlighted(hit.text, query)) for hit in hits]
