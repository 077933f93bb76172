"""Result writes: the runner's finish of a group of bulk requests, embeddings as JSON text in
``output`` (the previous release's write) vs pgvector rows by binary COPY (this one), same run.

Each round makes ``--requests`` running requests of ``--texts`` texts, finishes them with one
``services.requests_finish`` call in one transaction (as the runner does) and commits, once with
each kind of result, alternating. Reported: wall ms per group, the Python process's and
PostgreSQL's CPU per text, WAL bytes per text, and ratios. It also times building the COPY
stream with numpy in one go against packing it row by row in Python.

    .venv/bin/python bench/result_writes.py --requests 64 --texts 256 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import struct
import time

from common import database_cpu_seconds, describe_machine, setup_django

DIM = 384


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    setup_django()

    import numpy as np
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from product.inference import results, services
    from product.inference.models import InferenceRequest, RequestStatus

    user = get_user_model().objects.create_user("bench-writes")
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((options.requests, options.texts, DIM)).astype(np.float32)
    texts = options.requests * options.texts
    next_job = iter(range(1, 10**9))

    def running_requests() -> list[InferenceRequest]:
        return InferenceRequest.objects.bulk_create(
            InferenceRequest(
                owner=user, model="bench", inputs=["x"] * options.texts,
                item_count=options.texts, status=RequestStatus.RUNNING, job_id=next(next_job),
            )
            for _ in range(options.requests)
        )

    def as_json(request, array) -> services.Outcome:
        # The previous release: the model gave lists of floats, output held them all.
        return services.Outcome(
            request.pk, request.job_id, RequestStatus.SUCCEEDED,
            output={"dim": DIM, "embeddings": array.tolist()},
        )

    def as_rows(request, array) -> services.Outcome:
        return services.Outcome(
            request.pk, request.job_id, RequestStatus.SUCCEEDED, output={"dim": DIM},
            embeddings=array,
        )

    measured: dict[str, dict[str, list[float]]] = {}
    for _ in range(options.rounds):
        for name, outcome in (("JSON in output", as_json), ("binary COPY rows", as_rows)):
            requests = running_requests()
            wal = _wal_position()
            cpu, db_cpu, started = time.process_time(), database_cpu_seconds(), time.perf_counter()
            outcomes = [outcome(r, v) for r, v in zip(requests, vectors)]
            with transaction.atomic():
                written = services.requests_finish(outcomes=outcomes)
            wall = time.perf_counter() - started
            cpu = time.process_time() - cpu
            db_after = database_cpu_seconds()
            wal = _wal_bytes_since(wal)
            assert written == {r.pk for r in requests}
            row = measured.setdefault(name, {"wall": [], "cpu": [], "db": [], "wal": []})
            row["wall"].append(wall * 1000)
            row["wal"].append(wal / texts)
            row["cpu"].append(cpu * 1e6 / texts)
            if db_cpu is not None and db_after is not None:
                row["db"].append((db_after - db_cpu) * 1e6 / texts)
    check = results.request_embeddings(requests[-1])
    assert np.array_equal(check, vectors[-1]), "the rows read back differ from what was written"

    print(describe_machine())
    print(f"{options.requests} requests x {options.texts} texts x {DIM} floats, "
          f"{options.rounds} rounds (median):")
    medians = {}
    for name, row in measured.items():
        medians[name] = {key: statistics.median(values) for key, values in row.items() if values}
        m = medians[name]
        db = f", PostgreSQL {m['db']:.1f} µs/text" if "db" in m else ""
        print(f"  {name:<18} {m['wall']:8.1f} ms per group = {texts / m['wall'] * 1000:9,.0f} "
              f"texts/s; Python {m['cpu']:.1f} µs/text{db}; WAL {m['wal']:,.0f} bytes/text")
    old, new = medians["JSON in output"], medians["binary COPY rows"]
    ratios = (f"wall {old['wall'] / new['wall']:.1f}x, Python CPU {old['cpu'] / new['cpu']:.1f}x, "
              f"WAL {old['wal'] / new['wal']:.1f}x")
    if "db" in old and "db" in new:
        ratios += f", PostgreSQL CPU {old['db'] / new['db']:.1f}x"
    print(f"  JSON / binary: {ratios}")

    group = list(zip([r.pk for r in requests], vectors))
    assert b"".join(results._copy_stream(group)) == _copy_stream_row_by_row(group)
    numpy_s = _best(lambda: results._copy_stream(group))
    python_s = _best(lambda: _copy_stream_row_by_row(group))
    print(f"COPY stream of {texts} rows: numpy in one go {numpy_s * 1000:.1f} ms, row by row in "
          f"Python {python_s * 1000:.1f} ms ({python_s / numpy_s:.1f}x)")


def _wal_position() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_insert_lsn()")
        return cursor.fetchone()[0]


def _wal_bytes_since(position: str) -> int:
    """WAL written since ``position`` (by every session: the benchmark runs alone)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s)", [position])
        return int(cursor.fetchone()[0])


def _copy_stream_row_by_row(group) -> bytes:
    """The same stream as ``results._copy_stream``, packed one row at a time (for comparison)."""
    row = struct.Struct(f">hiqiiihh{DIM}f")
    chunks = [b"PGCOPY\n\xff\r\n\x00" + bytes(8)]
    for request_id, array in group:
        for position, values in enumerate(array.tolist()):
            chunks.append(row.pack(3, 8, request_id, 4, position, 4 + 4 * DIM, DIM, 0, *values))
    chunks.append(b"\xff\xff")
    return b"".join(chunks)


def _best(build, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        build()
        times.append(time.perf_counter() - started)
    return min(times)


if __name__ == "__main__":
    main()
