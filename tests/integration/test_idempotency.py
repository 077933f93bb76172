"""Idempotent submits: an ``Idempotency-Key`` on POST /api/v1/requests makes a retry return the
request the first call created, on real PostgreSQL, concurrent retries included."""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.request

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection, connections
from procrastinate.contrib.django.models import ProcrastinateJob

from product.inference import services
from product.inference.models import IdempotencyKey, InferenceRequest
from inference_models.sentence_embedding.spec import SPEC as MINILM

pytestmark = pytest.mark.django_db

BODY = {"model": MINILM.name, "input": ["one", "two"]}


def _counts() -> tuple[int, int]:
    return InferenceRequest.objects.count(), ProcrastinateJob.objects.count()


def _post(client, auth: str, key: str | None, body=BODY):
    headers = {"HTTP_AUTHORIZATION": auth}
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    return client.post("/api/v1/requests", body, content_type="application/json", **headers)


def test_the_same_key_and_body_return_the_same_request(client, make_user, token_for):
    auth = token_for(make_user())
    first = _post(client, auth, "order-42")
    assert first.status_code == 201
    before = _counts()

    again = _post(client, auth, "order-42", {"input": ["one", "two"], "model": MINILM.name})

    assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert again["Location"] == first["Location"]
    assert _counts() == before


def test_the_same_key_with_another_body_is_a_422_naming_the_conflict(
    client, make_user, token_for
):
    auth = token_for(make_user())
    first = _post(client, auth, "order-42").json()
    before = _counts()

    response = _post(client, auth, "order-42", {"model": MINILM.name, "input": ["three"]})

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "idempotency_conflict"
    assert "'order-42'" in error["message"] and f"request {first['id']}" in error["message"]
    assert _counts() == before


def test_keys_are_per_user(client, make_user, token_for):
    alice, bob = token_for(make_user("alice")), token_for(make_user("bob"))

    mine = _post(client, alice, "k1")
    theirs = _post(client, bob, "k1", {"model": MINILM.name, "input": ["other"]})

    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["id"] != theirs.json()["id"]
    assert IdempotencyKey.objects.count() == 2


def test_a_submit_without_a_key_always_creates(client, make_user, token_for):
    auth = token_for(make_user())

    ids = {_post(client, auth, None).json()["id"] for _ in range(2)}

    assert len(ids) == 2 and not IdempotencyKey.objects.exists()


def test_a_replay_does_not_count_against_the_rate_limit(client, make_user, token_for, settings):
    settings.INFERENCE_SUBMIT_BURST = 1
    settings.INFERENCE_SUBMITS_PER_MINUTE = 1
    auth = token_for(make_user())
    assert _post(client, auth, "k").status_code == 201

    assert [_post(client, auth, "k").status_code for _ in range(3)] == [200, 200, 200]
    assert _post(client, auth, "new").status_code == 429


def test_a_key_refused_by_a_limit_is_not_kept(client, make_user, token_for, settings):
    settings.INFERENCE_MAX_QUEUED_TEXTS = 2
    auth = token_for(make_user())
    blocker = _post(client, auth, None)
    assert _post(client, auth, "k").status_code == 429
    InferenceRequest.objects.filter(pk=blocker.json()["id"]).update(status="succeeded")

    assert _post(client, auth, "k").status_code == 201


@pytest.mark.parametrize(
    "key", ["", "x" * 256, "clé", "tab\there", "line\nbreak"],
    ids=["empty", "256", "non-ascii", "tab", "newline"],
)
def test_a_key_that_is_not_1_to_255_printable_ascii_characters_is_a_400(
    client, make_user, token_for, key
):
    before = _counts()

    response = _post(client, token_for(make_user()), key)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_idempotency_key"
    assert "255 printable ASCII" in response.json()["error"]["message"]
    assert _counts() == before


def test_a_key_of_255_printable_characters_is_taken(client, make_user, token_for):
    key = ("~ !" * 100)[:255]

    assert _post(client, token_for(make_user()), key).status_code == 201


def test_an_expired_key_is_replaced_on_reuse(client, make_user, token_for, settings):
    settings.INFERENCE_IDEMPOTENCY_TTL = 24
    auth = token_for(make_user())
    old = _post(client, auth, "k").json()
    _age_keys(hours=25)

    response = _post(client, auth, "k", {"model": MINILM.name, "input": ["new"]})

    assert response.status_code == 201 and response.json()["id"] != old["id"]
    assert IdempotencyKey.objects.get().request_id == response.json()["id"]


