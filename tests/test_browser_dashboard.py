"""An operator in a real browser: log in, read the dashboard, preview a subscriber's digest.

Headless Chromium (Debian's package) driven by Playwright. Screenshots go to
``$ARTIFACTS_DIR/browser/`` (default ``artifacts/browser/``); the test prints where.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from digest.ingest.run import IngestOptions, ingest_path
from digest.models import Digest, Heartbeat, JobStatus
from tests.browser import browser_page, screenshot
from tests.conftest import SEED
from tests.factories import DigestFactory, DigestItemFactory, PaperFactory, SubscriberFactory

__all__ = ["browser_page"]  # fixture used below

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def a_week_of_activity() -> None:
    now = timezone.now()
    ingest_path(SEED, IngestOptions(source="inbox", today=date(2026, 11, 29)))
    for day in range(1, 8):
        PaperFactory.create_batch(day % 4 + 1, first_seen=now - timedelta(days=day))
    SubscriberFactory(
        email="ada@example.org", interests="federated learning, graph neural networks"
    )
    for i, topics in enumerate(["quantization, Mamba", "diffusion models", "quantization, RL"]):
        reader = SubscriberFactory(interests=topics)
        digest = DigestFactory(
            subscriber=reader, state=Digest.State.SENT, sent_at=now - timedelta(days=i)
        )
        DigestItemFactory.create_batch(i + 1, digest=digest)
    DigestFactory(state=Digest.State.FAILED, error="SMTPRecipientsRefused: 550 no such user")
    for task in ("digest.tasks.scan_inbox", "digest.tasks.plan_digests"):
        JobStatus.objects.create(
            task=task, last_queued_at=now, last_finished_at=now, last_success_at=now, runs=3
        )
    Heartbeat.objects.create(role="worker", name="celery@box", last_seen_at=now)
    Heartbeat.objects.create(role="beat", name="box", last_seen_at=now)


def test_staff_opens_the_dashboard_and_previews_a_digest(
    live_server: Any, browser_page: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEMANTIC_MATCHING", "off")
    settings.SITE_URL = live_server.url
    a_week_of_activity()
    User.objects.create_superuser("operator", "op@example.org", "a long test password")
    page = browser_page

    page.goto(live_server.url + "/admin/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "a long test password")
    page.click("input[type=submit]")
    page.click("#dashboard-link")
    page.wait_for_selector("#attention")
    body = page.inner_text("body")
    assert "1 digest(s) failed in the last 24 hours" in body
    assert "purge-stale-pending" in body and "celery@box" in body
    assert page.locator("figure.chart svg").count() == 5
    path = screenshot(page, "dashboard-1-overview")

    page.fill("#id_subscriber", "ada@example.org")  # the preview form's field
    page.click("#preview-button")
    page.wait_for_selector("#preview-items")
    assert "Nothing was saved or sent" in page.inner_text("body")
    rows = page.locator("#preview-items tbody tr")
    assert rows.count() >= 1 and "matched:" in rows.first.inner_text()
    frame = page.frame_locator("iframe.mail-html")
    assert "federated" in frame.locator("body").inner_text().lower()
    assert "federated" in page.inner_text("#preview-text").lower()
    screenshot(page, "dashboard-2-preview")
    assert not Digest.objects.filter(subscriber__email="ada@example.org").exists()

    page.click("text=Dashboard")  # the breadcrumb
    page.click("text=Schedules >> nth=0")
    page.wait_for_selector("table.jobs")
    assert "PURGE_PENDING_HOURS" in page.inner_text("table.jobs")
    screenshot(page, "dashboard-3-schedules")
    print(f"screenshots in {path.parent}")
