"""Beside `make run`, operator commands in a second terminal reach the same embedded
PostgreSQL with nothing exported by hand (product.local_defaults)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support.processes import ROOT, Process, free_port

pytestmark = pytest.mark.e2e


def bare_environment(data_dir: Path, **extra: str) -> dict[str, str]:
    """A terminal's environment: no DATABASE_URL, SECRET_KEY or DEBUG. EMBEDDED_PG_DIR only
    keeps this test's server apart from the checkout's .local/pgdata; both processes get the
    same one, as both use the same default in a checkout."""
    return {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
        "HOME": os.environ.get("HOME", "/tmp"),
        "EMBEDDED_PG_DIR": str(data_dir),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def manage(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=bare_environment(data_dir),
        capture_output=True, text=True, timeout=120,
    )


def test_operator_commands_reach_the_database_of_make_run(tmp_path):
    data_dir = tmp_path / "pgdata"
    port = free_port()
    stack = Process(
        "devstack", [sys.executable, "-m", "product.devstack"],
        bare_environment(data_dir, PORT=str(port), GPU_RUNNER_MAX_BATCH_SIZE="16"), tmp_path,
    )
    try:
        stack.wait_for_output("taking jobs from", timeout=300)

        status = manage(data_dir, "queue_status", "--json")
        assert status.returncode == 0, status.stderr
        runners = json.loads(status.stdout)["runners"]
        assert [runner["live"] for runner in runners] == [True], "make run's runner is not seen"
        users = manage(data_dir, "shell", "-v", "0", "-c",
                       "from django.contrib.auth.models import User; "
                       "print(User.objects.filter(username='admin').exists())")
        assert users.stdout.strip() == "True", users.stderr

        # The command's exit leaves the shared server running for make run's processes.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as answer:
            assert answer.status == 200
    finally:
        stack.terminate()  # As a Ctrl-C would: web and runner stop, then make run exits.
    # The last process using the embedded server has exited: it was stopped.
    assert not (data_dir / "postmaster.pid").exists()
