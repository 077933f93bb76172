"""Settings for both process types (web and gpu runner), read from the environment.

Production is the default: DEBUG is off unless asked for and SECRET_KEY must be given.
docs/configuration.md has the table of every variable.
"""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from product.env import (
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    parse_database_url,
)

BASE_DIR = Path(__file__).resolve().parent

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment (DEBUG=1 allows a dev-only key)."
        )
    SECRET_KEY = "insecure-dev-only-key-never-use-in-production-0123456789abcdef"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "procrastinate.contrib.django",
    "product.accounts",
    "product.inference",
    "product.quotas",
]

MIDDLEWARE = [
    # Outermost: every error answer under /api/ is JSON, whichever layer made it.
    "product.api_errors.ApiErrorsMiddleware",
    # Probes and scrapes first: no host check, no https redirect (see product.health).
    "product.health.LivenessMiddleware",
    "product.outage.DatabaseUnavailableMiddleware",
    "product.health.ReadinessMiddleware",
    "product.metrics.MetricsTokenMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: the whole chain runs in one thread per request, not a thread hop per hook.
    "product.middleware.SyncChain",
]

ROOT_URLCONF = "product.urls"
ASGI_APPLICATION = "product.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "product.inference.context_processors.operator_access",
            ],
        },
    },
]

_database_url = env_str("DATABASE_URL")
if not _database_url:
    raise ImproperlyConfigured(
        "DATABASE_URL is not set. `make run` and `make test` start an embedded PostgreSQL and "
        "set it for you; otherwise point it at your server (postgres://user:pass@host/db)."
    )
DATABASES = {"default": parse_database_url(_database_url)}
# A process-wide psycopg pool: under ASGI each request runs its database code in a thread of
# its own, so Django's per-thread persistent connections cannot be reused, and without a pool
# every request would open (and PostgreSQL fork) a connection. While PostgreSQL is down a
# request waits at most DATABASE_POOL_TIMEOUT for a connection before its 503, and the pool
# gives up reconnecting in the background after as long, so the first request after a restart
# connects at once instead of waiting out a long back-off. DATABASE_POOL_MAX_SIZE=0: no pool.
_pool_size = env_int("DATABASE_POOL_MAX_SIZE", 8)
if _pool_size > 0:
    _pool_timeout = env_float("DATABASE_POOL_TIMEOUT", 3.0)
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": 1,
        "max_size": _pool_size,
        "timeout": _pool_timeout,
        "reconnect_timeout": _pool_timeout,
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 0)
# With the pool, a connection is checked as it leaves it: one broken by a database restart is
# replaced instead of failing the request that drew it.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# The largest valid submission (256 texts of 4000 characters, JSON-escaped) fits; more is 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024
# A body over this many bytes is refused with 413 before it is read (product.body_limit, at the
# ASGI level: before authentication, chunked bodies too).
MAX_REQUEST_BODY_BYTES = env_int("MAX_REQUEST_BODY_BYTES", DATA_UPLOAD_MAX_MEMORY_SIZE)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "inference:request_list"
LOGOUT_REDIRECT_URL = "login"
# Sign-in throttling (product.accounts.views.ThrottledLoginView): after this many failures of a
# user name, or from one client address (REMOTE_ADDR), within the window (seconds), the
# sign-in page answers 429 with Retry-After without checking the password.
SIGNIN_MAX_FAILURES = env_int("SIGNIN_MAX_FAILURES", 5)
SIGNIN_MAX_FAILURES_PER_ADDRESS = env_int("SIGNIN_MAX_FAILURES_PER_ADDRESS", 50)
SIGNIN_FAILURE_WINDOW = env_int("SIGNIN_FAILURE_WINDOW", 15 * 60)
if min(SIGNIN_MAX_FAILURES, SIGNIN_MAX_FAILURES_PER_ADDRESS, SIGNIN_FAILURE_WINDOW) < 1:
    raise ImproperlyConfigured("SIGNIN_MAX_FAILURES, SIGNIN_MAX_FAILURES_PER_ADDRESS and "
                               "SIGNIN_FAILURE_WINDOW must be at least 1.")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR.parent.parent / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Compressed, cache-busted files served by whitenoise; `collectstatic` runs at release.
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# Serve from the finders when collectstatic has not run (tests, `make run`).
WHITENOISE_USE_FINDERS = env_bool("WHITENOISE_USE_FINDERS", DEBUG)
WHITENOISE_AUTOREFRESH = DEBUG

