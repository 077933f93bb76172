"""The migration's pgvector step against real servers: on one without pgvector (Debian's
PostgreSQL 15 on 127.0.0.1:5432) the check, and ``manage.py migrate`` itself, fail saying what to
install; a role that may not enable it is told who can. Each test works in a scratch database it
drops afterwards."""

import contextlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from product.inference.vector_extension import VectorExtensionMissing, vector_extension_enable

ROOT = Path(__file__).resolve().parents[2]
DEBIAN_SERVER = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}


@contextlib.contextmanager
def scratch_database(server: dict, *, user: str | None = None):
    """A connection (as ``user``, else the server's) to a new database, dropped afterwards."""
    name = f"scratch_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(**server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            with psycopg.connect(**{**server, "dbname": name, "user": user or server["user"]},
                                 autocommit=True) as connection:
                yield connection
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def server_without_pgvector() -> dict:
    try:
        psycopg.connect(**DEBIAN_SERVER, connect_timeout=3).close()
    except psycopg.OperationalError as error:
        pytest.skip(f"no PostgreSQL without pgvector on 127.0.0.1:5432 ({error})")
    return DEBIAN_SERVER


def test_a_server_without_pgvector_fails_with_what_to_install(server_without_pgvector):
    with scratch_database(server_without_pgvector) as connection:
        major = connection.info.server_version // 10000

        with pytest.raises(VectorExtensionMissing) as missing, connection.cursor() as cursor:
            vector_extension_enable(cursor)

    message = str(missing.value)
    assert f"This PostgreSQL {major} server has no pgvector extension" in message
    assert f"apt install postgresql-{major}-pgvector" in message
    assert "brew install pgvector" in message
    for service in ("Amazon RDS", "Google Cloud SQL", "Azure Database for PostgreSQL", "Neon"):
        assert service in message


def test_migrate_on_a_server_without_pgvector_stops_with_that_message(server_without_pgvector):
    with scratch_database(server_without_pgvector) as connection:
        info = connection.info
        url = f"postgres://{info.user}@{info.host}:{info.port}/{info.dbname}"
        migrate = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput"],
            env={**os.environ, "DATABASE_URL": url}, capture_output=True, text=True, timeout=300,
        )
        applied = connection.execute(
            "SELECT name FROM django_migrations WHERE app = 'inference' ORDER BY id"
        ).fetchall()

    assert migrate.returncode == 1
    assert migrate.stderr.startswith("VectorExtensionMissing: This PostgreSQL")  # No traceback.
    assert "has no pgvector extension" in migrate.stderr
    assert "Applying inference.0006_inference_embedding..." in migrate.stdout
    assert applied[-1] == ("0005_fair_intake_index",)  # 0006 rolled back whole.


def _embedded_server() -> dict:
    database = settings.DATABASES["default"]
    return {
        "host": database["HOST"], "port": database["PORT"] or 5432,
        "user": database["USER"], "dbname": "postgres",
    }


def test_a_role_that_may_not_enable_pgvector_is_told_who_can():
    server = _embedded_server()
    role = f"plain_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(**server, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
        try:
            with scratch_database(server, user=role) as connection:
                with pytest.raises(VectorExtensionMissing) as refused, connection.cursor() as cursor:
                    vector_extension_enable(cursor)
        finally:
            admin.execute(f'DROP ROLE "{role}"')

    assert "pgvector is installed on this PostgreSQL server but not enabled" in str(refused.value)
    assert "Ask a superuser" in str(refused.value)


def test_a_server_with_pgvector_gets_the_extension_enabled():
    with scratch_database(_embedded_server()) as connection:
        with connection.cursor() as cursor:
            vector_extension_enable(cursor)
            vector_extension_enable(cursor)  # Again: already there, nothing to do.
        installed = connection.execute(
            "SELECT count(*) FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()
    assert installed == (1,)
