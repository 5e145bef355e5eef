"""The digest mail: what goes into it (read from the database once), how it reads (Jinja2
templates ``templates/email/digest.*``), and the message with the headers that bulk mail needs
to be delivered, deduplicated and easy to leave.

Everything shown comes from untrusted dumps or from what a subscriber typed: it reaches the
templates as plain text for autoescape, and links only as http(s) URLs.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.urls import reverse
from django.utils import timezone

from digest import emails
from digest.delivery.tokens import archive_url, fingerprint
from digest.matching.interests import InterestError, parse_interests
from digest.models import Digest, DigestItem, Paper
from digest.templatetags.paper_tags import excerpt, http_url, short_authors
from subscriptions import services

ABSTRACT_CHARS = 300
SUBJECT_TOPICS = 3
SUBJECT_TOPIC_CHARS = 60
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# A sentence ends at . ! or ? followed by a space and something that starts a sentence; "3.5"
# or "e.g.," do not match.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'\u201c])")
_ARXIV_ID = re.compile(r"^(?:\d{4}\.\d{4,5}|[a-z][a-z.-]*/\d{7})(?:v\d+)?$", re.IGNORECASE)


class DigestTooLarge(Exception):
    """The serialized message is larger than MAIL_MAX_BYTES."""

    def __init__(self, digest_id: int, size: int, limit: int) -> None:
        super().__init__(
            f"digest #{digest_id} is {size} bytes as a message, over MAIL_MAX_BYTES={limit}"
        )
        self.digest_id = digest_id
        self.size = size
        self.limit = limit


@dataclass(frozen=True)
class DigestPaper:
    title: str
    page_url: str  # this site's page of the paper
    authors_short: str
    abstract_start: str
    reason: str
    arxiv_url: str
    pdf_url: str
    code_url: str
    upvotes: int | None


@dataclass(frozen=True)
class DigestContent:
    digest_id: int
    to: str
    period_label: str
    papers: list[DigestPaper]
    topics: list[str]  # the subscriber's topic labels; none for "top trending papers"
    manage_url: str
    unsubscribe_url: str
    archive_url: str
    why: str  # one sentence: why this address gets this mail
    # Set by content_for: makes the Message-ID unique to the digest row (see message_id()).
    fingerprint: str = ""
    subject_prefix: str = ""  # e.g. "[Test] " for an operator's test digest
    test: bool = False  # an operator's test: no unsubscribe headers (nothing to leave)


# --- Content ---------------------------------------------------------------------------------


def one_line(text: str) -> str:
    return " ".join((text or "").split())


def abstract_start(abstract: str, limit: int = ABSTRACT_CHARS) -> str:
    """The first sentence or two, within ``limit`` characters: enough to tell what the paper is
    about, short enough that twenty of them stay a quick read. A first sentence that is too long
    is cut at a word boundary."""
    text = one_line(abstract)
    start = ""
    for sentence in _SENTENCE_END.split(text)[:2]:
        candidate = f"{start} {sentence}".strip()
        if len(candidate) > limit:
            break
        start = candidate
    return start or excerpt(text, limit)


def _is_arxiv(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host == "arxiv.org" or host.endswith(".arxiv.org")


def arxiv_links(paper: Paper) -> tuple[str, str]:
    """(abstract page, PDF): the stored links when safe, else made from a well-formed id. A link
    labelled "arXiv" must lead to arXiv."""
    abs_url = http_url(paper.url_abs)
    abs_url = abs_url if abs_url and _is_arxiv(abs_url) else ""
    pdf_url = http_url(paper.url_pdf)
    arxiv_id = (paper.arxiv_id or "").strip()
    if _ARXIV_ID.match(arxiv_id):
        abs_url = abs_url or f"https://arxiv.org/abs/{arxiv_id}"
        pdf_url = pdf_url or f"https://arxiv.org/pdf/{arxiv_id}"
    return abs_url, pdf_url


def paper_entry(paper: Paper) -> DigestPaper:
    """What a digest shows of a paper, the same in every digest (the reason is left blank)."""
    arxiv_url, pdf_url = arxiv_links(paper)
    return DigestPaper(
        title=one_line(paper.title),
        page_url=services.absolute(reverse("paper", args=[paper.pk])),
        authors_short=short_authors(paper.authors, paper.author_count),
        abstract_start=abstract_start(paper.abstract),
        reason="",
        arxiv_url=arxiv_url,
        pdf_url=pdf_url,
        code_url=http_url(paper.url_code),
        upvotes=paper.upvotes,
    )


def topic_labels(interests: str) -> tuple[list[str], str]:
    """(topic labels, the interests as one line). Text the parser now rejects (rules may have
    tightened since it was saved) is shown as typed rather than failing the digest."""
    try:
        profile = parse_interests(interests)
    except InterestError:
        labels = [one_line(part) for part in re.split(r"[,;\n]", interests or "")]
        return [label for label in labels if label], one_line(interests)
    return [topic.text.replace('"', "") for topic in profile.topics], str(profile)


def period_label(period: str) -> str:
    """``2026-03-11`` → "Mar 11"; ``2026-W11`` → "week of Mar 9"; anything else as it is."""
    try:
        if "-W" in period:
            year, week = period.split("-W")
            day = date.fromisocalendar(int(year), int(week), 1)
            return f"week of {MONTHS[day.month - 1]} {day.day}"
        day = date.fromisoformat(period)
    except ValueError:
        return period
    return f"{MONTHS[day.month - 1]} {day.day}"


def why_sentence(period: str, topics: Sequence[str], interests: str) -> str:
    kind = "weekly" if "-W" in period else "daily"
    if not topics:
        return (
            f"You get this {kind} digest of the top trending papers because you subscribed to "
            f"{settings.SITE_NAME}."
        )
    return (
        f"You get this {kind} digest because you subscribed to {settings.SITE_NAME} with the "
        f"interests: {interests}."
    )


def content_for(digest: Digest) -> DigestContent:
    """Everything the mail and the archive page show, in one query for the items (plus one for
    the subscriber unless ``digest`` was loaded with it)."""
    return contents_for([digest])[0]


# What a digest shows of a paper, read with its item (one query, no model instances).
PAPER_FIELDS = (
    "title",
    "abstract",
    "authors",
    "author_count",
    "arxiv_id",
    "url_abs",
    "url_pdf",
    "url_code",
    "upvotes",
)
# The same papers recur in thousands of digests: their entries are kept per process, keyed by
# everything they are made of (so an edited paper gets a new entry), and dropped wholesale when
# there are more than this, so memory stays bounded whatever the number of subscribers.
ENTRY_CACHE_SIZE = 5000
_entries: dict[tuple[Any, ...], DigestPaper] = {}


def _entry(paper_id: int, values: tuple[Any, ...]) -> DigestPaper:
    authors = values[PAPER_FIELDS.index("authors")]
    key = (settings.SITE_URL, paper_id, *values[:2], tuple(authors or ()), *values[3:])
    entry = _entries.get(key)
    if entry is None:
        if len(_entries) >= ENTRY_CACHE_SIZE:
            _entries.clear()
        paper = Paper(pk=paper_id, **dict(zip(PAPER_FIELDS, values, strict=True)))
        entry = _entries[key] = paper_entry(paper)
    return entry


def contents_for(
    digests: Sequence[Digest],
    *,
    known: Mapping[int, list[tuple[str, int]]] | None = None,
    papers: Mapping[int, Paper] | None = None,
) -> list[DigestContent]:
    """``content_for`` of many digests, with one query for all their items and one for their
    papers: a paper in several of them is read and prepared once. Load the digests with their
    subscribers. A worker that has just stored the items passes them as ``known`` (digest id ->
    (reason, paper id), best first) with the ``papers`` they name, and those are not read."""
    known = known or {}
    items = {d.pk: list(known.get(d.pk, ())) for d in digests}
    unknown = [d.pk for d in digests if d.pk not in known]
    if unknown:
        for digest_id, reason, paper_id in (
            DigestItem.objects.filter(digest__any=unknown)
            .order_by("digest_id", "rank")
            .values_list("digest_id", "reason", "paper_id")
        ):
            items[digest_id].append((reason, paper_id))
    shown = _entries_of({paper_id for listed in items.values() for _, paper_id in listed}, papers)
    return [
        frame_for(d, [with_reason(shown[paper_id], reason) for reason, paper_id in items[d.pk]])
        for d in digests
    ]


def with_reason(entry: DigestPaper, reason: str) -> DigestPaper:
    """``entry`` with why it matched, made field by field: ``dataclasses.replace`` looks the
    fields up on every call, and a chunk makes thousands of these."""
    return DigestPaper(
        entry.title,
        entry.page_url,
        entry.authors_short,
        entry.abstract_start,
        one_line(reason),
        entry.arxiv_url,
        entry.pdf_url,
        entry.code_url,
        entry.upvotes,
    )


def _entries_of(paper_ids: set[int], papers: Mapping[int, Paper] | None) -> dict[int, DigestPaper]:
    """The entries of these papers, from ``papers`` where they are there with every field
    shown, read in one query otherwise."""
    entries: dict[int, DigestPaper] = {}
    given, shown = papers or {}, set(PAPER_FIELDS)
    for paper_id in paper_ids:
        paper = given.get(paper_id)
        if paper is not None and not paper.get_deferred_fields() & shown:
            entries[paper_id] = _entry(paper_id, tuple(getattr(paper, f) for f in PAPER_FIELDS))
    missing = paper_ids - entries.keys()
    if missing:
        for paper_id, *values in Paper.objects.filter(pk__any=list(missing)).values_list(
            "id", *PAPER_FIELDS
        ):
            entries[paper_id] = _entry(paper_id, tuple(values))
    return entries


def frame_for(digest: Digest, papers: list[DigestPaper] | None = None) -> DigestContent:
    """A digest's content around ``papers`` (none by default): addresses, signed links,
    topics. It needs no query once the digest is loaded with its subscriber."""
    subscriber = digest.subscriber
    topics, interests = topic_labels(subscriber.interests)
    return DigestContent(
        digest_id=digest.pk,
        to=subscriber.email,
        period_label=period_label(digest.period),
        papers=papers or [],
        topics=topics,
        manage_url=services.manage_url(subscriber),
        unsubscribe_url=services.unsubscribe_url(subscriber),
        archive_url=archive_url(digest),
        why=why_sentence(digest.period, topics, interests),
        fingerprint=fingerprint(digest),
    )


# --- Rendering -------------------------------------------------------------------------------


def subject_topics(topics: Sequence[str]) -> str:
    """At most three topics in about sixty characters; "…" says that some were left out."""
    shown: list[str] = []
    for topic in topics[:SUBJECT_TOPICS]:
        if len(", ".join([*shown, topic])) > SUBJECT_TOPIC_CHARS:
            break
        shown.append(topic)
    if not shown and topics:
        return excerpt(topics[0], SUBJECT_TOPIC_CHARS).rstrip("…") + "…"
    text = ", ".join(shown)
    return text + "…" if len(shown) < len(topics) else text


def headline(content: DigestContent) -> str:
    """What is inside: "6 new papers: Mamba, quantization" or "6 trending papers"."""
    count = len(content.papers)
    noun = "paper" if count == 1 else "papers"
    if not content.topics:
        return f"{count} trending {noun}"
    return f"{count} new {noun}: {subject_topics(content.topics)}"


def template_context(content: DigestContent) -> dict[str, object]:
    """The context of the mail templates and of the archive page."""
    return {"digest": content, "headline": headline(content)}


def render_digest(content: DigestContent) -> emails.RenderedMail:
    mail = emails.render("digest", template_context(content))
    return dataclasses.replace(mail, html=emails.inline_css(mail.html))


# --- Message ---------------------------------------------------------------------------------


def mail_domain() -> str:
    """The domain of Message-ID and List-Id: the DKIM domain, else the site's host."""
    host = settings.DKIM_DOMAIN or urlsplit(settings.SITE_URL).hostname or ""
    # An IPv6 literal is no domain; "localhost" keeps the headers well-formed in development.
    return host.lower() if host and ":" not in host else "localhost"


