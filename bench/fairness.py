"""Fair turns: how long one user's small requests wait while another user's bulk backlog runs,
with fairness on and with the old order (oldest work of all users first), in the same run.

Part 1 measures the runners' fetch statement (``product.queue.intake.fetch``) on a queue of many
waiting jobs: EXPLAIN ANALYZE of the fair statement and of the old one, and their median times.

Part 2 starts a web process and, for each order, a runner (GPU_RUNNER_FAIR=1, then 0) on a
``product_bench`` database. User A queues ``--a-texts`` texts as bulk requests over HTTP; then
user B submits one text every ``--b-every`` seconds over HTTP while A's backlog runs, and polls
the API until each result is there. Reports B's submit→result p50/p99 (client clock) and A's
texts/s (first A row created → last A row finished, on the rows), and the ratios fair / old.

    .venv/bin/python bench/fairness.py
    .venv/bin/python bench/fairness.py --a-texts 4000 --explain-jobs 20000   # shorter
"""

from __future__ import annotations

import argparse
import http.client
import json
import secrets
import statistics
import tempfile
import threading
import time
from pathlib import Path

from common import describe_machine, percentile, sentences, setup_django

EXPLAIN_QUEUE = "bench.fairness.explain"


def explain_fetch(jobs: int, owners: int, repeats: int = 20) -> None:
    """Fill a queue no runner reads with ``jobs`` waiting jobs, one owner's backlog (nine in
    ten) and ``owners`` other owners' (the rest), of 64 texts each but one in a thousand (one
    text, interactive); then measure the fetch statements on it."""
    from django.conf import settings
    from django.db import connection, transaction

    from product.inference.jobs import INTERACTIVE_JOB_PRIORITY
    from product.queue import workers
    from product.queue.queries import query

    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO procrastinate_jobs (queue_name, task_name, priority, args)
            SELECT %(queue)s, 'inference.run_request',
                   CASE WHEN n %% 1000 = 0 THEN %(interactive)s ELSE 0 END,
                   jsonb_build_object('request_id', n,
                                      'owner', CASE WHEN n %% 10 = 0 THEN 1 + (n / 10) %% %(owners)s
                                                    ELSE 0 END,
                                      'texts', CASE WHEN n %% 1000 = 0 THEN 1 ELSE 64 END)
              FROM generate_series(1, %(jobs)s) AS n
            """,
            {"queue": EXPLAIN_QUEUE, "jobs": jobs, "owners": owners,
             "interactive": INTERACTIVE_JOB_PRIORITY},
        )
        cursor.execute("ANALYZE procrastinate_jobs")
        worker_id = workers.register()
    room = settings.GPU_RUNNER_MAX_HELD_TEXTS
    cases = [
        ("fair, room for texts", query("fetch_fair"), room),
        ("fair, no room (interactive only)", query("fetch_fair"), 0),
        ("old order", query("fetch_oldest"), room),
    ]
    print(f"fetch on {jobs} waiting jobs of {owners + 1} owners (limit 256, room {room} texts):")
    for name, statement, case_room in cases:
        params = {"queues": [EXPLAIN_QUEUE], "limit": 256, "worker_id": worker_id,
                  "room": case_room, "urgent": INTERACTIVE_JOB_PRIORITY}
        timings = []
        for repeat in range(repeats):
            with transaction.atomic(), connection.cursor() as cursor:
                if repeat == 0:
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
                    plan = [row[0] for row in cursor.fetchall()]
                started = time.perf_counter()
                cursor.execute(statement, params)
                taken = len(cursor.fetchall())
                timings.append((time.perf_counter() - started) * 1000)
                transaction.set_rollback(True)  # Leave the queue as it was for the next try.
        print(f"\n== {name}: takes {taken} jobs, median {statistics.median(timings):.1f} ms, "
              f"p90 {percentile(timings, 90):.1f} ms")
        print("\n".join(plan))
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_jobs WHERE queue_name = %s", [EXPLAIN_QUEUE])
        workers.unregister(worker_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a-texts", type=int, default=20_000, help="Texts A queues.")
    parser.add_argument("--a-size", type=int, default=64, help="Texts per A request.")
    parser.add_argument("--b-every", type=float, default=0.5, help="Seconds between B's submits.")
    parser.add_argument("--explain-jobs", type=int, default=20_000, help="Jobs for part 1.")
    parser.add_argument("--explain-owners", type=int, default=50)
    parser.add_argument("--skip-explain", action="store_true")
    parser.add_argument("--rounds", type=int, default=1,
                        help="Rounds of (fair, old), alternating, to even out a machine whose "
                             "load drifts; figures are over all rounds.")
    options = parser.parse_args()
    setup_django()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db.models import Max, Min, Sum

    from product.accounts.services import token_create
    from product.inference.models import InferenceRequest
    from inference_models.sentence_embedding.spec import SPEC as MINILM
    from tests.support.processes import start_runner, start_web

    print(describe_machine())
    if not options.skip_explain:
        explain_fetch(options.explain_jobs, options.explain_owners)

    users = {}
    for name in ("a", "b"):
        user = get_user_model().objects.create_user(f"bench-{name}", password=secrets.token_urlsafe())
        users[name] = (user, {"Authorization": "Bearer " + token_create(user=user, name="bench")[1],
                              "Content-Type": "application/json"})
    texts = sentences(options.a_texts + 10_000)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-fairness-"))
    b_seen: list[int] = []
    # Quotas and rate limits are not what is measured here.
    limits = {"INFERENCE_MAX_QUEUED_TEXTS": str(10 * options.a_texts),
              "INFERENCE_SUBMITS_PER_MINUTE": "100000", "INFERENCE_SUBMIT_BURST": "100000"}
    web, base_url = start_web(log_dir, **limits)
    address = base_url.removeprefix("http://")

    def post(headers: dict, body: dict) -> int:
        conn = http.client.HTTPConnection(address, timeout=60)
        conn.request("POST", "/api/v1/requests", body=json.dumps(body), headers=headers)
        response = conn.getresponse()
        created = json.loads(response.read())
        assert response.status == 201, created
        return created["id"]

    def queue_backlog() -> list[int]:
        _, headers = users["a"]
        bodies = [{"model": MINILM.name, "input": texts[n : n + options.a_size]}
                  for n in range(0, options.a_texts, options.a_size)]
        ids: list[int] = []
        lock = threading.Lock()

        def client(chunk: list[dict]) -> None:
            for body in chunk:
                request_id = post(headers, body)
                with lock:
                    ids.append(request_id)

        threads = [threading.Thread(target=client, args=(bodies[n::4],)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return ids

    def b_latencies(backlog: list[int], offset: int) -> tuple[list[float], list[int]]:
        """B submits one text every b_every s while A's backlog runs; seconds to each result,
        and B's request ids."""
        _, headers = users["b"]
        conn = http.client.HTTPConnection(address, timeout=60)
        outstanding: dict[int, float] = {}
        latencies: list[float] = []
        ids: list[int] = []
        next_submit = time.monotonic()
        n = 0
        while True:
            now = time.monotonic()
            a_running = InferenceRequest.objects.filter(
                pk__in=backlog, finished_at__isnull=True).exists() if n % 4 == 0 else True
            if now >= next_submit and a_running:
                request_id = post(headers, {"model": MINILM.name, "input": texts[-1 - offset - n]})
                outstanding[request_id] = now
                ids.append(request_id)
                n += 1
                next_submit += options.b_every
            for request_id, submitted in list(outstanding.items()):
                conn.request("GET", f"/api/v1/requests/{request_id}", headers=headers)
                response = conn.getresponse()
                status = json.loads(response.read())["status"]
                if status == "succeeded":
                    latencies.append(time.monotonic() - submitted)
                    del outstanding[request_id]
                else:
                    assert status in ("queued", "running"), status
            if not a_running and not outstanding:
                return latencies, ids
            time.sleep(0.02)

    runs: dict[str, list[dict]] = {"fair": [], "old": []}
    try:
        for round_ in range(options.rounds):
            for order, fair in (("fair", "1"), ("old", "0")):
                runner = start_runner(log_dir, name=f"runner-{order}-{round_}", GPU_RUNNER_FAIR=fair)
                try:
                    runner.wait_for_output("taking jobs from")
                    backlog = queue_backlog()
                    latencies, b_ids = b_latencies(backlog, offset=len(b_seen))
                    b_seen.extend(b_ids)
                finally:
                    runner.terminate()
                rows = InferenceRequest.objects.filter(pk__in=backlog)
                assert set(rows.values_list("status", flat=True)) == {"succeeded"}
                span = rows.aggregate(start=Min("created_at"), end=Max("finished_at"),
                                      n=Sum("item_count"))
                b_rows = InferenceRequest.objects.filter(pk__in=b_ids)
                runs[order].append({
                    "latencies": latencies, "texts": span["n"],
                    "seconds": (span["end"] - span["start"]).total_seconds(),
                    "queue": [r.queue_ms / 1000 for r in b_rows],
                    "run": [r.run_ms / 1000 for r in b_rows],
                })
    finally:
        web.terminate()
    results = {}
    for order, done in runs.items():
        latencies = [x for run in done for x in run["latencies"]]
        texts, seconds = sum(r["texts"] for r in done), sum(r["seconds"] for r in done)
        queue = [x for run in done for x in run["queue"]]
        ran = [x for run in done for x in run["run"]]
        results[order] = {
            "b_n": len(latencies), "b_p50": percentile(latencies, 50),
            "b_p99": percentile(latencies, 99), "b_max": max(latencies),
            "b_queue_p50": percentile(queue, 50), "b_run_p50": percentile(ran, 50),
            "a_texts_s": texts / seconds, "a_seconds": seconds,
        }

    print(f"\nA: {options.a_texts} texts in requests of {options.a_size} (bulk); "
          f"B: one text every {options.b_every} s; runner GPU_RUNNER_MAX_BATCH_SIZE="
          f"{settings.GPU_RUNNER_MAX_BATCH_SIZE}, MAX_HELD_TEXTS={settings.GPU_RUNNER_MAX_HELD_TEXTS}")
    print(f"{options.rounds} round(s) of (fair, old); B's queue and run: p50 of the rows' "
          "created → started and started → finished")
    print(f"{'order':<6} {'B requests':>10} {'B p50 s':>8} {'B p99 s':>8} {'B max s':>8} "
          f"{'B queue':>8} {'B run':>8} {'A texts/s':>10} {'A s':>7}")
    for order, r in results.items():
        print(f"{order:<6} {r['b_n']:>10} {r['b_p50']:>8.3f} {r['b_p99']:>8.3f} {r['b_max']:>8.3f} "
              f"{r['b_queue_p50']:>8.3f} {r['b_run_p50']:>8.3f} "
              f"{r['a_texts_s']:>10.1f} {r['a_seconds']:>7.1f}")
    fair, old = results["fair"], results["old"]
    print(f"fair / old: B p50 {fair['b_p50'] / old['b_p50']:.3f}, B p99 "
          f"{fair['b_p99'] / old['b_p99']:.3f}, A texts/s {fair['a_texts_s'] / old['a_texts_s']:.3f}")
    print(f"goal: B p99 <= 1 s ({'met' if fair['b_p99'] <= 1 else 'NOT met'}); A texts/s within "
          f"10% of the old order ({'met' if fair['a_texts_s'] >= 0.9 * old['a_texts_s'] else 'NOT met'})")


if __name__ == "__main__":
    main()
