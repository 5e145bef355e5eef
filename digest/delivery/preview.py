"""The digest a subscriber would get right now, computed like a real one but stored nowhere.

The operator's preview and test digests use the planner's own window (papers first seen since
the subscriber's previous digest, or the latest listing for a first digest), the sender's
matching and the mail's own templates, so what they show is what would be sent.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.urls import reverse
from django.utils import timezone

from digest import emails
from digest.delivery.message import (
    DigestContent,
    DigestPaper,
    build_digest_message,
    one_line,
    paper_entry,
    period_label,
    render_digest,
    topic_labels,
    why_sentence,
)
from digest.delivery.schedule import WEEKLY, local_now
from digest.delivery.send import choose
from digest.models import Digest, Paper
from subscriptions import services
from subscriptions.models import Subscriber


@dataclass(frozen=True)
class PreviewItem:
    rank: int
    paper: Paper
    score: float
    reason: str


@dataclass(frozen=True)
class DigestPreview:
    subscriber: Subscriber
    period: str
    window_start: datetime | None  # None: a first digest, which covers the latest listing
    candidates: int
    items: list[PreviewItem]
    content: DigestContent
    mail: emails.RenderedMail


def current_period(subscriber: Subscriber, now: datetime) -> str:
    local = local_now(now, subscriber.timezone)
    return local.weekly_period if subscriber.frequency == WEEKLY else local.daily_period


def trending_profile() -> Subscriber:
    """An unsaved subscriber with no interests: the top trending papers of the latest listing."""
    return Subscriber(email="", interests="", max_papers=10, timezone="UTC")


def pick(subscriber: Subscriber) -> tuple[list[PreviewItem], datetime | None, int]:
    """(the papers the next digest would hold, its window start, how many papers were
    candidates), exactly as ``send.prepare`` would choose them."""
    choice = choose([Digest(subscriber=subscriber, period="preview")])
    papers = choice.papers
    items = [
        PreviewItem(rank, papers[r.paper], r.score, r.reason)
        for rank, r in enumerate(choice.ranked[0], start=1)
    ]
    return items, choice.windows[subscriber.pk], len(papers)


def preview_digest(subscriber: Subscriber, now: datetime | None = None) -> DigestPreview:
    """What ``subscriber`` would get if their digest were made now. Its manage and unsubscribe
    links lead to the "mail me a link" page: staff who may only view subscribers must not
    hold a subscriber's live links."""
    now = now or timezone.now()
    items, start, candidates = pick(subscriber)
    period = current_period(subscriber, now)
    topics, interests = topic_labels(subscriber.interests)
    content = DigestContent(
        digest_id=0,
        to=subscriber.email,
        period_label=period_label(period),
        papers=[_digest_paper(item) for item in items],
        topics=topics,
        manage_url=_neutral_link(),
        unsubscribe_url=_neutral_link(),
        archive_url=services.absolute(reverse("home")),
        why=why_sentence(period, topics, interests),
        fingerprint="preview",
    )
    return DigestPreview(
        subscriber, period, start, candidates, items, content, render_digest(content)
    )


def _digest_paper(item: PreviewItem) -> DigestPaper:
    return dataclasses.replace(paper_entry(item.paper), reason=one_line(item.reason))


def _neutral_link() -> str:
    """Where a test digest's manage and unsubscribe links lead: the page that mails a manage
    link to whoever asks. A test recipient must not be able to change a real subscription."""
    return services.absolute(reverse("subscriptions:request_link"))


def operator_test_message(subscriber: Subscriber, to: str) -> EmailMultiAlternatives:
    """A test digest for ``to``: the content ``subscriber`` would get now, marked as a test,
    with links that touch no real subscription and a Message-ID of its own."""
    preview = preview_digest(subscriber)
    _, interests = topic_labels(subscriber.interests)
    wanted = (
        f"the interests: {interests}" if interests else "no interests (the top trending papers)"
    )
    content = dataclasses.replace(
        preview.content,  # its links already touch no real subscription
        to=to,
        why=(
            f"This is a test digest sent by an operator of {settings.SITE_NAME}: it shows what a "
            f"subscriber with {wanted} would get now."
        ),
        fingerprint=f"test-{secrets.token_hex(6)}",
        subject_prefix="[Test] ",
        test=True,
    )
    return build_digest_message(content)
