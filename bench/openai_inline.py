"""Inline OpenAI-style calls against the project's own submit-and-wait, in one run.

Starts its own web and runner processes on a `product_bench` database (on DATABASE_URL's
server, or the embedded one). ``--concurrency`` clients each send one-text calls back to back,
each client on its own keep-alive connection, in two ways, alternated over ``--rounds``:

- openai:  ``POST /v1/embeddings`` (base64, as OpenAI's SDK asks by default): one call that
  waits for the result on the web's LISTEN;
- native:  ``POST /api/v1/requests``, then the request's live status stream
  (``/requests/{id}/events``, a new connection, as a browser's EventSource) until it says
  succeeded, then ``GET …/result?encoding_format=base64``: three calls, as a real client waits.

Prints texts/s and latency percentiles of each, and openai's ratios to native.

    .venv/bin/python bench/openai_inline.py --requests 200 --concurrency 8
"""

from __future__ import annotations

import argparse
import http.client
import json
import secrets
import tempfile
import threading
import time
from pathlib import Path

from common import describe_machine, percentile, sentences, setup_django


def session_cookie(user) -> str:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


class Caller:
    """One client: a keep-alive connection, its token and its session."""

    def __init__(self, host: str, token: str, cookie: str, model: str) -> None:
        self.host, self.model, self.cookie = host, model, cookie
        self.conn = http.client.HTTPConnection(host, timeout=60)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def _call(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        self.conn.request(method, path, body=json.dumps(body) if body else None, headers=self.headers)
        response = self.conn.getresponse()
        return response.status, response.read()

    def openai(self, text: str) -> None:
        status, body = self._call(
            "POST", "/v1/embeddings", {"model": self.model, "input": text, "encoding_format": "base64"}
        )
        assert status == 200, (status, body[:300])

    def native(self, text: str) -> None:
        status, body = self._call("POST", "/api/v1/requests", {"model": self.model, "input": text})
        assert status == 201, (status, body[:300])
        created = json.loads(body)
        self._wait_on_stream(created["id"])
        status, body = self._call("GET", f"{created['url']}/result?encoding_format=base64")
        assert status == 200, (status, body[:300])

    def _wait_on_stream(self, request_id: int) -> None:
        stream = http.client.HTTPConnection(self.host, timeout=60)
        try:
            stream.request("GET", f"/requests/{request_id}/events",
                           headers={"Cookie": self.cookie, "Accept": "text/event-stream"})
            response = stream.getresponse()
            assert response.status == 200, response.status
            for line in response:
                if line.startswith(b"data:"):
                    status = json.loads(line[5:]).get("status")
                    if status == "succeeded":
                        return
                    assert status in ("queued", "running"), status
        finally:
            stream.close()


def run_phase(callers: list[Caller], way: str, texts: list[str]) -> tuple[float, list[float]]:
    """Every caller sends its share of ``texts`` one after another; (wall seconds, latencies ms)."""
    shares = [texts[index :: len(callers)] for index in range(len(callers))]
    latencies: list[float] = []
    lock = threading.Lock()

    def client(caller: Caller, share: list[str]) -> None:
        mine = []
        for text in share:
            started = time.perf_counter()
            getattr(caller, way)(text)
            mine.append((time.perf_counter() - started) * 1000)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=pair) for pair in zip(callers, shares)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="calls per way and round")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args()
    setup_django()
    from django.contrib.auth import get_user_model

    from inference_models.sentence_embedding.spec import SPEC as MINILM
    from product.accounts.services import token_create
    from tests.support.processes import start_runner, start_web

    log_dir = Path(tempfile.mkdtemp(prefix="bench-"))
    runner = start_runner(log_dir)
    try:
        web, base_url = start_web(log_dir)
    except BaseException:
        runner.terminate()
        raise
    try:
        runner.wait_for_output("taking jobs from")
        host = base_url.removeprefix("http://")
        callers = []
        for n in range(options.concurrency):  # One user per client: each its own turns and limits.
            user = get_user_model().objects.create_user(f"bench{n}", password=secrets.token_urlsafe())
            callers.append(Caller(host, token_create(user=user, name="bench")[1], session_cookie(user), MINILM.name))
        total = options.requests * options.rounds * 2
        texts = iter(sentences(total + 4 * options.concurrency))
        for way in ("openai", "native"):  # Warm up connections, caches and the model's shapes.
            run_phase(callers, way, [next(texts) for _ in range(2 * options.concurrency)])
        figures = {"openai": ([], 0.0), "native": ([], 0.0)}
        for round_ in range(options.rounds):
            order = ("openai", "native") if round_ % 2 == 0 else ("native", "openai")
            for way in order:
                seconds, latencies = run_phase(callers, way, [next(texts) for _ in range(options.requests)])
                done, spent = figures[way]
                figures[way] = (done + latencies, spent + seconds)
    finally:
        web.terminate()
        runner.terminate()

    print(f"{describe_machine()}; {options.concurrency} concurrent clients, one-text calls to "
          f"{MINILM.name}, {options.requests} per way in each of {options.rounds} rounds (alternated)")
    print(f"{'way':<44} {'texts/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    rows = {}
    for way, label in (("openai", "openai: POST /v1/embeddings (inline)"),
                       ("native", "native: POST + request's SSE + GET result")):
        latencies, seconds = figures[way]
        rows[way] = (len(latencies) / seconds, percentile(latencies, 50), percentile(latencies, 99))
        print(f"{label:<44} {rows[way][0]:8.1f} {rows[way][1]:8.1f} {rows[way][2]:8.1f}")
    (o_rate, o_p50, o_p99), (n_rate, n_p50, n_p99) = rows["openai"], rows["native"]
    print(f"{'ratio openai / native':<44} {o_rate / n_rate:8.2f} {o_p50 / n_p50:8.2f} {o_p99 / n_p99:8.2f}")


if __name__ == "__main__":
    main()
