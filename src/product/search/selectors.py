"""Every read of collections, documents and chunks, with the access rule in one place: a user
sees and searches only their own collections; staff too, unless a search asks for everyone's
(``everyone=True``, refused to others)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.db.models import QuerySet

from product.search.models import Chunk, Collection, Document, DocumentState

#: Candidates the HNSW index returns before the owner filter (pgvector's hnsw.ef_search).
EF_SEARCH = 100


def collections_of(*, user: Any) -> QuerySet[Collection]:
    return Collection.objects.filter(owner=user)


def collection_get(*, user: Any, collection_id: int) -> Collection:
    """``user``'s collection ``collection_id``; Collection.DoesNotExist for anyone else's."""
    return collections_of(user=user).get(pk=collection_id)


def document_get(*, user: Any, document_id: int) -> Document:
    return Document.objects.select_related("collection").get(
        pk=document_id, collection__owner=user
    )


@dataclass(frozen=True)
class Progress:
    state: str
    done: int
    total: int
    error: str


_PROGRESS = f"""
    SELECT c.document_id,
           count(*) AS total,
           count(*) FILTER (WHERE c.embedding IS NOT NULL OR r.status = 'succeeded'
                            OR (r.status = 'running' AND c.request_position < r.items_done)) AS done,
           count(*) FILTER (WHERE c.embedding IS NULL AND r.status IN ('queued', 'running')) AS waiting,
           count(*) FILTER (WHERE c.embedding IS NULL AND r.status IS DISTINCT FROM 'succeeded'
                            AND r.status NOT IN ('queued', 'running')
                            OR c.embedding IS NULL AND r.id IS NULL) AS lost,
           count(*) FILTER (WHERE r.status = 'running' OR c.embedding IS NOT NULL) AS started,
           max(r.error) FILTER (WHERE r.status = 'failed') AS error,
           bool_or(r.status = 'cancelled') AS cancelled
      FROM {Chunk._meta.db_table} AS c
      LEFT JOIN inference_inferencerequest AS r ON r.id = c.request_id
     WHERE c.document_id = ANY(%s)
     GROUP BY c.document_id
"""


def documents_progress(documents: list[Document]) -> dict[int, Progress]:
    """Each document's state, from its chunks and their requests: ``failed`` (with the
    request's error) once a chunk cannot get a vector; ``indexed`` once every chunk has one;
    ``indexing`` while some are done or running; else ``queued``."""
    with connection.cursor() as cursor:
        cursor.execute(_PROGRESS, [[d.pk for d in documents]])
        rows = {row[0]: row[1:] for row in cursor.fetchall()}
    progress = {}
    for document in documents:
        total, done, waiting, lost, started, error, cancelled = rows.get(
            document.pk, (0, 0, 0, 0, 0, None, False)
        )
        if lost:
            reason = error or ("its indexing was cancelled." if cancelled else "its indexing request is gone.")
            progress[document.pk] = Progress(DocumentState.FAILED, done, total, reason)
        elif not waiting:
            progress[document.pk] = Progress(DocumentState.INDEXED, total, total, "")
        elif started or done:
            progress[document.pk] = Progress(DocumentState.INDEXING, done, total, "")
        else:
            progress[document.pk] = Progress(DocumentState.QUEUED, done, total, "")
    return progress


@dataclass(frozen=True)
class Hit:
    chunk_id: int
    document_id: int
    document_title: str
    collection_id: int
    start: int
    end: int
    text: str
    score: float


def _vector(query: np.ndarray) -> str:
    return "[" + ",".join(repr(float(x)) for x in query) + "]"


def search_sql(*, everyone: bool, exact: bool) -> str:
    """The ``%(k)s`` chunks nearest ``%(q)s`` in scope, best first.

    Approximate (``exact=False``): the ``%(candidates)s`` nearest chunks of all come from the
    HNSW index (a plain ``ORDER BY embedding <=> q LIMIT n``, the shape the index serves), and
    the scope (owner, collections) filters them; pgvector 0.6 filters after the index scan
    anyway, and keeping the filter out of the inner query keeps the planner on the index.
    Exact: the scope first, then every chunk in it compared (an ORDER BY the index cannot
    serve), for when the candidates held fewer than k of the caller's chunks."""
    scope = "TRUE" if everyone else (
        "c.collection_id IN (SELECT id FROM search_collection WHERE owner_id = %(owner)s)"
    )
    scope += " AND (%(collections)s::bigint[] IS NULL OR c.collection_id = ANY(%(collections)s))"
    distance = "c.embedding <=> %(q)s::vector(384)"
    if exact:
        nearest = f"""SELECT c.*, {distance} AS distance FROM search_chunk AS c
                       WHERE c.embedding IS NOT NULL AND {scope}
                       ORDER BY ({distance}) + 0 LIMIT %(k)s"""
    else:
        nearest = f"""SELECT c.*, n.distance
                        FROM (SELECT c.id, {distance} AS distance FROM search_chunk AS c
                               ORDER BY {distance} LIMIT %(candidates)s) AS n
                        JOIN search_chunk AS c ON c.id = n.id
                       WHERE n.distance IS NOT NULL AND {scope}
                       ORDER BY n.distance LIMIT %(k)s"""
    return f"""
        SELECT n.id, n.document_id, d.title, n.collection_id, n.start, n."end", n.text, 1 - n.distance
          FROM ({nearest}) AS n
          JOIN search_document AS d ON d.id = n.document_id
         ORDER BY n.distance
    """


def chunks_nearest(
    *, user: Any, query: np.ndarray, k: int, collection_ids: list[int] | None = None,
    everyone: bool = False,
) -> list[Hit]:
    """The ``k`` chunks nearest ``query`` (a unit vector) among ``user``'s collections (those of
    ``collection_ids``, if given), best first. ``everyone``: all users' (staff only).

    The HNSW index gives ``EF_SEARCH`` candidates and the owner filter is applied to them; when
    that leaves fewer than ``k`` (the user's chunks are a small part of all), an exact scan of
    the user's chunks answers instead, so a filter never hides a result."""
    if everyone and not user.is_staff:
        raise PermissionDenied("only staff may search everyone's collections.")
    candidates = max(EF_SEARCH, k)
    params = {
        "q": _vector(query), "k": k, "candidates": candidates, "owner": user.pk,
        "collections": collection_ids,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL hnsw.ef_search = {candidates}")
        cursor.execute(search_sql(everyone=everyone, exact=False), params)
        rows = cursor.fetchall()
        if len(rows) < k:
            cursor.execute(search_sql(everyone=everyone, exact=True), params)
            rows = cursor.fetchall()
    return [Hit(*row) for row in rows]
