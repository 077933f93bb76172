"""Runner sweep: what a job costs as the runners against one PostgreSQL grow from 1 to 2 to 4.

The runners are ``bench/ceiling_runner.py`` processes (the real runner with the forward pass
replaced by a constant output, as in ``bench/pipeline_ceiling.py``), so what is measured is the
host's work per job: intake, claim, batching, tokenising, storing, and PostgreSQL's share. For
each runner count (runners are added between rounds, never restarted), and for each load:

- one-text jobs: ``--jobs`` one-text request rows and their jobs created in one transaction
  (as pipeline_ceiling's load 3, the runner's own ceiling), then drained by the runners;
- bulk jobs: ``--bulk`` requests of ``--bulk-size`` texts, created the same way;
- one-text requests over HTTP: ``--http`` POSTs from ``--clients`` threads to one real web
  process, drained as they come (the web's submits are in these figures),

it reports jobs/s and texts/s (from the first ``started_at``, or ``created_at`` over HTTP, to
the last ``finished_at``), the CPU ms per job of the runners (summed), of PostgreSQL (every
server process, autovacuum included) and of the web, PostgreSQL's WAL bytes per job
(``pg_wal_lsn_diff`` of the insert position before and after), each with its ratio to the
first runner count of the same run; the cores each side kept busy; what PostgreSQL's backends
were doing (``pg_stat_activity`` sampled every 50 ms: on CPU or the wait event, the statements
seen most, and whom the lock waits were behind); and the rows each table gained per job
(inserts, updates and how many were HOT, from ``pg_stat_user_tables``). For a load created in
one transaction, the creation's cost is reported apart and left out of the drain's. Before each
round the queue and request tables are emptied (``TRUNCATE``) and a ``CHECKPOINT`` is taken, so
every round starts from the same tables and the same full-page-image state. Before the
runners start, a commit probe times one-row commits with and without ``pg_notify``, from 1 and
``--clients`` connections: PostgreSQL makes notifying commits take turns.

More runners cannot go faster than the machine's cores allow (on 2 cores, one runner and
PostgreSQL already share them): the point is the cost per job (CPU and WAL) as a function of
runners, and which side saturates first. docs/scaling.md builds its capacity model on these
figures. The defaults take about 3 minutes on a 2-core machine.

    EMBEDDED_PG_DIR=/tmp/pg-sweep .venv/bin/python bench/runner_sweep.py
    .venv/bin/python bench/runner_sweep.py --runners 1,2,4 --jobs 12000 --bulk 300 --bulk-size 64 --http 1500
    .venv/bin/python bench/runner_sweep.py --runners 1,2 --jobs 40000 --bulk 0 --http 0 --commit-probe 0
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from common import ROOT, database_cpu_seconds, describe_machine, sentences, setup_django
from pipeline_ceiling import Submitter, measured

SAMPLE_INTERVAL = 0.05
STATEMENT_CHARS = 60  # Enough of a statement's text to tell which one it is.
# How long the runners' backends may take to flush their table statistics (see settled_writes).
STATS_TIMEOUT = 30.0
EMBEDDING_TABLE = "inference_embedding"
# The tables a round empties (their dependents go with them, CASCADE).
ROUND_TABLES = ("procrastinate_events", "procrastinate_jobs")


@dataclass(frozen=True)
class Load:
    """Requests of ``inputs`` (one list of texts each), created in one transaction before the
    drain, or ``over_http``: one POST each, while the runners drain them."""

    name: str
    inputs: list[list[str]]
    over_http: bool = False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runners", default="1,2,4",
                        help="Runner counts, ascending, comma-separated (runners are added).")
    parser.add_argument("--jobs", type=int, default=12000, help="One-text jobs per round.")
    parser.add_argument("--bulk", type=int, default=300, help="Bulk requests per round (0: none).")
    parser.add_argument("--bulk-size", type=int, default=64, help="Texts per bulk request.")
    parser.add_argument("--http", type=int, default=1500,
                        help="One-text requests over HTTP per round (0: none, and no web).")
    parser.add_argument("--clients", type=int, default=16, help="Submitting threads (--http).")
    parser.add_argument("--users", type=int, default=16, help="Owners of the jobs, in turn.")
    parser.add_argument("--commit-probe", type=float, default=2.0, metavar="SECONDS",
                        help="Seconds per phase of the commit probe (0: none).")
    options = parser.parse_args()
    counts = sorted({int(n) for n in options.runners.split(",")})
    # Child processes run this tree's code, whatever else is installed.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])
    )
    started = time.perf_counter()
    setup_django()
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from product.accounts.services import token_create
    from inference_models.sentence_embedding.spec import SPEC as MINILM
    from tests.support.processes import Process, child_env, start_web

    texts = sentences(max(options.jobs, options.bulk * options.bulk_size, options.http))
    loads = [Load("one-text", [[text] for text in texts[: options.jobs]])]
    if options.bulk:
        loads.append(Load(f"bulk of {options.bulk_size}", [
            texts[n * options.bulk_size : (n + 1) * options.bulk_size] for n in range(options.bulk)
        ]))
    if options.http:
        loads.append(Load("one-text over HTTP", [[text] for text in texts[: options.http]],
                          over_http=True))
    users = [get_user_model().objects.create_user(f"sweep-{n}", password=secrets.token_urlsafe())
             for n in range(options.users)]
    probe = (commit_probe([1, options.clients], options.commit_probe)
             if options.commit_probe else None)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    runners: list[Process] = []
    web = submitter = None
    results: dict[str, dict[int, dict]] = {load.name: {} for load in loads}
    try:
        if options.http:
            web, base_url = start_web(log_dir)
            headers = [{"Authorization": "Bearer " + token_create(user=user, name="sweep")[1],
                        "Content-Type": "application/json"} for user in users]
            submitter = Submitter(base_url, headers, options.clients)
        for count in counts:
            while len(runners) < count:
                runners.append(Process(f"runner-{len(runners) + 1}",
                                       [sys.executable, "-m", "bench.ceiling_runner"],
                                       child_env(), log_dir))
            for runner in runners:
                runner.wait_for_output("taking jobs from")
            pids = {runner.name: runner.popen.pid for runner in runners}
            if web is not None:
                pids["web"] = web.popen.pid
            for load in loads:
                results[load.name][count] = drained(pids, load, users, MINILM, submitter)
    finally:
        for process in [*runners, web]:
            if process is not None:
                process.terminate()

    print(f"{describe_machine()}; {MINILM.name}, forward pass replaced by a constant output "
          f"(bench/ceiling_runner.py); one PostgreSQL on this machine")
    print(f"runner: GPU_RUNNER_MAX_BATCH_SIZE={settings.GPU_RUNNER_MAX_BATCH_SIZE}, "
          f"MAX_BATCH_TOKENS={settings.GPU_RUNNER_MAX_BATCH_TOKENS}, "
          f"CONCURRENCY={settings.GPU_RUNNER_CONCURRENCY}, "
          f"MAX_HELD_TEXTS={settings.GPU_RUNNER_MAX_HELD_TEXTS}, "
          f"POLL_INTERVAL={settings.GPU_RUNNER_POLL_INTERVAL}; {options.users} owners, "
          f"{options.clients} client threads over HTTP; ratios (x) against {counts[0]} runner(s) "
          "in this run")
    for load in loads:
        report(load, results[load.name], os.cpu_count() or 1)
    if probe:
        print(f"\ncommit probe (before the runners started): one-row INSERT transactions in "
              f"autocommit, {options.commit_probe:g} s per phase")
        for (clients, notify), (rate, latency) in probe.items():
            print(f"  {clients:>3} client(s), {'with pg_notify' if notify else 'plain         '}: "
                  f"{rate:8,.0f} commits/s, {latency:6.2f} ms each")
    print(f"wall {time.perf_counter() - started:.0f} s")


def drained(pids: dict[str, int], load: Load, users: list, spec, submitter) -> dict:
    """Empty the round's tables, create ``load``'s requests (in one transaction, or over HTTP
    through ``submitter``) and let the runners of ``pids`` drain them; what that cost: the
    drain's alone, with the creation's apart, for a load created in one transaction."""
    from django.db import connection, transaction

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(ROUND_TABLES)}, {request_table()} CASCADE")
        cursor.execute("CHECKPOINT")
    writes_before, fpi_before = table_writes("pg_stat_user_tables"), full_page_images()
    creation: dict = {}
    drain: dict = {}
    waits = WaitSampler(exclude=backend_pid())

    def start_drain() -> None:
        drain["wal"], drain["window"] = wal_position(), time.perf_counter()
        waits.start()

    def create() -> None:
        creation["wal"], creation["cpu"] = wal_position(), database_cpu_seconds()
        with transaction.atomic():
            deferred_requests(users, spec, load.inputs)
            # This transaction's own rows, triggers' included, before they are flushed.
            creation["writes"] = table_writes("pg_stat_xact_user_tables")
        creation["wal"] = wal_bytes_since(creation["wal"])
        creation["cpu"] = database_cpu_seconds() - creation["cpu"]
        start_drain()

    if load.over_http:
        start_drain()
        bodies = [{"model": spec.name, "input": texts[0] if len(texts) == 1 else texts}
                  for texts in load.inputs]
        drain.update(measured(pids, lambda: submitter.submit_all(bodies), span_from="created_at"))
    else:
        drain.update(measured(pids, create, span_from="started_at", count_creation=False))
    waits.stop()
    drain["wal"] = wal_bytes_since(drain["wal"])
    drain["window"] = time.perf_counter() - drain["window"]
    drain["waits"] = waits.summary()
    total = settled_writes(writes_before, requests=drain["requests"], texts=drain["texts"])
    drain["writes"] = difference(total, creation.get("writes", {}))
    drain["fpi"] = full_page_images() - fpi_before
    drain["creation"] = creation or None
    return drain


def commit_probe(client_counts: list[int], seconds: float) -> dict[tuple[int, bool], tuple]:
    """Commits per second and mean ms per commit of one-row INSERTs, each its own transaction,
    from each of ``client_counts`` concurrent connections, plain and with a ``pg_notify`` in
    the same statement (as the web's submit and the runners' writes have). PostgreSQL takes one
    lock for the whole database from a notifying transaction's pre-commit to the end of its
    commit (its WAL flush included), so notifying commits take turns."""
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS sweep_commit_probe "
                     "(id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())")
    statements = {
        False: "INSERT INTO sweep_commit_probe DEFAULT VALUES",
        True: "WITH row AS (INSERT INTO sweep_commit_probe DEFAULT VALUES RETURNING id) "
              "SELECT pg_notify('sweep_commit_probe', row.id::text) FROM row",
    }
    results = {}
    for clients in client_counts:
        for notify in (False, True):
            done = [0] * clients
            deadline = time.perf_counter() + seconds

            def commit_until_deadline(n: int) -> None:
                with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
                    while time.perf_counter() < deadline:
                        conn.execute(statements[notify])
                        done[n] += 1

            threads = [threading.Thread(target=commit_until_deadline, args=(n,))
                       for n in range(clients)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
            results[clients, notify] = (sum(done) / elapsed, elapsed * clients * 1000 / sum(done))
    return results


def settled_writes(before: dict[str, Counter], *, requests: int, texts: int) -> dict[str, Counter]:
    """The rows written since ``before``, once every backend has flushed its table statistics
    (PostgreSQL does so when a backend goes idle, at most once a second, or after 10 s idle).
    Each backend flushes all it holds at once, and every one that worked inserted a request
    (the creator, the web's) or an embedding (the runners', in their last transaction): when
    those are all counted, so is the rest."""
    deadline = time.monotonic() + STATS_TIMEOUT
    while True:
        writes = difference(table_writes("pg_stat_user_tables"), before)
        if (writes.get(request_table(), Counter())["ins"] >= requests
                and writes.get(EMBEDDING_TABLE, Counter())["ins"] >= texts):
            return writes
        if time.monotonic() > deadline:
            print(f"warning: table statistics still incomplete after {STATS_TIMEOUT:.0f} s; "
                  "the rows per job below undercount", file=sys.stderr)
            return writes
        time.sleep(0.5)


def deferred_requests(users: list, spec, inputs: list[list[str]]) -> None:
    """One request per list of texts in ``inputs`` (of ``users`` in turn) and its job, as the
    web's submit would make them (same job arguments, priority and queue), in the caller's
    transaction: the runners see them all at once when it commits."""
    from django.db import connection
    from procrastinate.contrib.django import app

    from product.inference import jobs
    from product.inference.models import InferenceRequest

    requests = InferenceRequest.objects.bulk_create(
        InferenceRequest(owner=users[n % len(users)], model=spec.name, inputs=texts,
                         item_count=len(texts), priority=jobs.choose_priority(None, len(texts)))
        for n, texts in enumerate(inputs)
    )
    job_ids = []
    for priority in {r.priority for r in requests}:
        task = app.configure_task(name=jobs.RUN_REQUEST_TASK, queue=spec.queue,
                                  priority=jobs.JOB_PRIORITY[priority])
        group = [r for r in requests if r.priority == priority]
        job_ids += zip((r.pk for r in group), task.batch_defer(
            *({"request_id": r.pk, "owner": r.owner_id, "texts": r.item_count} for r in group)
        ))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {request_table()} AS r SET job_id = v.job_id "
            "FROM unnest(%s::bigint[], %s::bigint[]) AS v(id, job_id) WHERE r.id = v.id",
            [[request_id for request_id, _ in job_ids], [job_id for _, job_id in job_ids]],
        )


def request_table() -> str:
    from product.inference.models import InferenceRequest

    return InferenceRequest._meta.db_table


def backend_pid() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def wal_position() -> str:
    """The WAL insert position: what has been generated, written out or not yet."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_insert_lsn()")
        return cursor.fetchone()[0]


