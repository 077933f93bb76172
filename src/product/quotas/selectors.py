"""Reads of users' limits and usage (queued texts, texts this month, submits left)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection

from product.inference.models import InferenceRequest
from product.quotas.models import UserQuota

QUOTA_TABLE = UserQuota._meta.db_table
REQUEST_TABLE = InferenceRequest._meta.db_table
ACTIVE = "('queued', 'running')"
# Months begin at midnight UTC (the database session's time zone is Django's, UTC).
THIS_MONTH = "date_trunc('month', now())"
LIST_LIMIT = 500


def refilled_tokens_sql(q: str = "q") -> str:
    """SQL for the tokens in the bucket of quota row ``q`` now (PostgreSQL's clock): what was
    left at the last write plus the refill since, capped at the bucket's size. A row never
    written has a full bucket. The defaults are the parameters of ``default_limits``."""
    burst = f"COALESCE({q}.submit_burst, %(submit_burst)s)"
    rate = f"COALESCE({q}.submits_per_minute, %(submits_per_minute)s)"
    elapsed = f"GREATEST(0, EXTRACT(EPOCH FROM clock_timestamp() - {q}.bucket_updated_at))"
    return (
        f"LEAST({burst}, COALESCE({q}.bucket_tokens + {rate} / 60.0 * {elapsed}::float8, "
        f"{burst}))::float8"
    )


def default_limits() -> dict[str, int]:
    """Each limit's default from the environment, by the name of its UserQuota field (also the
    names of the SQL parameters the quota statements take)."""
    return {
        "max_queued_texts": settings.INFERENCE_MAX_QUEUED_TEXTS,
        "submits_per_minute": settings.INFERENCE_SUBMITS_PER_MINUTE,
        "submit_burst": settings.INFERENCE_SUBMIT_BURST,
    }


@dataclass(frozen=True)
class Usage:
    """One user's usage and the limits that apply to them now."""

    user_id: int
    username: str
    queued_requests: int
    queued_texts: int  # Texts of queued and running requests not yet done.
    requests_this_month: int
    texts_this_month: int
    submits_available: int  # Whole tokens in the bucket now.
    max_queued_texts: int
    submits_per_minute: int
    submit_burst: int
    overridden: bool  # Some limit is set for this user in the admin.


_USAGE = f"""
WITH activity AS (
    SELECT owner_id,
           COUNT(*) FILTER (WHERE status IN {ACTIVE}) AS queued_requests,
           COALESCE(SUM(item_count - items_done) FILTER (WHERE status IN {ACTIVE}), 0)
               AS queued_texts,
           COUNT(*) FILTER (WHERE created_at >= {THIS_MONTH}) AS requests_this_month,
           COALESCE(SUM(item_count) FILTER (WHERE created_at >= {THIS_MONTH}), 0)
               AS texts_this_month
      FROM {REQUEST_TABLE}
     WHERE (status IN {ACTIVE} OR created_at >= {THIS_MONTH}) {{owner_filter}}
     GROUP BY owner_id
)
SELECT u.id, u.username,
       COALESCE(a.queued_requests, 0), COALESCE(a.queued_texts, 0),
       COALESCE(a.requests_this_month, 0), COALESCE(a.texts_this_month, 0),
       FLOOR({refilled_tokens_sql()})::int,
       COALESCE(q.max_queued_texts, %(max_queued_texts)s),
       COALESCE(q.submits_per_minute, %(submits_per_minute)s),
       COALESCE(q.submit_burst, %(submit_burst)s),
       COALESCE(q.max_queued_texts, q.submits_per_minute, q.submit_burst) IS NOT NULL
  FROM {{user_table}} AS u
  LEFT JOIN activity AS a ON a.owner_id = u.id
  LEFT JOIN {QUOTA_TABLE} AS q ON q.user_id = u.id
 WHERE {{user_filter}}
 ORDER BY COALESCE(a.texts_this_month, 0) DESC, COALESCE(a.queued_texts, 0) DESC, u.username
 LIMIT {LIST_LIMIT}
"""


def _usage(*, owner_filter: str, user_filter: str, params: dict) -> list[Usage]:
    sql = _USAGE.format(
        owner_filter=owner_filter, user_filter=user_filter,
        user_table=get_user_model()._meta.db_table,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, {**default_limits(), **params})
        return [Usage(*row) for row in cursor.fetchall()]


def usage_of(*, user: Any) -> Usage:
    """``user``'s own usage and limits."""
    return _usage(
        owner_filter="AND owner_id = %(user)s", user_filter="u.id = %(user)s",
        params={"user": user.pk},
    )[0]


def usage_of_everyone() -> list[Usage]:
    """Usage of every user who has queued work, submitted this month or has limits of their
    own; the heaviest first (at most LIST_LIMIT rows)."""
    return _usage(
        owner_filter="",
        user_filter=(
            "a.owner_id IS NOT NULL OR "
            "COALESCE(q.max_queued_texts, q.submits_per_minute, q.submit_burst) IS NOT NULL"
        ),
        params={},
    )
