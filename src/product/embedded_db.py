"""An embedded PostgreSQL (pgserver) for local runs and tests when DATABASE_URL is not set.

`make run` and `make test` need no database setup: the server lives in ``.local/pgdata``
(or ``EMBEDDED_PG_DIR``), listens on a Unix socket only, and stops when the last process
that started it exits. With DATABASE_URL set, that server is used and nothing starts here.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

DATABASE_NAME = "product"
_DEFAULT_DIR = Path(__file__).resolve().parents[2] / ".local" / "pgdata"


def ensure_database_url() -> str:
    """Return DATABASE_URL, starting the embedded server (and setting the variable) if unset."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    # pgserver logs at interpreter exit, when pytest has already closed its streams.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    data_dir = Path(os.environ.get("EMBEDDED_PG_DIR", _DEFAULT_DIR))
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset.
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(data_dir, cleanup_mode="stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    url = f"postgresql://postgres:@/{DATABASE_NAME}?host={data_dir}"
    os.environ["DATABASE_URL"] = url
    # Keep a reference so the server is not stopped while this process lives.
    globals()["_server"] = server
    return url
