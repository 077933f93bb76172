"""Admission of submits against a user's limits.

``submit_admit`` admits a submit and creates what it is for in one statement: a conditional
UPDATE of the user's quota row takes a token from their bucket only if the user has one, the
request alone fits their queued-texts limit, and their queued texts plus its own do too; the
caller's SQL, in the same statement, then writes the request (and its job) for the row the
UPDATE gave. One statement is one transaction: a refused submit changes nothing (no token is
taken), an admitted one is written whole or not at all, with no BEGIN or COMMIT round trip.

The UPDATE locks the quota row, so a user's concurrent submits take turns. The queued texts are
counted by ``quota_queued_texts`` (migration 0002): a VOLATILE function's query takes a
snapshot of its own when it is called, and when the row was changed by a submit that committed
after this statement began (one that held the lock meanwhile), PostgreSQL re-checks the
condition on the new row, calling the function again: the count then includes that submit's
texts, as a statement after the lock would. A refused submit reads why in a second statement
(rate, size, or queued texts, with the numbers), so refusals cost a round trip more. Every time
comes from PostgreSQL's clock.

The UPDATE also reserves the id the request will have (``nextval`` of its table's sequence), so
its job can be deferred before the row is written, and the row written once, with its job.
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


_ADMIT = f"""
WITH admitted AS (
    UPDATE {QUOTA_TABLE} AS q
       SET bucket_tokens = {refilled_tokens_sql()} - 1, bucket_updated_at = clock_timestamp()
     WHERE q.user_id = %(user)s AND {refilled_tokens_sql()} >= 1
       AND %(texts)s + quota_queued_texts(q.user_id)
           <= COALESCE(q.max_queued_texts, %(max_queued_texts)s)
    RETURNING nextval(pg_get_serial_sequence('{REQUEST_TABLE}', 'id')) AS id
)
"""
# The same without a token from the bucket (a batch's parts: the upload was the submit). The
# UPDATE changes nothing but still locks the row, so the queued texts are counted as exactly.
_ADMIT_UNMETERED = f"""
WITH admitted AS (
    UPDATE {QUOTA_TABLE} AS q SET user_id = q.user_id
     WHERE q.user_id = %(user)s
       AND %(texts)s + quota_queued_texts(q.user_id)
           <= COALESCE(q.max_queued_texts, %(max_queued_texts)s)
    RETURNING nextval(pg_get_serial_sequence('{REQUEST_TABLE}', 'id')) AS id
)
"""
_CREATE_ROW = f"INSERT INTO {QUOTA_TABLE} (user_id) VALUES (%(user)s) ON CONFLICT DO NOTHING"
_LOCK_ROW = (
    f"INSERT INTO {QUOTA_TABLE} (user_id) VALUES (%(user)s) "
    "ON CONFLICT (user_id) DO UPDATE SET user_id = EXCLUDED.user_id"
)
# Why a submit was refused: its user's bucket and limits, and queued texts, now.
_STANDING = f"""
SELECT {refilled_tokens_sql()}, COALESCE(q.submits_per_minute, %(submits_per_minute)s),
       COALESCE(q.submit_burst, %(submit_burst)s),
       COALESCE(q.max_queued_texts, %(max_queued_texts)s), quota_queued_texts(q.user_id)
  FROM {QUOTA_TABLE} AS q WHERE q.user_id = %(user)s
"""


def quota_lock(*, user: Any) -> None:
    """Lock ``user``'s quota row (creating it on first use) until the transaction ends, so
    that whatever the caller reads next no concurrent submit of theirs can change."""
    _require_transaction()
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_ROW, {"user": user.pk})


def submit_admit(
    *, user: Any, texts: int, then: str, params: dict, metered: bool = True
) -> list[tuple]:
    """Admit one submit of ``texts`` texts by ``user`` and run ``then`` in the same statement;
    return its rows, or raise ``LimitExceeded`` (and nothing was written).

    ``then`` is the rest of a statement that begins ``WITH admitted AS (...)``: one row with the
    ``id`` reserved for the request when the submit is admitted, none when it is refused. It
    goes on with more CTEs (``, created AS (INSERT ...)``) and ends with a SELECT that gives at
    least one row when ``admitted`` has one. ``params`` are its parameters; ``user``, ``texts``
    and the limits' names are taken. Not ``metered``: no token is taken from the submit bucket
    (only the queued-texts limit applies)."""
    params = {**params, **default_limits(), "user": user.pk, "texts": texts}
    admit = _ADMIT if metered else _ADMIT_UNMETERED
    with connection.cursor() as cursor:
        while True:
            cursor.execute(admit + then, params)
            rows = cursor.fetchall()
            if rows:
                return rows
            cursor.execute(_CREATE_ROW, params)  # First submit ever: a full bucket.
            if cursor.rowcount:
                continue
            refused = _refusal(cursor, params, texts, metered=metered)
            if refused is not None:
                raise refused
            # Nothing refuses it now: tokens refilled, or texts finished, since the UPDATE.


def _refusal(cursor, params: dict, texts: int, *, metered: bool) -> LimitExceeded | None:
    """The limit a submit of ``texts`` texts is over now, if any."""
    cursor.execute(_STANDING, params)
    tokens, rate, burst, max_queued, queued = cursor.fetchone()
    if metered and tokens < 1:
        return _rate_limited(tokens, rate, burst)
    if texts > max_queued:
        return LimitExceeded(
            limit="max_queued_texts", retry_after=None,
            message=(
                f"quota exceeded: this request has {texts} texts, more than the "
                f"{max_queued} texts you may have queued at once (max_queued_texts); "
                "split it into smaller requests."
            ),
        )
    if queued + texts > max_queued:
        return LimitExceeded(
            limit="max_queued_texts", retry_after=QUEUED_TEXTS_RETRY_AFTER,
            message=(
                f"quota exceeded: you may have at most {max_queued} texts queued or "
                f"running (max_queued_texts); you have {queued} and this request adds "
                f"{texts}. Try again when some have finished."
            ),
        )
    return None


def _rate_limited(tokens: float, rate: int, burst: int) -> LimitExceeded:
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
