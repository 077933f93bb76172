"""Admission of submits against a user's limits.

``submit_admit`` runs inside the submit's transaction, before anything is created. It takes a
token from the user's bucket with one conditional UPDATE of their quota row, which also locks
that row: a user's concurrent submits take turns from there to their commit. The same statement
counts the user's queued texts, in its RETURNING, by calling ``quota_queued_texts`` (migration
0002): a VOLATILE function's query takes a snapshot of its own, after the lock is held, so the
count already includes the texts of the submits that committed while this one waited, as a
second statement's would. Over a limit it raises ``LimitExceeded``; the caller's rollback then
returns the token too, so a refused submit costs nothing. Every time comes from PostgreSQL's
clock.

An admitted submit also gets the id its request will have, drawn from the request table's
sequence by that statement: its job can then be deferred before the row is written, and the row
written once, with its job, instead of written and updated. One round trip in all, where it took
two, and a row version fewer per submit.
"""

from __future__ import annotations

import math
from typing import Any

from django.db import connection

from product.quotas.selectors import (
    QUOTA_TABLE,
    REQUEST_TABLE,
    default_limits,
    refilled_tokens_sql,
)

# Seconds a client over its queued-texts limit is asked to wait: how soon texts finish depends
# on the runners and on everyone else's work, so this is a short, fixed re-try interval.
QUEUED_TEXTS_RETRY_AFTER = 5


class LimitExceeded(Exception):
    """A submit over one of the user's limits; nothing was created.

    ``limit`` names the limit (``submits_per_minute`` or ``max_queued_texts``); ``retry_after``
    is the seconds after which the same submit may pass, or None when waiting cannot help
    (the request alone is over the limit, or the limit is zero)."""

    def __init__(self, *, limit: str, message: str, retry_after: int | None) -> None:
        super().__init__(message)
        self.limit, self.message, self.retry_after = limit, message, retry_after

    @property
    def code(self) -> str:
        return "rate_limited" if self.limit == "submits_per_minute" else "quota_exceeded"


_TAKE_TOKEN = f"""
UPDATE {QUOTA_TABLE} AS q
   SET bucket_tokens = {refilled_tokens_sql()} - 1, bucket_updated_at = clock_timestamp()
 WHERE q.user_id = %(user)s AND {refilled_tokens_sql()} >= 1
RETURNING COALESCE(q.max_queued_texts, %(max_queued_texts)s), quota_queued_texts(q.user_id),
          nextval(pg_get_serial_sequence('{REQUEST_TABLE}', 'id'))
"""
_CREATE_ROW = f"INSERT INTO {QUOTA_TABLE} (user_id) VALUES (%(user)s) ON CONFLICT DO NOTHING"
_LOCK_ROW = (
    f"INSERT INTO {QUOTA_TABLE} (user_id) VALUES (%(user)s) "
    "ON CONFLICT (user_id) DO UPDATE SET user_id = EXCLUDED.user_id"
)
_BUCKET = f"""
SELECT {refilled_tokens_sql()}, COALESCE(q.submits_per_minute, %(submits_per_minute)s),
       COALESCE(q.submit_burst, %(submit_burst)s)
  FROM {QUOTA_TABLE} AS q WHERE q.user_id = %(user)s
"""


def quota_lock(*, user: Any) -> None:
    """Lock ``user``'s quota row (creating it on first use) until the transaction ends, so
    that whatever the caller reads next no concurrent submit of theirs can change."""
    _require_transaction()
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_ROW, {"user": user.pk})


def submit_admit(*, user: Any, texts: int) -> int:
    """Admit one submit of ``texts`` texts by ``user`` and return the id reserved for its
    request, or raise ``LimitExceeded``.

    Call it in the submit's transaction before creating anything: it takes a token from the
    user's bucket and holds their quota row locked until the commit."""
    _require_transaction()
    params = {**default_limits(), "user": user.pk}
    with connection.cursor() as cursor:
        taken = _take_token(cursor, params)
        if taken is None:
            cursor.execute(_CREATE_ROW, params)  # First submit ever: a full bucket.
            taken = _take_token(cursor, params)
        if taken is None:
            raise _rate_limited(cursor, params)
        max_queued, queued, request_id = taken
        if texts > max_queued:
            raise LimitExceeded(
                limit="max_queued_texts", retry_after=None,
                message=(
                    f"quota exceeded: this request has {texts} texts, more than the "
                    f"{max_queued} texts you may have queued at once (max_queued_texts); "
                    "split it into smaller requests."
                ),
            )
        if queued + texts > max_queued:
            raise LimitExceeded(
                limit="max_queued_texts", retry_after=QUEUED_TEXTS_RETRY_AFTER,
                message=(
                    f"quota exceeded: you may have at most {max_queued} texts queued or "
                    f"running (max_queued_texts); you have {queued} and this request adds "
                    f"{texts}. Try again when some have finished."
                ),
            )
    return request_id


def _take_token(cursor, params: dict) -> tuple[int, int, int] | None:
    """(the user's queued-texts limit, their queued texts, a request id) if a token was taken;
    None if the bucket is empty or the user has no quota row yet."""
    cursor.execute(_TAKE_TOKEN, params)
    return cursor.fetchone()


def _rate_limited(cursor, params: dict) -> LimitExceeded:
    cursor.execute(_BUCKET, params)
    tokens, rate, burst = cursor.fetchone()
    limits = f"{rate} submits per minute, bursts of {burst} (submits_per_minute)"
    if rate <= 0 or burst < 1:
        return LimitExceeded(
            limit="submits_per_minute", retry_after=None,
            message=f"rate limit: your account may not submit ({limits}); ask an operator.",
        )
    retry_after = max(1, math.ceil((1 - tokens) * 60 / rate))
    return LimitExceeded(
        limit="submits_per_minute", retry_after=retry_after,
        message=f"rate limit: at most {limits}. Try again in {retry_after} s.",
    )


def _require_transaction() -> None:
    if not connection.in_atomic_block:
        raise RuntimeError("call this inside the submit's transaction (transaction.atomic)")
