"""Helpers for real-browser tests: Debian's Chromium driven by Playwright, and an SMTP sink."""

from __future__ import annotations

import email
import os
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.db import connections

from tests.conftest import ROOT, require

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Screenshots: ARTIFACTS_DIR when set (e.g. by CI, to keep them), else artifacts/ in the checkout.
ARTIFACTS = Path(os.environ.get("ARTIFACTS_DIR") or ROOT / "artifacts") / "browser"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Recorder:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self, pipelining: bool = True) -> None:
        self.messages: list[EmailMessage] = []
        self.raw: list[bytes] = []
        self.pipelining = pipelining

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        """aiosmtpd's own EHLO reply, plus PIPELINING (RFC 2920) when ``pipelining``: it
        reads pipelined commands one by one, as it reads any."""
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content, policy=default)
        assert isinstance(message, EmailMessage)
        self.raw.append(envelope.original_content)
        self.messages.append(message)
        return "250 OK"

    def wait_for(self, count: int, timeout: float = 45.0) -> EmailMessage:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.messages) >= count:
                return self.messages[count - 1]
            time.sleep(0.1)
        raise AssertionError(f"expected {count} messages, got {len(self.messages)}")


@contextmanager
def serving_smtp(settings: Any, handler: Any) -> Iterator[Any]:
    """Run a real SMTP server (aiosmtpd) with ``handler`` on localhost and point the
    service's SMTP backend at it."""
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "digest.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    try:
        yield handler
    finally:
        controller.stop()


@pytest.fixture
def smtp_server(settings: Any) -> Iterator[Recorder]:
    """A real SMTP server on localhost that the service sends to."""
    with serving_smtp(settings, Recorder()) as recorder:
        yield recorder


@pytest.fixture
def browser_page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    require(Path(CHROMIUM).exists(), f"Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls are
    # plain synchronous code all the same.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1024, "height": 900})
        # Generous: on a loaded two-core machine a first request may load the embedding model.
        page.set_default_timeout(45_000)
        yield page
        browser.close()
        # The ORM calls a test made while Playwright's loop ran opened connections of their
        # own; left open they keep PostgreSQL from dropping the test database at the end.
        connections.close_all()


def screenshot(page: Any, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def text_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]
