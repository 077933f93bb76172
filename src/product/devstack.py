"""`make run`: bring the whole system up locally with one command.

Starts the embedded PostgreSQL when DATABASE_URL is not set, migrates, makes sure a staff user
exists and prints its credentials, then runs the Procfile's web and gpu processes with honcho.
Ctrl-C stops everything (and the embedded PostgreSQL with it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from product.local_defaults import use_local_defaults

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], check=True, cwd=ROOT)


def main() -> int:
    os.environ.setdefault("PORT", "8000")
    # The Procfile names `uvicorn` and `python`: find them in this interpreter's environment.
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    # Local runs are plain http on localhost: DEBUG relaxes the https-only cookie settings.
    # `manage.py` in another terminal takes the same defaults and reaches the same database.
    database_url = use_local_defaults()
    print(f"Database    {database_url}", flush=True)
    _manage("migrate", "--noinput", "-v", "0")
    _manage("ensure_local_user", "--token")
    print(f"Open        http://127.0.0.1:{os.environ['PORT']}/   (Ctrl-C stops everything)", flush=True)
    honcho = [sys.executable, "-m", "honcho", "-f", str(ROOT / "Procfile"), "start", "web", "gpu"]
    process = subprocess.Popen(honcho, cwd=ROOT)
    signal.signal(signal.SIGTERM, lambda *_: process.terminate())
    try:
        return process.wait()
    except KeyboardInterrupt:
        # Ctrl-C reached honcho too: it is stopping web and gpu (the runner finishes the
        # jobs it holds). Wait for that; the embedded PostgreSQL stops when we exit.
        return process.wait()


if __name__ == "__main__":
    sys.exit(main())
