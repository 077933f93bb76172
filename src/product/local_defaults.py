"""The defaults of a local checkout, shared by `make run` and `manage.py`.

`make run` turns DEBUG on (plain http on localhost) and starts the embedded PostgreSQL when
DATABASE_URL is not set. An operator command run in a second terminal meanwhile
(`make manage ARGS=queue_status`, `.venv/bin/python manage.py queue_status`) gets the same
defaults from ``manage.py``, so it reaches the server `make run` started: pgserver finds it
running in the same data directory (``.local/pgdata``, or ``EMBEDDED_PG_DIR``) and shares it,
and the server stops only when the last process using it exits. Without `make run`, the
command starts the server for as long as it runs.

Production stays strict: ``manage.py`` applies these defaults only where nothing is configured
(neither DATABASE_URL nor SECRET_KEY set, DEBUG not turned off) and pgserver, a development
dependency, is installed. Anywhere else the settings refuse to start without SECRET_KEY and
DATABASE_URL, as before.
"""

from __future__ import annotations

import importlib.util
import os

from product.embedded_db import ensure_database_url
from product.env import env_bool


def use_local_defaults() -> str:
    """DEBUG on unless set, and the embedded PostgreSQL unless DATABASE_URL names a server;
    return DATABASE_URL (`make run`)."""
    os.environ.setdefault("DEBUG", "1")
    return ensure_database_url()


def use_local_defaults_if_unconfigured() -> bool:
    """``use_local_defaults()`` when nothing is configured in a checkout with the development
    dependencies (``manage.py``); whether it did."""
    configured = os.environ.get("DATABASE_URL") or os.environ.get("SECRET_KEY")
    if configured or not env_bool("DEBUG", True) or not _embedded_server_installed():
        return False
    use_local_defaults()
    return True


def _embedded_server_installed() -> bool:
    return importlib.util.find_spec("pgserver") is not None
