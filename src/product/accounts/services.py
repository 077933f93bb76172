"""Accounts' writes: API tokens (issue one, the secret shown once; rename; revoke; resolve a
presented one to its user) and the record of failed sign-ins that throttles guessing.

Times that are compared with each other (expiry, last use, failures' ages) are PostgreSQL's
``now()``, never the web's clock.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import DEFERRED
from django.db.models.functions import Now

from product.accounts.models import ApiToken, SignInFailure

TOKEN_PREFIX = "gq_"
# Writing last_used_at on every call would turn each API read into a write.
_LAST_USED_RESOLUTION = timedelta(minutes=5)


class TokenRejected(Exception):
    """A presented API token that does not authenticate; the message says why (unknown,
    expired or revoked), for the API's 401."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_create(*, user: Any, name: str, expires_in_days: int | None = None) -> tuple[ApiToken, str]:
    """Create a token, valid for ``expires_in_days`` days (None: until revoked); returns it
    and its secret, which is not stored and cannot be shown again."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, digest=_digest(secret), prefix=secret[:10],
        expires_at=None if expires_in_days is None else Now() + timedelta(days=expires_in_days),
    )
    if expires_in_days is not None:
        token.refresh_from_db(fields=["expires_at"])
    return token, secret


def token_rename(*, token: ApiToken, name: str) -> ApiToken:
    """Give ``token`` another name (what it is for)."""
    token.name = name
    token.save(update_fields=["name"])
    return token


def token_revoke(*, token: ApiToken) -> ApiToken:
    """Revoke ``token`` for good: from now on the API refuses it. Revoking twice keeps the
    first time."""
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=Now())
    token.refresh_from_db(fields=["revoked_at"])
    return token


# Every API call resolves its token: one statement, written out because the ORM spends longer
# compiling this query (a join and two comparisons on the database's clock) than PostgreSQL
# spends running it, and read with a plain cursor (a raw queryset's machinery cost as much again).
_TOKEN_USER = """
SELECT {user_columns}, tokens.id, tokens.revoked_at IS NOT NULL,
       COALESCE(tokens.expires_at <= now(), false),
       COALESCE(tokens.last_used_at > now() - make_interval(secs => %s), false)
  FROM {tokens} AS tokens
  JOIN {users} AS users ON users.id = tokens.user_id
 WHERE tokens.digest = %s AND users.is_active
"""


def token_user(secret: str) -> Any:
    """The active user a presented secret belongs to. Raises TokenRejected when the secret is
    unknown (or its user inactive), expired or revoked."""
    query, users, positions = _token_user_query()
    with connection.cursor() as cursor:
        cursor.execute(query, [_LAST_USED_RESOLUTION.total_seconds(), _digest(secret)])
        row = cursor.fetchone()
    if row is None:
        raise TokenRejected("the API token is not valid.")
    *user_values, token_id, revoked, expired, used_recently = row
    if revoked:
        raise TokenRejected("the API token was revoked.")
    if expired:
        raise TokenRejected("the API token has expired.")
    if not used_recently:
        ApiToken.objects.filter(pk=token_id).update(last_used_at=Now())
    # What Model.from_db does with some fields read, the positions worked out once.
    values = [DEFERRED] * len(users._meta.concrete_fields)
    for position, value in zip(positions, user_values):
        values[position] = value
    user = users(*values)
    user._state.adding, user._state.db = False, connection.alias
    return user


# What an API call needs of its caller: who they are and what they may see. The user's other
# fields (password hash, names, dates: converting the two timestamps alone cost as much as the
# rest of the row) stay deferred and load if something reads them.
_CALLER_FIELDS = ("is_active", "is_staff", "is_superuser")


@functools.cache
def _token_user_query() -> tuple[str, type, list[int]]:
    """``_TOKEN_USER`` for the user model, the model, and the positions among its concrete
    fields of the fields the query reads (in the order it reads them)."""
    users = get_user_model()
    opts = users._meta
    names = {opts.pk.name, users.USERNAME_FIELD, *_CALLER_FIELDS}
    positions = [n for n, field in enumerate(opts.concrete_fields) if field.name in names]
    columns = [opts.concrete_fields[n].column for n in positions]
    query = _TOKEN_USER.format(
        user_columns=", ".join(f"users.{connection.ops.quote_name(c)}" for c in columns),
        tokens=ApiToken._meta.db_table, users=opts.db_table,
    )
    return query, users, positions


# --- Sign-in throttling ----------------------------------------------------------------------


def signin_failure_record(*, username: str, address: str) -> None:
    """Count one failed sign-in, and forget failures that have left the window."""
    window = timedelta(seconds=settings.SIGNIN_FAILURE_WINDOW)
    SignInFailure.objects.filter(at__lt=Now() - window).delete()
    SignInFailure.objects.create(username=username, address=address)


def signin_failures_clear(*, username: str) -> None:
    """A successful sign-in: the user name's failures no longer count (its address's do)."""
    SignInFailure.objects.filter(username=username).delete()
