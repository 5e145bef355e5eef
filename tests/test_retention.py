"""Retention: old digests are pruned on a schedule, in batches, without ever letting a paper
reach the same subscriber twice; their "view in browser" pages then answer 410."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from digest import tasks
from digest.delivery import plan as planning
from digest.delivery import tokens
from digest.delivery.send import process_chunk
from digest.ingest.run import ingest_bytes
from digest.models import Digest, DigestItem, Heartbeat
from digest.retention import forget_gone_processes, prunable, prune_digests
from digest.schedule import beat_schedule
from subscriptions.models import Subscriber
from tests.conftest import hf_item, hf_json
from tests.factories import DigestFactory, DigestItemFactory, PaperFactory, SubscriberFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _retention(settings: Any) -> None:
    settings.DIGEST_RETENTION_DAYS = 30
    settings.RETENTION_BATCH_SIZE = 1000


def digest_at(
    subscriber: Subscriber, days_ago: float, state: str = "sent", papers_seen_days_ago: Any = ()
) -> Digest:
    """A digest made ``days_ago`` with one item per entry of ``papers_seen_days_ago``."""
    digest = DigestFactory(subscriber=subscriber, state=state)
    created = NOW - timedelta(days=days_ago)
    Digest.objects.filter(pk=digest.pk).update(created_at=created)
    for seen_ago in papers_seen_days_ago:
        seen = NOW - timedelta(days=seen_ago)
        DigestItemFactory(digest=digest, paper=PaperFactory(first_seen=seen, last_seen=seen))
    digest.refresh_from_db()
    return digest


def test_old_finished_digests_go_the_latest_and_recent_ones_stay() -> None:
    ada = SubscriberFactory()
    old_sent = digest_at(ada, 90, "sent", [91, 92])
    old_skipped = digest_at(ada, 80, "skipped")
    old_failed = digest_at(ada, 70, "failed", [71])
    recent = digest_at(ada, 10, "sent", [11])
    latest = digest_at(ada, 1, "sent", [2])

    assert prune_digests(NOW) == 3

    left = set(Digest.objects.values_list("pk", flat=True))
    assert left == {recent.pk, latest.pk}
    assert not DigestItem.objects.filter(digest_id__in=[old_sent.pk, old_failed.pk]).exists()
    assert not Digest.objects.filter(pk=old_skipped.pk).exists()


@pytest.mark.parametrize("state", ["pending", "sending"])
def test_a_digest_still_pending_or_sending_is_never_pruned(state: str) -> None:
    ada = SubscriberFactory()
    stuck = digest_at(ada, 100, state, [101])
    digest_at(ada, 1, "sent", [2])
    assert prune_digests(NOW) == 0
    assert Digest.objects.filter(pk=stuck.pk, state=state).exists()


def test_the_latest_finished_digest_is_kept_however_old() -> None:
    """It marks where the next digest's window starts: deleting it would make the next digest
    a "first" one, which looks at the latest listing again."""
    ada = SubscriberFactory()
    only = digest_at(ada, 400, "sent", [401])
    assert prune_digests(NOW) == 0
    assert Digest.objects.filter(pk=only.pk).exists()


def test_the_latest_digest_that_went_out_is_kept_though_a_later_one_failed() -> None:
    """The next digest's window starts at the latest digest that was sent or skipped, not at
    a failed one (it did not reach them): that one is what must stay."""
    ada = SubscriberFactory()
    sent = digest_at(ada, 90, "sent", [91])
    digest_at(ada, 60, "failed")
    assert prune_digests(NOW) == 0
    assert Digest.objects.filter(pk=sent.pk).exists()


def test_a_digest_whose_paper_could_still_be_a_candidate_keeps_its_items() -> None:
    """A paper first seen after the newest digest was made is still a candidate for the next
    one; only the old item stops it from being sent again, so that digest stays."""
    ada = SubscriberFactory()
    guarding = digest_at(ada, 60, "sent", [0.5])  # its paper was (re)first-seen very late
    newest = digest_at(ada, 40, "sent", [41])
    assert list(prunable(NOW)) == []
    assert prune_digests(NOW) == 0
    assert Digest.objects.filter(pk__in=[guarding.pk, newest.pk]).count() == 2


def test_pruning_works_in_batches_and_per_subscriber(settings: Any) -> None:
    settings.RETENTION_BATCH_SIZE = 2
    people = SubscriberFactory.create_batch(3)
    for person in people:
        for days in (100, 90, 80):
            digest_at(person, days, "sent", [days + 1])
    assert prune_digests(NOW, max_batches=1) == 2
    assert prune_digests(NOW) == 4  # the rest, two at a time
    assert Digest.objects.count() == 3
    for person in people:
        assert Digest.objects.filter(subscriber=person).get().created_at == NOW - timedelta(days=80)


def test_retention_zero_keeps_everything_and_has_no_schedule_entry(settings: Any) -> None:
    settings.DIGEST_RETENTION_DAYS = 0
    ada = SubscriberFactory()
    digest_at(ada, 900, "sent", [901])
    digest_at(ada, 800, "sent", [801])
    assert prune_digests(NOW) == 0
    assert "prune-old-digests" not in beat_schedule()


def test_the_job_is_a_beat_entry_built_from_settings(settings: Any) -> None:
    settings.RETENTION_HOURS = 6
    entry = beat_schedule()["prune-old-digests"]
    assert entry["task"] == "digest.tasks.prune_old_digests"
    assert entry["schedule"] == 6 * 3600.0
    ada = SubscriberFactory()
    digest_at(ada, 100, "sent", [101])
    digest_at(ada, 99, "sent", [100])
    with time_machine.travel(NOW, tick=False):
        assert tasks.prune_old_digests.apply().get() == 1


def test_archive_page_of_a_pruned_digest_answers_410(client: Client) -> None:
    ada = SubscriberFactory()
    old = digest_at(ada, 100, "sent", [101])
    DigestItem.objects.filter(digest=old).update(reason="secret reason")
    digest_at(ada, 1, "sent", [2])
    link = f"/digests/{tokens.make_archive_token(old)}/"
    assert client.get(link).status_code == 200
    prune_digests(NOW)
    response = client.get(link)
    assert response.status_code == 410
    page = response.content.decode()
    assert "no longer kept" in page and "30 days" in page and "secret reason" not in page
    assert response["Cache-Control"] == "private, no-store"


def test_no_paper_is_sent_twice_after_pruning(settings: Any, mailbox: list[Any]) -> None:
    """The real pipeline: three daily digests, the old ones pruned, then the old papers come
    back in a new dump; only the genuinely new paper is sent."""
    settings.DIGEST_RETENTION_DAYS = 1
    settings.SITE_URL = "https://digest.example.org"
    person = Subscriber.objects.create(
        email="ada@example.org",
        interests="federated learning",
        status="confirmed",
        confirmed_at=timezone.now(),
        delivery_hour=8,
    )
    papers = [
        hf_item(f"2412.0000{n}", f"Federated learning study {n}", summary="Federated learning.")
        for n in range(1, 4)
    ]

    def day(n: int, items: list[dict[str, Any]]) -> None:
        with time_machine.travel(NOW + timedelta(days=n), tick=True):
            ingest_bytes(hf_json(items), f"day{n}.json")
            for ids in planning.plan(timezone.now()):
                process_chunk(ids)

    day(0, papers[:1])
    day(1, papers[1:2])
    day(2, papers[2:3])
    assert len(mailbox) == 3
    with time_machine.travel(NOW + timedelta(days=5), tick=True):
        assert prune_digests() == 2
    assert Digest.objects.filter(subscriber=person).count() == 1

    comeback = [*papers, hf_item("2412.00009", "Federated learning, new", summary="Federated.")]
    day(6, comeback)
    latest = Digest.objects.filter(subscriber=person).order_by("-created_at").first()
    assert latest is not None and latest.state == "sent"
    titles = list(DigestItem.objects.filter(digest=latest).values_list("paper__title", flat=True))
    assert titles == ["Federated learning, new"]
    assert len(mailbox) == 4


def test_stored_topics_nobody_names_any_more_are_forgotten() -> None:
    from digest.models import TopicEmbedding
    from digest.retention import forget_unused_topics

    SubscriberFactory(interests="state space models, quantization")
    old = timezone.now() - timedelta(days=3)
    for text in ("state space models", "a topic from a preview", "a profile since changed"):
        row = TopicEmbedding.objects.create(text=text, model="m", vector=b"\0" * 4)
        TopicEmbedding.objects.filter(pk=row.pk).update(created_at=old)
    TopicEmbedding.objects.create(text="being saved right now", model="m", vector=b"\0" * 4)
    assert forget_unused_topics() == 2
    assert sorted(TopicEmbedding.objects.values_list("text", flat=True)) == [
        "being saved right now",
        "state space models",
    ]


def test_heartbeats_of_processes_long_gone_go_but_the_newest_of_each_role_stays() -> None:
    now = timezone.now()
    for role, name, age in [
        ("worker", "worker@live", timedelta(minutes=1)),
        ("worker", "worker@replaced", timedelta(days=8)),
        ("worker", "worker@older", timedelta(days=30)),
        ("beat", "beat@only", timedelta(days=40)),  # nothing newer: it says since when
    ]:
        Heartbeat.objects.create(role=role, name=name, last_seen_at=now - age)
    assert forget_gone_processes(now) == 2
    assert sorted(Heartbeat.objects.values_list("name", flat=True)) == ["beat@only", "worker@live"]
    assert forget_gone_processes(now) == 0
