"""A runner's report of itself: one upsert per heartbeat, on PostgreSQL's clock."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from django.conf import settings
from django.db import connection

from product.runners.models import RunnerReport

# Reports of runners gone this long are deleted (by the next report of any runner).
_FORGET_AFTER = "1 day"


@dataclass(frozen=True)
class Report:
    worker_id: int
    name: str
    host: str
    pid: int
    device: str
    device_name: str
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    model_names: list[str]
    jobs_held: int
    texts_per_second: float
    batches_per_second: float
    draining: bool


_FIELDS = [name for name in Report.__dataclass_fields__]
_UPSERT = f"""
WITH forgotten AS (
    DELETE FROM {RunnerReport._meta.db_table} WHERE reported_at < now() - interval '{_FORGET_AFTER}'
)
INSERT INTO {RunnerReport._meta.db_table} ({", ".join(_FIELDS)}, started_at, reported_at)
VALUES ({", ".join(f"%({name})s" for name in _FIELDS)}, now(), now())
ON CONFLICT (worker_id) DO UPDATE SET
    {", ".join(f"{name} = EXCLUDED.{name}" for name in _FIELDS if name != "worker_id")},
    reported_at = now()
"""


def runner_report(report: Report) -> None:
    """Record ``report`` as its runner's latest (the first one also its start), and tell the
    web processes (the operations page redraws its runners)."""
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT, asdict(report))
        _notify(cursor, report.worker_id)


def _notify(cursor, worker_id: int) -> None:
    note = json.dumps({"runner": worker_id})
    cursor.execute("SELECT pg_notify(%s, %s)", [settings.INFERENCE_STATUS_CHANNEL, note])


def runner_forget(*, worker_id: int) -> None:
    """A runner that stopped cleanly: its report goes (one that dies stays, and goes stale)."""
    RunnerReport.objects.filter(worker_id=worker_id).delete()
    with connection.cursor() as cursor:
        _notify(cursor, worker_id)
