"""The whole path with real processes: HTTP submit → PostgreSQL queue → runner → row → HTTP."""

import json
import math
import time
import urllib.error
import urllib.request

import pytest

from inference_models.sentence_embedding.spec import SPEC as MINILM

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean_queue")]


def call(base_url: str, path: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        base_url + path,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": token, "Content-Type": "application/json"},
        method="POST" if body is not None else "GET",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_for_final(base_url: str, path: str, token: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, body = call(base_url, path, token)
        if body["status"] in ("succeeded", "failed", "cancelled"):
            return body
        time.sleep(0.05)
    raise TimeoutError(f"{path} is still {body['status']}")


def dot(u, v):
    return sum(a * b for a, b in zip(u, v))


def test_a_request_travels_from_http_through_the_runner_and_back(live_stack, make_user, token_for):
    token = token_for(make_user("alice"))
    texts = ["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell sharply today."]

    status, created = call(live_stack.base_url, "/api/v1/requests", token, {"model": MINILM.name, "input": texts})
    assert status == 201 and created["status"] == "queued"

    final = wait_for_final(live_stack.base_url, created["url"], token)
    assert final["status"] == "succeeded", final
    assert final["attempts"] == 1
    assert final["timings_ms"]["compute"] > 0

    status, result = call(live_stack.base_url, final["result_url"], token)
    assert status == 200 and result["dim"] == 384
    vectors = result["embeddings"]
    assert len(vectors) == 3 and all(len(v) == 384 for v in vectors)
    assert all(math.isclose(math.sqrt(dot(v, v)), 1.0, abs_tol=1e-4) for v in vectors)
    paraphrase, unrelated = dot(vectors[0], vectors[1]), dot(vectors[0], vectors[2])
    assert paraphrase > unrelated + 0.2


def test_many_concurrent_requests_all_finish_with_their_own_results(live_stack, make_user, token_for):
    token = token_for(make_user("bob"))
    texts = [f"Sentence number {n} about {'cats' if n % 2 else 'finance'}." for n in range(24)]
    created = [
        call(live_stack.base_url, "/api/v1/requests", token, {"model": MINILM.name, "input": text})[1]
        for text in texts
    ]
    results = []
    for request in created:
        final = wait_for_final(live_stack.base_url, request["url"], token)
        assert final["status"] == "succeeded"
        results.append(call(live_stack.base_url, final["result_url"], token)[1]["embeddings"][0])
    # Each request got the embedding of its own text: identical texts would give identical
    # vectors, so distinct texts must give 24 distinct ones, and the same topic scores higher.
    assert len({tuple(round(x, 5) for x in v) for v in results}) == 24
    assert dot(results[1], results[3]) > dot(results[1], results[2])


def test_the_web_pushes_status_changes_over_server_sent_events(live_stack, make_user, client, token_for):
    """A stream opened before the request exists receives each of its status changes as the
    process's LISTEN hears it: queued at the submit, then the runner's, up to succeeded. (The
    list stream sends no initial state, so every event read here was pushed after it opened.)"""
    user = make_user("carol")
    client.force_login(user)
    stream = urllib.request.urlopen(
        urllib.request.Request(
            f"{live_stack.base_url}/requests/events",
            headers={"Cookie": f"sessionid={client.cookies['sessionid'].value}"},
        ),
        timeout=60,
    )  # The headers arrive once the stream's subscription listens: nothing after is missed.
    status, created = call(
        live_stack.base_url, "/api/v1/requests", token_for(user),
        {"model": MINILM.name, "input": "stream me"},
    )
    assert status == 201

    statuses, event = [], None
    deadline = time.monotonic() + 60
    while "succeeded" not in statuses:
        assert time.monotonic() < deadline, f"no 'succeeded' event; saw {statuses}"
        line = stream.readline().decode()
        if line.startswith("event: "):
            event = line[7:].strip()
        elif line.startswith("data: ") and event == "status":
            data = json.loads(line[6:])
            assert data["id"] == created["id"], data  # Carol has no other request.
            statuses.append(data["status"])
    stream.close()
    assert statuses[0] == "queued", statuses
    order = ["queued", "running", "succeeded"]
    assert statuses == sorted(statuses, key=order.index), statuses  # Changes arrive in order.
