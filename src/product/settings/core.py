"""Django itself: debug mode, secret key, hosts, apps, middleware, templates, locale."""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from product.env import env_bool, env_list, env_str

# The ``product`` package's directory.
BASE_DIR = Path(__file__).resolve().parent.parent

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
    "product.queue",
    "product.accounts",
    "product.inference",
    "product.quotas",
    "product.runners",
    "product.ops",
    "product.batches",
    "product.search",
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
        "OPTIONS": {
            # The apps' templates, and each model's own (``models/<model>/<file>``, from its
            # folder: product.inference.model_templates).
            "loaders": [
                (
                    "django.template.loaders.cached.Loader",
                    [
                        "django.template.loaders.filesystem.Loader",
                        "django.template.loaders.app_directories.Loader",
                        "product.inference.model_templates.Loader",
                    ],
                ),
            ],
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "product.inference.context_processors.operator_access",
            ],
        },
    },
]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
