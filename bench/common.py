"""What the benchmark scripts share: a scratch database, Django, and the real processes."""

from __future__ import annotations

import os
import secrets
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary_row(name: str, values: list[float]) -> str:
    return (
        f"{name:<56} {percentile(values, 50):8.1f} {percentile(values, 95):8.1f} "
        f"{percentile(values, 99):8.1f} {statistics.fmean(values):8.1f}"
    )


def setup_django(database: str = "product_bench") -> None:
    """Point Django at a fresh ``database`` on DATABASE_URL's server (or the embedded one),
    migrate it, and leave DATABASE_URL naming it, so child processes use it too."""
    import psycopg

    from product.embedded_db import ensure_database_url
    from product.env import parse_database_url

    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "product.settings")
    base = parse_database_url(ensure_database_url())
    conninfo = {"host": base["HOST"], "user": base["USER"], "password": base["PASSWORD"],
                "port": base["PORT"] or None, "dbname": base["NAME"]}
    with psycopg.connect(**{k: v for k, v in conninfo.items() if v}, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {database}")
    os.environ["DATABASE_URL"] = os.environ["DATABASE_URL"].replace(
        f"/{base['NAME']}", f"/{database}", 1
    )
    # One user submits at full speed here: the per-user limits (product.quotas) would measure
    # refusals, not throughput. Benchmark processes inherit these too.
    os.environ.setdefault("INFERENCE_SUBMITS_PER_MINUTE", "1000000000")
    os.environ.setdefault("INFERENCE_MAX_QUEUED_TEXTS", "1000000000")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.conf import settings

    # The runner processes a benchmark starts use these settings too (not the tests' smaller ones).
    os.environ.setdefault("GPU_RUNNER_MAX_BATCH_SIZE", str(settings.GPU_RUNNER_MAX_BATCH_SIZE))


def process_cpu_seconds(pid: int, *, children: bool = False) -> float:
    """CPU seconds (user + system) ``pid`` has used; with ``children``, also those of its
    exited children it has waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def database_cpu_seconds() -> float | None:
    """CPU seconds the PostgreSQL server has used (postmaster, its live processes and the
    exited ones); None when it does not run on this machine."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    try:
        status = Path(f"/proc/{backend}/status").read_text()
        postmaster = int(next(line for line in status.splitlines() if line.startswith("PPid:")).split()[1])
        total = process_cpu_seconds(postmaster, children=True)
        for child in Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split():
            try:
                total += process_cpu_seconds(int(child))
            except OSError:  # It exited meanwhile (and its time moved to the postmaster's).
                pass
        return total
    except (OSError, StopIteration, ValueError):
        return None


def describe_machine() -> str:
    import platform

    return f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}"


_WORDS = (
    "the a model queue request runner batch token vector fast small large green quiet river "
    "city light music train paper window coffee morning evening garden history science market "
    "student engine bridge cloud signal answer question story winter summer mountain ocean"
).split()


def sentences(count: int, *, words: tuple[int, int] = (6, 18), seed: int = 7) -> list[str]:
    """``count`` distinct English-like sentences of ``words`` (min, max) words each."""
    import random

    rng = random.Random(seed)
    return [
        " ".join(rng.choice(_WORDS) for _ in range(rng.randint(*words))).capitalize() + f" {n}."
        for n in range(count)
    ]


def load_model():
    """The first registered model, loaded as the runner loads it (device, dtype from env)."""
    from django.conf import settings

    from gpu_runner.device import pick_device, pick_dtype
    from inference_models.sentence_embedding.spec import SPEC as MINILM

    from django.utils.module_loading import import_string

    device = pick_device(settings.GPU_RUNNER_DEVICE)
    model = import_string(MINILM.implementation.replace(":", "."))(
        spec=MINILM, device=device, dtype=pick_dtype(settings.GPU_RUNNER_DTYPE, device)
    )
    model.load()
    return model


def raw_throughput(model, texts: list[str], batch_size: int, *, seconds: float = 5.0) -> dict:
    """Texts/s and real tokens/s of back-to-back forward passes at ``batch_size`` (texts
    sorted by length as the batcher does; tokenisation excluded, as it overlaps in the runner)."""
    import time

    import torch

    prepared = sorted(model.prepare(texts), key=len)
    batches = [prepared[i : i + batch_size] for i in range(0, len(prepared), batch_size)]
    model.run_batch(batches[0])  # Warm this shape up.
    done_texts = done_tokens = 0
    started = time.perf_counter()
    while True:
        for batch in batches:
            model.run_batch(batch)
            done_texts += len(batch)
            done_tokens += sum(map(len, batch))
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return {"batch": batch_size, "texts_s": done_texts / elapsed, "tokens_s": done_tokens / elapsed}
