"""HTTPS, cookies, request bodies, passwords and sign-in throttling.

The strict values are the defaults; DEBUG relaxes those that need HTTPS
(https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/).
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from product.env import env_bool, env_int
from product.settings.core import DEBUG

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
