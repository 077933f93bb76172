"""Logs, database outages, health and metrics."""

from __future__ import annotations

from product.env import env_float, env_int, env_str
from product.settings.runner import GPU_RUNNER_STALLED_AFTER

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # Django logs an unhandled exception with its traceback; product.outage answers a database
    # outage with 503 and logs one line instead, so that record is dropped.
    "filters": {"database_unavailable": {"()": "product.outage.DatabaseUnavailableLogFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Replaces Django's own console handler, which would print DEBUG-mode lines twice.
        "django": {"handlers": [], "propagate": True},
        "django.request": {"filters": ["database_unavailable"]},
        "procrastinate": {"level": env_str("PROCRASTINATE_LOG_LEVEL", "WARNING")},
    },
}

# Seconds a client is asked to wait (Retry-After) when a request gets 503 because the database
# is unavailable (product.outage).
DATABASE_UNAVAILABLE_RETRY_AFTER = env_int("DATABASE_UNAVAILABLE_RETRY_AFTER", 5)
# /metrics (Prometheus). With a token, only "Authorization: Bearer <METRICS_TOKEN>" may scrape,
# answered before host checks and over plain http like the probes; without one, only signed-in
# staff may read it.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
# A runner whose last heartbeat is older than this many seconds is not counted as live
# (/metrics, queue_status); by default the age at which runners take each other for dead.
RUNNER_STALE_AFTER = env_float("RUNNER_STALE_AFTER", GPU_RUNNER_STALLED_AFTER)
