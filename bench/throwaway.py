"""What every benchmark needs: a fresh PostgreSQL database per measurement, child processes
(so each measurement's peak memory is its own) that report one JSON line, Django set up in
them, and the real dump most of them measure with."""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
SAMPLE_RSS = ROOT.parent / "shared" / "samples" / "arxiv-rss-2024-11-28.xml"


def setup_django(quiet_up_to: int = logging.INFO) -> None:
    """Django in this (child) process, with log records up to ``quiet_up_to`` silenced."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "digest.settings")
    import django

    django.setup()
    logging.disable(quiet_up_to)


def peak_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@contextmanager
def throwaway_database(pg: str, **env: str) -> Iterator[dict[str, str]]:
    """Create a database next to ``pg``'s, yield the environment that points Django at it,
    and drop it afterwards whatever happened."""
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {
            **os.environ,
            "DATABASE_URL": f"{pg.rpartition('/')[0]}/{name}",
            "DJANGO_DEBUG": "false",
            **env,
        }
    finally:
        with psycopg.connect(pg, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_child(script: str, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``script`` with ``args``; return the JSON of its last output line."""
    out = subprocess.run(
        [sys.executable, script, *args], env=env, capture_output=True, text=True, cwd=ROOT
    )
    if out.returncode:
        raise SystemExit(f"{Path(script).name} {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    lines = out.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}
