"""Loaded early by pytest (``-p product.pytest_plugin`` in pyproject.toml), before
pytest-django reads the settings: starts the embedded PostgreSQL when DATABASE_URL is unset,
and gives the test session a secret key and its own static files directory."""

from __future__ import annotations

import os
import secrets
import tempfile

from product.embedded_db import ensure_database_url

ensure_database_url()
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("STATIC_ROOT", tempfile.mkdtemp(prefix="product-static-"))
