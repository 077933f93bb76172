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
        f"{name:<40} {percentile(values, 50):8.1f} {percentile(values, 95):8.1f} "
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
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def describe_machine() -> str:
    import platform

    return f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}"
