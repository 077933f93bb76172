"""The errors that mean "the database is unavailable right now" (down, restarting, or the
connection dropped), as opposed to a bug or a bad statement.

One set for every place that waits for PostgreSQL to come back rather than failing: the web
answers 503 (``product.outage``), the runner backs off and retries its database work and a
job's run. Django wraps the driver's errors in its own classes; Procrastinate's async
connector, which the runner's job runs also use, raises psycopg's own.
"""

from __future__ import annotations

import psycopg
from django import db

DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    db.OperationalError,
    db.InterfaceError,
    psycopg.OperationalError,
)
