"""Many open live-status streams on one web process: what they cost the rest of the web.

Starts its own web process (no runner: nothing needs to run) on a `product_bench`
database (on DATABASE_URL's server, or the embedded one). It measures, in one run, over
--rounds rounds of (streams closed, then open) so the machine's other load weighs on both:

- API latency (GET /api/v1/requests, one call at a time) with no stream open, and with
  --streams list streams (/requests/events) open, spread over --users signed-in users;
- the web process's memory (RSS) before and after the streams open, per stream;
- time from a status change (a NOTIFY of a user's request, as the services send) to the last
  of that user's streams seeing it, one change at a time; and from one change for every user,
  committed together, to the last of all the streams seeing its own.

    .venv/bin/python bench/streams.py --streams 500 --users 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import describe_machine, percentile, process_cpu_seconds, setup_django, summary_row
from request_latency import session_cookie


async def http_get(port: int, path: str, header_lines: str) -> tuple[int, bytes]:
    """One GET on a fresh connection (``Connection: close``): its status and raw response."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{header_lines}\r\n".encode()
    )
    data = await reader.read()
    writer.close()
    return int(data.split(b" ", 2)[1]), data


class ListStream:
    """One browser's /requests/events stream: notes when each request's change arrives."""

    def __init__(self, owner: int, seen: dict[int, list[float]], arrived: asyncio.Condition) -> None:
        self.owner, self._seen, self._arrived = owner, seen, arrived
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task | None = None

    async def open(self, port: int, cookie: str) -> None:
        reader, self._writer = await asyncio.open_connection("127.0.0.1", port)
        self._writer.write(
            f"GET /requests/events HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 200:
            raise RuntimeError(f"stream refused: {head.decode(errors='replace')}")
        self._task = asyncio.create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        # The body is chunked; each SSE message is one chunk, so its data line arrives whole
        # and the chunk-size lines around it are simply not "data:" lines.
        while line := await reader.readline():
            if line.startswith(b"data: "):
                event = json.loads(line[6:])
                if "id" in event:
                    async with self._arrived:
                        self._seen.setdefault(event["id"], []).append(time.perf_counter())
                        self._arrived.notify_all()

    async def close(self) -> None:
        self._task.cancel()
        self._writer.close()


async def api_latencies(port: int, token: str, calls: int) -> list[float]:
    auth = f"Authorization: Bearer {token}\r\n"
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        status, data = await http_get(port, "/api/v1/requests?limit=20", auth)
        times.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise RuntimeError(f"API answered {status}: {data[:300]!r}")
    return times


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))


def threads(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))


async def timed_changes(changes: list[list[tuple[int, int]]], streams: list[ListStream], notify,
                        seen: dict[int, list[float]], arrived: asyncio.Condition) -> list[float]:
    """For each group of (request id, owner) changes, committed together: milliseconds from
    the NOTIFY to the last stream of those owners seeing its change."""
    per_owner: dict[int, int] = {}
    for stream in streams:
        per_owner[stream.owner] = per_owner.get(stream.owner, 0) + 1
    times = []
    for group in changes:
        for request_id, _ in group:
            seen.pop(request_id, None)
        changed = time.perf_counter()
        await notify(group)
        async with arrived:
            await asyncio.wait_for(arrived.wait_for(lambda: all(
                len(seen.get(request_id, ())) >= per_owner[owner] for request_id, owner in group
            )), 60)
        times.append((max(max(seen[request_id]) for request_id, _ in group) - changed) * 1000)
    return times


