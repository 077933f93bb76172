"""API tokens: issue one (the secret is shown once) and resolve a presented one to its user."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.utils import timezone

from product.accounts.models import ApiToken

TOKEN_PREFIX = "gq_"
# Writing last_used_at on every call would turn each API read into a write.
_LAST_USED_RESOLUTION = timedelta(minutes=5)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_create(*, user: Any, name: str) -> tuple[ApiToken, str]:
    """Create a token; returns it and its secret, which is not stored and cannot be shown again."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, digest=_digest(secret), prefix=secret[:10]
    )
    return token, secret


def token_user(secret: str) -> Any | None:
    """The active user a presented secret belongs to, or None."""
    token = (
        ApiToken.objects.select_related("user")
        .filter(digest=_digest(secret), user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > _LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user
