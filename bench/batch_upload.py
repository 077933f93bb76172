"""Batch upload: how fast a batch file is read into parts, and how much memory it takes, against
only reading the file's lines in the same run.

Writes a file of N short lines (half OpenAI batch-input JSON, half plain text), then times
``batches.services.batch_create`` on it (read line by line, checked, written as parts, first
parts queued) and streaming its ``.npy`` (NaN rows: nothing has run), and Python's peak
allocations of each (tracemalloc, in a second run), beside a plain read of the same lines.

    .venv/bin/python bench/batch_upload.py --lines 200000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc

from common import describe_machine, setup_django


def measured(work):
    """(result, seconds, peak bytes): timed alone, then run again under tracemalloc (which slows
    allocation-heavy code several times) for its peak of Python allocations."""
    started = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - started
    tracemalloc.start()
    work()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    options = parser.parse_args()
    setup_django()
    from django.contrib.auth import get_user_model

    from inference_models.sentence_embedding.spec import SPEC
    from product.batches import downloads, services

    print(describe_machine())
    user = get_user_model().objects.create_user("bench")
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as file:
        for n in range(1, options.lines + 1):
            line = json.dumps({"custom_id": f"c{n}", "body": {"input": f"a short text {n}"}}) if n % 2 else f"a short text {n}"
            file.write(line.encode() + b"\n")
        file.flush()
        size = file.tell()

        def plain_read() -> int:
            with open(file.name, "rb") as handle:
                return sum(1 for _ in services.file_lines(handle, max_bytes=1 << 20))

        def upload():
            with open(file.name, "rb") as handle:
                return services.batch_create(user=user, file=handle, filename="bench.jsonl", model=SPEC.name)

        _, read_s, read_peak = measured(plain_read)
        batch, upload_s, upload_peak = measured(upload)
        npy_bytes, npy_s, npy_peak = measured(lambda: sum(len(b) for b in downloads.output_npy(batch)))

    print(f"file: {options.lines} lines, {size / 1e6:.1f} MB; batch {batch.pk}: {batch.text_count} texts, {batch.part_count} parts")
    print(f"{'step':<34} {'seconds':>8} {'lines/s':>10} {'peak MiB':>9}")
    for name, seconds, peak in [
        ("read the lines only (baseline)", read_s, read_peak),
        ("batch_create (read, check, store)", upload_s, upload_peak),
        (f".npy stream ({npy_bytes / 1e6:.0f} MB)", npy_s, npy_peak),
    ]:
        print(f"{name:<34} {seconds:8.2f} {options.lines / seconds:10.0f} {peak / 2**20:9.1f}")
    print(f"upload / baseline: {upload_s / read_s:.1f}x")


if __name__ == "__main__":
    main()
