"""Latency overhead at low load: submit → result visible, minus the model's own time.

Starts its own web and runner processes on a `product_bench` database (on DATABASE_URL's
server, or the embedded one). Like a browser on the request list, the client keeps the live
status stream (Server-Sent Events, /requests/events) open, then sends one-text requests over
the JSON API one at a time; a result is visible when the stream says it succeeded. Overhead =
submit→visible minus the model's compute time recorded on the row: what HTTP, the queue, the
database, batching and the push add.

    .venv/bin/python bench/request_latency.py --requests 200
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import tempfile
import threading
import time
from pathlib import Path

from common import describe_machine, sentences, setup_django, summary_row


def session_cookie(user) -> str:
    """A signed-in browser's session cookie (sessions live in the shared database)."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def listen(host: str, cookie: str, finished: dict, arrived: threading.Condition) -> None:
    """Read the live status stream; note when each request is reported final."""
    conn = http.client.HTTPConnection(host)
    conn.request("GET", "/requests/events", headers={"Cookie": cookie, "Accept": "text/event-stream"})
    response = conn.getresponse()
    assert response.status == 200, response.status
    for line in response:
        if line.startswith(b"data:"):
            event = json.loads(line[5:])
            if event.get("status") in ("succeeded", "failed"):
                with arrived:
                    finished[event["id"]] = time.perf_counter()
                    arrived.notify_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    options = parser.parse_args()
    setup_django()
    from django.contrib.auth import get_user_model

    from product.accounts.services import token_create
    from product.inference.models import InferenceRequest
    from inference_models.sentence_embedding.spec import SPEC as MINILM
    from tests.support.processes import start_runner, start_web

    user = get_user_model().objects.create_user("bench", password=secrets.token_urlsafe())
    headers = {"Authorization": "Bearer " + token_create(user=user, name="bench")[1],
               "Content-Type": "application/json"}
    log_dir = Path(tempfile.mkdtemp(prefix="bench-"))
    runner = start_runner(log_dir)
    try:
        web, base_url = start_web(log_dir)
    except BaseException:
        runner.terminate()
        raise
    runner.wait_for_output("taking jobs from")
    host = base_url.removeprefix("http://")
    conn = http.client.HTTPConnection(host)
    finished: dict[int, float] = {}
    arrived = threading.Condition()
    threading.Thread(target=listen, args=(host, session_cookie(user), finished, arrived), daemon=True).start()

    def call(method: str, path: str, body: dict | None = None) -> dict:
        conn.request(method, path, body=json.dumps(body) if body else None, headers=headers)
        return json.loads(conn.getresponse().read())

    warm_up = 10
    client_ms, post_ms, ids = [], [], []
    try:
        for n, text in enumerate(sentences(options.requests + warm_up)):
            started = time.perf_counter()
            created = call("POST", "/api/v1/requests", {"model": MINILM.name, "input": text})
            posted = time.perf_counter()
            with arrived:
                arrived.wait_for(lambda: created["id"] in finished, timeout=30)
            if n >= warm_up:  # The first few warm up connections and caches.
                client_ms.append((finished[created["id"]] - started) * 1000)
                post_ms.append((posted - started) * 1000)
                ids.append(created["id"])
            time.sleep(0.01)  # Low load: one request at a time, with a pause between.
    finally:
        web.terminate()
        runner.terminate()

    rows = {r.pk: r for r in InferenceRequest.objects.filter(pk__in=ids)}
    compute = [rows[pk].compute_ms for pk in ids]
    figures = {
        "client submit→result visible": client_ms,
        "model compute (on the row)": compute,
        "overhead (visible − compute)": [c - m for c, m in zip(client_ms, compute)],
        "  HTTP submit (POST round trip)": post_ms,
        "  server created→finished": [rows[pk].total_ms for pk in ids],
        "  server queue wait (created→started)": [rows[pk].queue_ms for pk in ids],
        "  runner around the model (started→finished − compute)": [
            (rows[pk].finished_at - rows[pk].started_at).total_seconds() * 1000 - rows[pk].compute_ms
            for pk in ids
        ],
    }
    print(f"{describe_machine()}; {options.requests} sequential one-text requests to {MINILM.name}; "
          f"results seen on the live stream; runner batch wait "
          f"{os.environ.get('GPU_RUNNER_BATCH_WAIT_MS', '2.0')} ms")
    print(f"{'figure (ms)':<56} {'p50':>8} {'p95':>8} {'p99':>8} {'mean':>8}")
    for name, values in figures.items():
        print(summary_row(name, values))


if __name__ == "__main__":
    main()
