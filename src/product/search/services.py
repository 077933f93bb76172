"""Every write to collections, documents and chunks.

Indexing goes through the inference queue like any other work: a document's chunks are
submitted as bulk requests of up to ``REQUEST_TEXTS`` texts (``inference.services``), so the
runners, fair turns and limits apply unchanged. When a request has succeeded its vectors are in
``inference_embedding``; ``chunks_collect`` copies them into the chunks' indexed column with
one INSERT…SELECT-like UPDATE in PostgreSQL. It is run by the web before it shows or searches a
collection: nothing to lose on a crash (it is idempotent and reads only committed rows), and
no hook in the runner's store path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction

from product.inference import services as inference
from product.inference.models import ACTIVE_STATUSES, InferenceRequest, RequestPriority
from product.search.chunking import chunk_text
from product.search.models import EMBEDDING_MODEL, Chunk, Collection, Document

#: Texts per inference request (the model's most per request).
REQUEST_TEXTS = 256


@dataclass(frozen=True)
class NewDocument:
    title: str
    kind: str
    text: str


def collection_create(*, user: Any, name: str) -> Collection:
    return Collection.objects.create(owner=user, name=name.strip()[:200] or "Untitled")


def documents_add(*, collection: Collection, documents: Iterable[NewDocument]) -> list[Document]:
    """Add ``documents`` to ``collection``, chunked, with their indexing requests queued; all or
    nothing: over a limit (``quotas.LimitExceeded``) no document, chunk or request is kept."""
    with transaction.atomic():
        return [_document_add(collection, new) for new in documents]


def _document_add(collection: Collection, new: NewDocument) -> Document:
    pieces = chunk_text(new.text)
    document = Document.objects.create(
        collection=collection, title=new.title[:300], kind=new.kind, text=new.text,
        chunk_count=len(pieces),
    )
    chunks = []
    for first in range(0, len(pieces), REQUEST_TEXTS):
        group = pieces[first:first + REQUEST_TEXTS]
        request = inference.request_submit(
            user=collection.owner, model=EMBEDDING_MODEL, raw_input=[p.text for p in group],
            priority=RequestPriority.BULK,
        )
        chunks += [
            Chunk(
                document=document, collection=collection, position=first + i, start=p.start,
                end=p.end, text=p.text, request_id=request.pk, request_position=i,
            )
            for i, p in enumerate(group)
        ]
    Chunk.objects.bulk_create(chunks)
    return document


def _cancel_waiting(request_ids: Iterable[int]) -> None:
    for request in InferenceRequest.objects.filter(pk__in=set(request_ids), status__in=ACTIVE_STATUSES):
        try:
            inference.request_cancel(request=request)
        except inference.RequestStateError:
            pass  # It finished meanwhile: nothing waits any more.


def document_delete(*, document: Document) -> None:
    """Delete ``document`` and its chunks, and cancel its indexing requests still waiting."""
    _cancel_waiting(document.chunks.exclude(request_id=None).values_list("request_id", flat=True))
    document.delete()


def collection_delete(*, collection: Collection) -> None:
    """Delete ``collection``, its documents and chunks; cancel their waiting requests."""
    _cancel_waiting(
        Chunk.objects.filter(collection=collection).exclude(request_id=None)
        .values_list("request_id", flat=True)
    )
    collection.delete()


def chunks_collect(*, collection_ids: Iterable[int] | None) -> int:
    """Copy the vectors of succeeded indexing requests into their chunks (of the collections
    ``collection_ids``; None: all); the number of chunks that got one. Idempotent."""
    ids = None if collection_ids is None else list(collection_ids)
    where = "" if ids is None else "AND c.collection_id = ANY(%(ids)s)"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {Chunk._meta.db_table} AS c SET embedding = e.embedding::vector(384)
              FROM inference_embedding AS e
             WHERE c.embedding IS NULL {where}
               AND e.request_id = c.request_id AND e.position = c.request_position
            """,
            {"ids": ids},
        )
        return cursor.rowcount
