"""The PostgreSQL connection: where it is, its pool, and how long to wait for it."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from product.env import env_float, env_int, env_str, parse_database_url

_database_url = env_str("DATABASE_URL")
if not _database_url:
    raise ImproperlyConfigured(
        "DATABASE_URL is not set. `make run`, `make test` and `manage.py` in a checkout where "
        "neither DATABASE_URL nor SECRET_KEY is set start an embedded PostgreSQL and set it for "
        "you; otherwise point it at your server (postgres://user:pass@host/db)."
    )
DATABASES = {"default": parse_database_url(_database_url)}
# A process-wide psycopg pool: under ASGI each request runs its database code in a thread of
# its own, so Django's per-thread persistent connections cannot be reused, and without a pool
# every request would open (and PostgreSQL fork) a connection. While PostgreSQL is down a
# request waits at most DATABASE_POOL_TIMEOUT for a connection before its 503, and the pool
# gives up reconnecting in the background after as long, so the first request after a restart
# connects at once instead of waiting out a long back-off. DATABASE_POOL_MAX_SIZE=0: no pool.
_pool_size = env_int("DATABASE_POOL_MAX_SIZE", 8)
if _pool_size > 0:
    _pool_timeout = env_float("DATABASE_POOL_TIMEOUT", 3.0)
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": 1,
        "max_size": _pool_size,
        "timeout": _pool_timeout,
        "reconnect_timeout": _pool_timeout,
    }
    # Django's backend with that pool's check: a connection broken by a database restart is
    # replaced as it leaves the pool, instead of failing the request that drew it, and the
    # check costs no round trip (product.postgres).
    DATABASES["default"]["ENGINE"] = "product.postgres"
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 0)
    # A persistent connection is checked before a request reuses it.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Seconds to wait for a new database connection: libpq waits forever by default, so while the
# database's host does not answer at all, requests would hang instead of getting their 503.
# A connect_timeout given in DATABASE_URL wins.
DATABASES["default"]["OPTIONS"].setdefault(
    "connect_timeout", env_int("DATABASE_CONNECT_TIMEOUT", 10)
)
