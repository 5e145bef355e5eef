"""The dashboard's actions: each by POST from staff, each confirmed by a message, bad input
refused with a clear error and nothing lost."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from digest.ingest.run import IngestOptions, ingest_path
from digest.matching.service import latest_listing
from digest.models import DeliveryControl, Digest, DigestItem, IngestRun, Paper
from subscriptions.models import Subscriber
from tests.conftest import SEED, hf_item, hf_json
from tests.factories import DigestFactory, DigestItemFactory, SubscriberFactory

pytestmark = pytest.mark.django_db

HOSTILE = "Federated learning at <img src=x onerror=alert(1)> scale"


@pytest.fixture
def listing(monkeypatch: pytest.MonkeyPatch) -> date:
    monkeypatch.setenv("SEMANTIC_MATCHING", "off")
    ingest_path(SEED, IngestOptions(source="test", today=date(2026, 11, 29)))
    day = latest_listing()
    assert day is not None
    Paper.objects.create(
        key="title:hostile",
        title_key="hostile",
        title=HOSTILE,
        abstract="Federated learning across many clients, with graph neural networks.",
        listing_date=day,
        first_seen=Paper.objects.order_by("first_seen").first().first_seen,  # type: ignore[union-attr]
        last_seen=Paper.objects.order_by("first_seen").first().first_seen,  # type: ignore[union-attr]
    )
    return day


@pytest.fixture
def ada() -> Subscriber:
    return SubscriberFactory(
        email="ada@example.org",
        interests="federated learning, graph neural networks",
        delivery_hour=0,
    )


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- ingest now ------------------------------------------------------------------------------


def test_an_uploaded_dump_goes_through_the_inbox_and_is_ingested(
    operator: Client, inbox_dir: Path, eager: None, django_capture_on_commit_callbacks: Any
) -> None:
    dump = SimpleUploadedFile(
        "daily.json", hf_json([hf_item("2411.00001", "Uploaded Paper")]), "application/json"
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post("/admin/dashboard/ingest/upload/", {"dump": dump}, follow=True)
    assert response.redirect_chain[-1][0] == "/admin/dashboard/"
    assert any("queued its ingest" in m for m in messages_of(response))
    assert Paper.objects.filter(arxiv_id="2411.00001").exists()
    run = IngestRun.objects.get()
    assert run.source == "inbox" and run.status == "success"
    processed = list((inbox_dir / "processed").iterdir())
    assert len(processed) == 1 and processed[0].name.endswith("-daily.json")
    assert [p for p in inbox_dir.iterdir() if p.is_file()] == []  # nothing left behind


def test_a_bad_upload_is_kept_in_failed_with_its_reason(
    operator: Client, inbox_dir: Path, eager: None, django_capture_on_commit_callbacks: Any
) -> None:
    dump = SimpleUploadedFile("junk.bin", b"\x00\x01 not a dump at all " * 50)
    with django_capture_on_commit_callbacks(execute=True):
        operator.post("/admin/dashboard/ingest/upload/", {"dump": dump})
    assert IngestRun.objects.get().status == "failed"
    failed = sorted(p.name for p in (inbox_dir / "failed").iterdir())
    assert len(failed) == 2 and failed[1].endswith("junk.bin.error.txt")
    assert failed[0].endswith("junk.bin")
    assert (inbox_dir / "failed" / failed[0]).read_bytes() == b"\x00\x01 not a dump at all " * 50


@pytest.mark.parametrize(
    ("content", "error"),
    [(b"x" * 2048, "INGEST_MAX_BYTES allows 1.0"), (b"", "The submitted file is empty")],
)
def test_an_upload_that_is_too_large_or_empty_is_refused(
    operator: Client, inbox_dir: Path, settings: Any, content: bytes, error: str
) -> None:
    settings.INGEST_MAX_BYTES = 1024
    response = operator.post(
        "/admin/dashboard/ingest/upload/", {"dump": SimpleUploadedFile("big.json", content)}
    )
    assert response.status_code == 400
    assert error in response.content.decode()
    assert "Nothing was ingested" in " ".join(messages_of(response))
    assert list(inbox_dir.iterdir()) == []


def test_fetching_a_configured_source_is_queued(
    operator: Client,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.SOURCE_URLS = ["https://example.org/a.rss", "https://example.org/b.json"]
    queued: list[str] = []
    monkeypatch.setattr("digest.tasks.fetch_source_url.delay", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(
            "/admin/dashboard/ingest/source/", {"url": "https://example.org/b.json"}, follow=True
        )
    assert queued == ["https://example.org/b.json"]
    assert "Queued a fetch of https://example.org/b.json." in messages_of(response)


def test_only_configured_sources_can_be_fetched(
    operator: Client,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.SOURCE_URLS = ["https://example.org/a.rss"]
    queued: list[str] = []
    monkeypatch.setattr("digest.tasks.fetch_source_url.delay", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(
            "/admin/dashboard/ingest/source/", {"url": "http://169.254.169.254/"}
        )
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert queued == []


# --- digests ---------------------------------------------------------------------------------


def test_running_the_due_digests_sends_them_now(
    operator: Client,
    listing: date,
    ada: Subscriber,
    mailbox: list[Any],
    eager: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post("/admin/dashboard/digests/run/", follow=True)
    assert any("Queued a planner run" in m for m in messages_of(response))
    digest = Digest.objects.get(subscriber=ada)
    assert digest.state == "sent" and digest.items.count() >= 1
    assert [m.to for m in mailbox] == [["ada@example.org"]]


def test_running_the_due_digests_while_paused_does_nothing(
    operator: Client,
    listing: date,
    ada: Subscriber,
    mailbox: list[Any],
    eager: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    DeliveryControl.objects.update_or_create(pk=1, defaults={"paused": True})
    with django_capture_on_commit_callbacks(execute=True) as queued:
        response = operator.post("/admin/dashboard/digests/run/", follow=True)
    assert queued == []
    assert any("Sending is paused: nothing was planned" in m for m in messages_of(response))
    assert not Digest.objects.exists() and mailbox == []


def test_pause_and_resume_all_sending(operator: Client) -> None:
    response = operator.post("/admin/dashboard/sending/", {"paused": "true"}, follow=True)
    control = DeliveryControl.current()
    assert control.paused and "by operator" in control.note
    assert any("Sending is paused" in m for m in messages_of(response))
    assert 'id="sending-state">paused<' in response.content.decode()

    response = operator.post("/admin/dashboard/sending/", {"paused": "false"}, follow=True)
    assert not DeliveryControl.current().paused
    assert "Sending is resumed." in messages_of(response)
    assert 'id="sending-state">on<' in response.content.decode()


def test_a_bad_sending_request_changes_nothing(operator: Client) -> None:
    response = operator.post("/admin/dashboard/sending/", {"paused": "maybe"}, follow=True)
    assert not DeliveryControl.current().paused
    assert any("Nothing changed" in m for m in messages_of(response))


# --- preview and test digest -----------------------------------------------------------------


def test_preview_shows_the_digest_with_scores_and_reasons_and_saves_nothing(
    operator: Client, listing: date, ada: Subscriber
) -> None:
    response = operator.post("/admin/dashboard/digests/preview/", {"subscriber": "ADA@example.org"})
    assert response.status_code == 200
    html = response.content.decode()
    preview = response.context["preview"]
    assert preview.items and preview.window_start is None  # a first digest: the latest listing
    assert all(item.paper.listing_date == listing for item in preview.items)
    first = preview.items[0]
    assert f"{first.score:.3f}" in html and first.reason in html
    assert "matched:" in html
    assert '<pre class="mail-text" id="preview-text">' in html
    assert first.paper.title.split("<")[0][:40] in preview.mail.text
    # The mail's HTML sits, escaped, in a sandboxed frame; the hostile title is inert text.
    assert '<iframe class="mail-html" title="HTML part of the digest" sandbox srcdoc="' in html
    assert HOSTILE in [item.paper.title for item in preview.items]
    assert "Federated learning at &lt;img src=x" in html  # in the table of items
    assert "&amp;lt;img src=x" in html  # in the frame: escaped once by the mail, once here
    assert "<img src=x" not in html
    assert any("Nothing was saved or sent" in m for m in messages_of(response))
    assert not Digest.objects.exists() and not DigestItem.objects.exists()
    # Staff who may only view subscribers get none of the subscriber's live links.
    assert "/manage/" not in html and "/unsubscribe/" not in html and "/link/" in html


def test_preview_leaves_out_papers_the_subscriber_already_had(
    operator: Client, listing: date, ada: Subscriber
) -> None:
    before = operator.post("/admin/dashboard/digests/preview/", {"subscriber": ada.email})
    had = before.context["preview"].items[0].paper
    DigestItemFactory(
        digest=DigestFactory(subscriber=ada, period="2026-01-01", state="sent"), paper=had
    )
    after = operator.post("/admin/dashboard/digests/preview/", {"subscriber": ada.email})
    assert had not in [item.paper for item in after.context["preview"].items]


def test_preview_of_an_unknown_address_says_so(operator: Client) -> None:
    response = operator.post("/admin/dashboard/digests/preview/", {"subscriber": "who@example.org"})
    assert response.status_code == 400
    assert "No subscriber has the address who@example.org." in response.content.decode()


def test_a_test_digest_goes_to_the_address_marked_and_with_harmless_links(
    operator: Client,
    listing: date,
    ada: Subscriber,
    mailbox: list[Any],
    eager: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(
            "/admin/dashboard/digests/test/",
            {"to": "ops@example.org", "subscriber": "ada@example.org"},
            follow=True,
        )
    assert any("Queued a test digest to ops@example.org" in m for m in messages_of(response))
    [message] = mailbox
    assert message.to == ["ops@example.org"] and message.subject.startswith("[Test] ")
    sent = email.message_from_bytes(message.message().as_bytes(), policy=email.policy.default)
    # In the bytes that go out, not only on the object (the header is folded: strip).
    assert sent["Subject"].strip().startswith("[Test] ")
    html = message.alternatives[0][0]
    for part in (message.body, html):
        assert "This is a test digest sent by an operator" in part
        assert "/link/" in part and "/manage/" not in part and "/unsubscribe/" not in part
        assert "ada@example.org" not in part
    assert "Federated" in message.body
    assert "&lt;img src=x" in html and "<img src=x" not in html
    # No one-click unsubscribe: a test recipient is on no list (the button would not work).
    assert "List-Unsubscribe" not in sent and "List-Unsubscribe-Post" not in sent
    assert not Digest.objects.exists()  # nothing recorded as sent to anyone


def test_a_test_digest_without_a_subscriber_holds_the_trending_papers(
    operator: Client,
    listing: date,
    mailbox: list[Any],
    eager: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        operator.post("/admin/dashboard/digests/test/", {"to": "ops@example.org"})
    [message] = mailbox
    count = re.search(r"(\d+) trending papers?", message.subject)
    assert count is not None and int(count.group(1)) > 0, message.subject
    assert "no interests" in message.body
    body = " ".join(message.body.split())
    shown = [
        title
        for title in Paper.objects.filter(listing_date=listing).values_list("title", flat=True)
        if " ".join(title.split()) in body
    ]
    assert len(shown) == int(count.group(1))  # that many papers of the latest listing


def test_a_test_digest_needs_a_valid_address(
    operator: Client, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as queued:
        response = operator.post("/admin/dashboard/digests/test/", {"to": "not an address"})
    assert response.status_code == 400
    assert "Enter a valid email address." in response.content.decode()
    assert queued == []


@pytest.mark.parametrize("why", ["paused", "suppressed", "deleted-suppressed"])
def test_a_test_digest_respects_the_pause_and_the_suppression_list(
    operator: Client, why: str, django_capture_on_commit_callbacks: Any
) -> None:
    from subscriptions import services
    from subscriptions.models import SuppressedAddress

    to = "bounced@example.org"
    if why == "paused":
        to = "ops@example.org"
        DeliveryControl.objects.update_or_create(pk=1, defaults={"paused": True})
    elif why == "suppressed":
        Subscriber.objects.create(email=to, status="confirmed", suppressed_at=timezone.now())
    else:
        SuppressedAddress.objects.create(address_hash=services.address_hashes(to)[0])
    with django_capture_on_commit_callbacks(execute=True) as queued:
        response = operator.post("/admin/dashboard/digests/test/", {"to": to})
    assert response.status_code == 400 and queued == []
    page = response.content.decode()
    assert ("Sending is paused" in page) if why == "paused" else ("suppressed" in page)
