"""Probes: liveness needs nothing, readiness needs the database and a migrated schema; both
answer platform probes (pod IP as Host, plain http)."""

import pytest
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client
from django.test.utils import CaptureQueriesContext

from product import health

pytestmark = pytest.mark.django_db

PROBE = {"HTTP_HOST": "10.1.2.3:8000"}  # Not in ALLOWED_HOSTS, and no X-Forwarded-Proto.


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch):
    """Each test starts as a new process would: migrations not yet seen complete."""
    monkeypatch.setattr(health, "_migrations_complete", False)


def test_readiness_answers_ready_to_probes_from_any_host_over_plain_http():
    response = Client().get("/readyz", **PROBE)

    assert response.status_code == 200
    assert response.json() == {"status": "ready"}
    assert response["Cache-Control"] == "no-store"


def test_readiness_is_503_naming_an_unapplied_migration():
    # As after a deploy whose release step has not migrated yet: the newest migration is missing.
    app, name = next(
        node for node in MigrationLoader(connection).graph.leaf_nodes() if node[0] == "inference"
    )
    MigrationRecorder(connection).record_unapplied(app, name)

    response = Client().get("/readyz", **PROBE)

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert "1 database migration(s) not applied" in body["message"]
    assert f"inference.{name}" in body["message"]


def test_a_complete_schema_is_remembered_but_the_database_is_asked_at_every_probe(monkeypatch):
    assert Client().get("/readyz", **PROBE).status_code == 200

    def plan_must_not_be_computed_again():
        raise AssertionError("the migration plan was computed again")

    monkeypatch.setattr(health, "_unapplied_migrations", plan_must_not_be_computed_again)
    with CaptureQueriesContext(connection) as queries:
        assert Client().get("/readyz", **PROBE).status_code == 200
    assert [query["sql"] for query in queries] == ["SELECT 1"]


def test_liveness_still_answers_without_asking_the_database(django_assert_num_queries):
    with django_assert_num_queries(0):
        response = Client().get("/healthz", **PROBE)
    assert response.status_code == 200 and response.content == b"ok"
