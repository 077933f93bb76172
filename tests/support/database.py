"""Stop and start the embedded PostgreSQL under running processes (fault injection)."""

from __future__ import annotations

import pytest


def embedded_server():
    """The embedded server this test session started; skips when DATABASE_URL named another."""
    from product import embedded_db

    server = getattr(embedded_db, "_server", None)
    if server is None:
        pytest.skip("DATABASE_URL points at an external server; the test restarts the embedded one")
    return server


def stop(server) -> None:
    from pgserver._commands import pg_ctl

    pg_ctl(["-w", "stop", "-m", "fast"], pgdata=server.pgdata, user=server.system_user)


def start(server) -> None:
    server.ensure_postgres_running()
