"""Prometheus metrics of the queue, served by the web at /metrics.

The numbers are the database's, read at scrape time by one collector: any web process gives
the same answer, and nothing is counted in process memory that a restart would lose. The
runner's own metrics (batches, forward passes) are served by each runner (gpu_runner.metrics).

Access: with ``METRICS_TOKEN`` set, a scraper sends ``Authorization: Bearer <token>`` and is
answered before host checks and https redirects (Prometheus scrapes pods by IP, over http);
without it, only signed-in operators (users granted ``inference.view_inferencerequest``) may
read the page.

Web-only: this module must not import torch or the runner.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from product.inference import selectors, telemetry
from product.inference.models import ACTIVE_STATUSES, FINAL_STATUSES
from product.inference.registry import REGISTRY as MODEL_REGISTRY
from product.middleware import AnsweringMiddleware
from product.queue import statuses as job_statuses
from product.queue import pauses
from product.queue import telemetry as queue_telemetry

logger = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
RECENT_WINDOW = timedelta(minutes=5)


class QueueCollector(Collector):
    """Queue depth, waiting times, live runners and recent outcomes, read at each scrape.

    Series for every registered model and its queue are always present (zero when idle), so
    an alert on a value never mistakes "nothing waiting" for "no data"."""

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        up = GaugeMetricFamily(
            "gpuqueue_database_up", "1 when the database answered this scrape's queries, else 0."
        )
        try:
            families = list(self._families())
        except DatabaseError as error:
            text = str(error).strip()
            logger.warning(
                "metrics: the database did not answer: %s",
                text.splitlines()[0] if text else type(error).__name__,
            )
            families = []
            up.add_metric([], 0)
        else:
            up.add_metric([], 1)
        yield up
        yield from families
        yield GaugeMetricFamily(
            "gpuqueue_metrics_collect_seconds",
            "Time this scrape spent reading the database.",
            value=time.perf_counter() - started,
        )

    def _families(self) -> Iterator[Metric]:
        models = set(MODEL_REGISTRY)
        queues = {spec.queue for spec in MODEL_REGISTRY.values()}

        jobs = GaugeMetricFamily(
            "gpuqueue_jobs",
            "Procrastinate jobs waiting (todo) or running (doing), by queue.",
            labels=["queue", "status"],
        )
        counts = {
            (row["queue_name"], row["status"]): row["n"] for row in queue_telemetry.jobs_active()
        }
        queues |= {queue for queue, _ in counts}
        for queue in sorted(queues):
            for status in job_statuses.ACTIVE:
                jobs.add_metric([queue, status], counts.get((queue, status), 0))
        yield jobs

        oldest = GaugeMetricFamily(
            "gpuqueue_oldest_waiting_job_age_seconds",
            "How long the longest-waiting job ready to run has waited, by queue (0: none waits).",
            labels=["queue"],
        )
        ages = queue_telemetry.oldest_waiting_jobs()
        for queue in sorted(queues | set(ages)):
            oldest.add_metric([queue], ages.get(queue, 0.0))
        yield oldest

        paused = GaugeMetricFamily(
            "gpuqueue_queue_paused",
            "1 while the queue is paused (runners take none of its jobs), else 0.",
            labels=["queue"],
        )
        paused_queues = {pause.queue_name for pause in pauses.paused_queues()}
        for queue in sorted(queues | paused_queues):
            paused.add_metric([queue], 1 if queue in paused_queues else 0)
        yield paused

        requests = GaugeMetricFamily(
            "gpuqueue_requests",
            "Inference requests queued or running, by model.",
            labels=["model", "status"],
        )
        inputs = GaugeMetricFamily(
            "gpuqueue_request_inputs",
            "Inputs (texts, pairs) of the requests queued or running, by model: the work a "
            "model's runners have ahead (sum a runner group's models to scale it).",
            labels=["model", "status"],
        )
        waited = GaugeMetricFamily(
            "gpuqueue_oldest_queued_request_age_seconds",
            "How long the oldest queued request of each model has waited (0: none waits).",
            labels=["model"],
        )
        depth = {row["model"]: row for row in telemetry.depth_by_model()}
        finished = telemetry.requests_finished(windows=[RECENT_WINDOW])
        models |= set(depth) | {row["model"] for row in finished}
        for model in sorted(models):
            row = depth.get(model, telemetry.IDLE_DEPTH)
            for status in ACTIVE_STATUSES:
                requests.add_metric([model, str(status)], row[str(status)])
                inputs.add_metric([model, str(status)], row[f"{status}_inputs"])
            age = row["oldest_queued_age"]
            waited.add_metric([model], age.total_seconds() if age else 0.0)
        yield requests
        yield inputs
        yield waited

        recent = GaugeMetricFamily(
            "gpuqueue_requests_finished_last_5m",
            "Inference requests that ended in the last 5 minutes, by model and final status.",
            labels=["model", "status"],
        )
        counts = {(row["model"], row["status"]): row["counts"][0] for row in finished}
        for model in sorted(models):
            for status in FINAL_STATUSES:
                recent.add_metric([model, str(status)], counts.get((model, status), 0))
        yield recent

        runners = queue_telemetry.runners()
        yield GaugeMetricFamily(
            "gpuqueue_runners_live",
            "Runners whose last heartbeat is younger than RUNNER_STALE_AFTER seconds.",
            value=sum(1 for runner in runners if runner["live"]),
        )
        yield GaugeMetricFamily(
            "gpuqueue_runners_stale",
            "Registered runners whose heartbeat is older than RUNNER_STALE_AFTER (likely dead).",
            value=sum(1 for runner in runners if not runner["live"]),
        )


registry = CollectorRegistry()
registry.register(QueueCollector())


def render() -> bytes:
    """The metrics in Prometheus' text format."""
    return generate_latest(registry)


def _bearer_matches(request: HttpRequest, token: str) -> bool:
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        secret.strip().encode(), token.encode()
    )


def _token_response(request: HttpRequest) -> HttpResponse:
    if not request.headers.get("Authorization"):
        response = HttpResponse("send 'Authorization: Bearer <METRICS_TOKEN>'.\n", status=401,
                                content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if not _bearer_matches(request, settings.METRICS_TOKEN):
        return HttpResponse("the metrics token is not valid.\n", status=403,
                            content_type="text/plain")
    return _metrics_response()


def _metrics_response() -> HttpResponse:
    response = HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response


class MetricsTokenMiddleware(AnsweringMiddleware):
    """Answers /metrics for a scraper holding METRICS_TOKEN, before host checks and https
    redirects; without a token configured, /metrics goes on to ``metrics_view``."""

    def answers(self, request: HttpRequest) -> bool:
        return request.path == METRICS_PATH and bool(settings.METRICS_TOKEN)

    def answer(self, request: HttpRequest) -> HttpResponse:
        return _token_response(request)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """/metrics for signed-in operators, who may see all requests (when no METRICS_TOKEN is
    configured)."""
    if settings.METRICS_TOKEN:
        return _token_response(request)
    if not (request.user.is_authenticated and selectors.sees_all_requests(request.user)):
        return HttpResponse(
            "needs the inference.view_inferencerequest permission.\n",
            status=403, content_type="text/plain",
        )
    return _metrics_response()
