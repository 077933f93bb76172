"""Per-user limits on what one user may queue and how often they may submit."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class UserQuota(models.Model):
    """A user's limits and submit token bucket.

    An empty limit means the global default from the environment (INFERENCE_MAX_QUEUED_TEXTS,
    INFERENCE_SUBMITS_PER_MINUTE, INFERENCE_SUBMIT_BURST); an operator sets a number in the
    admin to raise or lower one user's. The row is created on a user's first submit; the bucket
    columns are written only by ``services.submit_admit``, with PostgreSQL's clock.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quota",
        primary_key=True,
    )
    max_queued_texts = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Texts of queued and running requests this user may have at once "
        "(empty: the default).",
    )
    submits_per_minute = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Submits per minute this user's bucket refills by (empty: the default).",
    )
    submit_burst = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Submits this user may make at once after a quiet spell: the bucket's size "
        "(empty: the default).",
    )
    # Tokens left when the bucket was last written; NULL means a full bucket (never used).
    bucket_tokens = models.FloatField(null=True, blank=True)
    bucket_updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "user quota"

    def __str__(self) -> str:
        return f"quota of {self.user}"
