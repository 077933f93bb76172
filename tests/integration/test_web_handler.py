"""The web's ASGI handler (product.web_handler) in this process: sync views run on a thread kept
for the next request, every response gives its database connection back to the pool, static
files stream whole, and a submit answers as before."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from django.contrib.staticfiles import finders
from django.db import connection
from django.templatetags.static import static

from inference_models.sentence_embedding.spec import SPEC as MINILM

# Transactional: the application's request threads must see the users and rows committed.
pytestmark = pytest.mark.usefixtures("clean_queue")


async def call(method: str, path: str, *, headers: dict[str, str], body: bytes = b"") -> tuple[int, dict, bytes]:
    """One request to the ASGI application: (status, headers, body)."""
    from product.asgi import application

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 40000), "server": ("testserver", 80),
        "headers": [
            (b"host", b"testserver"), (b"x-forwarded-proto", b"https"),
            (b"content-length", str(len(body)).encode()),
            *((name.lower().encode(), value.encode()) for name, value in headers.items()),
        ],
    }
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict] = []

    async def receive() -> dict:
        if incoming:
            return incoming.pop()
        await asyncio.Event().wait()  # No disconnect: the client stays until the answer.

    async def send(message: dict) -> None:
        sent.append(message)

    await asyncio.wait_for(application(scope, receive, send), 30)
    start, parts = sent[0], sent[1:]
    assert start["type"] == "http.response.start" and not parts[-1].get("more_body", False)
    response_headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return start["status"], response_headers, b"".join(part.get("body", b"") for part in parts)


def connections_held() -> int:
    """Connections taken from the pool and not given back."""
    stats = connection.pool.get_stats()
    return stats["pool_size"] - stats["pool_available"]


def request_threads() -> set[int]:
    return {thread.ident for thread in threading.enumerate() if thread.name == "request"}


def test_sync_views_reuse_one_thread_and_give_every_connection_back(make_user, token_for):
    auth = {"Authorization": token_for(make_user("alice"))}
    connection.close()  # This thread's own connection goes back too: count only the requests'.

    async def scenario() -> set[int]:
        before = request_threads()
        for _ in range(20):  # One after another, as over one keep-alive connection.
            status, _, body = await call("GET", "/api/v1/models", headers=auth)
            assert status == 200, body
            assert connections_held() == 0
        return request_threads() - before

    assert len(asyncio.run(scenario())) <= 1


def test_a_submit_answers_201_with_the_request_and_its_location(make_user, token_for):
    auth = {"Authorization": token_for(make_user("alice")), "Content-Type": "application/json"}
    body = json.dumps({"model": MINILM.name, "input": "one text"}).encode()
    connection.close()

    status, headers, answer = asyncio.run(call("POST", "/api/v1/requests", headers=auth, body=body))

    created = json.loads(answer)
    assert status == 201 and created["status"] == "queued" and created["item_count"] == 1
    assert headers["location"] == created["url"]
    assert connections_held() == 0


def test_an_api_error_is_json_through_the_handler():
    status, headers, answer = asyncio.run(call("GET", "/api/v1/requests", headers={}))

    assert status == 401 and headers["content-type"] == "application/json"
    assert json.loads(answer)["error"]["code"] == "unauthenticated"


def test_a_static_file_is_streamed_whole():
    status, headers, answer = asyncio.run(call("GET", static("inference/app.css"), headers={}))

    assert status == 200 and headers["content-type"].startswith("text/css")
    with open(finders.find("inference/app.css"), "rb") as original:
        assert answer == original.read()


def test_a_large_streamed_response_is_sent_in_pieces_as_it_is_read(make_user, token_for):
    """A batch's .npy (here of texts not run yet: NaN rows) is read from its iterator a piece
    at a time, not gathered whole before it is sent."""
    import io

    import numpy as np

    from product.batches import services as batch_services

    user = make_user()
    batch = batch_services.batch_create(
        user=user, file=io.BytesIO(b"\n".join(b"t%d" % i for i in range(5000))), filename="big.txt",
        model=MINILM.name,
    )
    from product.asgi import application

    sent: list[dict] = []
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": f"/api/v1/batches/{batch.pk}/output.npy",
        "raw_path": b"", "query_string": b"", "root_path": "", "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
        "headers": [(b"host", b"testserver"), (b"x-forwarded-proto", b"https"),
                    (b"authorization", token_for(user).encode())],
    }

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(asyncio.wait_for(application(scope, receive, send), 60))
    assert sent[0]["status"] == 200
    bodies = [m["body"] for m in sent[1:] if m.get("body")]
    vectors = np.load(io.BytesIO(b"".join(bodies)))
    assert vectors.shape == (5000, MINILM.output_dim) and np.isnan(vectors).all()
    assert len(bodies) > 2


def test_the_lifespan_events_are_answered_and_run_the_batch_feeder():
    from product.asgi import application
    from product.batches.feeder import feeder

    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict] = []

    async def receive() -> dict:
        await asyncio.sleep(0.05)
        return incoming.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)
        if message["type"] == "lifespan.startup.complete":
            running.append(feeder._task is not None and not feeder._task.done())

    running: list[bool] = []
    asyncio.run(asyncio.wait_for(application({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send), 30))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert running == [True] and feeder._task is None
