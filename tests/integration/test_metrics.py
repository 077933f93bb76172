"""The web's /metrics: what it reports about the queue, and who may read it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from product.inference import services
from product.inference.models import InferenceRequest
from inference_models.sentence_embedding.spec import SPEC as MINILM
from tests.support.runners import register_runner

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_queue")]

QUEUE = MINILM.queue
MODEL = MINILM.name


def samples(response) -> dict[tuple, float]:
    """{(metric name, ((label, value), ...)): value} of a /metrics answer."""
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(metrics: dict, name: str, **labels: str) -> float:
    return metrics[(name, tuple(sorted(labels.items())))]


OPERATOR_PERM = "inference.view_inferencerequest"


@pytest.fixture
def staff_client(client, make_user):
    client.force_login(make_user("ops", staff=True, perms=[OPERATOR_PERM]))
    return client


def _sql(statement: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def _submit(user, text="x") -> InferenceRequest:
    return services.request_submit(user=user, model=MODEL, raw_input=text)


def _run(request: InferenceRequest, *, worker_id: int) -> None:
    """What a runner does on taking a job: the job is 'doing' on that worker, the row runs."""
    _sql("UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s WHERE id = %s",
         [worker_id, request.job_id])
    services.requests_start(claims=[services.Claim(request.pk, request.job_id)])


def _finish(request: InferenceRequest, status: str, *, minutes_ago: float = 0) -> None:
    services.requests_finish(
        outcomes=[services.Outcome(request.pk, request.job_id, status, output={"n": 1})]
    )
    _sql("UPDATE procrastinate_jobs SET status = %s::procrastinate_job_status WHERE id = %s",
         [status, request.job_id])
    InferenceRequest.objects.filter(pk=request.pk).update(
        finished_at=timezone.now() - timedelta(minutes=minutes_ago)
    )


def test_metrics_report_queue_depth_waiting_time_outcomes_and_runners(staff_client, make_user):
    alice = make_user("alice")
    live_runner = register_runner(heartbeat_age_s=1)
    register_runner(heartbeat_age_s=3600)  # Died an hour ago.
    waiting = [_submit(alice) for _ in range(3)]
    # The first job has waited 90 s since it was deferred.
    _sql("UPDATE procrastinate_events SET at = now() - interval '90 seconds' "
         "WHERE job_id = %s AND type = 'deferred'", [waiting[0].job_id])
    running = _submit(alice)
    _run(running, worker_id=live_runner)
    for status, minutes_ago in [("succeeded", 1), ("succeeded", 2), ("failed", 3), ("succeeded", 30)]:
        done = _submit(alice)
        _run(done, worker_id=live_runner)
        _finish(done, status, minutes_ago=minutes_ago)

    metrics = samples(staff_client.get("/metrics"))

    assert value(metrics, "gpuqueue_database_up") == 1
    assert value(metrics, "gpuqueue_jobs", queue=QUEUE, status="todo") == 3
    assert value(metrics, "gpuqueue_jobs", queue=QUEUE, status="doing") == 1
    assert value(metrics, "gpuqueue_oldest_waiting_job_age_seconds", queue=QUEUE) == pytest.approx(90)
    assert value(metrics, "gpuqueue_requests", model=MODEL, status="queued") == 3
    assert value(metrics, "gpuqueue_requests", model=MODEL, status="running") == 1
    assert value(metrics, "gpuqueue_requests_finished_last_5m", model=MODEL, status="succeeded") == 2
    assert value(metrics, "gpuqueue_requests_finished_last_5m", model=MODEL, status="failed") == 1
    assert value(metrics, "gpuqueue_requests_finished_last_5m", model=MODEL, status="cancelled") == 0
    assert value(metrics, "gpuqueue_runners_live") == 1
    assert value(metrics, "gpuqueue_runners_stale") == 1


def test_an_idle_queue_reports_zeros_rather_than_no_series(staff_client):
    metrics = samples(staff_client.get("/metrics"))

    assert value(metrics, "gpuqueue_jobs", queue=QUEUE, status="todo") == 0
    assert value(metrics, "gpuqueue_oldest_waiting_job_age_seconds", queue=QUEUE) == 0
    assert value(metrics, "gpuqueue_requests", model=MODEL, status="queued") == 0
    assert value(metrics, "gpuqueue_requests_finished_last_5m", model=MODEL, status="failed") == 0
    assert value(metrics, "gpuqueue_runners_live") == 0


def test_a_paused_queue_is_reported_until_it_is_resumed(staff_client):
    from product.queue import pauses

    assert value(samples(staff_client.get("/metrics")), "gpuqueue_queue_paused", queue=QUEUE) == 0
    pauses.pause(queue=QUEUE, paused_by="ops")
    assert value(samples(staff_client.get("/metrics")), "gpuqueue_queue_paused", queue=QUEUE) == 1
    pauses.resume(queue=QUEUE)
    assert value(samples(staff_client.get("/metrics")), "gpuqueue_queue_paused", queue=QUEUE) == 0


def test_a_job_scheduled_for_later_is_not_counted_as_waiting(staff_client, make_user):
    request = _submit(make_user("alice"))
    _sql("UPDATE procrastinate_jobs SET scheduled_at = now() + interval '1 hour' WHERE id = %s",
         [request.job_id])

    metrics = samples(staff_client.get("/metrics"))

    assert value(metrics, "gpuqueue_oldest_waiting_job_age_seconds", queue=QUEUE) == 0
    assert value(metrics, "gpuqueue_jobs", queue=QUEUE, status="todo") == 1


# --- Access ------------------------------------------------------------------------------------


def test_without_a_token_only_users_who_may_see_all_requests_may_read_metrics(client, make_user):
    assert client.get("/metrics").status_code == 403
    client.force_login(make_user("alice"))
    assert client.get("/metrics").status_code == 403
    client.force_login(make_user("staff", staff=True))
    assert client.get("/metrics").status_code == 403
    client.force_login(make_user("ops", staff=True, perms=[OPERATOR_PERM]))
    assert client.get("/metrics").status_code == 200


def test_with_a_token_scrapers_are_answered_from_any_host_over_plain_http(settings):
    settings.METRICS_TOKEN = "scrape-secret"
    scraper = Client(HTTP_HOST="10.1.2.3:8000")  # A pod IP, plain http: as Prometheus scrapes.

    assert "gpuqueue_jobs" in scraper.get(
        "/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret"
    ).content.decode()
    missing = scraper.get("/metrics")
    assert missing.status_code == 401 and missing["WWW-Authenticate"].startswith("Bearer")
    assert scraper.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert scraper.get("/metrics", HTTP_AUTHORIZATION="Basic c2NyYXBlLXNlY3JldA==").status_code == 403


def test_with_a_token_a_staff_session_alone_is_not_enough(settings, staff_client):
    settings.METRICS_TOKEN = "scrape-secret"
    assert staff_client.get("/metrics").status_code == 401


def test_metrics_report_each_model_s_depth_in_requests_and_inputs(staff_client, make_user):
    """Every registered model has its depth (zeros when idle), so each runner group can be
    scaled and alerted on by its own models' backlog."""
    from product.inference.registry import REGISTRY

    alice = make_user("alice")
    services.request_submit(user=alice, model=MODEL, raw_input=["a", "b", "c"])
    services.request_submit(user=alice, model=MODEL, raw_input="d")
    pairs = services.request_submit(user=alice, model="all-minilm-l6-v2-similarity", raw_input=[["a", "b"], ["c", "d"]])
    _sql("UPDATE inference_inferencerequest SET created_at = now() - interval '30 seconds' WHERE id = %s", [pairs.pk])
    _run(pairs, worker_id=register_runner())

    metrics = samples(staff_client.get("/metrics"))

    assert value(metrics, "gpuqueue_request_inputs", model=MODEL, status="queued") == 4
    assert value(metrics, "gpuqueue_requests", model=MODEL, status="queued") == 2
    pairs_model = "all-minilm-l6-v2-similarity"
    assert value(metrics, "gpuqueue_request_inputs", model=pairs_model, status="running") == 2
    assert value(metrics, "gpuqueue_request_inputs", model=pairs_model, status="queued") == 0
    assert value(metrics, "gpuqueue_oldest_queued_request_age_seconds", model=pairs_model) == 0
    assert value(metrics, "gpuqueue_oldest_queued_request_age_seconds", model=MODEL) < 30
    for model in REGISTRY:
        assert value(metrics, "gpuqueue_request_inputs", model=model, status="queued") >= 0
        assert value(metrics, "gpuqueue_jobs", queue=REGISTRY[model].queue, status="todo") >= 0
