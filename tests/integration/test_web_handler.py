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