# Security (https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# The PaaS router / ingress terminates TLS and sets X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 60 * 60 * 24 * 30)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Replaces Django's own console handler, which would print DEBUG-mode lines twice.
        "django": {"handlers": [], "propagate": True},
        "procrastinate": {"level": env_str("PROCRASTINATE_LOG_LEVEL", "WARNING")},
    },
}

# --- Queue (Procrastinate) -------------------------------------------------------------------
# Jobs are deferred through Django's own connection, so they commit with the request row.
PROCRASTINATE_READONLY_MODELS = True

# --- Inference ------------------------------------------------------------------------------
# The channel the runner NOTIFYs on when a request changes; each web process LISTENs once.
INFERENCE_STATUS_CHANNEL = "inference_status"
# Seconds between keep-alive comments on a live-status stream (proxies drop idle streams).
INFERENCE_STREAM_KEEPALIVE = env_float("INFERENCE_STREAM_KEEPALIVE", 15.0)
# Open live-status streams allowed per user and per web process; beyond either, a 429.
INFERENCE_STREAMS_PER_USER = env_int("INFERENCE_STREAMS_PER_USER", 16)
INFERENCE_STREAMS_PER_PROCESS = env_int("INFERENCE_STREAMS_PER_PROCESS", 2000)
# Seconds a live-status stream lasts (less up to 10%, so streams spread out) before it ends
# and the browser reconnects and re-reads: no stream, or its owner's session, lives forever.
INFERENCE_STREAM_MAX_AGE = env_float("INFERENCE_STREAM_MAX_AGE", 300.0)
# Runs a request's job gets before it fails for good: a transient error (database) or a lost
# runner (crash, kill) costs one; an input the model cannot run fails at once.
INFERENCE_MAX_ATTEMPTS = env_int("INFERENCE_MAX_ATTEMPTS", 3)
# Per-user limits (product.quotas; an operator overrides one user's in the admin). Texts of a
# user's queued and running requests, at most; and a token bucket of submits: BURST at once,
# refilled by SUBMITS_PER_MINUTE. A bulk client of 256-text requests lives well inside them.
INFERENCE_MAX_QUEUED_TEXTS = env_int("INFERENCE_MAX_QUEUED_TEXTS", 100_000)
INFERENCE_SUBMITS_PER_MINUTE = env_int("INFERENCE_SUBMITS_PER_MINUTE", 600)
INFERENCE_SUBMIT_BURST = env_int("INFERENCE_SUBMIT_BURST", INFERENCE_SUBMITS_PER_MINUTE)
# Hours an Idempotency-Key is kept: a retry within them returns the request the key made.
INFERENCE_IDEMPOTENCY_TTL = env_float("INFERENCE_IDEMPOTENCY_TTL", 24.0)
# A request that names no priority is interactive up to this many texts, bulk above
# (interactive work runs before bulk work; within each, users take turns).
INFERENCE_INTERACTIVE_MAX_TEXTS = env_int("INFERENCE_INTERACTIVE_MAX_TEXTS", 16)