def wal_bytes_since(position: str) -> int:
    """WAL generated since ``position`` by the whole server (this benchmark's alone)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s)", [position])
        return int(cursor.fetchone()[0])


def table_writes(view: str) -> dict[str, Counter]:
    """Rows inserted, updated (and of those HOT) and deleted per table, from ``view``:
    ``pg_stat_user_tables`` (flushed statistics) or ``pg_stat_xact_user_tables`` (this
    transaction's)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del FROM {view}")
        writes = {name: +Counter(ins=ins, upd=upd, hot=hot, delete=delete)
                  for name, ins, upd, hot, delete in cursor.fetchall()}
        return {name: counts for name, counts in writes.items() if counts}


def full_page_images() -> int:
    """Full-page images PostgreSQL has written to WAL (pg_stat_wal, the whole server)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT wal_fpi FROM pg_stat_wal")
        return int(cursor.fetchone()[0])


def difference(after: dict[str, Counter], before: dict[str, Counter]) -> dict[str, Counter]:
    changed = {name: after[name] - before.get(name, Counter()) for name in after}
    return {name: counts for name, counts in changed.items() if counts}


# What each of this database's other client backends is doing, and for one waiting for a lock,
# the statement (or, idle in its transaction, the last statement) of the first backend it waits
# behind. LIMIT 1: under load that lookup has returned two rows for one pid.
SAMPLE_ACTIVITY = """
SELECT a.state, coalesce(a.wait_event_type || ':' || a.wait_event, 'on CPU'),
       left(regexp_replace(a.query, '\\s+', ' ', 'g'), %(chars)s),
       CASE WHEN a.wait_event_type = 'Lock' THEN (
           SELECT left(regexp_replace(b.query, '\\s+', ' ', 'g'), %(chars)s)
             FROM pg_stat_activity AS b WHERE b.pid = (pg_blocking_pids(a.pid))[1] LIMIT 1)
       END
  FROM pg_stat_activity AS a
 WHERE a.datname = current_database() AND a.backend_type = 'client backend'
   AND a.state <> 'idle' AND a.pid NOT IN (pg_backend_pid(), %(exclude)s)
"""


class WaitSampler:
    """Samples what this database's client backends (but ``exclude``) are doing, every
    ``SAMPLE_INTERVAL`` seconds on a connection of its own: a backend in
    a statement is on CPU (no wait event) or waiting (its wait event); one idle in a
    transaction waits for its client (here the runners' Python). Samples from ``start()``
    to ``stop()``."""

    def __init__(self, *, exclude: int) -> None:
        self.exclude = exclude
        self.samples = 0
        self.active: Counter = Counter()
        self.statements: Counter = Counter()  # Of the samples in a statement.
        self.lock_waits: Counter = Counter()  # Of those waiting for a lock, by whom.
        self.idle_in_transaction = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        import psycopg

        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
            while not self._stop.wait(SAMPLE_INTERVAL):
                rows = conn.execute(SAMPLE_ACTIVITY, {"chars": STATEMENT_CHARS,
                                                      "exclude": self.exclude}).fetchall()
                self.samples += 1
                for state, doing, statement, blocker in rows:
                    if state == "active":
                        self.active[doing] += 1
                        self.statements[statement] += 1
                        if doing.startswith("Lock:"):
                            self.lock_waits[f"{statement}' behind '{blocker}"] += 1
                    else:
                        self.idle_in_transaction += 1

    def summary(self) -> dict:
        samples = max(self.samples, 1)
        return {"active": sum(self.active.values()) / samples,
                "idle_in_transaction": self.idle_in_transaction / samples,
                "doing": self.active, "statements": self.statements,
                "lock_waits": self.lock_waits}


def report(load: Load, by_count: dict[int, dict], cores: int) -> None:
    first = next(iter(by_count.values()))
    some = first["requests"]
    if load.over_http:
        print(f"\n{load.name}: {some} requests per round, one POST each, drained as they come "
              "(the figures include the web's submits)")
    else:
        creation = first["creation"]
        print(f"\n{load.name} jobs: {some} per round ({first['texts']} texts), created in one "
              "transaction, then drained")
        print(f"  creation (first round; not in the figures below): postgres "
              f"{creation['cpu'] * 1000 / some:.3f} ms CPU per job, WAL "
              f"{creation['wal'] / some:,.0f} B per job; rows per job: "
              f"{rows_per_job(creation['writes'], some)}")

    def per_job(result: dict) -> dict[str, float]:
        jobs = result["requests"]
        cpu = result["cpu"]
        cost = {"jobs_s": jobs / result["seconds"],
                "runners": sum(s for p, s in cpu.items() if p.startswith("runner-")) * 1000 / jobs,
                "postgres": cpu["postgres"] * 1000 / jobs, "wal": result["wal"] / jobs}
        if load.over_http:
            cost["web"] = cpu["web"] * 1000 / jobs
        return cost

    base = per_job(first)
    for count, result in by_count.items():
        cost = per_job(result)
        x = {key: cost[key] / base[key] for key in cost}
        texts_per_job = result["texts"] / result["requests"]
        busy = {process: seconds / result["window"] for process, seconds in result["cpu"].items()}
        busy["runners"] = sum(s for p, s in busy.items() if p.startswith("runner-"))
        shown = ["web"] * load.over_http + ["runners", "postgres"]
        per_text = (f" = {cost['wal'] / texts_per_job:,.0f} B per text"
                    if texts_per_job > 1 else "")
        print(f"  {count} runner(s): {cost['jobs_s']:,.0f} jobs/s (x{x['jobs_s']:.2f}), "
              f"{result['texts_s']:,.0f} texts/s in {result['seconds']:.2f} s; CPU ms per job: "
              + ", ".join(f"{key} {cost[key]:.3f} (x{x[key]:.2f})" for key in shown)
              + f"; WAL {cost['wal']:,.0f} B per job{per_text} (x{x['wal']:.2f})")
        print("     cores busy: " + ", ".join(f"{key} {busy[key]:.2f}" for key in shown)
              + f", bench {busy['client']:.2f}, all "
              f"{sum(busy[key] for key in shown) + busy['client']:.2f} of {cores}")
        waits = result["waits"]
        active = sum(waits["doing"].values()) or 1
        doing = ", ".join(f"{what} {n / active:.0%}" for what, n in waits["doing"].most_common(4))
        print(f"     postgres backends: {waits['active']:.2f} in a statement on average "
              f"({doing}), {waits['idle_in_transaction']:.2f} idle in a transaction")
        print(f"     statements seen most: {shares(waits['statements'], active)}")
        if waits["lock_waits"]:
            print(f"     lock waits (in ... behind ...): {shares(waits['lock_waits'], active)}")
        print(f"     rows per job{' (submit and drain)' * load.over_http}: "
              f"{rows_per_job(result['writes'], result['requests'])}; full-page images "
              f"(creation and drain) {result['fpi'] / result['requests']:.2f} per job")


def shares(seen: Counter, total: int, most: int = 3) -> str:
    """The ``most`` commonest of ``seen`` with their shares of ``total`` samples."""
    return "; ".join(f"{n / total:.0%} '{what}'" for what, n in seen.most_common(most))


def rows_per_job(writes: dict[str, Counter], jobs: int) -> str:
    """Inserts, updates (HOT among them) and deletes per job by table, leaving out what rounds
    to none per job (the runners' heartbeats)."""
    parts = []
    for table, counts in sorted(writes.items()):
        per_job = {kind: counts[kind] / jobs for kind in ("ins", "upd", "hot", "delete")}
        kinds = [f"{per_job['ins']:.2f} ins"] if per_job["ins"] >= 0.005 else []
        if per_job["upd"] >= 0.005:
            kinds.append(f"{per_job['upd']:.2f} upd ({per_job['hot']:.2f} HOT)")
        if per_job["delete"] >= 0.005:
            kinds.append(f"{per_job['delete']:.2f} del")
        if kinds:
            parts.append(f"{table} " + ", ".join(kinds))
    return "; ".join(parts) or "none"


if __name__ == "__main__":
    main()
