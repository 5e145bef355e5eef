"""The staff dashboard and the schedules page: figures, charts, health, warnings, permissions.

Data comes from the factories; "now" is the real clock (the figures are relative to it)."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from typing import Any

import factory
import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from digest.models import (
    DeliveryControl,
    Digest,
    Heartbeat,
    IngestRun,
    JobStatus,
    Paper,
    RejectedEntry,
    SourceState,
)
from subscriptions.models import Subscriber
from tests.conftest import operator_user
from tests.factories import DigestFactory, DigestItemFactory, PaperFactory, SubscriberFactory

pytestmark = pytest.mark.django_db

DASHBOARD = "/admin/dashboard/"
SCHEDULES = "/admin/dashboard/schedules/"
ACTIONS = [
    "/admin/dashboard/ingest/upload/",
    "/admin/dashboard/ingest/source/",
    "/admin/dashboard/digests/run/",
    "/admin/dashboard/digests/preview/",
    "/admin/dashboard/digests/test/",
    "/admin/dashboard/sending/",
]


def page(client: Client, url: str = DASHBOARD) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def text(html: str) -> str:
    """The page's visible text, one space between words (for phrase assertions)."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_empty_dashboard_renders_and_says_nothing_has_happened(operator: Client) -> None:
    html = page(operator)
    shown = text(html)
    assert "No ingest run yet" in shown
    assert "No failed deliveries." in shown
    assert "No worker has reported yet" in shown and "No beat has reported yet" in shown
    assert shown.count("not run yet") >= 3
    assert "No data yet." in shown


# --- permissions ----------------------------------------------------------------------------


@pytest.fixture
def non_staff(client: Client) -> Client:
    user = User.objects.create_user("reader", "reader@example.org", "pw")
    client.force_login(user)
    return client


@pytest.mark.parametrize("who", ["anonymous", "non_staff"])
@pytest.mark.parametrize("url", [DASHBOARD, SCHEDULES])
def test_pages_show_nothing_to_anonymous_and_non_staff_users(
    request: pytest.FixtureRequest, client: Client, who: str, url: str
) -> None:
    visitor = client if who == "anonymous" else request.getfixturevalue("non_staff")
    PaperFactory.create_batch(3)
    response = visitor.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert b"Papers" not in response.content and b"scan-inbox" not in response.content


