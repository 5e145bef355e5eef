#!/usr/bin/env python3
"""Set up and run the service or its tests with nothing but Python 3.11+ (no make needed).

    python3 scripts/dev.py run    # venv, install, migrate, ingest examples, web + worker + beat
    python3 scripts/dev.py test   # venv, install, the whole test suite (args go to pytest)

A second run reuses the virtualenv; it reinstalls only when pyproject.toml changed.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


def ensure_venv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 (an older python3 may run this script)
        sys.exit(f"Python 3.11 or newer is needed (this is {sys.version.split()[0]})")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamp = VENV / ".installed"
    if stamp.exists() and stamp.read_text() == wanted and PY.exists():
        return
    if not PY.exists():
        print(f"creating virtualenv in {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    pip = [str(PY), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    print("installing the project and its test tools", flush=True)
    subprocess.run([*pip, "install", "-e", f"{ROOT}[dev]"], check=True, cwd=ROOT)
    stamp.write_text(wanted)


def manage(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run([str(PY), "manage.py", *args], check=True, cwd=ROOT, env=env)


def run(host: str = "127.0.0.1", port: str = "8000") -> None:
    ensure_venv()
    env = {**os.environ, "DJANGO_DEBUG": os.environ.get("DJANGO_DEBUG", "true")}
    manage("migrate", "--noinput", env=env)
    manage("ingest", "examples/", env=env)
    worker = subprocess.Popen(
        [
            str(BIN / "celery"),
            "-A",
            "digest",
            "worker",
            "--beat",
            "--loglevel",
            "INFO",
            "--concurrency",
            "2",
        ],
        cwd=ROOT,
        env=env,
    )
    print(
        f"\n  Paper Digest is running at http://{host}:{port}/  (admin: /admin/, mail: /outbox/)\n"
        "  Create an admin login with: .venv/bin/python manage.py createsuperuser\n"
        "  Drop dumps into var/inbox/; mail goes to var/outbox/. Ctrl-C stops everything.\n",
        flush=True,
    )
    try:
        manage("runserver", "--noreload", f"{host}:{port}", env=env)
    except KeyboardInterrupt:
        pass
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()


def test(args: list[str]) -> int:
    ensure_venv()
    return subprocess.run([str(PY), "-m", "pytest", *args], cwd=ROOT).returncode


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "run":
        run()
        return 0
    if command == "test":
        return test(sys.argv[2:])
    if command == "setup":
        ensure_venv()
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
