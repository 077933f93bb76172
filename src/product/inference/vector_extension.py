"""pgvector on the database server: embeddings are stored as its ``vector`` values.

The migration that creates the embeddings table enables the extension first. A server that does
not have pgvector installed cannot, and ``migrate`` stops with ``VectorExtensionMissing``, whose
message says what to install, rather than with PostgreSQL's "could not open extension control
file" or "type vector does not exist".
"""

from __future__ import annotations

from typing import Any

from django.core.management import CommandError

INSUFFICIENT_PRIVILEGE = "42501"  # SQLSTATE of a CREATE EXTENSION this role may not run.

# Managed PostgreSQL services that offer pgvector (CREATE EXTENSION vector works on them).
MANAGED_SERVICES = (
    "Amazon RDS and Aurora PostgreSQL", "Google Cloud SQL and AlloyDB",
    "Azure Database for PostgreSQL", "Supabase", "Neon", "Heroku Postgres", "Crunchy Bridge",
)


class VectorExtensionMissing(CommandError):
    """The database server lacks pgvector, or this role may not enable it; the message says
    what to do. A CommandError, so ``manage.py migrate`` prints the message, not a traceback."""


def vector_extension_enable(cursor: Any) -> None:
    """``CREATE EXTENSION IF NOT EXISTS vector`` through ``cursor`` (a DB-API cursor on the
    database to migrate), or raise VectorExtensionMissing saying how to get pgvector."""
    cursor.execute(
        "SELECT current_setting('server_version_num')::int / 10000, current_database(),"
        " EXISTS (SELECT FROM pg_available_extensions WHERE name = 'vector'),"
        " EXISTS (SELECT FROM pg_extension WHERE extname = 'vector')"
    )
    major, database, available, installed = cursor.fetchone()
    if installed:
        return
    if not available:
        raise VectorExtensionMissing(_missing_message(major, database))
    try:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except Exception as error:
        if _sqlstate(error) != INSUFFICIENT_PRIVILEGE:
            raise
        raise VectorExtensionMissing(
            f"pgvector is installed on this PostgreSQL server but not enabled in database "
            f"{database!r}, and this role may not enable it. Ask a superuser (on a managed "
            f"service, its admin role) to run `CREATE EXTENSION vector;` in {database!r}, "
            f"then run migrate again."
        ) from error


def _sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a psycopg error, or of the one Django's wrapper carries as its cause."""
    return getattr(error, "sqlstate", None) or getattr(error.__cause__, "sqlstate", None)


def _missing_message(major: int, database: str) -> str:
    return (
        f"This PostgreSQL {major} server has no pgvector extension, which database "
        f"{database!r} needs: embeddings are stored as pgvector `vector` values. Install "
        f"pgvector on the database server, then run migrate again; it enables "
        f"the extension itself. On Debian/Ubuntu: `apt install postgresql-{major}-pgvector` "
        f"(from the PostgreSQL project's apt repository, PGDG); on Red Hat/Fedora: "
        f"`dnf install pgvector_{major}`; with Homebrew: `brew install pgvector`; with Docker: "
        f"the `pgvector/pgvector:pg{major}` image; or build it from source (see pgvector's "
        f"README). Managed services that offer it: {', '.join(MANAGED_SERVICES)}. Without "
        f"DATABASE_URL, `make run` and `make test` use an embedded PostgreSQL that has it."
    )
