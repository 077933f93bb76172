from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Func, Value
from django.db.models.functions import Now
from pgvector.django import VectorField


def normalised_error(error) -> Func:
    """``error`` with its hex values and then its numbers blanked, so failures that differ only
    in an index, a size or an address are one group."""
    hexes = Func(error, Value("0x[0-9a-fA-F]+"), Value("0x…"), Value("g"), function="regexp_replace")
    return Func(hexes, Value("[0-9]+"), Value("N"), Value("g"), function="regexp_replace")


class RequestStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class RequestPriority(models.TextChoices):
    """Which class of work a request is: interactive work always goes before bulk work."""

    INTERACTIVE = "interactive", "Interactive"
    BULK = "bulk", "Bulk"


ACTIVE_STATUSES = (RequestStatus.QUEUED, RequestStatus.RUNNING)
FINAL_STATUSES = (RequestStatus.SUCCEEDED, RequestStatus.FAILED, RequestStatus.CANCELLED)


class InferenceRequest(models.Model):
    """One unit of work a user asked for, and its outcome.

    The row exists before the HTTP response returns; ``job_id`` names the Procrastinate job that
    runs it now (a requeue points it at a fresh job). Writes go through ``services``.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="inference_requests"
    )
    model = models.CharField(max_length=100)
    inputs = models.JSONField(help_text="The validated list of input texts.")
    item_count = models.PositiveIntegerField()
    items_done = models.PositiveIntegerField(
        default=0, help_text="Inputs the runner has finished so far (progress of bulk requests)."
    )
    status = models.CharField(
        max_length=16, choices=RequestStatus.choices, default=RequestStatus.QUEUED
    )
    priority = models.CharField(
        max_length=16, choices=RequestPriority.choices, default=RequestPriority.INTERACTIVE,
        help_text="Interactive work runs before bulk work; within each, users take turns.",
    )
    job_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Times a runner started it.")
    output = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    traceback = models.TextField(
        blank=True, help_text="Where an unexpected failure came from (shown to staff only)."
    )
    # Every timestamp a duration is computed from comes from PostgreSQL's clock (now()), so a
    # web process whose clock drifts can never make a queue time negative.
    created_at = models.DateTimeField(db_default=Now())
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    compute_ms = models.FloatField(
        null=True, blank=True, help_text="Time spent in the model's forward passes."
    )
    input_tokens = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Tokens of all its inputs as the model counted them (written with the result).",
    )
    # The error with its numbers and hex values blanked ("input[N] has N characters"), kept by
    # PostgreSQL as the error is written: failures are grouped by it (the operations page).
    error_key = models.GeneratedField(
        expression=normalised_error(F("error")), output_field=models.TextField(), db_persist=True
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="request_owner_recent"),
            models.Index(fields=["status", "model", "created_at"], name="request_status_model"),
            # Throughput (queue_status, /metrics, the operations page's charts) and pruning look
            # at recent or old finishes; the charts' columns are included, for index-only scans.
            models.Index(
                fields=["finished_at"], name="request_finished",
                condition=models.Q(finished_at__isnull=False),
                include=["status", "item_count", "created_at", "started_at"],
            ),
            # Failures grouped by model and normalised error, read from the index alone.
            models.Index(
                fields=["model", "error_key", "finished_at"], name="request_failure_groups",
                condition=models.Q(status="failed"),
            ),
        ]

    def __str__(self) -> str:
        return f"request {self.pk} ({self.model}, {self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def queue_ms(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.started_at - self.created_at).total_seconds() * 1000

    @property
    def run_ms(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds() * 1000

    @property
    def total_ms(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.created_at).total_seconds() * 1000


class IdempotencyKey(models.Model):
    """An ``Idempotency-Key`` a user sent with a submit: the same key and body return the
    request it created instead of creating another. Kept at least INFERENCE_IDEMPOTENCY_TTL."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="idempotency_keys"
    )
    key = models.CharField(max_length=255)
    body_digest = models.CharField(max_length=64, help_text="SHA-256 of the submitted body.")
    request = models.ForeignKey(InferenceRequest, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "key"], name="idempotency_key_per_owner")
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_key_created")]

    def __str__(self) -> str:
        return f"idempotency key {self.key!r} of {self.owner_id} -> request {self.request_id}"


class InferenceEmbedding(models.Model):
    """One embedding of a succeeded request: row ``position`` holds the vector of input
    ``position``. Written and read only by ``product.inference.results``.

    Why this layout: one pgvector row per text is written by binary COPY, its float32 values
    copied as they are (384 dimensions: ~10 µs of PostgreSQL CPU and 1.7 KB of WAL per text,
    against ~310 µs and 5 KB for the same result as JSON text, bench/result_writes.py); at
    1.6 KB a row stays inline in its page (under the 2 KB TOAST threshold); and the rows can
    take a vector index for similarity search later. The primary key (request, position) is the one index:
    it serves reading a request's vectors in order, deleting them, and refusing a second copy
    of any row. ``vector`` has no fixed dimension, so models of other sizes share the table.
    ``vector`` (float32), not ``halfvec``: the API returns float32, and clients get exactly what
    the model computed; halfvec would halve the bytes and cost about three significant digits
    (and needs pgvector 0.7; the embedded server has 0.6.2). Rows of a request go with it: the
    foreign key cascades in PostgreSQL itself (migration 0006), so a raw DELETE of requests
    (retention) takes them too. Its check costs ~3 µs per copied row here, about a third of the
    write; that buys that no row can outlive, or be written without, its request."""

    pk = models.CompositePrimaryKey("request_id", "position")
    request = models.ForeignKey(
        InferenceRequest, on_delete=models.CASCADE, related_name="embeddings"
    )
    position = models.PositiveIntegerField(help_text="Which input of the request, from 0.")
    embedding = VectorField()

    class Meta:
        db_table = "inference_embedding"

    def __str__(self) -> str:
        return f"embedding {self.position} of request {self.request_id}"