async def measure(options, port: int, pid: int, token: str, cookies: dict[int, str],
                  requests: dict[int, int], notify) -> dict:
    """Rounds of: API latency with no stream open; open the streams; memory, API latency and
    change delivery with them open; close them. Interleaved, so the machine's other load
    weighs on both sides alike."""
    figures: dict = {key: [] for key in ("api_without", "api_with", "one_change", "all_change",
                                         "rss_per_stream_kib", "threads_per_stream", "open_seconds",
                                         "idle_cpu_percent")}
    owners = list(cookies)
    calls = -(-options.calls // options.rounds)
    await api_latencies(port, token, 20)  # Warm up connections, caches, the pool.
    for round_ in range(options.rounds):
        figures["api_without"] += await api_latencies(port, token, calls)
        rss_before, threads_before = rss_kib(pid), threads(pid)
        seen: dict[int, list[float]] = {}
        arrived = asyncio.Condition()
        streams = [ListStream(owners[n % len(owners)], seen, arrived) for n in range(options.streams)]
        started = time.perf_counter()
        try:
            for at in range(0, len(streams), 50):  # 50 at a time, as a crowd arriving.
                await asyncio.gather(*(s.open(port, cookies[s.owner]) for s in streams[at : at + 50]))
            figures["open_seconds"].append(time.perf_counter() - started)
            await asyncio.sleep(2)  # Let the web settle (threads parked, allocations done).
            figures["rss_per_stream_kib"].append((rss_kib(pid) - rss_before) / len(streams))
            figures["threads_per_stream"].append((threads(pid) - threads_before) / len(streams))
            cpu_before = process_cpu_seconds(pid)
            await asyncio.sleep(options.idle_seconds)  # Open and idle: what do they cost alone?
            figures["idle_cpu_percent"].append(
                (process_cpu_seconds(pid) - cpu_before) / options.idle_seconds * 100
            )
            figures["api_with"] += await api_latencies(port, token, calls)
            singles = [owners[(round_ + n * options.rounds) % len(owners)]
                       for n in range(-(-options.changes // options.rounds))]
            figures["one_change"] += await timed_changes(
                [[(requests[owner], owner)] for owner in singles], streams, notify, seen, arrived
            )
            everyone = [(requests[owner], owner) for owner in owners]
            figures["all_change"] += await timed_changes(
                [everyone] * -(-options.bursts // options.rounds), streams, notify, seen, arrived
            )
        finally:
            for stream in streams:
                await stream.close()
        await asyncio.sleep(1)  # The web closes them (and its parked threads) in the meantime.
    figures["api_without"] += await api_latencies(port, token, calls)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--calls", type=int, default=200, help="API calls per latency figure")
    parser.add_argument("--changes", type=int, default=50, help="single status changes timed")
    parser.add_argument("--bursts", type=int, default=6, help="changes for every user at once, timed")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of closed, then open streams")
    parser.add_argument("--idle-seconds", type=float, default=5.0,
                        help="the web's CPU is read over this long with the streams open and idle")
    options = parser.parse_args()
    setup_django()
    import psycopg
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from procrastinate.contrib.django.utils import connector_params

    from product.accounts.services import token_create
    from product.inference import services
    from inference_models.sentence_embedding.spec import SPEC as MINILM
    from tests.support.processes import start_web

    users = [
        get_user_model().objects.create_user(f"viewer{n}", password=secrets.token_urlsafe())
        for n in range(options.users)
    ]
    cookies = {user.pk: session_cookie(user) for user in users}
    requests = {
        user.pk: services.request_submit(user=user, model=MINILM.name, raw_input="watched").pk
        for user in users
    }
    token = token_create(user=users[0], name="bench")[1]
    per_user = -(-options.streams // options.users)
    web, base_url = start_web(
        Path(tempfile.mkdtemp(prefix="bench-streams-")),
        INFERENCE_STREAMS_PER_USER=str(max(per_user, 16)),
        INFERENCE_STREAMS_PER_PROCESS=str(max(options.streams, 2000)),
        INFERENCE_STREAM_MAX_AGE="3600",  # No stream ends (and reconnects) during the run.
    )
    port = int(base_url.rsplit(":", 1)[1])

    async def run() -> dict:
        async with await psycopg.AsyncConnection.connect(**connector_params(), autocommit=True) as conn:

            async def notify(changes: list[tuple[int, int]]) -> None:
                # One statement: the notes of all these changes commit together.
                await conn.execute(
                    "SELECT pg_notify(%s, c::text) FROM json_array_elements(%s::json) AS c",
                    [settings.INFERENCE_STATUS_CHANNEL, json.dumps(
                        [{"id": rid, "owner": owner, "status": "running"} for rid, owner in changes]
                    )],
                )

            return await measure(options, port, web.popen.pid, token, cookies, requests, notify)

    try:
        figures = asyncio.run(run())
    finally:
        web.terminate()

    print("command: " + shlex.join([Path(sys.executable).name, *sys.argv]))
    print(f"{describe_machine()}; one web process (uvicorn), {options.streams} open list streams "
          f"over {options.users} users, {options.rounds} rounds; opened in "
          f"{statistics.median(figures['open_seconds']):.1f} s (median)")
    print(f"{'figure (ms)':<56} {'p50':>8} {'p95':>8} {'p99':>8} {'mean':>8}")
    print(summary_row("API GET /api/v1/requests, no stream open", figures["api_without"]))
    print(summary_row(f"API GET /api/v1/requests, {options.streams} streams open", figures["api_with"]))
    per_owner = options.streams // options.users
    print(summary_row(f"change → last of its owner's ~{per_owner} streams", figures["one_change"]))
    print(summary_row(f"a change per user at once → last of {options.streams} streams", figures["all_change"]))
    for q in (50, 99):
        ratio = percentile(figures["api_with"], q) / percentile(figures["api_without"], q)
        print(f"API p{q} with streams / without: {ratio:.2f}")
    print("web memory per open stream: "
          + ", ".join(f"{kib:.1f}" for kib in figures["rss_per_stream_kib"])
          + " KiB RSS by round (later rounds reuse what the first freed); OS threads per stream: "
          + ", ".join(f"{n:.2f}" for n in figures["threads_per_stream"]))
    print(f"web CPU with the streams open and idle: "
          f"{statistics.median(figures['idle_cpu_percent']):.2f}% of a core (median of rounds; "
          f"keep-alive every {os.environ.get('INFERENCE_STREAM_KEEPALIVE', '15')} s)")


if __name__ == "__main__":
    main()
