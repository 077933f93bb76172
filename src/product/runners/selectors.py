"""The runners as the operations page shows them: their latest reports, with a state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import FloatField, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.functions import Now

from product.runners.models import RunnerReport

# Runners gone for longer than this are no longer listed (their rows go after a day).
SHOWN_FOR = timedelta(hours=1)


@dataclass(frozen=True)
class RunnerRow:
    report: RunnerReport
    state: str  # live, stale, draining or paused.
    seconds_since_report: float


def runner_rows(*, paused_models: frozenset[str] = frozenset()) -> list[RunnerRow]:
    """Every runner that reported in the last hour. A runner is *stale* when its last report
    is older than RUNNER_STALE_AFTER (it died, or cannot reach the database), *draining*
    while it stops, *paused* when every model it hosts has its queue paused."""
    reports: QuerySet[RunnerReport] = RunnerReport.objects.filter(
        reported_at__gte=Now() - SHOWN_FOR
    ).annotate(age=RawSQL("EXTRACT(EPOCH FROM now() - reported_at)::float8", [], output_field=FloatField()))
    rows = []
    for report in reports:
        if report.age > settings.RUNNER_STALE_AFTER:
            state = "stale"
        elif report.draining:
            state = "draining"
        elif report.model_names and set(report.model_names) <= paused_models:
            state = "paused"
        else:
            state = "live"
        rows.append(RunnerRow(report, state, report.age))
    return rows
