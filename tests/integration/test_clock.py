"""One clock: every timestamp that durations are computed from is PostgreSQL's now(), so a web
process whose clock is off can never make a queue time negative (nor prune what just finished).
Each test sets the web's clock off by hours and checks that nothing follows it."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from product.inference import retention, services
from product.inference.models import InferenceRequest, RequestStatus
from tests.integration.test_outcome_writes import hanging_model  # noqa: F401  (fixture)
from tests.support.hanging_model import SPEC
from tests.support.worker import drain

pytestmark = pytest.mark.usefixtures("clean_queue")


@pytest.fixture
def web_clock(monkeypatch):
    """Set the web's clock (django.utils.timezone.now) off from the database's by a delta."""
    real_now = timezone.now

    def set_off(delta: timedelta) -> None:
        monkeypatch.setattr(timezone, "now", lambda: real_now() + delta)

    return set_off


def database_now():
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        return cursor.fetchone()[0]


def test_created_at_is_the_database_clock_as_soon_as_the_row_is_created(
    make_user, hanging_model, web_clock  # noqa: F811
):
    web_clock(timedelta(hours=3))
    before = database_now()
    request = services.request_submit(user=make_user(), model=SPEC.name, raw_input="x")
    # Populated by create() itself (PostgreSQL returns db_default columns), not by a reload.
    assert request.created_at is not None
    assert before <= request.created_at <= database_now()


def test_queue_time_is_never_negative_when_the_web_clock_runs_ahead(
    make_user, hanging_model, web_clock  # noqa: F811
):
    web_clock(timedelta(hours=3))
    request = services.request_submit(user=make_user(), model=SPEC.name, raw_input="x")

    drain([SPEC.queue])

    request.refresh_from_db()
    assert request.status == RequestStatus.SUCCEEDED
    assert request.created_at <= request.started_at <= request.finished_at
    assert request.queue_ms >= 0 and request.run_ms >= 0


def test_a_cancel_finishes_after_the_request_was_created_when_the_web_clock_runs_behind(
    make_user, hanging_model, web_clock  # noqa: F811
):
    web_clock(-timedelta(hours=3))
    request = services.request_submit(user=make_user(), model=SPEC.name, raw_input="x")

    cancelled = services.request_cancel(request=request)

    stored = InferenceRequest.objects.get(pk=request.pk)
    assert stored.status == RequestStatus.CANCELLED
    assert cancelled.finished_at == stored.finished_at >= stored.created_at
    assert stored.total_ms >= 0


def test_pruning_counts_age_by_the_database_clock(make_user, hanging_model, web_clock):  # noqa: F811
    request = services.request_submit(user=make_user(), model=SPEC.name, raw_input="x")
    drain([SPEC.queue])
    web_clock(timedelta(days=10))

    pruned = retention.requests_prune(older_than=timedelta(days=1))

    assert pruned.requests == 0
    assert InferenceRequest.objects.filter(pk=request.pk).exists()
