"""Accounts' reads: a user's API tokens, and whether sign-in is throttled."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import BooleanField, DurationField, ExpressionWrapper, F, Q, QuerySet
from django.db.models.functions import Now

from product.accounts.models import ApiToken, SignInFailure


def tokens_of(*, user: Any) -> QuerySet[ApiToken]:
    """``user``'s own API tokens, newest first (revoked and expired ones included, with
    ``expired`` by the database's clock)."""
    return (
        ApiToken.objects.filter(user=user)
        .annotate(expired=ExpressionWrapper(Q(expires_at__lte=Now()), output_field=BooleanField()))
        .order_by("-created_at", "-pk")
    )


def token_of(*, user: Any, token_id: int) -> ApiToken:
    """One of ``user``'s own tokens; raises ApiToken.DoesNotExist for anyone else's (the same
    answer as for a missing id)."""
    return tokens_of(user=user).get(pk=token_id)


def signin_wait(*, username: str, address: str) -> int:
    """Seconds to wait before this user name may try to sign in from this address again: 0
    below SIGNIN_MAX_FAILURES failures of the name and SIGNIN_MAX_FAILURES_PER_ADDRESS of the
    address within the last SIGNIN_FAILURE_WINDOW seconds; otherwise until enough of them
    have left the window."""
    window = timedelta(seconds=settings.SIGNIN_FAILURE_WINDOW)
    wait = 0.0
    limits = [(SignInFailure.objects.filter(username=username), settings.SIGNIN_MAX_FAILURES)]
    if address:  # Unknown addresses are not one client.
        limits.append(
            (SignInFailure.objects.filter(address=address), settings.SIGNIN_MAX_FAILURES_PER_ADDRESS)
        )
    for failures, allowed in limits:
        # When the allowed-th newest failure leaves the window, fewer than allowed remain.
        left = (
            failures.filter(at__gt=Now() - window)
            .annotate(left=ExpressionWrapper(F("at") + window - Now(), output_field=DurationField()))
            .order_by("-at")
            .values_list("left", flat=True)[allowed - 1:allowed]
        )
        for remaining in left:
            wait = max(wait, remaining.total_seconds())
    return math.ceil(wait) if wait > 0 else 0
