"""factory_boy factories for the models tests build most often."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import factory

from digest.models import Digest, DigestItem, Paper
from subscriptions.models import Subscriber

SEEN = datetime(2024, 3, 11, 12, 0, tzinfo=UTC)


class PaperFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Paper

    title = factory.Sequence(lambda n: f"Paper number {n}")
    title_key = factory.LazyAttribute(lambda p: p.title.lower()[:255])
    key = factory.LazyAttribute(lambda p: f"title:{p.title_key}")
    abstract = factory.LazyAttribute(lambda p: f"We study {p.title.lower()} in depth.")
    authors = factory.LazyFunction(lambda: ["Ada Lovelace", "Alan Turing"])
    author_count = factory.LazyAttribute(lambda p: len(p.authors))
    listing_date = date(2024, 3, 11)
    upvotes = 1
    first_seen = SEEN
    last_seen = SEEN


class SubscriberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscriber

    email = factory.Sequence(lambda n: f"reader{n}@example.org")
    status = Subscriber.Status.CONFIRMED
    interests = "state space models, quantization"
    frequency = Subscriber.Frequency.DAILY
    timezone = "UTC"
    confirmed_at = factory.LazyAttribute(
        lambda s: None if s.status == Subscriber.Status.PENDING else SEEN
    )


class DigestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Digest

    subscriber = factory.SubFactory(SubscriberFactory)
    period = factory.Sequence(lambda n: (date(2024, 3, 11) + timedelta(days=n)).isoformat())


class DigestItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DigestItem

    digest = factory.SubFactory(DigestFactory)
    subscriber = factory.LazyAttribute(lambda item: item.digest.subscriber)
    paper = factory.SubFactory(PaperFactory)
    rank = factory.Sequence(lambda n: n + 1)
    score = 1.0
    reason = "matches state space models"