@pytest.mark.parametrize("who", ["anonymous", "non_staff"])
@pytest.mark.parametrize("url", ACTIONS)
def test_actions_do_nothing_for_anonymous_and_non_staff_users(
    request: pytest.FixtureRequest,
    client: Client,
    who: str,
    url: str,
    inbox_dir: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    visitor = client if who == "anonymous" else request.getfixturevalue("non_staff")
    SubscriberFactory(email="ada@example.org")
    with django_capture_on_commit_callbacks() as queued:
        response = visitor.post(
            url,
            {"paused": "true", "subscriber": "ada@example.org", "to": "x@example.org"},
        )
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert queued == []
    assert not DeliveryControl.objects.filter(paused=True).exists()
    assert list(inbox_dir.iterdir()) == []


@pytest.mark.parametrize("url", ACTIONS)
def test_staff_without_the_action_permission_gets_403_and_nothing_happens(
    client: Client, url: str, inbox_dir: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(operator_user(permissions=[]))
    SubscriberFactory(email="ada@example.org")
    with django_capture_on_commit_callbacks() as queued:
        response = client.post(
            url, {"paused": "true", "subscriber": "ada@example.org", "to": "x@example.org"}
        )
    assert response.status_code == 403
    assert queued == []
    assert not DeliveryControl.objects.filter(paused=True).exists()
    assert list(inbox_dir.iterdir()) == []


def test_the_dashboard_offers_only_the_actions_the_user_may_run(client: Client) -> None:
    client.force_login(operator_user("reader", permissions=[]))
    html = page(client)
    assert 'id="no-actions"' in html and "<form" not in html.split('id="actions"')[1][:4000]
    client.force_login(operator_user("pauser", permissions=["digest.change_deliverycontrol"]))
    html = page(client)
    shown = set(re.findall(r'<form class="card"[^>]* id="([a-z-]+)"', html))
    assert shown == {"sending-form"} and 'id="no-actions"' not in html
    client.force_login(operator_user("all"))
    shown = set(re.findall(r'<form class="card"[^>]* id="([a-z-]+)"', page(client)))
    assert shown == {
        "upload-form", "source-form", "plan-form", "sending-form", "preview-form", "test-form"
    }  # fmt: skip


@pytest.mark.parametrize("url", ACTIONS)
def test_actions_refuse_get(operator: Client, url: str) -> None:
    assert operator.get(url).status_code == 405


def test_actions_need_the_csrf_token(inbox_dir: Any) -> None:
    user = operator_user()
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post("/admin/dashboard/sending/", {"paused": "true"})
    assert response.status_code == 403
    assert not DeliveryControl.objects.filter(paused=True).exists()


def test_admin_index_links_to_the_dashboard_and_schedules(operator: Client) -> None:
    html = page(operator, "/admin/")
    assert 'href="/admin/dashboard/"' in html and 'href="/admin/dashboard/schedules/"' in html


# --- realistic data --------------------------------------------------------------------------


@pytest.fixture
def healthy(settings: Any) -> dict[str, Any]:
    """A week of activity: papers from two sources, subscribers in every state, digests sent
    and skipped, jobs that ran on time, a worker and beat that reported a moment ago."""
    now = timezone.now()
    for day in range(7):
        PaperFactory.create_batch(
            day + 1,
            first_seen=now - timedelta(days=day),
            listing_date=(now - timedelta(days=day)).date(),
            sources=["hf-json"] if day % 2 else ["hf-json", "arxiv-rss"],
        )
    IngestRun.objects.create(
        source="inbox",
        format="hf-json",
        location="/inbox/a.json",
        status="success",
        n_new=4,
        finished_at=now - timedelta(minutes=5),
    )
    IngestRun.objects.create(
        source="fetch",
        format="arxiv-rss",
        location="https://rss.arxiv.org/x",
        status="partial",
        n_new=3,
        n_rejected=1,
        finished_at=now - timedelta(minutes=3),
    )
    run = IngestRun.objects.get(status="partial")
    RejectedEntry.objects.create(run=run, position=7, reason="no title <b>at all</b>")
    readers = SubscriberFactory.create_batch(3, interests="Mamba, quantization")
    SubscriberFactory(interests="quantization, diffusion models")
    SubscriberFactory(status=Subscriber.Status.PENDING)
    SubscriberFactory(status=Subscriber.Status.UNSUBSCRIBED, unsubscribed_at=now)
    SubscriberFactory(suppressed_at=now, hard_failures=2)
    papers = iter(Paper.objects.order_by("id"))
    for reader in readers:
        digest = DigestFactory(
            subscriber=reader, state=Digest.State.SENT, sent_at=now - timedelta(hours=2)
        )
        DigestItemFactory.create_batch(2, digest=digest, paper=factory.Iterator(papers))
    old = DigestFactory(
        subscriber=readers[0], state=Digest.State.SENT, sent_at=now - timedelta(days=3)
    )
    DigestItemFactory(digest=old, paper=next(papers))
    DigestFactory(subscriber=readers[1], state=Digest.State.SKIPPED)
    for task in (
        "digest.tasks.scan_inbox",
        "digest.tasks.plan_digests",
        "subscriptions.tasks.purge_stale_pending",
    ):
        JobStatus.objects.create(
            task=task,
            last_queued_at=now,
            last_started_at=now,
            last_finished_at=now,
            last_success_at=now,
            runs=5,
        )
    Heartbeat.objects.create(role="worker", name="celery@box", last_seen_at=now)
    Heartbeat.objects.create(role="beat", name="box", last_seen_at=now)
    return {"now": now}


def test_dashboard_shows_the_figures_of_a_healthy_service(
    operator: Client, healthy: dict[str, Any]
) -> None:
    html = page(operator)
    shown = text(html)
    assert "All is well" in shown
    assert re.search(r"Papers 28 Latest listing: \w+ \d+, \d{4} \(1 paper\)", shown)
    assert "arxiv-rss: 16" in shown and "hf-json: 28" in shown  # days 0, 2, 4, 6 had both
    assert "Subscribers 7" in shown
    assert "pending confirmation: 1" in shown and "confirmed: 5" in shown
    assert "unsubscribed: 1" in shown and "suppressed addresses: 1" in shown
    assert "sent 3 4 skipped 1 1 failed 0 0" in shown
    assert "Ingest: 3 minutes ago fetch: 3 minutes ago inbox: 5 minutes ago" in shown
    assert "Digest sent: 2 hours ago" in shown
    assert "scan-inbox every 30 s" in shown and "plan-digests every 5 min" in shown
    assert "celery@box" in shown and "alive" in shown
    assert "no title <b>at all</b>" in shown  # a rejected entry, escaped in the HTML
    assert "<b>at all</b>" not in html


def test_dashboard_charts_are_inline_svg_with_titles_and_figures(
    operator: Client, healthy: dict[str, Any]
) -> None:
    html = page(operator)
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)  # no inline script
    assert html.count('<svg viewBox="0 0 640') == 5
    for chart in ("papers-per-day", "subscribers", "digests-per-day", "digest-sizes", "topics"):
        assert f'aria-labelledby="{chart}-title {chart}-desc"' in html
    sizes = re.search(r'id="chart-digest-sizes".*?</figure>', html, re.S)
    assert sizes is not None
    # Three digests of two papers and one of one, in the table beside the chart.
    assert '<th scope="row">1</th><td>1</td>' in sizes[0]
    assert '<th scope="row">2</th><td>3</td>' in sizes[0]
    topics = re.search(r'id="chart-topics".*?</figure>', html, re.S)
    assert topics is not None
    # Four confirmed readers name quantization (the suppressed one too), three name Mamba.
    assert "quantization (5)" in topics[0] and "mamba (3)" in topics[0]


# --- broken state ----------------------------------------------------------------------------


def test_dashboard_warns_of_overdue_jobs_silent_processes_and_failed_deliveries(
    operator: Client, healthy: dict[str, Any], settings: Any
) -> None:
    now = healthy["now"]
    settings.SOURCE_URLS = ["https://example.org/feed"]
    SourceState.objects.create(
        url="https://example.org/feed", last_fetched_at=now - timedelta(days=2)
    )
    JobStatus.objects.filter(task="digest.tasks.scan_inbox").update(
        last_success_at=now - timedelta(hours=2)
    )
    JobStatus.objects.filter(task="digest.tasks.plan_digests").update(
        last_success_at=now - timedelta(minutes=10),
        last_failure_at=now,
        last_error="OperationalError: database is locked",
        failures=1,
    )
    Heartbeat.objects.filter(role="worker").update(last_seen_at=now - timedelta(hours=1))
    victim = SubscriberFactory(email="gone@example.org")
    DigestFactory(
        subscriber=victim,
        state=Digest.State.FAILED,
        error="SMTPRecipientsRefused: 550 no such user",
    )
    shown = text(page(operator))
    assert "All is well" not in shown
    assert "scan-inbox is overdue: it runs every 30 s, last success 2 hours ago" in shown
    assert "plan-digests is failing: OperationalError: database is locked" in shown
    assert "No worker has reported for 1 hour" in shown
    assert "Ingest from https://example.org/feed is overdue: last fetched 2 days ago" in shown
    assert "1 digest(s) failed in the last 24 hours" in shown
    assert "gone@example.org" in shown and "550 no such user" in shown
    assert "silent" in shown


# --- schedules -------------------------------------------------------------------------------


def test_schedules_list_every_job_of_beats_schedule_with_its_setting(
    operator: Client, healthy: dict[str, Any], settings: Any
) -> None:
    settings.SOURCE_URLS = ["https://example.org/feed"]
    settings.DIGEST_PLAN_MINUTES = 10
    shown = text(page(operator, SCHEDULES))
    assert "scan-inbox digest.tasks.scan_inbox every 30 s INBOX_SCAN_SECONDS" in shown
    assert "plan-digests digest.tasks.plan_digests every 10 min DIGEST_PLAN_MINUTES" in shown
    assert "purge-stale-pending subscriptions.tasks.purge_stale_pending every 6 h" in shown
    assert "fetch-sources digest.tasks.fetch_sources every 1 h SOURCE_FETCH_MINUTES" in shown
    assert "prune-old-digests digest.tasks.prune_old_digests every 1 d RETENTION_HOURS" in shown
    assert shown.count(" ok ") >= 3


def test_a_job_added_to_the_schedule_shows_without_other_changes(
    operator: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from celery.schedules import crontab

    from digest import schedule

    original = schedule.beat_schedule

    def with_cleanup() -> dict[str, Any]:
        entries = original()
        entries["cleanup-archives"] = {
            "task": "digest.tasks.cleanup_archives",
            "schedule": crontab(minute="15", hour="3"),
        }
        return entries

    monkeypatch.setattr(schedule, "beat_schedule", with_cleanup)
    monkeypatch.setattr("digest.dashboard.health.beat_schedule", with_cleanup)
    JobStatus.objects.create(
        task="digest.tasks.cleanup_archives",
        last_finished_at=timezone.now() - timedelta(days=5),
        last_success_at=timezone.now() - timedelta(days=5),
    )
    html = page(operator, SCHEDULES)
    assert (
        "cleanup-archives digest.tasks.cleanup_archives crontab 15 3 * * * digest/schedule.py"
        in text(html)
    )
    row = re.search(r'<tr class="job-([a-z-]+)">\s*<th scope="row">cleanup-archives</th>', html)
    assert row is not None and row.group(1) == "overdue"  # daily, last success five days ago
