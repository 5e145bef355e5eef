"""Planning and sending digests against a real SMTP server (aiosmtpd): exactly once, nothing
lost, nothing sent to anyone who should not get it."""

from __future__ import annotations

import email
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from email.policy import default
from typing import Any

import pytest
import time_machine
from django.db import DatabaseError, IntegrityError, OperationalError, connection, transaction
from django.db.models import Count
from django.utils import timezone

from digest.delivery import message as digest_message
from digest.delivery import plan as planning
from digest.delivery import send
from digest.delivery.errors import TransientDeliveryError
from digest.delivery.message import contents_for
from digest.delivery.send import process_chunk, store_items
from digest.ingest.run import IngestOptions, ingest_bytes, ingest_path
from digest.models import DeliveryControl, Digest, DigestItem, Paper
from subscriptions.models import Subscriber
from tests.browser import Recorder, free_port, serving_smtp
from tests.conftest import SEED, hf_item, hf_json
from tests.factories import DigestFactory, DigestItemFactory, PaperFactory

pytestmark = pytest.mark.django_db

NOON = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


class Picky(Recorder):
    """Accepts mail, except for addresses it refuses permanently (550)."""

    def __init__(self, refuse: set[str]) -> None:
        super().__init__()
        self.refuse = refuse

    async def handle_RCPT(
        self,
        server: Any,
        session: Any,
        envelope: Any,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.fixture(autouse=True)
def _clock_at_noon() -> Iterator[None]:
    """The tests plan at NOON; the clock says so too (rows are stamped with it), so they mean
    the same whatever day the suite runs on. A test moves it further where it needs to."""
    with time_machine.travel(NOON, tick=True):
        yield


@pytest.fixture
def smtp(settings: Any) -> Any:
    settings.EMAIL_TIMEOUT = 5
    settings.SITE_URL = "https://digest.example.org"
    with serving_smtp(settings, Picky({"gone@example.org"})) as handler:
        yield handler


@pytest.fixture
def listing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMANTIC_MATCHING", "off")
    with time_machine.travel(NOON - timedelta(hours=4)):  # papers first seen that morning
        ingest_path(SEED, IngestOptions(source="test", today=date(2026, 11, 29)))


def subscriber(
    email_: str, interests: str = "federated learning, graph neural networks", **fields: Any
) -> Subscriber:
    values = {
        "status": "confirmed",
        "confirmed_at": timezone.now(),
        "delivery_hour": 8,
        "timezone": "UTC",
        **fields,
    }
    return Subscriber.objects.create(email=email_, interests=interests, **values)


def one_chunk(count: int) -> list[int]:
    """``count`` subscribers (user0@example.org, ...) due at NOON, and the one chunk the
    planner queues for them."""
    for i in range(count):
        subscriber(f"user{i}@example.org")
    (chunk,) = planning.plan(NOON)
    return chunk


def pause_sending() -> None:
    DeliveryControl.objects.update_or_create(pk=1, defaults={"paused": True})


def run_all(now: Any = NOON) -> list[Any]:
    """One planner run at ``now`` and the chunks it queues, with the clock at ``now`` too (rows
    are stamped with it), so the tests mean the same whatever day they run on."""
    with time_machine.travel(now, tick=True):
        return [process_chunk(ids) for ids in planning.plan(now)]


def ingest_next_day(items: list[dict[str, Any]]) -> None:
    """A dump that arrives the night after the first digests (the clock set accordingly)."""
    with time_machine.travel(NOON + timedelta(hours=10)):
        ingest_bytes(hf_json(items), "day2.json")


def received(smtp: Recorder) -> list[str]:
    return sorted(str(m["To"]) for m in smtp.messages)


def test_only_active_due_subscribers_get_a_digest_once_per_period(
    listing: None, smtp: Recorder
) -> None:
    subscriber("ada@example.org")
    subscriber("late@example.org", delivery_hour=20)
    subscriber("tokyo@example.org", timezone="Asia/Tokyo", delivery_hour=20)  # 21:00 there
    subscriber("weekly@example.org", frequency="weekly", weekday=6)  # Nov 29 is a Sunday
    subscriber("otherday@example.org", frequency="weekly", weekday=0)
    for status in ("pending", "paused", "unsubscribed"):
        subscriber(f"{status}@example.org", status=status)
    subscriber("suppressed@example.org", suppressed_at=timezone.now())
    run_all()
    assert received(smtp) == ["ada@example.org", "tokyo@example.org", "weekly@example.org"]
    run_all(NOON + timedelta(minutes=5))  # the next planner run: nothing twice
    assert len(smtp.messages) == 3
    assert set(Digest.objects.values_list("period", flat=True)) == {"2026-11-29", "2026-W48"}


def test_a_digest_holds_the_matching_papers_with_reasons(listing: None, smtp: Recorder) -> None:
    person = subscriber("ada@example.org")
    run_all()
    digest = Digest.objects.get(subscriber=person)
    assert digest.state == "sent" and digest.sent_at and digest.subject
    items = list(DigestItem.objects.filter(digest=digest).select_related("paper"))
    titles = {i.paper.title for i in items}
    assert "FedD2S: Personalized Data-Free Federated Knowledge Distillation" in titles
    assert "Evaluating Deep Graph Neural Networks" in titles
    assert all(i.reason.startswith("matched: ") for i in items)
    message = smtp.messages[0]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "FedD2S" in message.get_body(preferencelist=("plain",)).get_content()
    assert digest.size_bytes == len(smtp.raw[0])  # the size recorded is that of what was sent


def test_no_paper_is_ever_sent_twice_and_empty_digests_are_skipped(
    listing: None, smtp: Recorder
) -> None:
    person = subscriber("ada@example.org")
    run_all()
    first = set(DigestItem.objects.filter(subscriber=person).values_list("paper_id", flat=True))
    # The next day the same papers reappear in a new dump, plus one new matching paper.
    ingest_next_day(
        [
            hf_item(
                "2412.00001",
                "Federated learning on phones, revisited",
                summary="A federated learning method for phones.",
            ),
            hf_item(
                "2412.00002",
                "Evaluating Deep Graph Neural Networks",
                summary="The same paper, now with its arXiv id.",
            ),
        ]
    )
    run_all(NOON + timedelta(days=1))
    second = Digest.objects.get(subscriber=person, period="2026-11-30")
    papers = list(DigestItem.objects.filter(digest=second).values_list("paper__title", flat=True))
    assert papers == ["Federated learning on phones, revisited"]
    assert not first & set(
        DigestItem.objects.filter(digest=second).values_list("paper_id", flat=True)
    )
    run_all(NOON + timedelta(days=2))  # nothing new: skipped, recorded, not sent
    third = Digest.objects.get(subscriber=person, period="2026-12-01")
    assert third.state == "skipped" and len(smtp.messages) == 2


def test_unsubscribing_while_the_chunk_is_prepared_means_no_mail(
    listing: None, smtp: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    leaving = subscriber("leaving@example.org")
    subscriber("staying@example.org")
    from digest.delivery import send

    real_result = send.Storing.result

    def stored_then_unsubscribe(storing: send.Storing) -> send.Prepared:
        prepared = real_result(storing)
        Subscriber.objects.filter(pk=leaving.pk).update(status="unsubscribed")
        return prepared

    monkeypatch.setattr(send.Storing, "result", stored_then_unsubscribe)
    run_all()
    assert received(smtp) == ["staying@example.org"]
    assert Digest.objects.get(subscriber=leaving).state == "skipped"


def test_smtp_down_then_back_delivers_everything_once(
    listing: None, smtp: Any, settings: Any
) -> None:
    chunk = one_chunk(3)
    good_port = settings.EMAIL_PORT
    settings.EMAIL_PORT = free_port()  # nothing listens there: connection refused
    with pytest.raises(TransientDeliveryError):
        process_chunk(chunk)
    assert set(Digest.objects.values_list("state", flat=True)) == {"pending"}
    settings.EMAIL_PORT = good_port
    process_chunk(chunk)  # the task's retry
    process_chunk(chunk)  # and a duplicate delivery of the same task message
    assert received(smtp) == ["user0@example.org", "user1@example.org", "user2@example.org"]


def test_permanent_failures_are_recorded_and_repeated_ones_suppress(
    listing: None, smtp: Recorder, settings: Any
) -> None:
    settings.SUPPRESS_AFTER_HARD_FAILURES = 2
    gone = subscriber("gone@example.org")
    subscriber("fine@example.org")
    run_all()
    assert received(smtp) == ["fine@example.org"]
    failed = Digest.objects.get(subscriber=gone)
    assert failed.state == "failed" and "550" in failed.error
    gone.refresh_from_db()
    assert gone.hard_failures == 1 and gone.suppressed_at is None
    ingest_next_day(
        [hf_item("2412.00001", "Federated learning, again", summary="Federated learning.")]
    )
    run_all(NOON + timedelta(days=1))
    gone.refresh_from_db()
    assert gone.hard_failures == 2 and gone.suppressed_at is not None
    run_all(NOON + timedelta(days=2))
    assert not Digest.objects.filter(subscriber=gone, period="2026-12-01").exists()


def test_the_kill_switch_pauses_everything_without_losing_the_schedule(
    listing: None, smtp: Recorder, settings: Any
) -> None:
    subscriber("ada@example.org")
    pause_sending()
    assert run_all() == [] and Digest.objects.count() == 0
    DeliveryControl.objects.filter(pk=1).update(paused=False)
    settings.SENDING_ENABLED = False
    assert run_all() == []
    settings.SENDING_ENABLED = True
    run_all(NOON + timedelta(hours=1))
    assert received(smtp) == ["ada@example.org"]


# Autocommit, as in production: a failed statement does not poison an enclosing test transaction.
@pytest.mark.django_db(transaction=True)
def test_database_lost_mid_chunk_resends_at_most_the_one_in_flight(
    listing: None, smtp: Recorder
) -> None:
    chunk = one_chunk(4)

    def database_gone_after_third_message(execute: Any, sql: str, *args: Any) -> Any:
        # The third message goes out, then the database goes away before "sent" is recorded.
        if len(smtp.messages) >= 3:
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, *args)

    with (
        connection.execute_wrapper(database_gone_after_third_message),
        pytest.raises(OperationalError),
    ):
        process_chunk(chunk)
    assert len(smtp.messages) == 3
    states = sorted(Digest.objects.values_list("state", flat=True))
    assert states == ["pending", "sending", "sent", "sent"]
    run_all(
        NOON + planning.lease() + timedelta(minutes=1)
    )  # rescues the lost claim, sends the rest
    assert len(smtp.messages) == 5  # 4 digests + at most the single one in flight again
    assert sorted(set(received(smtp))) == [f"user{i}@example.org" for i in range(4)]
    assert set(Digest.objects.values_list("state", flat=True)) == {"sent"}


def test_every_message_parses_and_escapes_untrusted_text(listing: None, smtp: Recorder) -> None:
    ingest_bytes(
        hf_json(
            [
                hf_item(
                    "2412.00009",
                    "Federated <script>alert(1)</script> learning",
                    summary="Federated learning with a <b>bold</b> claim.",
                    listed="2026-03-11T00:00:00Z",  # the latest listing: a first digest's window
                )
            ]
        ),
        "evil.json",
    )
    subscriber("ada@example.org")
    run_all()
    raw = smtp.messages[0].as_bytes()
    message = email.message_from_bytes(raw, policy=default)
    assert message.get_content_type() == "multipart/alternative"
    html = message.get_body(preferencelist=("html",)).get_content()
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "<script>alert(1)" not in html, _debug_context(html)
    assert "&lt;script&gt;" in html
    assert "<script>alert(1)</script>" in text


def _debug_context(html: str) -> str:
    at = html.find("<script>alert(1)")
    return html[max(0, at - 300) : at + 100]


def test_switching_frequency_after_todays_digest_does_not_send_a_second_one(
    listing: None, smtp: Recorder
) -> None:
    """Daily -> weekly (on today's weekday) or weekly -> daily, after today's digest went out:
    the next digest comes on a later day, never a second one today."""
    ada = subscriber("ada@example.org")
    bob = subscriber("bob@example.org", frequency="weekly", weekday=6)  # Nov 29 is a Sunday
    run_all()
    assert received(smtp) == ["ada@example.org", "bob@example.org"]
    Subscriber.objects.filter(pk=ada.pk).update(frequency="weekly", weekday=6)
    Subscriber.objects.filter(pk=bob.pk).update(frequency="daily")
    run_all(NOON + timedelta(hours=2))
    assert len(smtp.messages) == 2
    assert Digest.objects.count() == 2
    # Bob, now daily, is due again the next day (new papers or not: the digest row exists).
    tomorrow = NOON + timedelta(days=1)
    run_all(tomorrow)
    assert Digest.objects.filter(subscriber=bob, period="2026-11-30").exists()
    assert not Digest.objects.filter(subscriber=ada, period="2026-11-30").exists()


@pytest.mark.django_db(transaction=True)  # autocommit: on PostgreSQL the claim is prepared
def test_a_chunk_costs_one_statement_per_digest_plus_a_fixed_few(
    listing: None, smtp: Recorder, django_assert_max_num_queries: Any
) -> None:
    """The mark of one digest and the claim of the next are one statement, and everything the
    messages show is read for the whole chunk at once."""
    chunk = one_chunk(12)
    with django_assert_max_num_queries(len(chunk) + 17):
        result = process_chunk(chunk)
    assert result.sent == 12 and len(smtp.messages) == 12
    assert set(Digest.objects.values_list("state", flat=True)) == {"sent"}
    assert all(Digest.objects.values_list("subject", flat=True))
    assert set(Digest.objects.values_list("attempts", flat=True)) == {1}
    if connection.vendor == "postgresql":  # parsed and planned once, not once per digest
        with connection.cursor() as cursor:
            cursor.execute("SELECT name, statement FROM pg_prepared_statements")
            prepared = dict(cursor.fetchall())
        assert "UPDATE" in prepared["digest_advance"]


@contextmanager
def after_each_send(hook: Callable[[], None]) -> Iterator[None]:
    """Run ``hook`` right after each message of a chunk has gone out."""
    real_send = send._send

    def send_then_hook(*args: Any) -> Any:
        accepted = real_send(*args)
        hook()
        return accepted

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(send, "_send", send_then_hook)
        yield


def test_pausing_mid_chunk_stops_sending_and_keeps_the_rest_pending(
    listing: None, smtp: Recorder
) -> None:
    chunk = one_chunk(4)

    with after_each_send(pause_sending):
        result = process_chunk(chunk)
    assert result.sent == 1 and len(smtp.messages) == 1
    states = sorted(Digest.objects.values_list("state", flat=True))
    assert states == ["pending", "pending", "pending", "sent"]
    DeliveryControl.objects.filter(pk=1).update(paused=False)
    # The next planner run after the resume queues the rest at once (not a lease later).
    run_all(NOON + timedelta(minutes=10))
    assert sorted(received(smtp)) == [f"user{i}@example.org" for i in range(4)]


def test_unsubscribing_mid_chunk_means_no_mail_for_the_leaver(
    listing: None, smtp: Recorder
) -> None:
    subscriber("one@example.org")
    subscriber("two@example.org")
    (chunk,) = planning.plan(NOON)

    def the_other_unsubscribes() -> None:
        Subscriber.objects.exclude(email__in=received(smtp)).update(status="unsubscribed")

    with after_each_send(the_other_unsubscribes):
        result = process_chunk(chunk)
    assert len(smtp.messages) == 1 and result.sent == 1 and result.not_active == 1
    (leaver,) = Subscriber.objects.filter(status="unsubscribed")
    assert Digest.objects.get(subscriber=leaver).state == "skipped"


def test_a_delivered_digest_clears_earlier_hard_failures(listing: None, smtp: Recorder) -> None:
    person = subscriber("ada@example.org", hard_failures=1)
    run_all()
    person.refresh_from_db()
    assert received(smtp) == ["ada@example.org"] and person.hard_failures == 0


def test_a_paper_already_sent_leaves_its_place_to_the_next_best(
    listing: None, smtp: Recorder
) -> None:
    """A paper that arrives between planning and sending goes into that digest, and is also
    inside the window of the next one: that one must not pick it again (and lose the place to
    the unique constraint) but take the next best paper."""
    subscriber("ada@example.org", interests="federated learning", max_papers=1)
    (chunk,) = planning.plan(NOON)
    late = hf_item(  # in the seed's listing, which a first digest covers
        "2412.00001", "Federated learning", summary="Federated learning.", listed="2026-03-11"
    )
    with time_machine.travel(NOON + timedelta(minutes=1)):
        ingest_bytes(hf_json([late]), "late.json")
        process_chunk(chunk)
    ingest_next_day([hf_item("2412.00002", "Federated learning, again", summary="Federated.")])
    run_all(NOON + timedelta(days=1))
    sent = {
        period: list(
            DigestItem.objects.filter(digest__period=period).values_list("paper__title", flat=True)
        )
        for period in Digest.objects.filter(state="sent").values_list("period", flat=True)
    }
    assert sent == {
        "2026-11-29": ["Federated learning"],
        "2026-11-30": ["Federated learning, again"],
    }


class RefusesOnce(Recorder):
    """Refuses each recipient permanently the first time (550), accepts it afterwards."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: set[str] = set()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address not in self.refused:
            self.refused.add(address)
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def test_a_delivery_after_a_refusal_in_the_same_chunk_clears_the_failure(
    listing: None, settings: Any
) -> None:
    """Two digests of one subscriber in one chunk (yesterday's, prepared and then held by a
    pause, and today's): the first refused, the second delivered. Failures count in a row, so
    none is left."""
    settings.EMAIL_TIMEOUT = 5
    person = subscriber("ada@example.org")
    (chunk,) = planning.plan(NOON)
    send.prepare(send.load_pending(chunk)).result()
    pause_sending()
    process_chunk(chunk)  # the worker finds sending paused: yesterday's digest waits
    DeliveryControl.objects.filter(pk=1).update(paused=False)
    ingest_next_day(
        [hf_item("2412.00001", "Federated learning, again", summary="Federated learning.")]
    )
    with serving_smtp(settings, RefusesOnce()) as smtp:
        (result,) = run_all(NOON + timedelta(days=1))
    assert (result.failed, result.sent) == (1, 1) and received(smtp) == ["ada@example.org"]
    states = dict(Digest.objects.values_list("period", "state"))
    assert states == {"2026-11-29": "failed", "2026-11-30": "sent"}
    person.refresh_from_db()
    assert person.hard_failures == 0 and person.suppressed_at is None


def test_paused_before_the_worker_ran_and_resumed_the_next_day_sends_no_empty_digest(
    listing: None, smtp: Recorder
) -> None:
    """Yesterday's digest, never prepared, meets today's in one chunk: the papers go once, and
    the digest left with none is skipped, not mailed as "0 new papers"."""
    subscriber("ada@example.org")
    (chunk,) = planning.plan(NOON)
    pause_sending()
    process_chunk(chunk)  # the worker finds sending paused
    assert len(smtp.messages) == 0
    DeliveryControl.objects.filter(pk=1).update(paused=False)
    run_all(NOON + timedelta(days=1))
    assert len(smtp.messages) == 1
    assert not smtp.messages[0]["Subject"].strip().startswith("0 ")
    states = dict(Digest.objects.values_list("period", "state"))
    assert states == {"2026-11-29": "sent", "2026-11-30": "skipped"}
    assert all(
        DigestItem.objects.filter(digest=d).exists() for d in Digest.objects.filter(state="sent")
    )


def test_a_server_that_never_answers_is_retried_only_within_the_window(
    listing: None, smtp: Recorder, settings: Any
) -> None:
    settings.SMTP_RETRY_WINDOW_MINUTES = 30
    chunk = one_chunk(3)
    settings.EMAIL_PORT = free_port()  # nothing listens: the connection itself fails
    with pytest.raises(TransientDeliveryError):
        process_chunk(chunk)
    assert all(e.startswith("retrying: ") for e in Digest.objects.values_list("error", flat=True))
    run_all(NOON + timedelta(minutes=20))  # within the window: still retried
    assert set(Digest.objects.values_list("state", flat=True)) == {"pending"}
    run_all(NOON + timedelta(minutes=45))  # past it: given up, recorded with the reason
    assert set(Digest.objects.values_list("state", flat=True)) == {"failed"}
    assert all(e.startswith("gave up: ") for e in Digest.objects.values_list("error", flat=True))


class RefusesSender(Recorder):
    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        return "550 5.7.1 sender not allowed"


def test_a_refused_sender_fails_the_digest_without_blaming_the_address(
    listing: None, settings: Any
) -> None:
    settings.SUPPRESS_AFTER_HARD_FAILURES = 1
    settings.EMAIL_TIMEOUT = 5
    person = subscriber("ada@example.org")
    with serving_smtp(settings, RefusesSender()):
        run_all()
    digest = Digest.objects.get(subscriber=person)
    assert digest.state == "failed" and "550" in digest.error
    person.refresh_from_db()
    assert person.hard_failures == 0 and person.suppressed_at is None


def test_a_chunk_retried_late_is_not_queued_a_second_time(
    listing: None, smtp: Recorder, settings: Any
) -> None:
    """The planner re-queues a chunk whose task seems lost (queued a lease ago); a task that
    only started late, or is retrying, renews that lease when it starts."""
    subscriber("ada@example.org")
    good_port = settings.EMAIL_PORT
    (chunk,) = planning.plan(NOON)
    settings.EMAIL_PORT = free_port()  # the task starts late and meets a server that is down
    started = NOON + planning.lease() - timedelta(minutes=5)
    with time_machine.travel(started, tick=True), pytest.raises(TransientDeliveryError):
        process_chunk(chunk)
    settings.EMAIL_PORT = good_port
    later = NOON + planning.lease() + timedelta(minutes=1)
    with time_machine.travel(later, tick=True):
        assert planning.plan(later) == []  # its retry is still due: nothing queued twice
        process_chunk(chunk)  # the retry
    assert received(smtp) == ["ada@example.org"]


def test_stored_items_leave_out_papers_the_subscriber_has_and_name_what_was_stored() -> None:
    old = DigestItemFactory()
    subscriber, had = old.subscriber, old.paper
    late, today = DigestFactory(subscriber=subscriber), DigestFactory(subscriber=subscriber)
    other = DigestFactory()
    fresh = PaperFactory()
    rows = [
        (late.pk, subscriber.pk, had.pk, 1, 0.9, "matched: Mamba"),  # sent before: left out
        (late.pk, subscriber.pk, fresh.pk, 2, 0.5, "matched: <b>SSM</b> " + "x" * 480),
        (today.pk, subscriber.pk, fresh.pk, 1, 0.5, "matched: SSM"),  # the late one has it
        (other.pk, other.subscriber_id, had.pk, 1, 0.25, ""),
    ]
    assert store_items(rows) == {(late.pk, fresh.pk), (other.pk, had.pk)}
    stored = DigestItem.objects.exclude(pk=old.pk).order_by("digest_id", "rank")
    assert [(i.digest_id, i.paper_id, i.rank, i.score, i.reason) for i in stored] == [
        (late.pk, fresh.pk, 2, 0.5, "matched: <b>SSM</b> " + "x" * 480),
        (other.pk, had.pk, 1, 0.25, ""),
    ]
    assert store_items([]) == set()


@pytest.mark.django_db(transaction=True)  # autocommit: on PostgreSQL the claim runs overlapped
def test_a_failed_claim_still_records_the_digest_sent_before_it(
    listing: None, smtp: Recorder
) -> None:
    chunk = one_chunk(3)
    claims = 0

    def second_claim_fails(execute: Any, sql: str, params: Any, many: bool, ctx: Any) -> Any:
        # The statement that records the first digest and claims the second fails on the
        # server (a lock timeout, say): the first one must still end up recorded as sent.
        nonlocal claims
        if "CASE WHEN" in sql:
            claims += 1
            if claims == 2:
                return execute("SELECT id FROM no_such_table", [], many, ctx)
        return execute(sql, params, many, ctx)

    with connection.execute_wrapper(second_claim_fails), pytest.raises(DatabaseError):
        process_chunk(chunk)
    assert len(smtp.messages) == 1
    states = dict(Digest.objects.values_list("subscriber__email", "state"))
    assert states[str(smtp.messages[0]["To"])] == "sent"
    assert sorted(states.values()) == ["pending", "pending", "sent"]


def test_a_pause_lifted_just_after_a_refused_claim_leaves_the_digest_pending(
    listing: None, smtp: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    subscriber("one@example.org")
    subscriber("two@example.org")
    (chunk,) = planning.plan(NOON)

    def lifted_meanwhile() -> bool:
        DeliveryControl.objects.filter(pk=1).update(paused=False)
        return False

    with after_each_send(pause_sending), pytest.MonkeyPatch.context() as patch:
        patch.setattr(send, "sending_paused", lifted_meanwhile)
        result = process_chunk(chunk)
    (first,) = received(smtp)
    assert result.not_active == 0
    states = dict(Digest.objects.values_list("subscriber__email", "state"))
    assert states == {
        first: "sent",
        ({"one@example.org", "two@example.org"} - {first}).pop(): "pending",
    }
    # Its chunk's task is over: the planner queues it again once the lease has passed.
    run_all(NOON + planning.lease() + timedelta(minutes=1))
    assert received(smtp) == ["one@example.org", "two@example.org"]


@pytest.mark.parametrize("status", ["pending", "confirmed", "paused", "unsubscribed"])
@pytest.mark.parametrize("suppressed", [False, True])
def test_a_claim_succeeds_exactly_for_the_subscribers_the_planner_counts_active(
    status: str, suppressed: bool
) -> None:
    person = subscriber("ada@example.org", status=status)
    if suppressed:
        Subscriber.objects.filter(pk=person.pk).update(suppressed_at=timezone.now())
    digest = DigestFactory(subscriber=person)
    active = Subscriber.objects.filter(planning.active_subscribers(), pk=person.pk).exists()
    assert send._advance(None, digest, timezone.now()) is active
    assert Digest.objects.get(pk=digest.pk).state == ("sending" if active else "pending")


# Autocommit: on PostgreSQL the items are stored while the worker goes on.
@pytest.mark.django_db(transaction=True)
def test_the_worker_builds_messages_from_what_it_stored_as_they_read_back(listing: None) -> None:
    """prepare() hands its stored items and candidate papers to the messages, so the worker
    does not read them back; the content must be the same as read back from the database,
    including where the (subscriber, paper) constraint left a paper out of a second digest."""
    person = subscriber("ada@example.org", interests="large language models, reasoning")
    subscriber("bob@example.org", interests="")  # the top trending papers
    subscriber("cy@example.org", interests="diffusion models, -survey")
    (chunk,) = planning.plan(NOON)
    late = DigestFactory(subscriber=person, period="2026-11-28")  # a late one, prepared together
    digests = send.load_pending([*chunk, late.pk])
    prepared = send.prepare(digests).result()
    assert prepared.items and len(prepared.items) == len(digests) - 1  # one left empty by late
    ready = send.load_pending([*chunk, late.pk])  # the empty one was skipped
    assert {d.pk for d in ready} == set(prepared.items)
    from_memory = contents_for(ready, known=prepared.items, papers=prepared.papers)
    assert from_memory == contents_for(ready)
    assert all(content.papers for content in from_memory)


@pytest.mark.django_db(transaction=True)
def test_a_failure_while_the_items_are_stored_loses_nothing(
    listing: None, smtp: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker fails while the server stores a chunk's items: the items are kept, the
    connection takes the next query, and the retry sends what they hold (read back)."""
    chunk = one_chunk(2)

    def broken(digest: Digest, papers: Any = None) -> Any:
        raise RuntimeError("a bug in making the links")

    monkeypatch.setattr(digest_message, "frame_for", broken)
    with pytest.raises(RuntimeError):
        process_chunk(chunk)
    stored = dict(DigestItem.objects.values_list("digest_id").annotate(n=Count("id")))
    assert set(stored) == set(chunk) and not smtp.messages
    monkeypatch.undo()
    process_chunk(chunk)
    assert received(smtp) == ["user0@example.org", "user1@example.org"]
    for message in smtp.messages:
        digest_id = int(str(message["Message-ID"]).split("-")[1].split(".")[0])
        assert str(message["Subject"]).strip().startswith(f"{stored[digest_id]} new papers")


@pytest.mark.django_db(transaction=True)
def test_items_the_database_refuses_leave_the_digests_pending_for_the_retry(
    listing: None, smtp: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A paper deleted (retention, an operator) between matching and storing: the insert fails
    on its foreign key, the error is raised, nothing of the chunk is half-stored or skipped,
    and the retry matches again without that paper."""
    chunk = one_chunk(2)
    real_choose = send.choose
    gone: list[int] = []

    def choose_then_delete_a_paper(digests: list[Digest]) -> send.Choice:
        choice = real_choose(digests)
        gone.append(choice.papers[choice.ranked[0][0].paper].pk)
        Paper.objects.filter(pk=gone[0]).delete()
        return choice

    monkeypatch.setattr(send, "choose", choose_then_delete_a_paper)
    with pytest.raises(IntegrityError):
        process_chunk(chunk)
    assert not DigestItem.objects.exists()
    assert set(Digest.objects.values_list("state", flat=True)) == {"pending"}
    monkeypatch.undo()
    process_chunk(chunk)
    assert received(smtp) == ["user0@example.org", "user1@example.org"]
    assert not DigestItem.objects.filter(paper_id=gone[0]).exists()


@pytest.mark.django_db(transaction=True)
def test_a_paper_the_database_left_out_is_not_in_the_mail(
    listing: None, smtp: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between matching and storing, another digest of the subscriber took the best paper:
    the (subscriber, paper) constraint leaves it out, and the mail shows what was stored, not
    what was ranked."""
    chunk = one_chunk(1)
    real_choose = send.choose
    taken: list[str] = []

    def choose_then_lose_the_best(digests: list[Digest]) -> send.Choice:
        choice = real_choose(digests)
        best = choice.papers[choice.ranked[0][0].paper]
        other = DigestFactory(subscriber=digests[0].subscriber, period="2026-11-01", state="sent")
        DigestItemFactory(digest=other, subscriber=other.subscriber, paper=best)
        taken.append(best.title)
        return choice

    monkeypatch.setattr(send, "choose", choose_then_lose_the_best)
    (result,) = [process_chunk(chunk)]
    assert result.sent == 1
    digest = Digest.objects.get(pk=chunk[0])
    kept = list(DigestItem.objects.filter(digest=digest).values_list("paper__title", flat=True))
    assert kept and taken[0] not in kept
    (mail,) = smtp.messages
    text = mail.get_payload()[0].get_payload(decode=True).decode()
    assert taken[0] not in text and all(title in text for title in kept)
    assert str(mail["Subject"]).strip().startswith(f"{len(kept)} new paper")


def test_planned_digests_get_what_django_gives_a_new_row_and_leave_existing_ones_alone() -> None:
    """create_digests inserts over an array on PostgreSQL: its rows must be the rows Django
    makes, and a digest that exists for the period stays as it is."""
    first, second, third = (subscriber(f"p{i}@example.org") for i in range(3))
    existing = Digest.objects.create(subscriber=first, period="2026-11-29", state="sent")
    made_by_django = Digest.objects.create(subscriber=third, period="2026-11-28")
    planning.create_digests([first.pk, second.pk], "2026-11-29")
    existing_now = Digest.objects.get(pk=existing.pk)
    assert (existing_now.state, existing_now.created_at) == ("sent", existing.created_at)
    planned = Digest.objects.get(subscriber=second, period="2026-11-29")
    skip = {"id", "subscriber", "period", "created_at"}
    names = [f.name for f in Digest._meta.concrete_fields if f.name not in skip]
    assert {n: getattr(planned, n) for n in names} == {n: getattr(made_by_django, n) for n in names}
    assert made_by_django.created_at <= planned.created_at <= timezone.now()
    assert Digest.objects.count() == 3


def _two_runs_subscribers() -> list[int]:
    """A subscriber with more matching papers than they take (the run that comes second could
    add the next best), and one whose every matching paper fits (it would have nothing left)."""
    subscriber("many@example.org", interests="large language models", max_papers=2)
    subscriber("few@example.org", interests='"federated learning"', max_papers=10)
    (chunk,) = planning.plan(NOON)
    return chunk


def _items() -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for email_, paper in DigestItem.objects.order_by("rank").values_list(
        "digest__subscriber__email", "paper_id"
    ):
        found.setdefault(email_, []).append(paper)
    return found


@pytest.mark.django_db(transaction=True)
def test_a_chunk_prepared_by_two_runs_one_after_the_other_keeps_the_first_runs_items(
    listing: None, smtp: Recorder
) -> None:
    """The same chunk run twice at once (a task handed out again while it still runs): the
    second run read the digests before the first stored their items, and prepares after. It
    must neither add the next best papers (over the subscriber's maximum) nor skip a digest
    as empty because the first run took its papers; each is then sent once."""
    chunk = _two_runs_subscribers()
    second = send.load_pending(chunk)  # read before the first run stored anything
    first = send.prepare(send.load_pending(chunk)).result()
    stored = _items()
    assert len(stored["many@example.org"]) == 2 and stored["few@example.org"]
    send.prepare(second).result()
    assert _items() == stored
    assert set(Digest.objects.values_list("state", flat=True)) == {"pending"}
    assert first.items  # what the first run goes on to send
    process_chunk(chunk)
    process_chunk(chunk)
    assert received(smtp) == ["few@example.org", "many@example.org"]


@pytest.mark.django_db(transaction=True)
def test_a_chunk_ranked_by_two_runs_before_either_stored_keeps_one_set_of_items(
    listing: None, smtp: Recorder
) -> None:
    """Both runs ranked before either stored: the second one's items meet the first one's in
    the (subscriber, paper) constraint; it stores nothing, skips nothing, and the digests go
    out once with the first run's papers."""
    chunk = _two_runs_subscribers()
    loaded = send.load_pending(chunk)
    ranked_second = send.choose(loaded)
    send.prepare(send.load_pending(chunk)).result()
    stored = _items()
    rows = [
        (d.pk, d.subscriber_id, ranked_second.papers[r.paper].pk, rank, r.score, r.reason)
        for d, ranked in zip(loaded, ranked_second.ranked, strict=True)
        for rank, r in enumerate(ranked, start=1)
    ]
    late = send.Storing(loaded, rows, ranked_second.papers).result()
    assert not late.items and _items() == stored
    assert set(Digest.objects.values_list("state", flat=True)) == {"pending"}
    process_chunk(chunk)
    assert received(smtp) == ["few@example.org", "many@example.org"]


@pytest.mark.django_db(transaction=True)
def test_two_planners_at_once_queue_each_digest_once() -> None:
    """Beat's planner and an operator's "run the due digests now" at the same moment: the
    second marks its chunks while the first has marked but not committed; it must wait for
    the first and then queue none of the same digests."""
    for i in range(3):
        subscriber(f"q{i}@example.org")
    planning.create_due_digests(NOON)
    marked, starting = threading.Event(), threading.Event()
    first: list[list[int]] = []
    second: list[list[int]] = []
    waited: list[float] = []

    def first_planner() -> None:
        try:
            with transaction.atomic():
                first.extend(planning.chunks_to_send(NOON))
                marked.set()
                starting.wait(10)
                time.sleep(0.5)  # the second planner runs meanwhile, and must wait
        finally:
            connection.close()

    def second_planner() -> None:
        marked.wait(10)
        try:
            starting.set()
            began = time.monotonic()
            second.extend(planning.chunks_to_send(NOON))
            waited.append(time.monotonic() - began)
        finally:
            connection.close()

    threads = [threading.Thread(target=first_planner), threading.Thread(target=second_planner)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert sorted(i for chunk in first for i in chunk) == sorted(
        Digest.objects.values_list("id", flat=True)
    )
    assert second == []
    assert waited and waited[0] >= 0.3  # it did run while the first had not committed


def _text(mail: Any) -> str:
    return str(mail.get_payload()[0].get_payload(decode=True).decode())


NEXT_DAY_PAPER = "Federated learning, again"


def established(email_: str) -> Subscriber:
    """A subscriber whose previous digest went out the day before (before the seed's papers
    were first seen): their next digest covers everything since."""
    person = subscriber(email_)
    with time_machine.travel(NOON - timedelta(days=1)):
        DigestFactory(subscriber=person, period="2026-11-28", state="sent")
    return person


def test_a_digest_given_up_on_keeps_its_papers_since_an_attempt_may_have_arrived(
    listing: None, smtp: Recorder, settings: Any
) -> None:
    """The mail server down beyond the retry window: the digest is given up on. An attempt
    that timed out after the message was handed over may have arrived, so its papers stay
    its own (never a paper twice): the next digest carries only what is new."""
    established("ada@example.org")
    good_port = settings.EMAIL_PORT
    (chunk,) = planning.plan(NOON)
    settings.EMAIL_PORT = free_port()  # down
    with pytest.raises(TransientDeliveryError):
        process_chunk(chunk)
    held = set(DigestItem.objects.values_list("paper__title", flat=True))
    assert held
    later = NOON + timedelta(minutes=settings.SMTP_RETRY_WINDOW_MINUTES + 10)
    with time_machine.travel(later, tick=True):
        assert planning.plan(later) == []  # gives up on it
    given_up = Digest.objects.get(pk=chunk[0])
    assert given_up.state == "failed" and given_up.error.startswith("gave up")
    assert given_up.items.count() == len(held)
    settings.EMAIL_PORT = good_port
    ingest_next_day([hf_item("2412.00001", NEXT_DAY_PAPER, summary="Federated learning.")])
    run_all(NOON + timedelta(days=1))
    (mail,) = smtp.messages
    assert NEXT_DAY_PAPER in _text(mail) and not any(title in _text(mail) for title in held)


def test_papers_of_a_digest_refused_for_good_go_into_the_next_one(
    listing: None, smtp: Picky, settings: Any
) -> None:
    """A 5xx for one digest (a mailbox reported full as a permanent error, say) marks it
    failed; its papers were never read, so the next digest the server accepts carries them.
    A subscriber with the same interests shows what the failed digest held."""
    settings.SUPPRESS_AFTER_HARD_FAILURES = 3
    established("gone@example.org")
    established("fine@example.org")
    run_all()
    failed = Digest.objects.get(subscriber__email="gone@example.org", period="2026-11-29")
    assert failed.state == "failed" and not failed.items.exists()
    (first,) = smtp.messages
    held = set(DigestItem.objects.values_list("paper__title", flat=True))
    assert held and all(title in _text(first) for title in held)
    smtp.refuse.clear()  # the mailbox works again
    smtp.messages.clear()
    ingest_next_day([hf_item("2412.00001", NEXT_DAY_PAPER, summary="Federated learning.")])
    run_all(NOON + timedelta(days=1))
    mails = {str(mail["To"]): _text(mail) for mail in smtp.messages}
    assert all(title in mails["gone@example.org"] for title in held | {NEXT_DAY_PAPER})
    assert NEXT_DAY_PAPER in mails["fine@example.org"]
    assert not any(title in mails["fine@example.org"] for title in held)


def test_a_chunk_reuses_the_candidates_read_for_the_last_one_only_while_they_are_the_same() -> None:
    """On PostgreSQL the server hashes what would be read and the last chunk's papers are used
    again while the hash is the same; any change to a paper (even one that bypasses the ORM's
    timestamps) or to the set reads them afresh. Elsewhere they are read every time."""
    day = date(2026, 11, 29)
    papers = PaperFactory.create_batch(3, listing_date=day, first_seen=NOON - timedelta(hours=4))
    windows: dict[int, datetime | None] = {1: None}
    first = send._candidates(windows, day)
    again = send._candidates(windows, day)
    assert [p.pk for p in again] == [p.pk for p in papers]
    assert (again is first) is (connection.vendor == "postgresql")
    Paper.objects.filter(pk=papers[1].pk).update(title="An edited title")
    edited = send._candidates(windows, day)
    assert edited is not first and edited[1].title == "An edited title"
    Paper.objects.filter(pk=papers[2].pk).update(upvotes=99)
    assert send._candidates(windows, day)[2].upvotes == 99
    added = PaperFactory(listing_date=day)
    assert [p.pk for p in send._candidates(windows, day)] == [*(p.pk for p in papers), added.pk]
    since = {1: NOON - timedelta(days=1)}  # a later digest: the papers first seen since
    assert [p.pk for p in send._candidates(since, day)] == [p.pk for p in papers]
    Paper.objects.filter(pk=papers[1].pk).update(title=papers[1].title)  # the edit undone
    assert send._candidates(windows, day)[1].title == papers[1].title


def test_the_newest_candidates_are_chosen_the_same_way_among_papers_first_seen_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One ingest gives its papers the same first_seen: the limit keeps the highest ids,
    whichever way the server reads them, and an edit to a kept one is seen."""
    monkeypatch.setattr(send, "MAX_CANDIDATES", 3)
    seen = NOON - timedelta(hours=4)
    papers = PaperFactory.create_batch(5, first_seen=seen, listing_date=None)
    since: dict[int, datetime | None] = {1: seen}
    kept = [p.pk for p in papers[2:]]
    assert [p.pk for p in send._candidates(since, None)] == kept
    assert [p.pk for p in send._candidates(since, None)] == kept
    Paper.objects.filter(pk=papers[0].pk).update(title="Left out by the limit")
    assert [p.pk for p in send._candidates(since, None)] == kept
    Paper.objects.filter(pk=papers[3].pk).update(title="Kept and edited")
    assert send._candidates(since, None)[1].title == "Kept and edited"
