"""The operations page and the users' lists at scale: fill a database with ``--rows`` request
rows (1,000,000 by default) and their Procrastinate jobs, then time the page's render and each
query its live updates run, and print their plans (EXPLAIN ANALYZE).

The rows are spread over 30 days and 1,000 users: 93 % succeeded, 4 % failed (a few error
patterns with varying numbers), 2 % cancelled, the rest queued; jobs match their requests'
states. They are written with INSERT … SELECT from generate_series (a few minutes for a
million here), not through the web: this measures reading, not writing.

    .venv/bin/python bench/ops_scale.py                  # seed 1,000,000 and measure
    .venv/bin/python bench/ops_scale.py --rows 100000 --explain
    .venv/bin/python bench/ops_scale.py --reuse          # measure the last seeded database
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import describe_machine, setup_django  # noqa: E402

DATABASE = "product_ops_scale"
USERS = 1000
PAGE_GOAL_MS, QUERY_GOAL_MS = 300, 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7, help="Timed runs of each (the median is printed).")
    parser.add_argument("--explain", action="store_true", help="Print each live query's plan.")
    parser.add_argument("--reuse", action="store_true", help="Measure the database seeded last time.")
    options = parser.parse_args()
    if options.reuse:
        _use_existing()
    else:
        setup_django(DATABASE)
    print(describe_machine())
    if not options.reuse:
        started = time.perf_counter()
        seed(options.rows)
        print(f"seeded {options.rows:,} requests and their jobs in {time.perf_counter() - started:.1f} s")
    measure(options)


def _use_existing() -> None:
    from product.embedded_db import ensure_database_url
    from product.env import parse_database_url

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "product.settings")
    os.environ.setdefault("SECRET_KEY", "bench")
    base = ensure_database_url()
    os.environ["DATABASE_URL"] = base.replace(f"/{parse_database_url(base)['NAME']}", f"/{DATABASE}", 1)
    import django

    django.setup()


def seed(rows: int) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from product.inference.models import InferenceRequest
    from inference_models.sentence_embedding.spec import SPEC as MINILM

    users = get_user_model()
    users.objects.bulk_create([users(username=f"user{n}") for n in range(USERS)])
    users.objects.create_superuser("ops", password="ops-Secret-123")
    first_user = users.objects.order_by("id").values_list("id", flat=True).first()
    table = InferenceRequest._meta.db_table
    with connection.cursor() as cursor:
        # Status by position: most succeeded, then failed, cancelled, queued.
        cursor.execute(
            f"""
            INSERT INTO {table} (owner_id, model, inputs, item_count, items_done, status, priority,
                                 job_id, attempts, output, error, traceback, created_at,
                                 started_at, finished_at, compute_ms)
            SELECT %(first_user)s + (n %% %(users)s), %(model)s,
                   jsonb_build_array('seeded text number ' || n, 'another text'), 2,
                   CASE WHEN s = 'succeeded' THEN 2 ELSE 0 END, s,
                   CASE WHEN n %% 10 = 0 THEN 'bulk' ELSE 'interactive' END, n,
                   CASE WHEN s IN ('succeeded', 'failed') THEN 1 ELSE 0 END,
                   CASE WHEN s = 'succeeded' THEN '{{"dim": 384}}'::jsonb END,
                   CASE WHEN s = 'failed' THEN (ARRAY['CUDA out of memory (tried to allocate ' || (n %% 900) || ' MiB)',
                                                     'input[' || (n %% 7) || '] has ' || (4000 + n %% 50) || ' characters',
                                                     'the runner was lost ' || (n %% 3 + 1) || ' times'])[n %% 3 + 1]
                        ELSE '' END,
                   '', created, CASE WHEN s IN ('succeeded', 'failed') THEN created + interval '40 ms' END,
                   CASE WHEN s IN ('succeeded', 'failed', 'cancelled') THEN created + interval '60 ms' END,
                   CASE WHEN s = 'succeeded' THEN 12.5 END
              FROM (SELECT n, now() - make_interval(secs => (%(rows)s - n) * 2592000.0 / %(rows)s) AS created,
                           CASE WHEN n %% 100 < 93 THEN 'succeeded' WHEN n %% 100 < 97 THEN 'failed'
                                WHEN n %% 100 < 99 THEN 'cancelled' ELSE 'queued' END AS s
                      FROM generate_series(1, %(rows)s) AS n) AS seed
            """,
            {"first_user": first_user, "users": USERS, "model": MINILM.name, "rows": rows},
        )
        # Their jobs, with the ids the requests point at (the events trigger records each).
        cursor.execute(
            f"""
            INSERT INTO procrastinate_jobs (id, queue_name, task_name, priority, args, status, attempts)
            SELECT r.job_id, %(queue)s, 'inference.run_request',
                   CASE WHEN r.priority = 'interactive' THEN 10 ELSE 0 END,
                   jsonb_build_object('request_id', r.id, 'owner', r.owner_id, 'texts', r.item_count),
                   (CASE r.status WHEN 'queued' THEN 'todo' ELSE r.status END)::procrastinate_job_status,
                   r.attempts
              FROM {table} AS r
            """,
            {"queue": MINILM.queue},
        )
        cursor.execute("SELECT setval(pg_get_serial_sequence('procrastinate_jobs', 'id'), %s)", [rows])
    with connection.cursor() as cursor:  # VACUUM cannot run in a transaction block.
        cursor.execute("VACUUM ANALYZE")


def measure(options: argparse.Namespace) -> None:
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from product.inference import selectors as requests
    from product.inference.filters import RequestFilter
    from product.ops import selectors
    from product.ops.views import SPANS
    from product.runners.selectors import runner_rows

    ops = get_user_model().objects.get(username="ops")
    user = get_user_model().objects.get(username="user7")
    count = requests.InferenceRequest.objects.count()
    print(f"{count:,} requests; goals: page <= {PAGE_GOAL_MS} ms, each live query <= {QUERY_GOAL_MS} ms")
    queries = {
        "queue depth": selectors.queue_depth,
        "activity, last hour": lambda: selectors.activity(window=SPANS["hour"][0], bucket=SPANS["hour"][1]),
        "activity, last 24 h": lambda: selectors.activity(window=SPANS["day"][0], bucket=SPANS["day"][1]),
        "failure groups": selectors.failure_groups,
        "model queues (pauses)": selectors.model_queues,
        "runners": runner_rows,
        "audit trail": selectors.recent_actions,
        "ops list, newest 20": lambda: requests.request_page(user=ops, limit=20),
        "ops list, failed": lambda: requests.request_page(
            user=ops, request_filter=RequestFilter(statuses=("failed",)), limit=20),
        "user list, newest 50": lambda: requests.request_page(user=user),
        "user list, text search": lambda: requests.request_page(
            user=user, request_filter=RequestFilter(text_contains="number 1007")),
    }
    print(f"{'query':28} {'median ms':>10} {'max ms':>8}  goal")
    for name, run in queries.items():
        times = _timed(run, options.repeat)
        goal = "met" if statistics.median(times) <= QUERY_GOAL_MS else "NOT met"
        print(f"{name:28} {statistics.median(times):10.1f} {max(times):8.1f}  {goal}")
    call_command("collectstatic", interactive=False, verbosity=0)  # As a deploy has it.
    client = Client(HTTP_HOST="localhost")  # The production settings, served over https.
    client.force_login(ops)
    for path in ("/ops/", "/ops/?partial=live", "/ops/?status=failed&error=CUDA"):
        times = _timed(lambda: _ok(client.get(path, secure=True)), options.repeat)
        goal = "met" if statistics.median(times) <= PAGE_GOAL_MS else "NOT met"
        print(f"render {path:21} {statistics.median(times):10.1f} {max(times):8.1f}  {goal}")
    if options.explain:
        _explain(connection, selectors, timedelta)


def _timed(run, repeat: int) -> list[float]:
    run()  # Warm: plans, caches.
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return times


def _ok(response):
    assert response.status_code == 200, response.status_code
    return response


def _explain(connection, selectors, timedelta) -> None:
    plans = {
        "queue depth": (selectors._DEPTH, None),
        "activity, last 24 h": (selectors._ACTIVITY, {"bucket": 1800.0, "window": 86400.0}),
        "failure groups": (selectors._FAILURES, {"limit": 20}),
    }
    with connection.cursor() as cursor:
        for name, (sql, params) in plans.items():
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
            print(f"\n--- {name}")
            print("\n".join(row[0] for row in cursor.fetchall()))


if __name__ == "__main__":
    main()
