"""Runner rows for tests that look at live and stale runners without starting one."""

from django.db import connection


def register_runner(*, heartbeat_age_s: float = 0) -> int:
    """A procrastinate_workers row whose last heartbeat was ``heartbeat_age_s`` seconds ago."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO procrastinate_workers (last_heartbeat) "
            "VALUES (now() - make_interval(secs => %s)) RETURNING id",
            [heartbeat_age_s],
        )
        return cursor.fetchone()[0]
