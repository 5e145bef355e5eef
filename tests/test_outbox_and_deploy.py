"""The embedded outbox (backend and local viewer) and production settings."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.mail import EmailMultiAlternatives
from django.test import Client

from digest.mail import OutboxBackend
from tests.conftest import ROOT

pytestmark = pytest.mark.django_db


@pytest.fixture
def outbox_dir(tmp_path: Path, settings: Any) -> Path:
    settings.OUTBOX_DIR = tmp_path / "outbox"
    settings.EMAIL_BACKEND = "digest.mail.OutboxBackend"
    return settings.OUTBOX_DIR


def write_mail(subject: str = "Confirm your subscription", html: str = "<p>Hi</p>") -> None:
    message = EmailMultiAlternatives(
        subject,
        "Open https://example.org/confirm/abc/ now.",
        "Digest <d@example.org>",
        ["ada@example.org"],
    )
    message.attach_alternative(html, "text/html")
    message.send()


def test_outbox_backend_writes_one_eml_per_message(outbox_dir: Path) -> None:
    write_mail()
    write_mail("Second")
    files = sorted(outbox_dir.glob("*.eml"))
    assert len(files) == 2 and not list(outbox_dir.glob(".*"))
    assert (
        b"Subject: Confirm your subscription" in files[0].read_bytes()
        or b"Subject: Confirm your subscription" in files[1].read_bytes()
    )
    assert OutboxBackend(folder=outbox_dir).send_messages([]) == 0


def test_outbox_page_is_hidden_outside_debug_mode(
    client: Client, outbox_dir: Path, settings: Any
) -> None:
    settings.DEBUG = False
    write_mail()
    assert client.get("/outbox/").status_code == 404


def test_outbox_page_lists_and_renders_mail_in_debug_mode(
    client: Client, outbox_dir: Path, settings: Any
) -> None:
    settings.DEBUG = True
    write_mail(html="<p>Hi</p><script>alert(1)</script>")
    listing = client.get("/outbox/")
    assert listing.status_code == 200 and b"Confirm your subscription" in listing.content
    name = next(outbox_dir.glob("*.eml")).name
    page = client.get(f"/outbox/{name}/").content.decode()
    assert 'href="https://example.org/confirm/abc/"' in page
    assert "<script>alert(1)" not in page  # the HTML part is only shown in a sandboxed frame
    html = client.get(f"/outbox/{name}/html/")
    assert html["Content-Security-Policy"].startswith("sandbox")
    assert "allow-scripts" not in html["Content-Security-Policy"]


def test_outbox_is_open_to_staff_even_without_debug(
    admin_client: Client, outbox_dir: Path, settings: Any
) -> None:
    settings.DEBUG = False
    write_mail()
    assert admin_client.get("/outbox/").status_code == 200


@pytest.mark.parametrize("name", ["..%2F..%2Fetc%2Fpasswd", "x.txt", ".hidden.eml", "missing.eml"])
def test_outbox_refuses_unknown_or_unsafe_names(
    client: Client, outbox_dir: Path, settings: Any, name: str
) -> None:
    settings.DEBUG = True
    write_mail()
    assert client.get(f"/outbox/{name}/").status_code == 404


def test_check_deploy_is_clean_with_production_settings(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PRODUCTION": "true",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(60),
        "DJANGO_ALLOWED_HOSTS": "digest.example.org",
        "DATA_DIR": str(tmp_path),
        "DJANGO_DEBUG": "false",
    }
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
