"""A subscriber's "delete my data": everything tied to them goes; an address suppressed for hard
bounces leaves only a keyed hash, which stops imports and operators from adding it back but not
its owner's own double-opt-in signup."""

from __future__ import annotations

import hmac
from datetime import timedelta
from hashlib import sha256
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from digest.delivery import tokens as archive_tokens
from digest.models import Digest, DigestItem
from subscriptions import services, tasks, tokens
from subscriptions.models import Subscriber, SuppressedAddress
from tests.factories import DigestItemFactory, SubscriberFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/subscriptions/subscriber/"


@pytest.fixture(autouse=True)
def no_broker(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Confirmation mails queued by the admin go here instead of a broker."""
    queued: list[Any] = []
    monkeypatch.setattr(tasks.send_confirmation, "delay", queued.append)
    return queued


def with_digest(subscriber: Subscriber) -> tuple[Digest, str]:
    item = DigestItemFactory(digest__subscriber=subscriber, digest__state="sent")
    return item.digest, f"/digests/{archive_tokens.make_archive_token(item.digest)}/"


def suppressed(email: str = "Bounce@Example.org") -> Subscriber:
    return SubscriberFactory(email=email, suppressed_at=timezone.now(), hard_failures=2)


def delete_from_manage_page(client: Client, subscriber: Subscriber) -> Any:
    url = f"/manage/{tokens.make_token(subscriber, tokens.MANAGE)}/"
    return client.post(url, {"action": "delete", "confirm_delete": "yes"})


# --- the subscriber's own request -----------------------------------------------------------


def test_deleting_removes_the_subscriber_digests_items_and_links(client: Client) -> None:
    ada = SubscriberFactory(email="ada@example.org")
    other = SubscriberFactory(email="other@example.org")
    _, archive = with_digest(ada)
    with_digest(other)
    manage = f"/manage/{tokens.make_token(ada, tokens.MANAGE)}/"
    unsubscribe = f"/unsubscribe/{tokens.make_token(ada, tokens.UNSUBSCRIBE)}/"

    # The confirm step: without the box ticked nothing happens.
    client.post(manage, {"action": "delete"})
    assert Subscriber.objects.filter(pk=ada.pk).exists()

    response = client.post(manage, {"action": "delete", "confirm_delete": "yes"})
    assert response.status_code == 200 and "Your data is deleted" in response.content.decode()
    assert "fingerprint" not in response.content.decode()  # nothing kept for this one
    assert not Subscriber.objects.filter(pk=ada.pk).exists()
    assert not Digest.objects.filter(subscriber_id=ada.pk).exists()
    assert not DigestItem.objects.filter(subscriber_id=ada.pk).exists()
    assert SuppressedAddress.objects.count() == 0
    assert client.get(manage).status_code == 400
    gone = client.get(unsubscribe)  # a mail provider's one-click must not look like a failure
    assert gone.status_code == 200 and "no longer on the list" in gone.content.decode()
    assert client.get(archive).status_code == 410
    # Someone else's data is untouched.
    assert Digest.objects.filter(subscriber=other).count() == 1


def test_delete_needs_a_post(client: Client) -> None:
    ada = SubscriberFactory()
    url = f"/manage/{tokens.make_token(ada, tokens.MANAGE)}/"
    client.get(url, {"action": "delete", "confirm_delete": "yes"})
    assert Subscriber.objects.filter(pk=ada.pk).exists()


def test_a_suppressed_address_leaves_only_a_keyed_hash(client: Client, settings: Any) -> None:
    person = suppressed("  Bounce@Example.org ")
    response = delete_from_manage_page(client, person)
    assert "one-way fingerprint" in response.content.decode()
    row = SuppressedAddress.objects.get()
    expected = hmac.new(
        sha256(b"subscriptions.suppression" + settings.SECRET_KEY.encode()).digest(),
        b"bounce@example.org",
        sha256,
    ).hexdigest()
    assert row.address_hash == expected  # HMAC-SHA256 of the normalised address
    assert row.reason == "hard_bounces"
    stored = " ".join(str(v) for v in SuppressedAddress.objects.values_list().get())
    assert "bounce@" not in stored.lower() and "example.org" not in stored.lower()
    assert services.is_suppressed_address("BOUNCE@example.ORG")
    assert not services.is_suppressed_address("other@example.org")


def test_rotating_the_secret_key_keeps_suppression(settings: Any) -> None:
    services.delete(suppressed())
    old = settings.SECRET_KEY
    settings.SECRET_KEY = "a-new-key-" + "x" * 50
    settings.SECRET_KEY_FALLBACKS = [old]
    assert services.is_suppressed_address("bounce@example.org")


# --- what the hash stops, and what it does not ----------------------------------------------


def test_csv_import_refuses_a_suppressed_address_and_imports_the_rest(
    admin_client: Client,
) -> None:
    services.delete(suppressed())
    data = "email,interests\nnew@example.org,graphs\nBOUNCE@example.org,graphs\n"
    response = admin_client.post(
        CHANGELIST + "import/",
        {"file": SimpleUploadedFile("p.csv", data.encode(), content_type="text/csv")},
    )
    assert response.status_code == 200
    assert list(Subscriber.objects.values_list("email", flat=True)) == ["new@example.org"]
    page = response.content.decode()
    assert "stays suppressed" in page and "BOUNCE@example.org" in page


def test_csv_import_reports_the_suppressed_row_number(admin_client: Client) -> None:
    from subscriptions import csv_io

    services.delete(suppressed())
    text = "email\na@example.org\nbounce@example.org\n"
    report = csv_io.import_rows(SimpleUploadedFile("p.csv", text.encode()), consented=True)
    assert report.created == ["a@example.org"]
    assert [(e.row, e.reason) for e in report.errors] == [(3, csv_io.SUPPRESSED)]


def test_admin_cannot_add_a_suppressed_address(admin_client: Client) -> None:
    services.delete(suppressed())
    response = admin_client.post(
        CHANGELIST + "add/",
        {
            "email": "bounce@example.org",
            "interests": "",
            "frequency": "daily",
            "weekday": "0",
            "delivery_hour": "8",
            "timezone": "UTC",
            "max_papers": "10",
        },
    )
    assert response.status_code == 200  # the form again, with the reason
    assert "stays suppressed" in response.content.decode()
    assert not Subscriber.objects.exists()


def test_the_owner_can_sign_up_again_and_confirming_lifts_the_suppression(
    mailbox: list[Any],
) -> None:
    services.delete(suppressed())
    assert services.process_signup("bounce@example.org", {"interests": "graphs"}) == (
        "confirmation sent"
    )
    person = Subscriber.objects.get()
    assert person.status == "pending" and person.suppressed_at is None
    assert services.is_suppressed_address("bounce@example.org")  # until they confirm
    assert services.confirm(person)
    assert not services.is_suppressed_address("bounce@example.org")


def test_a_suppressed_address_signed_up_again_and_never_confirmed_keeps_its_hash_when_purged(
    mailbox: list[Any],
) -> None:
    person = suppressed("left@example.org")
    Subscriber.objects.filter(pk=person.pk).update(
        status="unsubscribed", created_at=timezone.now() - timedelta(days=90)
    )
    services.process_signup("left@example.org", {"interests": "graphs"})  # not the owner
    assert Subscriber.objects.get().status == "pending"
    window = timedelta(days=settings.PENDING_SIGNUP_DAYS, hours=1)
    assert services.purge_stale_pending() == 0  # its confirmation link still works
    assert services.purge_stale_pending(timezone.now() + window) == 1
    assert not Subscriber.objects.exists()
    assert services.is_suppressed_address("left@example.org")


# --- the admin ------------------------------------------------------------------------------


def test_admin_delete_selected_goes_through_the_service(admin_client: Client) -> None:
    bounced = suppressed()
    fine = SubscriberFactory(email="fine@example.org")
    with_digest(bounced)
    with_digest(fine)
    data = {"action": "delete_selected", "_selected_action": [bounced.pk, fine.pk]}
    confirm_page = admin_client.post(CHANGELIST, data)
    assert "Are you sure" in confirm_page.content.decode()  # Django's confirmation step
    assert Subscriber.objects.count() == 2
    admin_client.post(CHANGELIST, {**data, "post": "yes"})
    assert not Subscriber.objects.exists() and not Digest.objects.exists()
    assert SuppressedAddress.objects.count() == 1
    assert services.is_suppressed_address("bounce@example.org")


def test_admin_delete_of_one_subscriber_keeps_the_hash(admin_client: Client) -> None:
    bounced = suppressed()
    admin_client.post(f"{CHANGELIST}{bounced.pk}/delete/", {"post": "yes"})
    assert not Subscriber.objects.exists()
    assert services.is_suppressed_address("bounce@example.org")


def test_staff_without_delete_permission_cannot_delete(client: Client) -> None:
    clerk = User.objects.create_user("clerk", "c@example.org", "pw-123456789", is_staff=True)
    clerk.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_subscriber", "change_subscriber"])
    )
    client.force_login(clerk)
    person = SubscriberFactory()
    data = {"action": "delete_selected", "_selected_action": [person.pk], "post": "yes"}
    client.post(CHANGELIST, data)
    assert client.post(f"{CHANGELIST}{person.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Subscriber.objects.filter(pk=person.pk).exists()


def test_suppressed_addresses_admin_looks_up_an_address_by_its_hash(
    admin_client: Client,
) -> None:
    services.delete(suppressed())

    def page(q: str) -> str:
        return admin_client.get(
            "/admin/subscriptions/suppressedaddress/", {"q": q}
        ).content.decode()

    found = SuppressedAddress.objects.get().address_hash
    assert found in page("Bounce@example.org")
    assert found not in page("someone@example.org")
    assert admin_client.get("/admin/subscriptions/suppressedaddress/add/").status_code == 403


def test_a_suppression_recorded_after_the_page_was_loaded_still_keeps_the_hash() -> None:
    person = SubscriberFactory(email="late@example.org")  # loaded before the bounce
    Subscriber.objects.filter(pk=person.pk).update(suppressed_at=timezone.now())
    assert services.delete(person) is True
    assert services.is_suppressed_address("late@example.org")
    assert services.delete(person) is False  # already gone: nothing to do


def test_deleting_forgets_the_stored_topics_only_that_subscriber_named() -> None:
    from digest.models import TopicEmbedding

    for text in ("my lab's secret project", "federated learning"):
        TopicEmbedding.objects.create(text=text, model="m", vector=b"\0" * 4)
    leaving = SubscriberFactory(interests="my lab's secret project, federated learning")
    SubscriberFactory(interests="Federated Learning")  # someone else names this one
    services.delete(leaving)
    assert list(TopicEmbedding.objects.values_list("text", flat=True)) == ["federated learning"]