# --- GPU runner -----------------------------------------------------------------------------
# Models this runner hosts (comma-separated names; empty means every registered model).
GPU_RUNNER_MODELS = env_list("GPU_RUNNER_MODELS", [])
# "auto" picks CUDA when torch sees a GPU, else CPU.
GPU_RUNNER_DEVICE = env_str("GPU_RUNNER_DEVICE", "auto")
# "auto" is float16 on CUDA and float32 on CPU; or float32, float16, bfloat16.
GPU_RUNNER_DTYPE = env_str("GPU_RUNNER_DTYPE", "auto")
# Jobs one runner holds at once; inputs of jobs held together share forward passes.
GPU_RUNNER_CONCURRENCY = env_int("GPU_RUNNER_CONCURRENCY", 256)
# One forward pass holds at most this many inputs, and this many padded tokens
# (longest input × count). Warm-up runs the largest such batches, so a budget too big fails at start.
GPU_RUNNER_MAX_BATCH_SIZE = env_int("GPU_RUNNER_MAX_BATCH_SIZE", 64)
GPU_RUNNER_MAX_BATCH_TOKENS = env_int("GPU_RUNNER_MAX_BATCH_TOKENS", 4096)
# How long an idle model waits for more inputs to join the first one (milliseconds).
GPU_RUNNER_BATCH_WAIT_MS = env_float("GPU_RUNNER_BATCH_WAIT_MS", 2.0)
# Texts (summed over the jobs it holds) up to which a runner takes more bulk jobs: enough to fill
# its batches, little enough that the next user's job is not held up behind a backlog. The
# default is two of the batcher's windows (16 batches each): the jobs of one window end nearly
# together, so the next window's inputs must already be waiting. Interactive jobs are taken
# whenever a job slot is free.
GPU_RUNNER_MAX_HELD_TEXTS = env_int("GPU_RUNNER_MAX_HELD_TEXTS", 32 * GPU_RUNNER_MAX_BATCH_SIZE)
# Fair turns between users (fair intake and batching). 0 restores the old order (oldest work of
# all users first): only for comparing, e.g. in bench/fairness.py.
GPU_RUNNER_FAIR = env_bool("GPU_RUNNER_FAIR", True)
# Seconds a forward pass may take: one that does not return by then (a wedged GPU or driver)
# makes the runner hand back its jobs and exit non-zero, to be restarted. 0: no limit.
GPU_RUNNER_BATCH_TIMEOUT = env_float("GPU_RUNNER_BATCH_TIMEOUT", 120.0)
# Seconds a runner given SIGTERM lets held jobs finish before handing the rest back to the queue.
GPU_RUNNER_SHUTDOWN_GRACE = env_float("GPU_RUNNER_SHUTDOWN_GRACE", 20.0)
# Seconds between heartbeats (and checks for stalled jobs); a runner silent for STALLED_AFTER
# seconds is taken for dead and its jobs go back to the queue.
GPU_RUNNER_HEARTBEAT_INTERVAL = env_float("GPU_RUNNER_HEARTBEAT_INTERVAL", 5.0)
GPU_RUNNER_STALLED_AFTER = env_float("GPU_RUNNER_STALLED_AFTER", 20.0)
# Seconds between looks at the queue when no NOTIFY arrives (the LISTEN connection covers the rest).
GPU_RUNNER_POLL_INTERVAL = env_float("GPU_RUNNER_POLL_INTERVAL", 1.0)
# A file the runner touches at every heartbeat, for a liveness probe (empty: none).
GPU_RUNNER_HEARTBEAT_FILE = env_str("GPU_RUNNER_HEARTBEAT_FILE", "")
# Port of the runner's Prometheus /metrics (0: not served).
GPU_RUNNER_METRICS_PORT = env_int("GPU_RUNNER_METRICS_PORT", 0)

# --- Operations (health, metrics) ------------------------------------------------------------
# Seconds a client is asked to wait (Retry-After) when a request gets 503 because the database
# is unavailable (product.outage).
DATABASE_UNAVAILABLE_RETRY_AFTER = env_int("DATABASE_UNAVAILABLE_RETRY_AFTER", 5)
# Seconds to wait for a new database connection: libpq waits forever by default, so while the
# database's host does not answer at all, requests would hang instead of getting their 503.
# A connect_timeout given in DATABASE_URL wins.
DATABASES["default"]["OPTIONS"].setdefault(
    "connect_timeout", env_int("DATABASE_CONNECT_TIMEOUT", 10)
)
# /metrics (Prometheus). With a token, only "Authorization: Bearer <METRICS_TOKEN>" may scrape,
# answered before host checks and over plain http like the probes; without one, only signed-in
# staff may read it.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
# A runner whose last heartbeat is older than this many seconds is not counted as live
# (/metrics, queue_status); by default the age at which runners take each other for dead.
RUNNER_STALE_AFTER = env_float("RUNNER_STALE_AFTER", GPU_RUNNER_STALLED_AFTER)
# Django logs an unhandled exception with its traceback; product.outage answers a database
# outage with 503 and logs one line instead, so that record is dropped.
LOGGING.setdefault("filters", {})["database_unavailable"] = {
    "()": "product.outage.DatabaseUnavailableLogFilter"
}
LOGGING["loggers"]["django.request"] = {"filters": ["database_unavailable"]}