def test_prune_requests_deletes_expired_keys_and_keeps_fresh_ones(make_user, settings):
    settings.INFERENCE_IDEMPOTENCY_TTL = 24
    alice = make_user()
    submit = {"user": alice, "model": MINILM.name, "raw_input": "a", "body_digest": "d"}
    services.request_submit_idempotent(key="old", **submit)
    _age_keys(hours=25)
    services.request_submit_idempotent(key="fresh", **submit)

    call_command("prune_requests", "--older-than", "30d", stdout=io.StringIO())

    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["fresh"]
    assert InferenceRequest.objects.count() == 2  # The requests stay: they are not finished.


def test_pruning_a_request_deletes_its_keys(make_user):
    alice = make_user()
    request, _ = services.request_submit_idempotent(
        user=alice, key="k", body_digest="d", model=MINILM.name, raw_input="a"
    )
    services.request_cancel(request=request)
    InferenceRequest.objects.filter(pk=request.pk).update(finished_at="2000-01-01T00:00:00Z")

    call_command("prune_requests", "--older-than", "1d", stdout=io.StringIO())

    assert not InferenceRequest.objects.exists() and not IdempotencyKey.objects.exists()


def _age_keys(*, hours: float) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE inference_idempotencykey "
            "SET created_at = created_at - make_interval(hours => %s)",
            [hours],
        )


@pytest.mark.django_db(transaction=True)
def test_concurrent_submits_with_one_key_make_one_request(make_user, clean_queue):
    """Two submits with one key wait together behind an open transaction holding the user's
    quota row,
    then both run: one creates, the other returns what the first created."""
    alice = make_user()
    outcomes: list[tuple[int, bool]] = []
    submit = {"user": alice, "key": "k", "body_digest": "d", "model": MINILM.name,
              "raw_input": ["a"]}

    def run() -> None:
        try:
            request, created = services.request_submit_idempotent(**submit)
            outcomes.append((request.pk, created))
        finally:
            connections.close_all()

    with psycopg.connect(_conninfo()) as holder:
        with holder.transaction():
            holder.execute("INSERT INTO quotas_userquota (user_id) VALUES (%s)", [alice.pk])
            threads = [threading.Thread(target=run) for _ in range(2)]
            for thread in threads:
                thread.start()
            _wait_for_lock_waiters(holder, 2)
        for thread in threads:
            thread.join()

    assert sorted(created for _, created in outcomes) == [False, True]
    assert len({pk for pk, _ in outcomes}) == 1
    assert InferenceRequest.objects.count() == 1 and IdempotencyKey.objects.count() == 1


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_retries_with_one_key_at_two_web_processes_at_once_make_one_request(
    make_user, token_for, clean_queue, tmp_path
):
    """Eight clients send one keyed submit at once, four to each of two real uvicorn processes."""
    from tests.support.processes import start_web

    auth = token_for(make_user())
    webs = []
    start = threading.Barrier(8)
    answers: list[tuple[int, int]] = []

    def send(base_url: str) -> None:
        request = urllib.request.Request(
            base_url + "/api/v1/requests", data=json.dumps(BODY).encode(), method="POST",
            headers={"Authorization": auth, "Content-Type": "application/json",
                     "Idempotency-Key": "retry-storm"},
        )
        start.wait()
        with urllib.request.urlopen(request, timeout=60) as response:
            answers.append((response.status, json.loads(response.read())["id"]))

    try:
        for n in range(2):
            (tmp_path / f"web-{n}").mkdir()
            webs.append(start_web(tmp_path / f"web-{n}"))
        threads = [threading.Thread(target=send, args=(webs[n % 2][1],)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for web, _ in webs:
            web.terminate()

    assert sorted(status for status, _ in answers) == [200] * 7 + [201]
    assert len({request_id for _, request_id in answers}) == 1
    assert InferenceRequest.objects.count() == 1 and IdempotencyKey.objects.count() == 1


def _conninfo() -> str:
    params = connection.get_connection_params()
    keep = {k: v for k, v in params.items() if k in ("host", "port", "user", "password", "dbname")}
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in keep.items() if v})


def _wait_for_lock_waiters(holder, count: int) -> None:
    # pg_locks, not pg_stat_activity: that is read once per transaction, and holder's stays open.
    deadline = time.monotonic() + 60
    while True:
        waiting = holder.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0]
        if waiting >= count:
            return
        assert time.monotonic() < deadline, f"{waiting} of {count} submits reached the lock"
        time.sleep(0.02)
