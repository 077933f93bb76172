from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Now
from pgvector.django import HnswIndex, VectorField

#: The model that embeds chunks and queries, and its vectors' size (fixed for the index).
EMBEDDING_MODEL = "all-minilm-l6-v2"
DIMENSIONS = 384


class Collection(models.Model):
    """A user's set of documents, searched together."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="search_collections"
    )
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="collection_owner_recent")]

    def __str__(self) -> str:
        return self.name


class DocumentState(models.TextChoices):
    QUEUED = "queued", "Queued"
    INDEXING = "indexing", "Indexing"
    INDEXED = "indexed", "Indexed"
    FAILED = "failed", "Failed"


class Document(models.Model):
    """A text in a collection (pasted or uploaded); searched through its chunks.

    Its state is not stored: it follows from its chunks' inference requests
    (``selectors.document_progress``), so it can never disagree with them."""

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="documents")
    title = models.CharField(max_length=300)
    kind = models.CharField(max_length=16, help_text="Where the text came from: .txt, .md, .html or pasted.")
    text = models.TextField()
    chunk_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.title


class Chunk(models.Model):
    """A passage of a document, ``document.text[start:end]``, and its embedding once indexed.

    ``request_id``/``request_position`` say which inference request embeds it and where in its
    inputs: a plain number, not a foreign key, so pruning old requests (a raw DELETE) never
    trips on chunks; the vector is copied here once the request succeeds (``services``)."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveIntegerField()
    start = models.PositiveIntegerField()
    end = models.PositiveIntegerField()
    text = models.TextField()
    request_id = models.BigIntegerField(null=True)
    request_position = models.PositiveIntegerField(null=True)
    embedding = VectorField(dimensions=DIMENSIONS, null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["document", "position"], name="chunk_position_once")
        ]
        indexes = [
            # Nearest chunks by cosine distance: ORDER BY embedding <=> query LIMIT k.
            HnswIndex(
                name="chunk_embedding_hnsw", fields=["embedding"], m=16, ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            models.Index(fields=["collection"], name="chunk_collection"),
            # Chunks still waiting for their vector, by request: what indexing copies.
            models.Index(
                fields=["request_id"], name="chunk_unindexed",
                condition=models.Q(embedding__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"chunk {self.position} of document {self.document_id}"
