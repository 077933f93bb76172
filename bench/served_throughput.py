"""Served throughput through the whole system (HTTP submit → queue → runner → row), for many
concurrent one-text requests and for bulk requests, and its ratio to the raw model measured
in the same run on the same device (before and after the served runs, to cancel out a
machine whose speed drifts; the ratio is to their mean).

Starts its own web and runner processes on a `product_bench` database. Clients submit over
HTTP from several threads without waiting for results; throughput is texts finished per second
between the first request's creation and the last one's finish (timestamps on the rows).

    .venv/bin/python bench/served_throughput.py
    .venv/bin/python bench/served_throughput.py --single 4000 --bulk 100 --bulk-size 256
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import tempfile
import threading
import time
from pathlib import Path

from common import (
    database_cpu_seconds,
    describe_machine,
    load_model,
    process_cpu_seconds,
    raw_throughput,
    sentences,
    setup_django,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=2000, help="One-text requests.")
    parser.add_argument("--bulk", type=int, default=40, help="Bulk requests.")
    parser.add_argument("--bulk-size", type=int, default=128, help="Texts per bulk request.")
    parser.add_argument("--clients", type=int, default=16, help="Submitting threads.")
    parser.add_argument("--raw-batch", type=int, default=64, help="Batch size of the raw figure.")
    options = parser.parse_args()
    setup_django()
    import torch
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db.models import Max, Min, Sum

    from product.accounts.services import token_create
    from product.inference.models import InferenceRequest
    from inference_models.sentence_embedding.spec import SPEC as MINILM
    from tests.support.processes import start_runner, start_web

    texts = sentences(max(options.single, options.bulk * options.bulk_size))
    model = load_model()
    raw_before = raw_throughput(model, texts[:4096], options.raw_batch)
    tokens_per_text = sum(map(len, model.prepare(texts[:1024]))) / 1024
    # On a CPU the raw figure keeps this many cores busy; the served run shares them.
    model_threads = torch.get_num_threads() if model.device.type == "cpu" else None

    user = get_user_model().objects.create_user("bench", password=secrets.token_urlsafe())
    headers = {"Authorization": "Bearer " + token_create(user=user, name="bench")[1],
               "Content-Type": "application/json"}
    log_dir = Path(tempfile.mkdtemp(prefix="bench-"))
    runner = start_runner(log_dir)
    try:
        web, base_url = start_web(log_dir)
    except BaseException:
        runner.terminate()
        raise
    runner.wait_for_output("taking jobs from")

    def submit_all(bodies: list[dict]) -> list[int]:
        ids: list[int] = []
        lock = threading.Lock()
        chunks = [bodies[n :: options.clients] for n in range(options.clients)]

        def client(chunk: list[dict]) -> None:
            conn = http.client.HTTPConnection(base_url.removeprefix("http://"), timeout=60)
            for body in chunk:
                conn.request("POST", "/api/v1/requests", body=json.dumps(body), headers=headers)
                response = conn.getresponse()
                created = json.loads(response.read())
                assert response.status == 201, created
                with lock:
                    ids.append(created["id"])

        threads = [threading.Thread(target=client, args=(chunk,)) for chunk in chunks]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return ids

    def served(bodies: list[dict]) -> dict:
        ids = submit_all(bodies)
        while InferenceRequest.objects.filter(pk__in=ids, finished_at__isnull=True).exists():
            time.sleep(0.05)
        rows = InferenceRequest.objects.filter(pk__in=ids)
        assert set(rows.values_list("status", flat=True)) == {"succeeded"}
        span = rows.aggregate(start=Min("created_at"), end=Max("finished_at"), n=Sum("item_count"))
        seconds = (span["end"] - span["start"]).total_seconds()
        return {"requests": len(ids), "texts": span["n"], "seconds": seconds,
                "texts_s": span["n"] / seconds}

    def cpu_seconds() -> dict[str, float | None]:
        return {
            "web": process_cpu_seconds(web.popen.pid),
            "runner": process_cpu_seconds(runner.popen.pid),
            "postgres": database_cpu_seconds(),
            "client": process_cpu_seconds(os.getpid()),  # HTTP clients (and the polling)
        }

    def cpu_split(run) -> tuple[dict, dict]:
        """Run ``run``; return its result and the CPU seconds each process spent meanwhile."""
        before = cpu_seconds()
        result = run()
        after = cpu_seconds()
        return result, {name: None if after[name] is None else after[name] - before[name]
                        for name in after}

    single_bodies = [{"model": MINILM.name, "input": t} for t in texts[: options.single]]
    bulk_bodies = [
        {"model": MINILM.name, "input": texts[n * options.bulk_size : (n + 1) * options.bulk_size]}
        for n in range(options.bulk)
    ]
    try:
        single, single["cpu"] = cpu_split(lambda: served(single_bodies))
        bulk, bulk["cpu"] = cpu_split(lambda: served(bulk_bodies))
    finally:
        web.terminate()
        runner.terminate()
    raw_after = raw_throughput(model, texts[:4096], options.raw_batch)
    raw = {key: (raw_before[key] + raw_after[key]) / 2 for key in ("texts_s", "tokens_s")}

    print(f"{describe_machine()}; {MINILM.name}, {tokens_per_text:.1f} tokens per text on average")
    print(f"runner: GPU_RUNNER_MAX_BATCH_SIZE={settings.GPU_RUNNER_MAX_BATCH_SIZE}, "
          f"MAX_BATCH_TOKENS={settings.GPU_RUNNER_MAX_BATCH_TOKENS}, "
          f"CONCURRENCY={settings.GPU_RUNNER_CONCURRENCY}, "
          f"BATCH_WAIT_MS={settings.GPU_RUNNER_BATCH_WAIT_MS}; {options.clients} client threads")
    print(f"raw model, batch {options.raw_batch}: {raw['texts_s']:,.0f} texts/s (before "
          f"{raw_before['texts_s']:,.0f}, after {raw_after['texts_s']:,.0f}), "
          f"{raw['tokens_s']:,.0f} tokens/s" + (
              f"; {model_threads} threads = {model_threads * 1000 / raw['texts_s']:.1f} ms of CPU per text"
              if model_threads else ""))
    for name, result in (("one-text requests", single), (f"bulk requests of {options.bulk_size}", bulk)):
        print(f"served, {name}: {result['requests']} requests, {result['texts']} texts in "
              f"{result['seconds']:.1f} s = {result['texts_s']:,.0f} texts/s, "
              f"{result['texts_s'] * tokens_per_text:,.0f} tokens/s; "
              f"served/raw = {result['texts_s'] / raw['texts_s']:.2f}")
        print("  CPU ms per text: " + ", ".join(
            f"{process} {seconds * 1000 / result['texts']:.1f}"
            for process, seconds in result["cpu"].items() if seconds is not None))

if __name__ == "__main__":
    main()
