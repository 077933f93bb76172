"""Django's PostgreSQL backend, but the pool checks a connection leaving it without a query.

Django builds its psycopg pool with psycopg_pool's own check when ``CONN_HEALTH_CHECKS`` is on:
an empty query, a round trip to PostgreSQL for every request the web serves (about a tenth of
the web's CPU per one-text submit, bench/web_cost.py, and a statement more for the server),
and it gives no way to pass another check. This backend builds the same pool with
``check_connection``; everything else is Django's backend as it is.

A connection the server has closed (a restart, ``pg_terminate_backend``) has always told us
first: PostgreSQL sends its FATAL error and closes the socket, which then reads as ready. An
idle connection the server has sent nothing to has nothing to tell, so the check is one
``poll`` of the socket; when something did arrive unasked, psycopg_pool's full check runs and
sorts it out (it reads a notice or a parameter change and passes, or raises for a closed
connection, which the pool then replaces).
"""

from __future__ import annotations

import select

import psycopg
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool


def check_connection(conn: psycopg.Connection) -> None:
    """Return quietly if ``conn`` is fit for a request, else raise (the pool discards it)."""
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("the connection is closed")
    ready = select.poll()
    ready.register(conn.fileno(), select.POLLIN | select.POLLPRI)
    if ready.poll(0):
        ConnectionPool.check_connection(conn)


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):
        """Django's pool (``postgresql.base.DatabaseWrapper.pool``), with ``check_connection``."""
        pool_options = self.settings_dict["OPTIONS"].get("pool")
        if self.alias == NO_DB_ALIAS or not pool_options:
            return None
        if self.alias not in self._connection_pools:
            if self.settings_dict.get("CONN_MAX_AGE", 0) != 0:
                raise ImproperlyConfigured("Pooling doesn't support persistent connections.")
            connect_kwargs = self.get_connection_params()
            connect_kwargs["autocommit"] = True  # Django sets it as it takes a connection.
            pool = ConnectionPool(
                kwargs=connect_kwargs,
                open=False,
                configure=self._configure_connection,
                check=check_connection,
                **({} if pool_options is True else pool_options),
            )
            # As in Django: of threads racing here, the first pool is kept.
            self._connection_pools.setdefault(self.alias, pool)
        return self._connection_pools[self.alias]
