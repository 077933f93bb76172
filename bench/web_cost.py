"""The web's CPU per API call: what one submit, one read and one liveness probe cost the web
process, sent one after another over one keep-alive connection (no runner: the work of the
web alone).

Starts its own web process on a `product_bench` database and reads the process's CPU time
from /proc before and after each series.

    .venv/bin/python bench/web_cost.py --calls 1000
"""

from __future__ import annotations

import argparse
import http.client
import json
import secrets
import tempfile
import time
from pathlib import Path

from common import describe_machine, process_cpu_seconds, sentences, setup_django


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="Calls of each kind.")
    options = parser.parse_args()
    setup_django()
    from django.contrib.auth import get_user_model

    from product.accounts.services import token_create
    from product.inference.specs import MINILM
    from tests.support.processes import start_web

    user = get_user_model().objects.create_user("bench", password=secrets.token_urlsafe())
    headers = {"Authorization": "Bearer " + token_create(user=user, name="bench")[1],
               "Content-Type": "application/json"}
    web, base_url = start_web(Path(tempfile.mkdtemp(prefix="bench-")))
    conn = http.client.HTTPConnection(base_url.removeprefix("http://"))
    texts = sentences(options.calls + 50)

    def call(method: str, path: str, body: dict | None = None) -> dict:
        conn.request(method, path, body=json.dumps(body) if body else None, headers=headers)
        response = conn.getresponse()
        data = response.read()
        assert response.status < 300, data
        return json.loads(data) if response.headers.get_content_type() == "application/json" else {}

    def series(make_call, calls: int) -> tuple[float, float]:
        """Wall ms and web CPU ms per call."""
        started, cpu = time.perf_counter(), process_cpu_seconds(web.popen.pid)
        for n in range(calls):
            make_call(n)
        return ((time.perf_counter() - started) * 1000 / calls,
                (process_cpu_seconds(web.popen.pid) - cpu) * 1000 / calls)

    def submit(n: int) -> dict:
        return call("POST", "/api/v1/requests", {"model": MINILM.name, "input": texts[n]})

    kinds = {
        "POST /api/v1/requests (submit one text)": submit,
        "GET /api/v1/requests/<id> (read one)": lambda n: call("GET", f"/api/v1/requests/{first}"),
        "GET /healthz (first middleware answers)": lambda n: call("GET", "/healthz"),
    }
    try:
        first = submit(options.calls)["id"]
        for make_call in kinds.values():
            series(make_call, 50)  # Warm connections and caches up.
        results = {name: series(make_call, options.calls) for name, make_call in kinds.items()}
    finally:
        web.terminate()

    print(f"{describe_machine()}; {options.calls} calls of each kind, one at a time, one connection")
    print(f"{'call':<44} {'wall ms':>8} {'web CPU ms':>11}")
    for name, (wall, cpu) in results.items():
        print(f"{name:<44} {wall:8.2f} {cpu:11.2f}")


if __name__ == "__main__":
    main()
