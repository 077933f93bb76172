"""Pipeline ceiling: how fast the host side of the system moves texts when the forward pass
costs nothing (as if the accelerator were infinitely fast), for three loads, against the
tokeniser alone measured in the same run.

Starts PostgreSQL (a `product_bench` database), the real web process (uvicorn) and the real
runner process with every model's forward pass replaced by its real output for one short
input, repeated (``bench/ceiling_runner.py``; tokenising, batching, the queue and the stored
results stay real). Then, with production's batch settings and no per-user limits:

1. bulk requests over HTTP (``--bulk`` requests of ``--bulk-size`` texts);
2. one-text requests over HTTP from ``--clients`` threads (``--single`` requests), each thread
   a user of its own unless ``--users`` says otherwise (one user's submits take turns on that
   user's quota row, which would measure the row lock, not the system);
3. one-text jobs without HTTP, the runner's own ceiling: ``--jobs`` request rows and their jobs
   (the same arguments and priority the web's would carry) are created in one transaction,
   with the web not yet started, and the idle runner drains them.

Loads 1 and 2 are timed from the first request's creation to the last one's finish, load 3
from the runner's first start to the last finish (timestamps on the rows). Each reports
texts/s, its ratio to the tokeniser alone (the model's ``prepare`` on the same texts in
batches of ``--tokeniser-batch``, measured before and after the loads; the ratio is to their
mean), the CPU milliseconds per text of each process, and the issue's goals beside them.

    .venv/bin/python bench/pipeline_ceiling.py
    .venv/bin/python bench/pipeline_ceiling.py --bulk 200 --bulk-size 256 --single 8000 --jobs 50000
    .venv/bin/python bench/pipeline_ceiling.py --users 1   # one user, as bench/served_throughput.py
    .venv/bin/python bench/pipeline_ceiling.py --py-spy /tmp/profiles   # py-spy profiles, hot spots

With ``--py-spy DIR`` the figures include py-spy's own load on the machine: compare figures
from runs without it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

from common import (
    ROOT,
    database_cpu_seconds,
    describe_machine,
    load_model,
    process_cpu_seconds,
    sentences,
    setup_django,
)

# The goals on a 2-core machine (issue 10, "A pipeline-ceiling benchmark").
BULK_GOAL_OF_TOKENISER = 0.7
RUNNER_JOBS_GOAL = 4000
WEB_SUBMIT_CPU_GOAL_MS = 1.5
POLL_INTERVAL = 0.2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bulk", type=int, default=100, help="Bulk requests (load 1).")
    parser.add_argument("--bulk-size", type=int, default=256, help="Texts per bulk request.")
    parser.add_argument("--single", type=int, default=3000, help="One-text requests (load 2).")
    parser.add_argument("--clients", type=int, default=16, help="Submitting threads (loads 1, 2).")
    parser.add_argument("--users", type=int,
                        help="Users the requests and jobs belong to, in turn (default: one per "
                             "client thread; one user's submits take turns on its quota row).")
    parser.add_argument("--jobs", type=int, default=20000, help="One-text jobs without HTTP (load 3).")
    parser.add_argument("--tokeniser-batch", type=int, default=256, help="Texts per prepare call.")
    parser.add_argument("--py-spy", type=Path, metavar="DIR",
                        help="Profile the runner in loads 1 and 3 and the web in load 2 with "
                             "py-spy (collapsed stacks) and print their hot spots.")
    options = parser.parse_args()
    options.users = options.users or options.clients
    # Child processes run this tree's code, whatever else is installed.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])
    )
    setup_django()
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from product.accounts.services import token_create
    from inference_models.sentence_embedding.spec import SPEC as MINILM
    from tests.support.processes import Process, child_env, start_web

    texts = sentences(max(options.bulk * options.bulk_size, options.single, options.jobs))
    model = load_model()
    tokeniser_before = tokeniser_rate(model, texts, options.tokeniser_batch)

    users = [get_user_model().objects.create_user(f"bench-{n}", password=secrets.token_urlsafe())
             for n in range(options.users)]
    headers = [{"Authorization": "Bearer " + token_create(user=user, name="bench")[1],
                "Content-Type": "application/json"} for user in users]
    log_dir = Path(tempfile.mkdtemp(prefix="bench-"))
    runner = Process("runner", [sys.executable, "-m", "bench.ceiling_runner"], child_env(), log_dir)
    web = None
    try:
        runner.wait_for_output("taking jobs from")
        pids = {"runner": runner.popen.pid}
        with profiled(options.py_spy, "runner-one-text-jobs", runner.popen.pid):
            # The rows and jobs stand in for the web's work, which this load leaves out: the
            # CPU counted is what draining them costs.
            jobs = measured(pids, lambda: deferred_jobs(users, MINILM, texts[: options.jobs]),
                            span_from="started_at", count_creation=False)
        web, base_url = start_web(log_dir)
        pids["web"] = web.popen.pid
        client = Submitter(base_url, headers, options.clients)
        bulk_bodies = [
            {"model": MINILM.name, "input": texts[n * options.bulk_size : (n + 1) * options.bulk_size]}
            for n in range(options.bulk)
        ]
        with profiled(options.py_spy, "runner-bulk-requests", runner.popen.pid):
            bulk = measured(pids, lambda: client.submit_all(bulk_bodies), span_from="created_at")
        single_bodies = [{"model": MINILM.name, "input": text} for text in texts[: options.single]]
        with profiled(options.py_spy, "web-one-text-requests", web.popen.pid):
            single = measured(pids, lambda: client.submit_all(single_bodies), span_from="created_at")
    finally:
        if web is not None:
            web.terminate()
        runner.terminate()
    tokeniser_after = tokeniser_rate(model, texts, options.tokeniser_batch)
    tokeniser = {key: (tokeniser_before[key] + tokeniser_after[key]) / 2 for key in tokeniser_before}

    runner_code = next((line for line in runner.output().splitlines()
                        if line.startswith("ceiling runner: ")), "runner code: unknown")
    print(f"{describe_machine()}; {MINILM.name}, forward pass replaced by a constant output")
    print(f"{runner_code}; bench code from {ROOT}")
    print(f"runner: GPU_RUNNER_MAX_BATCH_SIZE={settings.GPU_RUNNER_MAX_BATCH_SIZE}, "
          f"MAX_BATCH_TOKENS={settings.GPU_RUNNER_MAX_BATCH_TOKENS}, "
          f"CONCURRENCY={settings.GPU_RUNNER_CONCURRENCY}, "
          f"BATCH_WAIT_MS={settings.GPU_RUNNER_BATCH_WAIT_MS}; {options.clients} client threads, "
          f"{options.users} user(s)")
    print(f"tokeniser alone (prepare, batches of {options.tokeniser_batch}): "
          f"{tokeniser['texts_s']:,.0f} texts/s (before {tokeniser_before['texts_s']:,.0f}, "
          f"after {tokeniser_after['texts_s']:,.0f}), {tokeniser['cpu_ms']:.3f} ms of CPU per text "
          f"({tokeniser['cpu_ms'] * tokeniser['texts_s'] / 1000:.1f} cores busy)")
    goals = {
        "bulk": f"goal >= {BULK_GOAL_OF_TOKENISER} x tokeniser = "
                f"{BULK_GOAL_OF_TOKENISER * tokeniser['texts_s']:,.0f} texts/s",
        "single": f"goal: web CPU per one-text submit <= {WEB_SUBMIT_CPU_GOAL_MS} ms "
                  "(bench/web_cost.py)",
        "jobs": f"goal >= {RUNNER_JOBS_GOAL:,} jobs/s",
    }
    loads = (
        ("bulk", f"1. bulk requests of {options.bulk_size} over HTTP", bulk),
        ("single", "2. one-text requests over HTTP", single),
        ("jobs", "3. one-text jobs without HTTP (runner alone)", jobs),
    )
    for key, name, result in loads:
        print(f"{name}: {result['requests']} requests, {result['texts']} texts in "
              f"{result['seconds']:.2f} s = {result['texts_s']:,.0f} texts/s; "
              f"/tokeniser = {result['texts_s'] / tokeniser['texts_s']:.2g}; {goals[key]}")
        print("   CPU ms per text: " + ", ".join(
            f"{process} {seconds * 1000 / result['texts']:.3f}"
            for process, seconds in result["cpu"].items() if seconds is not None))
    if options.py_spy:
        print(f"py-spy profiles (collapsed stacks, for speedscope or flamegraph.pl) in "
              f"{options.py_spy} (these figures include py-spy's load)")


def tokeniser_rate(model, texts: list[str], batch_size: int, *, seconds: float = 3.0) -> dict:
    """Texts/s and CPU ms per text of ``model.prepare`` alone on ``texts``, ``batch_size`` at a time."""
    batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
    model.prepare(batches[0])
    done = 0
    started, cpu = time.perf_counter(), process_cpu_seconds(os.getpid())
    while time.perf_counter() - started < seconds:
        for batch in batches:
            model.prepare(batch)
            done += len(batch)
    elapsed = time.perf_counter() - started
    return {"texts_s": done / elapsed, "cpu_ms": (process_cpu_seconds(os.getpid()) - cpu) * 1000 / done}


def cpu_seconds(pids: dict[str, int]) -> dict[str, float | None]:
    seconds: dict[str, float | None] = {name: process_cpu_seconds(pid) for name, pid in pids.items()}
    seconds["postgres"] = database_cpu_seconds()
    seconds["client"] = process_cpu_seconds(os.getpid())  # HTTP clients (and the polling)
    return seconds


def measured(pids: dict[str, int], create, *, span_from: str, count_creation: bool = True) -> dict:
    """Run ``create()``, which creates requests, and wait until they have all finished; their
    count, texts/s (from the earliest ``span_from`` timestamp to the last finish) and the CPU
    seconds each process spent meanwhile (from after ``create()`` without ``count_creation``)."""
    from django.db.models import Count, Max, Min, Sum

    from product.inference.models import InferenceRequest

    first_id = InferenceRequest.objects.aggregate(last=Max("pk"))["last"] or 0
    if count_creation:
        before = cpu_seconds(pids)
        create()
    else:
        create()
        before = cpu_seconds(pids)
    rows = InferenceRequest.objects.filter(pk__gt=first_id)
    while rows.filter(finished_at__isnull=True).exists():
        time.sleep(POLL_INTERVAL)
    after = cpu_seconds(pids)
    statuses = set(rows.values_list("status", flat=True).distinct())
    assert statuses == {"succeeded"}, statuses
    span = rows.aggregate(start=Min(span_from), end=Max("finished_at"), requests=Count("pk"),
                          texts=Sum("item_count"))
    seconds = (span["end"] - span["start"]).total_seconds()
    return {
        "requests": span["requests"], "texts": span["texts"], "seconds": seconds,
        "texts_s": span["texts"] / seconds,
        "cpu": {name: None if after[name] is None else after[name] - before[name] for name in after},
    }


def deferred_jobs(users: list, spec, texts: list[str]) -> None:
    """Create one one-text request per text (of ``users`` in turn) and its job, as the web's
    submit would (same job arguments, priority and queue), in one transaction: the runner sees
    them all at once."""
    from django.db import connection, transaction
    from procrastinate.contrib.django import app

    from product.inference import jobs
    from product.inference.models import InferenceRequest

    priority = jobs.choose_priority(None, 1)
    task = app.configure_task(name=jobs.RUN_REQUEST_TASK, queue=spec.queue,
                              priority=jobs.JOB_PRIORITY[priority])
    with transaction.atomic():
        requests = InferenceRequest.objects.bulk_create(
            InferenceRequest(owner=users[n % len(users)], model=spec.name, inputs=[text],
                             item_count=1, priority=priority)
            for n, text in enumerate(texts)
        )
        job_ids = task.batch_defer(
            *({"request_id": r.pk, "owner": r.owner_id, "texts": r.item_count} for r in requests)
        )
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {InferenceRequest._meta.db_table} AS r SET job_id = v.job_id "
                "FROM unnest(%s::bigint[], %s::bigint[]) AS v(id, job_id) WHERE r.id = v.id",
                [[r.pk for r in requests], job_ids],
            )


class Submitter:
    """Clients that POST request bodies over HTTP from several threads, one keep-alive
    connection each, without waiting for results; thread n sends as ``headers[n % len]``."""

    def __init__(self, base_url: str, headers: list[dict[str, str]], threads: int) -> None:
        self.address = base_url.removeprefix("http://")
        self.headers = headers
        self.threads = threads

    def submit_all(self, bodies: list[dict]) -> None:
        chunks = [bodies[n :: self.threads] for n in range(self.threads)]
        threads = [
            threading.Thread(target=self._submit, args=(chunk, self.headers[n % len(self.headers)]))
            for n, chunk in enumerate(chunks)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _submit(self, bodies: list[dict], headers: dict[str, str]) -> None:
        conn = http.client.HTTPConnection(self.address, timeout=60)
        for body in bodies:
            conn.request("POST", "/api/v1/requests", body=json.dumps(body), headers=headers)
            response = conn.getresponse()
            answer = response.read()
            assert response.status == 201, answer


@contextmanager
def profiled(directory: Path | None, name: str, pid: int):
    """With ``directory``, profile ``pid`` with py-spy (collapsed stacks) while the block runs."""
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    spy = subprocess.Popen(
        # Without pausing the process for each sample (py-spy's default), which slows a busy
        # web process several times over.
        [py_spy, "record", "--nonblocking", "--format", "raw", "--pid", str(pid),
         "--output", str(directory / f"{name}.folded")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    time.sleep(1)  # py-spy attaches.
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)
        print_hot_spots(directory / f"{name}.folded")


OWN_CODE = re.compile(r"\((gpu_runner|product|bench)/|\(ceiling_runner")


def _short_frame(frame: str) -> str:
    """``function (path/to/module.py:line)`` as ``function (package/module.py)``."""
    frame = re.sub(r" \(.*/(src|site-packages|python3[.0-9]*)/", " (", frame)
    return re.sub(r":\d+\)$", ")", frame)


def print_hot_spots(folded: Path, *, top: int = 12) -> None:
    """The functions holding most of a profile's samples, inclusive and on top of the stack,
    from py-spy's collapsed stacks (one line per stack: ``frame;frame;... count``)."""
    inclusive: Counter = Counter()
    own: Counter = Counter()
    total = 0
    if not folded.exists():  # py-spy could not attach; its figures are simply missing.
        print(f"{folded.name}: no profile recorded")
        return
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [_short_frame(frame) for frame in stack.split(";")]
        samples = int(count)
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            if OWN_CODE.search(frame):
                inclusive[frame] += samples
    if not total:
        return
    print(f"{folded.name}: {total} samples")
    for title, counts in (("inclusive, this project's functions", inclusive), ("on top", own)):
        print(f"  {title}:")
        for frame, samples in counts.most_common(top):
            print(f"    {samples / total:6.1%}  {frame}")


if __name__ == "__main__":
    main()
