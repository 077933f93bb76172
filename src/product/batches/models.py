"""Batch jobs from files: a file of texts, split into parts that run as ordinary requests.

A ``Batch`` is one uploaded file. Its texts are stored as ``BatchPart`` rows of at most a
model's ``max_texts`` texts each (whole lines only), in input order, written as the upload is
read. A part becomes an ``InferenceRequest`` (bulk priority) when the feeder queues it; its texts
then live in that request's ``inputs`` and its results in the request's embedding rows. Lines
that could not be read are ``BatchLineError`` rows (the first ``BATCH_MAX_LINE_ERRORS``).
Writes go through ``services``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Now

from product.inference.models import InferenceRequest


class BatchStatus(models.TextChoices):
    RUNNING = "running", "Running"  # Parts wait to be queued, are queued or are running.
    COMPLETED = "completed", "Completed"  # Every part ended (succeeded or failed).
    CANCELLED = "cancelled", "Cancelled"


class Batch(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="batches"
    )
    model = models.CharField(max_length=100)
    filename = models.CharField(max_length=255, blank=True)
    status = models.CharField(
        max_length=16, choices=BatchStatus.choices, default=BatchStatus.RUNNING
    )
    line_count = models.PositiveIntegerField(help_text="Lines read, blank and bad ones included.")
    request_count = models.PositiveIntegerField(help_text="Lines with texts (output lines).")
    text_count = models.PositiveIntegerField(help_text="Texts to embed (rows of the .npy).")
    bad_line_count = models.PositiveIntegerField(default=0)
    part_count = models.PositiveIntegerField()
    parts_fed = models.PositiveIntegerField(
        default=0, help_text="Parts queued so far (as requests); the next to queue has this index."
    )
    created_at = models.DateTimeField(db_default=Now())
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "batches"
        indexes = [
            models.Index(fields=["owner", "-id"], name="batch_owner_recent"),
            models.Index(
                fields=["id"], name="batch_running", condition=models.Q(status="running")
            ),
        ]

    def __str__(self) -> str:
        return f"batch {self.pk} ({self.model}, {self.status})"


class BatchPart(models.Model):
    """Up to ``max_texts`` texts of whole lines of a batch: ``lines`` holds each line's
    ``[line number, custom_id, number of texts]``; texts ``text_start`` … of the batch."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="parts")
    index = models.PositiveIntegerField()
    text_start = models.PositiveIntegerField()
    text_count = models.PositiveIntegerField()
    lines = models.JSONField()
    texts = models.JSONField(null=True, help_text="Until queued; then the request's inputs.")
    # ON DELETE SET NULL in PostgreSQL itself (migration 0001), so pruning requests with a raw
    # DELETE (retention) leaves the part, without results.
    request = models.OneToOneField(
        InferenceRequest, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="batch_part",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["batch", "index"], name="batch_part_index")
        ]

    def __str__(self) -> str:
        return f"part {self.index} of batch {self.batch_id}"


class BatchLineError(models.Model):
    """A line of the file that was not read, and why."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="line_errors")
    line = models.PositiveIntegerField()
    message = models.TextField()

    class Meta:
        ordering = ["line"]
        indexes = [models.Index(fields=["batch", "line"], name="batch_line_error")]

    def __str__(self) -> str:
        return f"line {self.line} of batch {self.batch_id}: {self.message}"