def message_id(content: DigestContent) -> str:
    """The same for every build of one digest, so a receiver drops the copy a retry may send;
    the fingerprint keeps ids of a reset database from colliding with mail already delivered."""
    local = f"digest-{content.digest_id}"
    if content.fingerprint:
        local += f".{content.fingerprint}"
    return f"<{local}@{mail_domain()}>"


def list_id() -> str:
    if settings.LIST_ID:
        return settings.LIST_ID if "<" in settings.LIST_ID else f"<{settings.LIST_ID}>"
    return f"{settings.SITE_NAME} <digest.{mail_domain()}>"


def digest_headers(content: DigestContent) -> dict[str, str]:
    unsubscribe = (
        {}
        if content.test
        else emails.list_unsubscribe_headers(
            content.unsubscribe_url, settings.LIST_UNSUBSCRIBE_MAILTO
        )
    )
    return {
        # "+0000", not the "-0000" (zone unknown) Django writes by default.
        "Date": format_datetime(
            timezone.localtime() if settings.EMAIL_USE_LOCALTIME else timezone.now()
        ),
        "Message-ID": message_id(content),
        **unsubscribe,
        "List-Id": list_id(),
        "Auto-Submitted": "auto-generated",
        "Precedence": "bulk",
        "X-Auto-Response-Suppress": "OOF, AutoReply",
    }


def build_digest_message(
    content: DigestContent, *, connection: BaseEmailBackend | None = None
) -> emails.DkimEmailMultiAlternatives:
    """The message, ready for ``send()``, serialized once (and DKIM-signed when configured):
    the size checked is that of the bytes sent. Raises ``DigestTooLarge`` rather than mail
    something a server would bounce."""
    mail = render_digest(content)
    message = emails.build_message(
        content.to,
        mail,
        headers=digest_headers(content),
        connection=connection,
        message_class=emails.DkimEmailMultiAlternatives,
    )
    assert isinstance(message, emails.DkimEmailMultiAlternatives)
    size = len(message.freeze().data)
    if size > settings.MAIL_MAX_BYTES:
        raise DigestTooLarge(content.digest_id, size, settings.MAIL_MAX_BYTES)
    return message
