"""Signup with double opt-in, signed links, manage page, one-click unsubscribe, abuse limits."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.core import mail as django_mail
from django.test import Client
from django.utils import timezone

from subscriptions import services, tokens
from subscriptions.models import Subscriber

pytestmark = pytest.mark.django_db

SIGNUP = {
    "email": "Ada@Example.ORG",
    "interests": "state space models, Mamba",
    "frequency": "daily",
    "weekday": "0",
    "delivery_hour": "8",
    "timezone": "Europe/Berlin",
    "max_papers": "10",
    "website": "",
}


def signup(client: Client, **changes: str) -> Any:
    return client.post("/subscribe/", {**SIGNUP, **changes})


def link_in(message: Any, path: str) -> str:
    found = re.search(rf"https?://\S+{path}[^\s\"<]+", message.body)
    assert found, message.body
    return found[0].split("://", 1)[1].split("/", 1)[1].join(["/", ""])


def confirmed(email: str = "ada@example.org", **fields: Any) -> Subscriber:
    return Subscriber.objects.create(
        email=email, status="confirmed", confirmed_at=timezone.now(), **fields
    )


# --- signup and confirmation -----------------------------------------------------------------


def test_signup_creates_a_pending_subscriber_and_mails_a_confirmation(
    client: Client, mailbox: list[Any], eager: None
) -> None:
    response = signup(client)
    assert response.status_code == 302 and response["Location"] == "/subscribe/sent/"
    subscriber = Subscriber.objects.get()
    assert subscriber.email == "Ada@example.org"  # domain lower-cased, local part kept
    assert subscriber.status == "pending" and subscriber.timezone == "Europe/Berlin"
    assert len(mailbox) == 1
    message = mailbox[0]
    assert message.to == ["Ada@example.org"] and "Confirm" in message.subject
    html = message.alternatives[0][0]
    confirm_path = link_in(message, "/confirm/")
    assert confirm_path in html
    # Anyone can make this mail go to any address: it repeats nothing typed into the form.
    assert "Mamba" not in message.body and "Mamba" not in html
    assert message.extra_headers["Auto-Submitted"] == "auto-generated"
    page = client.get(confirm_path)  # the owner sees what they confirm on the page
    assert b"state space models, Mamba" in page.content


def test_confirm_link_get_only_shows_a_button_and_post_confirms(
    client: Client, mailbox: list[Any], eager: None
) -> None:
    signup(client)
    path = link_in(mailbox[0], "/confirm/")
    page = client.get(path)
    assert page.status_code == 200 and b'id="confirm-button"' in page.content
    assert Subscriber.objects.get().status == "pending"  # a mail scanner's GET changes nothing
    done = client.post(path)
    assert done.status_code == 200 and b"You're subscribed" in done.content
    subscriber = Subscriber.objects.get()
    assert subscriber.status == "confirmed" and subscriber.confirmed_at is not None
    again = client.post(path)
    assert (
        again.status_code == 200
        and Subscriber.objects.get().confirmed_at == subscriber.confirmed_at
    )


def test_pending_signup_gets_one_confirmation_per_interval(
    client: Client, mailbox: list[Any], eager: None, settings: Any
) -> None:
    settings.CONFIRMATION_INTERVAL_MINUTES = 10
    signup(client)
    signup(client, interests="quantization")
    assert len(mailbox) == 1
    assert Subscriber.objects.get().interests == "quantization"  # the latest signup's choice
    with time_machine.travel(timezone.now() + timedelta(minutes=11)):
        signup(client)
    assert len(mailbox) == 2


def test_signup_of_a_confirmed_address_changes_nothing_and_reminds_the_owner(
    client: Client, mailbox: list[Any], eager: None
) -> None:
    subscriber = confirmed(interests="graphs")
    signup(client, interests="something else")
    subscriber.refresh_from_db()
    assert subscriber.interests == "graphs" and subscriber.status == "confirmed"
    assert len(mailbox) == 1 and "/manage/" in mailbox[0].body
    headers = mailbox[0].extra_headers
    assert (
        headers["List-Unsubscribe"].startswith("<http")
        and "/unsubscribe/" in headers["List-Unsubscribe"]
    )
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_unsubscribed_address_signing_up_again_must_confirm_again(
    client: Client, mailbox: list[Any], eager: None
) -> None:
    left = timezone.now() - timedelta(days=90)
    Subscriber.objects.create(email="ada@example.org", status="unsubscribed", unsubscribed_at=left)
    signup(client)
    assert Subscriber.objects.get().status == "pending"
    assert "/confirm/" in mailbox[0].body
    assert services.confirm(Subscriber.objects.get())
    back = Subscriber.objects.get()
    # Subscribed again: no "left" date stays (the dashboard's history would not count them).
    assert back.status == "confirmed" and back.unsubscribed_at is None


def test_stale_pending_signups_are_purged() -> None:
    old = Subscriber.objects.create(email="old@example.org")
    Subscriber.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=8))
    Subscriber.objects.create(email="new@example.org")
    confirmed("kept@example.org")
    Subscriber.objects.filter(email="kept@example.org").update(
        created_at=timezone.now() - timedelta(days=80)
    )
    assert services.purge_stale_pending() == 1
    assert sorted(Subscriber.objects.values_list("email", flat=True)) == [
        "kept@example.org",
        "new@example.org",
    ]


def test_a_signup_mailed_again_lives_its_whole_window_from_the_latest_mail(
    mailbox: list[Any], settings: Any
) -> None:
    """A pending signup that asked for a new link on day 6: that link works for the whole
    window, so the row is not purged on day 8 (counted from its creation)."""
    services.process_signup("late@example.org", {"interests": "graphs"})
    person = Subscriber.objects.get()
    days = settings.PENDING_SIGNUP_DAYS
    with time_machine.travel(timezone.now() + timedelta(days=days - 1)):
        assert services.process_link_request("late@example.org") == "confirmation sent"
    with time_machine.travel(timezone.now() + timedelta(days=days + 1)):
        assert services.purge_stale_pending() == 0
    with time_machine.travel(timezone.now() + timedelta(days=2 * days)):
        assert services.purge_stale_pending() == 1
    assert not Subscriber.objects.filter(pk=person.pk).exists()


def test_someone_who_left_signed_up_again_by_anyone_goes_back_to_unsubscribed(
    mailbox: list[Any], settings: Any
) -> None:
    """Signing up an address that had unsubscribed makes it pending; left unconfirmed, it goes
    back to unsubscribed (its record and opt-out kept), not deleted."""
    person = confirmed("left@example.org")
    services.unsubscribe(person)
    services.process_signup("left@example.org", {"interests": "graphs"})
    assert Subscriber.objects.get().status == "pending"
    later = timezone.now() + timedelta(days=settings.PENDING_SIGNUP_DAYS + 1)
    assert services.purge_stale_pending(later) == 0
    person.refresh_from_db()
    assert person.status == "unsubscribed" and person.unsubscribed_at is not None


# --- no enumeration ----------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["new", "pending", "confirmed", "paused", "unsubscribed"])
def test_signup_response_is_the_same_whatever_the_address_state(
    client: Client,
    state: str,
    monkeypatch: pytest.MonkeyPatch,
    django_assert_num_queries: Any,
) -> None:
    queued: list[tuple[Any, ...]] = []
    monkeypatch.setattr(
        "subscriptions.tasks.process_signup.delay", lambda *args: queued.append(args)
    )
    if state != "new":
        Subscriber.objects.create(email="ada@example.org", status=state)
    with django_assert_num_queries(0):  # the request never looks the address up
        response = signup(client)
    assert (response.status_code, response["Location"]) == (302, "/subscribe/sent/")
    assert len(queued) == 1
    page = client.get("/subscribe/sent/")
    assert b"If this address can be subscribed" in page.content


@pytest.mark.parametrize("state", ["new", "pending", "confirmed", "unsubscribed"])
def test_link_request_response_is_the_same_whatever_the_address_state(
    client: Client,
    state: str,
    monkeypatch: pytest.MonkeyPatch,
    django_assert_num_queries: Any,
) -> None:
    monkeypatch.setattr("subscriptions.tasks.process_link_request.delay", lambda *a: None)
    if state != "new":
        Subscriber.objects.create(email="ada@example.org", status=state)
    with django_assert_num_queries(0):
        response = client.post("/link/", {"email": "ada@example.org"})
    assert response.status_code == 200 and b"If this address is subscribed" in response.content


def test_link_request_mails_what_each_state_needs(mailbox: list[Any]) -> None:
    confirmed("c@example.org")
    Subscriber.objects.create(email="p@example.org")
    assert services.process_link_request("nobody@example.org") == "unknown"
    assert services.process_link_request("c@example.org") == "manage link sent"
    assert services.process_link_request("p@example.org") == "confirmation sent"
    assert [m.to[0] for m in mailbox] == ["c@example.org", "p@example.org"]
    assert "/manage/" in mailbox[0].body and "/confirm/" in mailbox[1].body


# --- abuse limits --------------------------------------------------------------------------


def test_honeypot_signup_looks_successful_but_does_nothing(
    client: Client, mailbox: list[Any], eager: None
) -> None:
    response = signup(client, website="http://spam.example")
    assert (response.status_code, response["Location"]) == (302, "/subscribe/sent/")
    assert Subscriber.objects.count() == 0 and mailbox == []


def test_signups_are_rate_limited_per_ip(
    client: Client, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("subscriptions.tasks.process_signup.delay", lambda *a: None)
    settings.SIGNUP_LIMIT_PER_IP = 3
    codes = [signup(client, email=f"user{i}@example.org").status_code for i in range(5)]
    assert codes == [302, 302, 302, 429, 429]
    other_ip = Client(REMOTE_ADDR="10.9.8.7")
    assert other_ip.post("/subscribe/", {**SIGNUP, "email": "x@example.org"}).status_code == 302


def test_signups_are_rate_limited_per_address(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("subscriptions.tasks.process_signup.delay", lambda *a: None)
    settings.SIGNUP_LIMIT_PER_ADDRESS = 2
    codes = [
        Client(REMOTE_ADDR=f"10.0.0.{i}").post("/subscribe/", SIGNUP).status_code for i in range(4)
    ]
    assert codes == [302, 302, 429, 429]
    page = Client(REMOTE_ADDR="10.0.1.1").post(
        "/subscribe/", {**SIGNUP, "email": "ADA@example.org"}
    )
    assert page.status_code == 429 and b"Too many requests" in page.content


def test_mail_bombing_a_stranger_yields_one_mail(
    mailbox: list[Any], eager: None, settings: Any
) -> None:
    settings.SIGNUP_LIMIT_PER_ADDRESS = 100
    for i in range(20):
        Client(REMOTE_ADDR=f"10.1.0.{i}").post(
            "/subscribe/", {**SIGNUP, "email": "victim@example.org"}
        )
    assert len(mailbox) == 1


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"email": "ada@example.org\r\nBcc: all@example.org"}, "email", "Line breaks"),
        ({"email": "ada@example.org\nX"}, "email", "Line breaks"),
        ({"email": "not-an-address"}, "email", "valid email"),
        ({"email": "a" * 250 + "@example.org"}, "email", "at most 254"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone", "valid choice"),
        ({"interests": "the, of, and"}, "interests", "no words that can match"),
        ({"interests": "-survey"}, "interests", "Only exclusions"),
        ({"interests": '"open phrase'}, "interests", "quote is not closed"),
        ({"interests": "x" * 501}, "interests", "at most 500"),
        ({"interests": ", ".join(f"topic{i}" for i in range(25))}, "interests", "At most 20"),
        ({"max_papers": "0"}, "max_papers", "greater than or equal to 1"),
        ({"max_papers": "500"}, "max_papers", "less than or equal to 50"),
        ({"delivery_hour": "24"}, "delivery_hour", "less than or equal to 23"),
        ({"frequency": "hourly"}, "frequency", "valid choice"),
    ],
)
def test_bad_signup_input_is_a_form_error_never_a_500(
    client: Client,
    changes: dict[str, str],
    field: str,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        "subscriptions.tasks.process_signup.delay",
        lambda *a: pytest.fail("invalid signup was queued"),
    )
    response = signup(client, **changes)
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert field in errors and message in " ".join(errors[field])


def test_forms_need_a_csrf_token() -> None:
    strict = Client(enforce_csrf_checks=True)
    assert strict.post("/subscribe/", SIGNUP).status_code == 403
    assert strict.post("/link/", {"email": "a@example.org"}).status_code == 403


# --- signed links --------------------------------------------------------------------------


def test_tampered_token_gets_a_friendly_page_with_a_way_to_a_fresh_link(client: Client) -> None:
    subscriber = confirmed()
    token = tokens.make_token(subscriber, tokens.MANAGE)
    tampered = token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb")
    for path in (f"/manage/{tampered}/", f"/confirm/{tampered}/", f"/unsubscribe/{tampered}/"):
        page = client.get(path)
        assert page.status_code == 400 and b"This link does not work" in page.content
        assert b'action="/link/"' in page.content


def test_expired_manage_link_says_so(client: Client, settings: Any) -> None:
    subscriber = confirmed()
    token = tokens.make_token(subscriber, tokens.MANAGE)
    with time_machine.travel(timezone.now() + timedelta(days=settings.MANAGE_LINK_DAYS + 1)):
        page = client.get(f"/manage/{token}/")
    assert page.status_code == 400 and b"This link has expired" in page.content


def test_expired_confirmation_link_says_so(client: Client, settings: Any) -> None:
    subscriber = Subscriber.objects.create(email="a@example.org")
    token = tokens.make_token(subscriber, tokens.CONFIRM)
    with time_machine.travel(timezone.now() + timedelta(days=settings.PENDING_SIGNUP_DAYS + 1)):
        assert b"has expired" in client.post(f"/confirm/{token}/").content
    assert Subscriber.objects.get().status == "pending"


def test_unsubscribe_links_do_not_expire(client: Client) -> None:
    subscriber = confirmed()
    token = tokens.make_token(subscriber, tokens.UNSUBSCRIBE)
    with time_machine.travel(timezone.now() + timedelta(days=3650)):
        assert client.post(f"/unsubscribe/{token}/").status_code == 200
    assert Subscriber.objects.get().status == "unsubscribed"


def test_a_token_only_works_for_its_own_purpose(client: Client) -> None:
    subscriber = Subscriber.objects.create(email="a@example.org")
    unsubscribe_token = tokens.make_token(subscriber, tokens.UNSUBSCRIBE)
    assert client.post(f"/confirm/{unsubscribe_token}/").status_code == 400
    assert client.get(f"/manage/{unsubscribe_token}/").status_code == 400
    assert Subscriber.objects.get().status == "pending"


def test_a_token_dies_with_its_subscriber_even_if_the_id_comes_back(client: Client) -> None:
    subscriber = confirmed("first@example.org")
    token = tokens.make_token(subscriber, tokens.MANAGE)
    pk = subscriber.pk
    subscriber.delete()
    Subscriber.objects.create(pk=pk, email="second@example.org", status="confirmed")
    assert client.get(f"/manage/{token}/").status_code == 400


# --- one-click unsubscribe -------------------------------------------------------------------


def test_one_click_unsubscribe_needs_no_cookie_or_csrf_and_does_not_redirect() -> None:
    subscriber = confirmed()
    url = f"/unsubscribe/{tokens.make_token(subscriber, tokens.UNSUBSCRIBE)}/"
    mail_client = Client(enforce_csrf_checks=True)  # no cookies, no token: like a mail provider
    for _ in range(2):  # idempotent
        response = mail_client.post(
            url, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
        )
        assert response.status_code == 200
        assert Subscriber.objects.get().status == "unsubscribed"
    assert not response.cookies


def test_unsubscribe_get_only_shows_a_button(client: Client) -> None:
    subscriber = confirmed()
    page = client.get(f"/unsubscribe/{tokens.make_token(subscriber, tokens.UNSUBSCRIBE)}/")
    assert page.status_code == 200 and b'id="unsubscribe-button"' in page.content
    assert Subscriber.objects.get().status == "confirmed"


# --- manage page -----------------------------------------------------------------------------


@pytest.fixture
def manage_url() -> str:
    subscriber = confirmed(interests="graphs", timezone="Asia/Tokyo")
    return f"/manage/{tokens.make_token(subscriber, tokens.MANAGE)}/"


def test_manage_page_changes_preferences(client: Client, manage_url: str) -> None:
    page = client.get(manage_url)
    assert page.status_code == 200 and b"graphs" in page.content
    response = client.post(
        manage_url,
        {
            "action": "save",
            "interests": "diffusion -survey",
            "frequency": "weekly",
            "weekday": "4",
            "delivery_hour": "7",
            "timezone": "America/New_York",
            "max_papers": "5",
        },
    )
    assert response.status_code == 302
    subscriber = Subscriber.objects.get()
    assert (
        subscriber.interests,
        subscriber.frequency,
        subscriber.weekday,
        subscriber.timezone,
        subscriber.max_papers,
    ) == ("diffusion -survey", "weekly", 4, "America/New_York", 5)
    assert b"preferences are saved" in client.get(manage_url).content


def test_manage_page_rejects_bad_preferences(client: Client, manage_url: str) -> None:
    response = client.post(
        manage_url,
        {
            "action": "save",
            "interests": "the, a",
            "frequency": "daily",
            "weekday": "0",
            "delivery_hour": "7",
            "timezone": "Nowhere/City",
            "max_papers": "5",
        },
    )
    assert response.status_code == 400
    assert set(response.context["form"].errors) == {"interests", "timezone"}
    assert Subscriber.objects.get().interests == "graphs"


@pytest.mark.parametrize(
    ("action", "status"), [("pause", "paused"), ("unsubscribe", "unsubscribed")]
)
def test_manage_page_pause_resume_and_unsubscribe(
    client: Client, manage_url: str, action: str, status: str
) -> None:
    client.post(manage_url, {"action": action})
    assert Subscriber.objects.get().status == status
    client.post(manage_url, {"action": "resume"})
    assert Subscriber.objects.get().status == "confirmed"


def test_download_my_data(client: Client, manage_url: str) -> None:
    response = client.get(manage_url, {"download": "json"})
    assert response["Content-Disposition"].startswith("attachment")
    data = json.loads(response.content)
    assert data["email"] == "ada@example.org" and data["preferences"]["interests"] == "graphs"


def test_delete_my_data_needs_the_box_ticked_then_removes_everything(
    client: Client, manage_url: str
) -> None:
    client.post(manage_url, {"action": "delete"})
    assert Subscriber.objects.count() == 1
    response = client.post(manage_url, {"action": "delete", "confirm_delete": "yes"})
    assert response.status_code == 200 and b"Your data is deleted" in response.content
    assert Subscriber.objects.count() == 0
    assert client.get(manage_url).status_code == 400


def test_user_text_is_escaped_on_pages_and_in_mail(client: Client, mailbox: list[Any]) -> None:
    evil = '<script>alert(1)</script> "><img src=x onerror=alert(2)>'
    subscriber = confirmed(interests=evil)
    page = client.get(f"/manage/{tokens.make_token(subscriber, tokens.MANAGE)}/").content
    assert b"<script>alert(1)" not in page and b"<img src=x" not in page
    Subscriber.objects.filter(pk=subscriber.pk).update(status="pending")
    services.send_confirmation(Subscriber.objects.get())
    html = mailbox[0].alternatives[0][0]
    assert "alert(1)" not in html and "alert(1)" not in mailbox[0].body  # not repeated at all
    confirm = client.get(link_in(mailbox[0], "/confirm/")).content
    assert b"<script>alert(1)" not in confirm and b"&lt;script&gt;alert(1)" in confirm


# --- headers and deployment ------------------------------------------------------------------


def test_security_headers(client: Client) -> None:
    response = client.get("/subscribe/")
    csp = response["Content-Security-Policy"]
    script_src = re.search(r"script-src ([^;]+)", csp)
    assert script_src and "'unsafe-inline'" not in script_src[1]
    assert "frame-ancestors 'none'" in csp
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"


def test_smtp_failure_gives_the_slot_back_for_the_retry(
    mailbox: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    subscriber = Subscriber.objects.create(email="a@example.org")

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise ConnectionRefusedError("smtp down")

    monkeypatch.setattr("subscriptions.services.emails.send", refuse)
    with pytest.raises(ConnectionRefusedError):
        services.send_confirmation(subscriber)
    monkeypatch.undo()
    assert services.send_confirmation(Subscriber.objects.get()) == "confirmation sent"
    assert len(django_mail.outbox) == 1


def test_link_requests_are_rate_limited_too(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("subscriptions.tasks.process_link_request.delay", lambda *a: None)
    settings.SIGNUP_LIMIT_PER_ADDRESS = 2
    codes = [
        Client(REMOTE_ADDR=f"10.2.0.{i}").post("/link/", {"email": "a@example.org"}).status_code
        for i in range(3)
    ]
    assert codes == [200, 200, 429]


def test_list_unsubscribe_offers_mailto_where_configured() -> None:
    from digest.emails import list_unsubscribe_headers

    headers = list_unsubscribe_headers("https://d.example/unsubscribe/t/", "leave@d.example")
    assert headers["List-Unsubscribe"] == (
        "<https://d.example/unsubscribe/t/>, <mailto:leave@d.example?subject=unsubscribe>"
    )
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


# --- live preview ------------------------------------------------------------------------------


@pytest.fixture
def seed_listing(today_2026: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from digest.ingest.run import IngestOptions, ingest_path
    from tests.conftest import SEED

    monkeypatch.setenv("SEMANTIC_MATCHING", "off")  # the lexical core is enough here
    ingest_path(SEED, IngestOptions(source="test"))


def test_signup_preview_shows_what_the_latest_listing_would_send(
    client: Client, seed_listing: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "subscriptions.tasks.process_signup.delay",
        lambda *a: pytest.fail("a preview must not subscribe"),
    )
    page = client.post(
        "/subscribe/", {**SIGNUP, "email": "", "interests": "federated learning", "preview": "1"}
    )
    body = page.content.decode()
    assert page.status_code == 200 and "would have sent you 1 paper" in body
    assert "FedD2S: Personalized Data-Free Federated Knowledge Distillation" in body
    assert "matched: federated learning" in body
    assert "federated learning</textarea>" in body  # what was typed is kept
    assert Subscriber.objects.count() == 0


def test_preview_says_so_when_nothing_would_be_sent(client: Client, seed_listing: None) -> None:
    body = client.post(
        "/subscribe/", {**SIGNUP, "interests": "protein docking in zebrafish", "preview": "1"}
    ).content.decode()
    assert "none of the 94 papers" in body


def test_preview_reports_an_unusable_profile(client: Client, seed_listing: None) -> None:
    body = client.post(
        "/subscribe/", {**SIGNUP, "interests": "the, of", "preview": "1"}
    ).content.decode()
    assert "no words that can match" in body


def test_manage_preview_leaves_preferences_alone(
    client: Client, manage_url: str, seed_listing: None
) -> None:
    page = client.post(
        manage_url,
        {
            "action": "preview",
            "interests": "graph neural networks",
            "frequency": "daily",
            "weekday": "0",
            "delivery_hour": "7",
            "timezone": "UTC",
            "max_papers": "5",
        },
    )
    assert "Evaluating Deep Graph Neural Networks" in page.content.decode()
    assert Subscriber.objects.get().interests == "graphs"


def test_the_unsubscribed_page_does_not_lead_to_the_settings(client: Client) -> None:
    """The unsubscribe link sits in every digest (forwarded ones too) and never expires:
    whoever holds it may stop the mail, but it must not hand out a manage link."""
    subscriber = confirmed()
    page = client.post(f"/unsubscribe/{tokens.make_token(subscriber, tokens.UNSUBSCRIBE)}/")
    assert page.status_code == 200 and b"/manage/" not in page.content
    assert b'href="/link/"' in page.content


def test_one_click_for_a_deleted_subscriber_answers_that_no_mail_will_come() -> None:
    subscriber = confirmed()
    url = f"/unsubscribe/{tokens.make_token(subscriber, tokens.UNSUBSCRIBE)}/"
    subscriber.delete()
    mail_client = Client(enforce_csrf_checks=True)
    response = mail_client.post(
        url, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200 and b"no more digests" in response.content
    forged = Client().post(url[:-3] + "xx/")
    assert forged.status_code == 400  # a token that is not genuine is still refused


def test_head_requests_are_answered_like_get_and_change_nothing(client: Client) -> None:
    """Link checkers and mail scanners send HEAD: a 405 looks like a broken link, and a HEAD
    must not act (no unsubscribe, no confirmation)."""
    subscriber = confirmed()
    pending = Subscriber.objects.create(email="p@example.org")
    for path in (
        "/subscribe/",
        "/link/",
        f"/manage/{tokens.make_token(subscriber, tokens.MANAGE)}/",
        f"/unsubscribe/{tokens.make_token(subscriber, tokens.UNSUBSCRIBE)}/",
        f"/confirm/{tokens.make_token(pending, tokens.CONFIRM)}/",
    ):
        response = client.head(path)
        assert response.status_code == 200, path
    assert Subscriber.objects.get(pk=subscriber.pk).status == "confirmed"
    assert Subscriber.objects.get(pk=pending.pk).status == "pending"


def test_anonymous_previews_are_rate_limited_per_ip(
    client: Client, seed_listing: None, settings: Any
) -> None:
    settings.PREVIEW_LIMIT_PER_IP = 2
    ask = {**SIGNUP, "interests": "federated learning", "preview": "1"}
    pages = [client.post("/subscribe/", ask) for _ in range(3)]
    assert [page.status_code for page in pages] == [200, 200, 429]
    assert "Too many previews" in pages[2].content.decode()
    assert "FedD2S" not in pages[2].content.decode()  # nothing was matched for it
    assert "federated learning</textarea>" in pages[2].content.decode()  # what was typed stays
    assert Client(REMOTE_ADDR="10.9.8.7").post("/subscribe/", ask).status_code == 200


def test_the_owner_can_resume_delivery_stopped_by_repeated_refusals(
    client: Client, manage_url: str
) -> None:
    """Suppressed after hard bounces, the subscriber still shows as confirmed: the manage page
    (which reached them by mail) says delivery stopped and resumes it."""
    Subscriber.objects.update(suppressed_at=timezone.now(), hard_failures=2)
    page = client.get(manage_url).content.decode()
    assert 'id="suppressed"' in page and 'id="resume-delivery"' in page
    client.post(manage_url, {"action": "resume"})
    person = Subscriber.objects.get()
    assert (person.status, person.suppressed_at, person.hard_failures) == ("confirmed", None, 0)
    assert 'id="suppressed"' not in client.get(manage_url).content.decode()


def test_a_preview_keeps_the_chosen_zone_from_the_browser_guess(
    client: Client, seed_listing: None
) -> None:
    """The page after a preview shows what was chosen (UTC on purpose, say): the script that
    preselects the browser's zone acts only on a fresh form."""
    assert b"data-guess-timezone" in client.get("/subscribe/").content
    page = client.post("/subscribe/", {**SIGNUP, "timezone": "UTC", "preview": "1"})
    assert page.status_code == 200 and b"data-guess-timezone" not in page.content
