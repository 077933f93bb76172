"""Start the real web and runner processes against the test database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def child_database_url() -> str:
    """DATABASE_URL of the database pytest-django created, for child processes."""
    db = connection.settings_dict
    auth = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    if db["HOST"].startswith("/"):
        return f"postgresql://{auth}@/{db['NAME']}?host={db['HOST']}"
    return f"postgresql://{auth}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


def child_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=child_database_url(),
        SECRET_KEY=settings.SECRET_KEY,
        STATIC_ROOT=str(settings.STATIC_ROOT),
        DEBUG="0",
        # Tests talk plain http to 127.0.0.1; everything else stays production-like.
        SECURE_SSL_REDIRECT="0",
        SESSION_COOKIE_SECURE="0",
        CSRF_COOKIE_SECURE="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
    )
    # Small batches keep tests quick; benchmarks set the variable to run production's size.
    env.setdefault("GPU_RUNNER_MAX_BATCH_SIZE", "16")
    # A runner hosts the embedding model alone unless a test asks for others: each hosted
    # model costs a warm-up at start, and only the embedding model's jobs are submitted here.
    env.setdefault("GPU_RUNNER_MODELS", "all-minilm-l6-v2")
    env.update(overrides)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Every process started, in order: tests/conftest.py stops those a test started and left
# running (it failed before stopping them), so none takes the next tests' jobs.
STARTED: list[Process] = []


class Process:
    """A child process with its output in a log file, waited on by what it prints."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        STARTED.append(self)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.output()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not print {text!r}:\n{self.output()}")
            time.sleep(0.1)

    def terminate(self, timeout: float = 60) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()
        return self.popen.returncode


def start_runner(log_dir: Path, *args: str, name: str = "runner", **env: str) -> Process:
    return Process(name, [sys.executable, "-m", "gpu_runner", *args], child_env(**env), log_dir)


def start_web(log_dir: Path, **env: str) -> tuple[Process, str]:
    """A uvicorn web process (its environment: the tests' plus ``env``) and its base URL."""
    port = free_port()
    args = [
        sys.executable, "-m", "uvicorn", "product.asgi:application",
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
    ]
    web = Process("web", args, child_env(**env), log_dir)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(base_url + "/healthz", timeout=2):
                return web, base_url
        except OSError:
            if web.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"web did not start:\n{web.output()}") from None
            time.sleep(0.1)


def run_drain(log_dir: Path, **env: str) -> Process:
    """Run `python -m gpu_runner --drain` to completion: every waiting job runs, then it exits."""
    runner = start_runner(log_dir, "--drain", **env)
    runner.popen.wait(300)
    runner.terminate()
    return runner
