"""The web's CPU per API call: what one submit, one read and one liveness probe cost the web
process, sent one after another over one keep-alive connection (no runner: the work of the
web alone).

Starts its own web process on a `product_bench` database and reads the whole process's CPU
time (user + system, every thread) from /proc before and after each series of calls.

With ``--baseline DIR`` (another checkout, e.g. ``git archive <commit> | tar -x -C DIR``) it
also starts that code's web, on a database of its own migrated by that code, and runs the
series of both in turns (A B, B A, ...), so the two are measured in the same run under the
same load; it prints the median of the rounds and the ratio this tree / baseline.

    .venv/bin/python bench/web_cost.py --calls 1000
    .venv/bin/python bench/web_cost.py --calls 1000 --rounds 5 --baseline /tmp/web-before
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from common import describe_machine, process_cpu_seconds, sentences, setup_django


@dataclass
class Web:
    """One web process under measurement, with its keep-alive connection and token."""

    name: str
    process: object  # tests.support.processes.Process
    base_url: str
    token: str
    first_id: int = 0
    results: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.conn = self.connect()
        self.headers = {"Authorization": "Bearer " + self.token, "Content-Type": "application/json"}

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.base_url.removeprefix("http://"))

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        self.conn.request(method, path, body=json.dumps(body) if body else None, headers=self.headers)
        response = self.conn.getresponse()
        data = response.read()
        assert response.status < 300, data
        return json.loads(data) if response.headers.get_content_type() == "application/json" else {}

    def series(self, make_call: Callable[[Web, int], dict], calls: int) -> tuple[float, float]:
        """Wall ms and web CPU ms per call."""
        pid = self.process.popen.pid
        # A fresh connection: uvicorn closes one idle for 5 s, as while the other web's run.
        self.conn.close()
        self.conn = self.connect()
        started, cpu = time.perf_counter(), process_cpu_seconds(pid)
        for n in range(calls):
            make_call(self, n)
        return ((time.perf_counter() - started) * 1000 / calls,
                (process_cpu_seconds(pid) - cpu) * 1000 / calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="Calls of each kind per round.")
    parser.add_argument("--rounds", type=int, default=1, help="Series of each kind per web.")
    parser.add_argument("--baseline", type=Path, help="A checkout of other code to compare with.")
    options = parser.parse_args()
    setup_django()
    from django.contrib.auth import get_user_model

    from product.accounts.services import token_create
    from inference_models.sentence_embedding.spec import SPEC as MINILM
    from tests.support.processes import start_web

    log_dir = Path(tempfile.mkdtemp(prefix="bench-"))
    user = get_user_model().objects.create_user("bench", password=secrets.token_urlsafe())
    webs = [Web("this tree", *start_web(log_dir), token_create(user=user, name="bench")[1])]
    texts = sentences(options.calls + 50)

    def submit(web: Web, n: int) -> dict:
        return web.call("POST", "/api/v1/requests", {"model": MINILM.name, "input": texts[n]})

    kinds = {
        "POST /api/v1/requests (submit one text)": submit,
        "GET /api/v1/requests/<id> (read one)": lambda web, n: web.call(
            "GET", f"/api/v1/requests/{web.first_id}"
        ),
        "GET /healthz (first middleware answers)": lambda web, n: web.call("GET", "/healthz"),
    }
    try:
        if options.baseline:
            webs.append(start_baseline(options.baseline.resolve(), log_dir))
        for web in webs:
            web.first_id = submit(web, options.calls)["id"]
            for make_call in kinds.values():
                web.series(make_call, 50)  # Warm connections and caches up.
        for round_ in range(options.rounds):
            for name, make_call in kinds.items():
                for web in webs if round_ % 2 == 0 else webs[::-1]:
                    web.results.setdefault(name, []).append(web.series(make_call, options.calls))
    finally:
        for web in webs:
            web.process.terminate()
    report(webs, options)


def start_baseline(checkout: Path, log_dir: Path) -> Web:
    """The web of ``checkout``'s code, on a database of its own that its code migrated."""
    from tests.support.processes import start_web

    database = "product_bench_baseline"
    url = recreate_database(database)
    env = {"DATABASE_URL": url, "PYTHONPATH": str(checkout / "src")}
    child = {**os.environ, **env}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=checkout, env=child, check=True)
    token = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", (
            "from django.contrib.auth import get_user_model;"
            "from product.accounts.services import token_create;"
            "user = get_user_model().objects.create_user('bench');"
            "print(token_create(user=user, name='bench')[1])"
        )],
        cwd=checkout, env=child, check=True, capture_output=True, text=True,
    ).stdout.split()[-1]
    (log_dir / "baseline").mkdir()
    process, base_url = start_web(log_dir / "baseline", **env)
    return Web(f"baseline ({checkout})", process, base_url, token)


def recreate_database(name: str) -> str:
    """DATABASE_URL of a fresh, empty database ``name`` on the benchmark's server."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        cursor.execute(f"CREATE DATABASE {name}")
    current = connection.settings_dict["NAME"]
    return os.environ["DATABASE_URL"].replace(f"/{current}", f"/{name}", 1)


def report(webs: list[Web], options: argparse.Namespace) -> None:
    """Per kind of call and web: median wall and CPU ms per call over the rounds; with a
    baseline, the median of each round's CPU ratio (this tree / baseline, measured one right
    after the other, so a change in the machine's load between rounds cancels out)."""
    print(f"{describe_machine()}; {options.calls} calls of each kind per series, one at a time, "
          f"one connection; median of {options.rounds} round(s)")
    print("webs: " + "; ".join(f"{n + 1} = {web.name}" for n, web in enumerate(webs)))
    header = f"{'call':<44}" + "".join(
        f" {f'{n + 1}: wall ms':>11} {f'{n + 1}: CPU ms':>10}" for n in range(len(webs))
    )
    print(header + (f" {'CPU 1/2':>8}" if len(webs) > 1 else ""))
    for name in webs[0].results:
        row = f"{name:<44}"
        for web in webs:
            row += (f" {statistics.median(w for w, _ in web.results[name]):11.2f}"
                    f" {statistics.median(c for _, c in web.results[name]):10.2f}")
        if len(webs) > 1:
            pairs = zip(webs[0].results[name], webs[1].results[name])
            row += f" {statistics.median(a[1] / b[1] for a, b in pairs):8.2f}"
        print(row)


if __name__ == "__main__":
    main()
