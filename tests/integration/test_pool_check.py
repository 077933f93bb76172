"""The pool's check (product.postgres): a connection the server closed is refused as it leaves
the pool, a live one passes, and the pool replaces the refused one."""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import connection
from procrastinate.contrib.django.utils import connector_params

from product.postgres.base import check_connection

pytestmark = pytest.mark.django_db(transaction=True)


def terminated(conn: psycopg.Connection) -> None:
    """Have the server end ``conn``'s session, as a restart does, and wait for its goodbye."""
    with psycopg.connect(**connector_params(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [conn.info.backend_pid])
    time.sleep(0.5)


def test_a_live_connection_passes_and_one_the_server_closed_is_refused():
    with psycopg.connect(**connector_params(), autocommit=True) as conn:
        check_connection(conn)
        terminated(conn)
        with pytest.raises(psycopg.OperationalError):
            check_connection(conn)


def test_the_pool_replaces_a_connection_the_server_closed():
    connection.close()  # Back to the pool.
    pool = connection.pool
    idle = [pool.getconn() for _ in range(pool.get_stats()["pool_available"])]
    for conn in idle:
        pool.putconn(conn)
    # The next connection handed out is the first one put back: the server ends it. (Only one:
    # psycopg_pool waits a backoff of 1 s, 2 s, ... after each closed one it finds, which is
    # the pool's own pace and not what this test is about.)
    terminated(idle[0])
    lost = pool.get_stats().get("connections_lost", 0)
    with connection.cursor() as cursor:  # As the next request's first statement.
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    assert pool.get_stats().get("connections_lost", 0) == lost + 1
