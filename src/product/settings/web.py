"""What only the web process serves: static files and live-status streams."""

from __future__ import annotations

from pathlib import Path

from product.env import env_bool, env_float, env_int, env_str
from product.settings.core import BASE_DIR, DEBUG

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

# Seconds between keep-alive comments on a live-status stream (proxies drop idle streams).
INFERENCE_STREAM_KEEPALIVE = env_float("INFERENCE_STREAM_KEEPALIVE", 15.0)
# Open live-status streams allowed per user and per web process; beyond either, a 429.
INFERENCE_STREAMS_PER_USER = env_int("INFERENCE_STREAMS_PER_USER", 16)
INFERENCE_STREAMS_PER_PROCESS = env_int("INFERENCE_STREAMS_PER_PROCESS", 2000)
# Seconds a live-status stream lasts (less up to 10%, so streams spread out) before it ends
# and the browser reconnects and re-reads: no stream, or its owner's session, lives forever.
INFERENCE_STREAM_MAX_AGE = env_float("INFERENCE_STREAM_MAX_AGE", 300.0)
# Seconds POST /v1/embeddings (the OpenAI-compatible API) waits for its result before it
# answers 202 with the request's URL instead (the request still runs).
INFERENCE_INLINE_WAIT = env_float("INFERENCE_INLINE_WAIT", 30.0)
