from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Now


class ApiToken(models.Model):
    """A bearer token for the JSON API. Only its SHA-256 digest is stored."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="What the token is for.")
    digest = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12, help_text="First characters, to recognise it.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="From then on the token is refused (empty: never)."
    )
    revoked_at = models.DateTimeField(
        null=True, blank=True, help_text="When its owner or an administrator revoked it."
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…) for {self.user}"


class SignInFailure(models.Model):
    """One failed sign-in, counted to throttle guessing (product.accounts.selectors.signin_wait).

    Rows older than SIGNIN_FAILURE_WINDOW are deleted as new failures come in; a successful
    sign-in deletes its user name's rows. ``at`` is PostgreSQL's clock, as every comparison."""

    username = models.CharField(max_length=150)
    address = models.CharField(max_length=64, blank=True, help_text="The client's address.")
    at = models.DateTimeField(db_default=Now())

    class Meta:
        indexes = [
            models.Index(fields=["username", "at"], name="signinfailure_username_at"),
            models.Index(fields=["address", "at"], name="signinfailure_address_at"),
            models.Index(fields=["at"], name="signinfailure_at"),
        ]

    def __str__(self) -> str:
        return f"{self.username} from {self.address or '?'} at {self.at}"
