"""Probes answered before any other middleware: they come from the platform with the pod's IP
as Host (not in ALLOWED_HOSTS) and over plain http (not redirected to https).

- ``/healthz`` (liveness) says only that the process answers: it must not fail while the
  database is away, or the platform would restart every web process during a database restart.
- ``/readyz`` (readiness) says whether this process can serve requests now: the database
  answers and its schema is migrated. A 503 takes the process out of the load balancer until it
  is ready again, without restarting it.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpResponse, JsonResponse

from product.middleware import AnsweringMiddleware

logger = logging.getLogger(__name__)

LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"

# Migrations do not come undone while a process runs, so once the schema was seen complete it
# is not looked at again (loading the migration graph costs far more than the probe's query).
_migrations_complete = False


class LivenessMiddleware(AnsweringMiddleware):
    def answers(self, request):
        return request.path == LIVENESS_PATH

    def answer(self, request):
        return HttpResponse("ok", content_type="text/plain")


class ReadinessMiddleware(AnsweringMiddleware):
    def answers(self, request):
        return request.path == READINESS_PATH

    def answer(self, request):
        problem = readiness_problem()
        if problem is None:
            response = JsonResponse({"status": "ready"})
        else:
            response = JsonResponse({"status": "unavailable", "message": problem}, status=503)
            response._has_been_logged = True  # readiness_problem logged it in one line.
        response["Cache-Control"] = "no-store"
        return response


def readiness_problem() -> str | None:
    """What keeps this process from serving requests, in a sentence (and one log line);
    None when ready."""
    global _migrations_complete
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        if _migrations_complete:
            return None
        unapplied = _unapplied_migrations()
    except DatabaseError as error:
        # The detail (host, port) goes to the log only: probes are unauthenticated.
        logger.warning("not ready: the database does not answer: %s", _first_line(error))
        return "the database does not answer."
    if unapplied:
        shown = ", ".join(unapplied[:5])
        if len(unapplied) > 5:
            shown += f" and {len(unapplied) - 5} more"
        problem = f"{len(unapplied)} database migration(s) not applied: {shown}."
        logger.warning("not ready: %s", problem)
        return problem
    _migrations_complete = True
    return None


def _unapplied_migrations() -> list[str]:
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _ in plan]


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
