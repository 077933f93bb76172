"""Submit → result latency of single requests through the whole system, at low load.

Starts its own web and runner processes on a `product_bench` database (on DATABASE_URL's
server, or the embedded one), then sends one-text requests one at a time over HTTP and polls
until each result is visible. Prints client-observed and server-side figures.

    .venv/bin/python bench/request_latency.py --requests 100
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def setup_database() -> None:
    import psycopg

    from product.embedded_db import ensure_database_url
    from product.env import parse_database_url

    base = parse_database_url(ensure_database_url())
    conninfo = {"host": base["HOST"], "user": base["USER"], "password": base["PASSWORD"],
                "port": base["PORT"] or None, "dbname": base["NAME"]}
    with psycopg.connect(**{k: v for k, v in conninfo.items() if v}, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS product_bench WITH (FORCE)")
        conn.execute("CREATE DATABASE product_bench")
    url = os.environ["DATABASE_URL"]
    os.environ["DATABASE_URL"] = url.replace(f"/{base['NAME']}", "/product_bench", 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--poll-ms", type=float, default=2.0, help="Result polling interval.")
    options = parser.parse_args()

    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "product.settings")
    setup_database()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    from product.accounts.services import token_create
    from product.inference.models import InferenceRequest
    from product.inference.specs import MINILM
    from tests.support.processes import start_runner, start_web

    user = get_user_model().objects.create_user("bench", password=secrets.token_urlsafe())
    token = "Bearer " + token_create(user=user, name="bench")[1]
    log_dir = Path(tempfile.mkdtemp(prefix="bench-"))
    runner = start_runner(log_dir)
    web, base_url = start_web(log_dir)
    runner.wait_for_output("taking jobs from")

    def http(path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            base_url + path, data=json.dumps(body).encode() if body else None,
            headers={"Authorization": token, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())

    client_ms, ids = [], []
    try:
        for n in range(options.requests + 5):
            started = time.perf_counter()
            created = http("/api/v1/requests", {"model": MINILM.name, "input": f"Benchmark sentence {n}."})
            while http(created["url"])["status"] not in ("succeeded", "failed"):
                time.sleep(options.poll_ms / 1000)
            if n >= 5:  # The first few warm up connections and caches.
                client_ms.append((time.perf_counter() - started) * 1000)
                ids.append(created["id"])
    finally:
        web.terminate()
        runner.terminate()

    rows = list(InferenceRequest.objects.filter(pk__in=ids))
    figures = {
        "client submit→result visible": client_ms,
        "server created→finished": [r.total_ms for r in rows],
        "  of which queue wait": [r.queue_ms for r in rows],
        "  of which model compute": [r.compute_ms for r in rows],
    }
    overhead = [r.total_ms - r.compute_ms for r in rows]
    figures["server overhead (total − compute)"] = overhead
    print(f"{options.requests} sequential one-text requests to {MINILM.name}; poll every {options.poll_ms} ms; "
          f"runner batch wait {os.environ.get('GPU_RUNNER_BATCH_WAIT_MS', '2.0')} ms")
    print(f"{'figure (ms)':<36} {'p50':>8} {'p95':>8} {'p99':>8} {'mean':>8}")
    for name, values in figures.items():
        print(f"{name:<36} {percentile(values, 50):8.1f} {percentile(values, 95):8.1f} "
              f"{percentile(values, 99):8.1f} {statistics.fmean(values):8.1f}")


if __name__ == "__main__":
    main()
