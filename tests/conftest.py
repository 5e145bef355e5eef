"""Shared fixtures: paths to the shared sample data, real-service guards, small dump builders."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import time_machine

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SEED = SHARED / "seeds" / "000_66121929927fe5a4.txt"
SAMPLES = SHARED / "samples"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1
        ):
            return True
    except OSError:
        return False


def require(condition: bool, what: str) -> None:
    """Skip when a real service is missing on a developer's machine; fail in CI, never skip."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{what} is required when CI=true but is not available")
    pytest.skip(f"{what} is not available")


@pytest.fixture
def redis_url() -> str:
    require(reachable(TEST_REDIS_URL, 6379), f"Redis at {TEST_REDIS_URL}")
    return TEST_REDIS_URL


@pytest.fixture
def shared() -> Path:
    require(SHARED.is_dir(), f"the shared sample data at {SHARED}")
    return SHARED


@pytest.fixture
def today_2026() -> Iterator[date]:
    """Freeze time on the day these tests were written, so month-day dates resolve stably."""
    with time_machine.travel("2026-11-29 12:00:00+00:00", tick=False):
        yield date(2026, 11, 29)


def operator_user(username: str = "operator", permissions: Any = None) -> Any:
    """A staff user with the dashboard's action permissions (or only ``permissions``)."""
    from django.contrib.auth.models import Permission, User

    from digest.dashboard.views import ACTION_PERMISSIONS

    user = User.objects.create_user(username, f"{username}@example.org", "pw", is_staff=True)
    for name in ACTION_PERMISSIONS if permissions is None else permissions:
        app, codename = name.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app, codename=codename)
        )
    return user


@pytest.fixture
def operator(client: Any) -> Any:
    """A client logged in as a staff user who may run every dashboard action."""
    client.force_login(operator_user())
    return client


@pytest.fixture
def filesystem_broker_options(tmp_path: Path) -> dict[str, str]:
    """Transport options of the embedded (filesystem) broker in a folder of this test's own,
    laid out as settings.py lays it out; ``data_folder_in`` exists."""
    folder = tmp_path / "broker" / "queue"
    folder.mkdir(parents=True)
    return {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "control_folder": str(tmp_path / "broker" / "control"),
    }


@pytest.fixture
def inbox_dir(tmp_path: Path, settings: Any) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    settings.INBOX_DIR = folder
    settings.INBOX_SETTLE_SECONDS = 0
    return folder


def hf_item(
    arxiv_id: str,
    title: str,
    *,
    summary: str = "An abstract.",
    upvotes: int = 1,
    authors: list[str] | None = None,
    listed: str = "2024-10-25T00:00:00.000Z",
    **paper_extra: Any,
) -> dict[str, Any]:
    """One item shaped like the HF daily-papers API."""
    return {
        "paper": {
            "id": arxiv_id,
            "authors": [{"name": name, "hidden": False} for name in (authors or ["A. Author"])],
            "publishedAt": "2024-10-22T17:59:30.000Z",
            "title": title,
            "summary": summary,
            "upvotes": upvotes,
            **paper_extra,
        },
        "publishedAt": listed,
        "title": title,
        "numComments": 2,
    }


def hf_json(items: list[dict[str, Any]]) -> bytes:
    return json.dumps(items).encode()


def seed_layout(papers: list[tuple[str, str]], header_date: str = "Mar 11") -> bytes:
    """A dump in the seed's layout: header lines, the date, then title / blank / abstract."""
    lines = [
        "new",
        "",
        "Get trending papers in your email inbox!",
        "",
        "Subscribe",
        "",
        "byAK and the research community",
        "",
        header_date,
        "",
    ]
    for title, abstract in papers:
        lines += [title, "", abstract, ""]
    return "\n".join(lines).encode()


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    """Rate-limit counters live in the cache; every test starts from zero."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def mailbox(settings: Any) -> list[Any]:
    """Django's in-memory mail backend; the list of sent messages."""
    from django.core import mail

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    return mail.outbox


@pytest.fixture
def eager(settings: Any) -> Iterator[None]:
    """Run Celery tasks inline, in the calling thread."""
    from digest.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager = False
    app.conf.task_eager_propagates = False
