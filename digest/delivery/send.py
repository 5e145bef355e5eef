"""Sending one chunk of digests: match, record items, render, send over one SMTP connection.

Exactly once: each digest is claimed with a conditional update (pending -> sending, and only
while its subscriber is still active and sending is not paused) right before its message goes
out, and marked sent once the server has accepted it. The mark of one digest and the claim of the
next are one statement (one round trip instead of two): a crash can therefore leave at most the
one in-flight digest in "sending"; everything else is either sent or still pending for the retry.

What the messages need is read for the whole chunk at once (the digests with their subscribers
and the candidate papers); the items are stored in one statement that the server runs while the
worker makes the messages' contents from what it holds, so nothing is read back. The paper index
is kept from one chunk to the next while the candidate papers stay the same.
"""

from __future__ import annotations

import logging
import smtplib
import socket
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
from django.conf import settings
from django.core.mail import get_connection
from django.db import connection, transaction
from django.db.models import Exists, F, Max, OuterRef, QuerySet, Value
from django.db.models.functions import Concat
from django.utils import timezone

from digest.delivery import statement
from digest.delivery.errors import TransientDeliveryError
from digest.delivery.message import (
    PAPER_FIELDS,
    DigestContent,
    DigestTooLarge,
    build_digest_message,
    contents_for,
)
from digest.delivery.plan import active_subscribers, sending_paused
from digest.emails import DkimEmailMultiAlternatives
from digest.matching.interests import InterestError, Profile, parse_interests
from digest.matching.score import Ranked
from digest.matching.service import latest_listing, reusable_matcher_for
from digest.models import DeliveryControl, Digest, DigestItem, Paper
from subscriptions.models import Subscriber

log = logging.getLogger(__name__)

MAX_CANDIDATES = 5000


@dataclass
class ChunkResult:
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    not_active: int = 0
    details: list[str] = field(default_factory=list)


# --- matching: which papers go into each digest ------------------------------------------------


def _windows(subscriber_ids: list[int], exclude: list[int]) -> dict[int, datetime | None]:
    """When each subscriber's previous digest was made (None: this is their first). A failed
    one does not count: it did not reach them (see ``_fail``). Retention keeps the
    digest this finds (``retention.WINDOW_STARTS``)."""
    previous = (
        Digest.objects.filter(subscriber_id__any=subscriber_ids)
        .exclude(pk__any=exclude)
        .exclude(state__in=(Digest.State.PENDING, Digest.State.FAILED))
        .values("subscriber_id")
        .annotate(last=Max("created_at"))
    )
    found = {row["subscriber_id"]: row["last"] for row in previous}
    return {pk: found.get(pk) for pk in subscriber_ids}


# What a chunk reads of its candidate papers: what matching and the messages need.
CANDIDATE_FIELDS = ("id", "listing_date", "first_seen", *PAPER_FIELDS)
# The last chunk's candidates, kept for the next one while they are the same (see _candidates).
_kept_candidates: tuple[str, list[Paper]] | None = None


def _candidates(windows: dict[int, datetime | None], day: date | None) -> list[Paper]:
    """The papers that may go into these digests, by id. A worker sends chunk after chunk
    against the same papers, and reading them (with their abstracts) took 40 ms a chunk: on
    PostgreSQL the server first hashes what would be read, and while that is the hash of what
    the previous chunk read, its papers are used again."""
    global _kept_candidates
    selected = _candidate_querysets(windows, day)
    if not selected:
        return []
    if connection.vendor != "postgresql":
        found: dict[int, Paper] = {}
        for queryset in selected:
            for paper in queryset:
                found.setdefault(paper.pk, paper)
        return sorted(found.values(), key=lambda p: p.pk)
    union, params = _union(selected)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {_CANDIDATES_HASH} FROM ({union}) AS c", params)  # noqa: S608
        (fingerprint,) = cursor.fetchone()
    if fingerprint is not None and _kept_candidates and _kept_candidates[0] == fingerprint:
        return _kept_candidates[1]
    # Read with the hash of what is read, in one statement (one snapshot): the hash kept is
    # that of these very papers, whatever changed since the one above.
    papers = list(
        Paper.objects.raw(
            f"WITH c AS ({union}) SELECT c.*, "  # noqa: S608
            f"(SELECT {_CANDIDATES_HASH} FROM c) AS candidates_hash FROM c ORDER BY c.id",
            params,
        )
    )
    seen = getattr(papers[0], "candidates_hash", None) if papers else None
    _kept_candidates = (str(seen), papers) if seen is not None else None
    return papers


# Every field read of every candidate, in id order; a row's text form tells NULL from an empty
# string and quotes what needs it.
_CANDIDATES_HASH = "md5(string_agg(c::text, chr(30) ORDER BY c.id))"


def _candidate_querysets(
    windows: dict[int, datetime | None], day: date | None
) -> list[QuerySet[Paper]]:
    """The papers first seen since the earliest window start (the latest ones first, ties in
    a fixed order, so that the limit always keeps the same ones), and the latest listing
    where a digest is someone's first."""
    starts = [w for w in windows.values() if w is not None]
    papers = Paper.objects.only(*CANDIDATE_FIELDS)
    selected = []
    if starts:
        recent = papers.filter(first_seen__gte=min(starts)).order_by("-first_seen", "-id")
        selected.append(recent[:MAX_CANDIDATES])
    if any(w is None for w in windows.values()) and day:
        selected.append(papers.filter(listing_date=day).order_by())
    return selected


def _union(selected: list[QuerySet[Paper]]) -> tuple[str, list[Any]]:
    """The SQL that reads every ``CANDIDATE_FIELDS`` of the ``selected`` papers, each once."""
    parts, params = [], []
    for queryset in selected:
        sql, values = queryset.values(*CANDIDATE_FIELDS).query.sql_with_params()
        parts.append(f"({sql})")
        params.extend(values)
    return " UNION ".join(parts), params


def _allowed(
    digests: list[Digest],
    papers: list[Paper],
    windows: dict[int, datetime | None],
    day: date | None,
) -> np.ndarray:
    """(digests x papers): inside the subscriber's window and never sent to them before."""
    first_seen = np.array([p.first_seen.timestamp() for p in papers])
    in_latest = np.array([p.listing_date == day for p in papers], dtype=bool)
    column = {p.pk: i for i, p in enumerate(papers)}
    allowed = np.zeros((len(digests), len(papers)), dtype=bool)
    owners = {d.subscriber_id: row for row, d in enumerate(digests)}
    for row, digest in enumerate(digests):
        start = windows[digest.subscriber_id]
        allowed[row] = in_latest if start is None else first_seen >= start.timestamp()
    for subscriber_id, paper_id in _had(list(owners), list(column)):
        allowed[owners[subscriber_id], column[paper_id]] = False
    return allowed


def _had(subscriber_ids: list[int], paper_ids: list[int]) -> list[tuple[int, int]]:
    """The (subscriber, paper) pairs among these that some digest already holds. The ids go
    as arrays on PostgreSQL (``__any``): as IN lists (a chunk's subscribers and a thousand
    candidates) the query took longer to convert and plan than to run."""
    if not subscriber_ids or not paper_ids:
        return []
    return list(
        DigestItem.objects.filter(subscriber_id__any=subscriber_ids, paper_id__any=paper_ids)
        .order_by()  # the model's ordering would join and sort the digests for nothing
        .values_list("subscriber_id", "paper_id")
    )


def _profile(subscriber: Subscriber) -> Profile:
    try:
        return parse_interests(subscriber.interests)
    except InterestError:
        # Saved before a rule tightened: fall back to trending rather than failing the chunk.
        return Profile()


@dataclass(frozen=True)
class Choice:
    """What a set of digests would hold: the candidate papers, each subscriber's window start
    (None: a first digest, which covers the latest listing) and, per digest, its papers."""

    papers: list[Paper]
    windows: dict[int, datetime | None]
    ranked: list[list[Ranked]]


def choose(digests: list[Digest]) -> Choice:
    """The papers each digest gets: inside its subscriber's window, never sent to them before,
    matched to their interests. Digests may be unsaved (the operator's preview)."""
    windows = _windows([d.subscriber_id for d in digests], [d.pk for d in digests if d.pk])
    day = latest_listing()
    papers = _candidates(windows, day)
    if not papers:
        return Choice(papers, windows, [[] for _ in digests])
    ranked = reusable_matcher_for(papers).digests(
        [_profile(d.subscriber) for d in digests],
        [d.subscriber.max_papers for d in digests],
        allowed=_allowed(digests, papers, windows, day),
    )
    return Choice(papers, windows, list(ranked))


@dataclass(frozen=True)
class Prepared:
    """What preparing stored just now, so the messages need not read it back: per digest, its
    items as stored (reason, paper id), best first; the candidate papers they name; and the
    digests whose every ranked item was stored (nearly all: see ``Storing.result``)."""

    items: dict[int, list[tuple[str, int]]]
    papers: dict[int, Paper]
    as_ranked: set[int]


class Storing:
    """The items of a chunk on their way into the database; ``result()`` waits for them. On
    PostgreSQL the server stores them (and checks their foreign keys) while the worker does
    what does not need the database: run no query before ``result()``. ``ranked`` holds the
    items of every fresh digest as ranked (reason, paper id), which is what gets stored unless
    the database leaves some out."""

    def __init__(self, fresh: list[Digest], rows: list[ItemRow], papers: list[Paper]) -> None:
        self.fresh = fresh
        self.pending = start_storing(rows)
        self.papers = {paper.pk: paper for paper in papers}
        self.ranked: dict[int, list[tuple[str, int]]] = {d.pk: [] for d in fresh}
        for digest_id, _, paper_id, _, _, reason in rows:  # best first within a digest
            self.ranked[digest_id].append((reason, paper_id))

    def result(self) -> Prepared:
        """Wait for the items, then mark the digests that got none skipped. The insert commits
        on its own: a crash before the mark leaves those digests pending without items, and
        the next attempt prepares them again."""
        stored = set(self.pending.rows())
        items = {
            digest_id: kept
            for digest_id, listed in self.ranked.items()
            if (kept := [item for item in listed if (digest_id, item[1]) in stored])
        }
        # Empty is decided by what was stored, not by what was ranked: two pending digests of
        # one subscriber prepared together (a late one and today's) rank the same papers, and
        # the (subscriber, paper) constraint keeps them for the first only. And only where
        # the digest has no items at all: another run of the same chunk may have stored them.
        empty = [d.pk for d in self.fresh if d.pk not in items]
        if empty:
            Digest.objects.filter(pk__any=empty, state=Digest.State.PENDING).exclude(
                Exists(DigestItem.objects.filter(digest=OuterRef("pk")))
            ).update(state=Digest.State.SKIPPED, error="no new paper matched")
        as_ranked = {pk for pk, kept in items.items() if len(kept) == len(self.ranked[pk])}
        return Prepared(items, self.papers, as_ranked)


def load_pending(ids: list[int]) -> list[Digest]:
    """The still-pending digests among ``ids``, with their subscribers and whether they already
    have items (``prepared``: an earlier attempt made them), in the order they are sent."""
    has_items = Exists(DigestItem.objects.filter(digest=OuterRef("pk")))
    return list(
        _pending(ids).select_related("subscriber").annotate(prepared=has_items).order_by("id")
    )


def prepare(digests: list[Digest]) -> Storing:
    """Start giving each digest without items its items (or marking it skipped when nothing
    matched); ``result()`` of what it returns finishes. ``digests`` come from
    ``load_pending``."""
    fresh = [d for d in digests if not d.prepared]  # type: ignore[attr-defined] # annotated
    if not fresh:
        return Storing([], [], [])
    choice = choose(fresh)
    papers, found = choice.papers, choice.ranked
    rows = [
        (d.pk, d.subscriber_id, papers[r.paper].pk, rank, r.score, r.reason[:500])
        for d, ranked in zip(fresh, found, strict=True)
        for rank, r in enumerate(ranked, start=1)
    ]
    return Storing(fresh, rows, papers)


ItemRow = tuple[int, int, int, int, float, str]  # digest, subscriber, paper, rank, score, reason
ITEM_FIELDS = ("digest_id", "subscriber_id", "paper_id", "rank", "score", "reason")


def start_storing(rows: list[ItemRow]) -> statement.Pending:
    """Start inserting digest items, leaving out any paper its subscriber already has and any
    digest that already has items (the same chunk prepared by two runs at once: a task handed
    out again while it still ran; the first run's items stand, and the second neither adds the
    next best papers nor empties the digest; two inserts that overlap in time both find no
    items, and the (subscriber, paper) constraint keeps what they both ranked for the first:
    only a listing or profile changed between the two rankings could add a paper). What it
    returns are the (digest, paper) pairs stored. On PostgreSQL one statement over arrays,
    which the server runs while the worker goes on (see ``statement``): ``bulk_create``
    inserts over arrays there too, but making and preparing a model instance per item cost a
    quarter of a millisecond per digest (measured in bench/delivery.py's set-up). Elsewhere
    ``bulk_create``, at once."""
    if not rows:
        return statement.Pending(rows=[])
    if connection.vendor != "postgresql":
        digests = {row[0] for row in rows}
        found = DigestItem.objects.filter(digest__in=digests).order_by()
        with transaction.atomic():  # SQLite: the write lock from the first query on
            filled = set(found.values_list("digest_id", flat=True))
            rows = [row for row in rows if row[0] not in filled]
            DigestItem.objects.bulk_create(
                [DigestItem(**dict(zip(ITEM_FIELDS, row, strict=True))) for row in rows],
                ignore_conflicts=True,
                batch_size=500,
            )
        wanted = {(row[0], row[2]) for row in rows}
        return statement.Pending(
            rows=sorted(wanted & set(found.values_list("digest_id", "paper_id")))
        )
    columns = [list(column) for column in zip(*rows, strict=True)]
    return statement.start(_insert_items_sql(), [*columns, sorted(set(columns[0]))])


@lru_cache(maxsize=1)
def _insert_items_sql() -> str:
    q = connection.ops.quote_name
    by_attname = {field.attname: field for field in DigestItem._meta.concrete_fields}
    fields = [by_attname[name] for name in ITEM_FIELDS]
    columns = ", ".join(q(field.column) for field in fields)
    arrays = ", ".join(statement.array_parameter(field) for field in fields)
    table, digest = q(DigestItem._meta.db_table), q(fields[0].column)
    # The digests that already have items: each of the chunk's digests (the last parameter)
    # looked up once, by index. As a NOT EXISTS per row, or a lookup of all at once,
    # PostgreSQL may choose to read every item in the table; a LIMIT in a LATERAL subquery
    # keeps it to one index probe per digest.
    filled = (
        f"ARRAY(SELECT wanted.id FROM unnest({statement.array_parameter(fields[0])}) "  # noqa: S608
        f"AS wanted (id), LATERAL (SELECT 1 FROM {table} WHERE {digest} = wanted.id LIMIT 1) "
        f"AS found)"
    )
    return (
        f"INSERT INTO {table} ({columns}) "  # noqa: S608 (names only)
        f"SELECT * FROM unnest({arrays}) AS new ({columns}) WHERE new.{digest} <> ALL({filled}) "
        f"ON CONFLICT DO NOTHING RETURNING {digest}, {q(fields[2].column)}"
    )


def store_items(rows: list[ItemRow]) -> set[tuple[int, int]]:
    """``start_storing`` and wait: the (digest, paper) pairs stored."""
    return {(digest, paper) for digest, paper in start_storing(rows).rows()}


# --- sending ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Accepted:
    """A digest the server has accepted, not yet recorded as sent."""

    digest: Digest
    subject: str
    size: int  # bytes of the message as sent


@lru_cache(maxsize=4)
def _advance_sql(vendor: str) -> str:
    """One UPDATE that records one digest as sent and claims the next: pending -> sending, only
    while its subscriber may still get mail (an unsubscribe that lands while the chunk is being
    prepared wins) and sending is not paused. It returns the ids it changed. The subscriber is
    looked up by its key, not found among all active subscribers (an IN over them all is what
    PostgreSQL may otherwise plan), so a claim costs the same however many subscribers there
    are. Built once per database vendor (only quoted names vary): it is sent for every digest."""
    q = connection.ops.quote_name
    digest, subscriber = q(Digest._meta.db_table), q(Subscriber._meta.db_table)
    control = q(DeliveryControl._meta.db_table)
    # Only quoted table and column names are put into the text; every value is a parameter.
    return f"""
        UPDATE {digest} SET
            {q("state")} = CASE WHEN {q("id")} = %s THEN %s ELSE %s END,
            {q("sent_at")} = CASE WHEN {q("id")} = %s THEN %s ELSE {q("sent_at")} END,
            {q("subject")} = CASE WHEN {q("id")} = %s THEN %s ELSE {q("subject")} END,
            {q("size_bytes")} = CASE WHEN {q("id")} = %s THEN %s ELSE {q("size_bytes")} END,
            {q("error")} = CASE WHEN {q("id")} = %s THEN '' ELSE {q("error")} END,
            {q("claimed_at")} = CASE WHEN {q("id")} = %s THEN {q("claimed_at")} ELSE %s END,
            {q("attempts")} = CASE WHEN {q("id")} = %s THEN {q("attempts")}
                                 ELSE {q("attempts")} + 1 END
        WHERE {q("id")} = %s
           OR ({q("id")} = %s AND {q("state")} = %s
               AND {q("subscriber_id")} = %s
               AND EXISTS (
                   SELECT 1 FROM {subscriber}
                   WHERE {q("id")} = %s AND {q("status")} = %s AND {q("suppressed_at")} IS NULL)
               AND NOT EXISTS (SELECT 1 FROM {control} WHERE {q("paused")}))
        RETURNING {q("id")}
    """  # noqa: S608


class _Advance:
    """Recording ``accepted`` as sent and claiming ``upcoming``, in one statement, started on
    the server (see ``statement``); ``claimed()`` waits for it."""

    def __init__(self, accepted: _Accepted | None, upcoming: Digest | None, now: datetime):
        done = accepted.digest.pk if accepted else None
        subject = accepted.subject[:300] if accepted else ""
        size = accepted.size if accepted else None
        self.accepted = accepted
        self.claim = upcoming.pk if upcoming else None
        owner = upcoming.subscriber_id if upcoming else None
        at = connection.ops.adapt_datetimefield_value(now)  # as the ORM stores it (SQLite: naive)
        params = [
            *(done, Digest.State.SENT.value, Digest.State.SENDING.value),
            *(done, at, done, subject, done, size, done, done, at, done),
            *(done, self.claim, Digest.State.PENDING.value),
            *(owner, owner, Subscriber.Status.CONFIRMED.value),
        ]
        self.pending = statement.start(_advance_sql(connection.vendor), params, "digest_advance")

    def claimed(self) -> bool:
        """Wait for the statement; True when ``upcoming`` was claimed."""
        changed = self.pending.first_column()
        # Failures in a row end with a delivery; the count was read with the chunk, and only a
        # subscriber who had failures needs the extra statement.
        accepted = self.accepted
        if accepted and accepted.digest.subscriber.hard_failures:
            Subscriber.objects.filter(pk=accepted.digest.subscriber_id, hard_failures__gt=0).update(
                hard_failures=0
            )
            accepted.digest.subscriber.hard_failures = 0
        return self.claim is not None and self.claim in changed


def _advance(accepted: _Accepted | None, upcoming: Digest | None, now: datetime) -> bool:
    """Record ``accepted`` as sent and claim ``upcoming``, in one statement; True when
    ``upcoming`` was claimed. Either may be None."""
    return _Advance(accepted, upcoming, now).claimed()


def _permanent(error: Exception) -> bool:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        return all(code >= 500 for code in codes)
    if isinstance(error, smtplib.SMTPResponseException):
        return error.smtp_code >= 500
    return isinstance(error, DigestTooLarge)


# Errors that a later attempt may not meet: the server down, slow or answering 4xx.
TRANSIENT = (smtplib.SMTPException, ConnectionError, socket.timeout, OSError)


def _transient(error: Exception) -> bool:
    return isinstance(error, TRANSIENT)


def _fail(digest: Digest, error: Exception) -> None:
    """Mark ``digest`` failed and let its papers go: a digest the server refused for good (or
    too large to send) did not reach its reader, so its papers are not theirs (a subscriber
    never gets a paper twice, and is not to miss one either) and the next digest may carry
    them: its window starts at the last digest that did not fail. A digest given up on after
    the retry window (``expire_stale_pending``) keeps its items: an attempt that timed out
    after the message was handed over may have arrived."""
    with transaction.atomic():
        Digest.objects.filter(pk=digest.pk).update(
            state=Digest.State.FAILED, error=f"{type(error).__name__}: {error}"[:2000]
        )
        DigestItem.objects.filter(digest=digest).delete()
    if not isinstance(error, smtplib.SMTPRecipientsRefused):
        # Only the recipient's own server refusing the address counts against it: a refused
        # sender, a rejected message or a too-large digest says nothing about the mailbox.
        return
    Subscriber.objects.filter(pk=digest.subscriber_id).update(hard_failures=F("hard_failures") + 1)
    digest.subscriber.hard_failures += 1  # a later delivery in this chunk then clears it
    Subscriber.objects.filter(
        pk=digest.subscriber_id,
        suppressed_at__isnull=True,
        hard_failures__gte=settings.SUPPRESS_AFTER_HARD_FAILURES,
    ).update(suppressed_at=timezone.now())


def _give_back(digest: Digest, error: Exception) -> None:
    Digest.objects.filter(pk=digest.pk, state=Digest.State.SENDING).update(
        state=Digest.State.PENDING, claimed_at=None, error=f"retrying: {error}"[:2000]
    )


Built = DkimEmailMultiAlternatives | Exception


def _build(content: DigestContent, smtp: Any) -> Built:
    """The message, serialized; or what went wrong building it (handled once it is known
    whether the digest was claimed)."""
    try:
        return build_digest_message(content, connection=smtp)
    except Exception as error:
        return error


def _send(digest: Digest, built: Built, smtp: Any, result: ChunkResult) -> _Accepted | None:
    """Send one claimed digest; what to record when the server accepted it, None when it failed
    for good (recorded). Transient errors give the claim back and are raised."""
    try:
        if isinstance(built, Exception):
            raise built
        built.send()
    except Exception as error:
        if _permanent(error):
            _fail(digest, error)
            result.failed += 1
            return None
        _give_back(digest, error)
        if _transient(error):
            raise TransientDeliveryError(str(error)) from error
        raise
    result.sent += 1
    return _Accepted(digest, str(built.subject), len(built.freeze().data))


def _not_claimed(digest: Digest, result: ChunkResult) -> bool:
    """After a claim failed: False when sending was paused (stop the chunk), else go on with
    the next digest. This one is skipped when its subscriber is no longer active; a pause
    lifted meanwhile leaves it pending for the planner."""
    if sending_paused():
        return False
    skipped = (
        Digest.objects.filter(pk=digest.pk, state=Digest.State.PENDING)
        .exclude(subscriber__in=Subscriber.objects.filter(active_subscribers()))
        .update(state=Digest.State.SKIPPED, error="subscriber no longer active")
    )
    result.not_active += skipped
    return True


def send_all(ready: list[Digest], contents: list[DigestContent], smtp: Any) -> ChunkResult:
    """Claim, send and record the digests one by one over ``smtp``. Each message is built while
    the database records the previous one and claims it; it goes out only once the claim is
    confirmed."""
    result = ChunkResult()
    accepted: _Accepted | None = None
    try:
        for digest, content in zip(ready, contents, strict=True):
            if not settings.SENDING_ENABLED:
                break
            advance = _Advance(accepted, digest, timezone.now())
            try:
                built = _build(content, smtp)
            finally:
                claimed = advance.claimed()
            # Recorded: until the statement is known to have run, the finally below records
            # the previous digest again (the same update, harmless twice).
            accepted = None
            if not claimed:
                if _not_claimed(digest, result):
                    continue
                break
            accepted = _send(digest, built, smtp, result)
    finally:
        # The last accepted digest is recorded on the way out, also when a later one failed.
        if accepted is not None:
            _advance(accepted, None, timezone.now())
    return result


def _pending(ids: list[int]) -> QuerySet[Digest]:
    return Digest.objects.filter(pk__any=ids, state=Digest.State.PENDING)


def _share_subscribers(digests: list[Digest]) -> None:
    """One instance per subscriber among ``digests`` (a subscriber may have two in a chunk: a
    late one and today's), so what sending one learns about them holds for the other."""
    shared: dict[int, Subscriber] = {}
    for digest in digests:
        digest.subscriber = shared.setdefault(digest.subscriber_id, digest.subscriber)


def _contents(
    ready: list[Digest], early: list[DigestContent], prepared: Prepared
) -> list[DigestContent]:
    """What each ready digest shows: as made while its items were stored when they were all
    stored, else (an item left out, or made by an earlier attempt) made now."""
    made = {content.digest_id: content for content in early}
    redo = [d for d in ready if d.pk not in prepared.as_ranked]
    if redo:
        # Read from the database: what this run stored may be only part of what is there
        # (another run of the chunk stored the rest), or nothing (an earlier attempt did).
        for content in contents_for(redo, known={}, papers=prepared.papers):
            made[content.digest_id] = content
    return [made[d.pk] for d in ready]


def process_chunk(digest_ids: list[int]) -> ChunkResult:
    """Prepare and send the still-pending digests among ``digest_ids``."""
    if sending_paused():
        _pending(digest_ids).update(enqueued_at=None)  # queued again once sending resumes
        return ChunkResult()
    # The lease of a queued chunk counts from its latest start, so a task that waited in the
    # queue or is retrying is not queued a second time by the planner.
    _pending(digest_ids).update(enqueued_at=timezone.now())
    digests = load_pending(digest_ids)
    storing = prepare(digests)
    try:
        # While the server stores the items: the messages' contents as ranked, which need no
        # query (contents_for reads only what it is not given).
        early = contents_for(storing.fresh, known=storing.ranked, papers=storing.papers)
    finally:
        prepared = storing.result()
    ready_ids = [d.pk for d in digests]
    still = set(_pending(ready_ids).values_list("id", flat=True))
    ready = [d for d in digests if d.pk in still]
    if not ready:
        return ChunkResult(skipped=len(digests))
    _share_subscribers(ready)
    contents = _contents(ready, early, prepared)
    smtp = get_connection()
    try:
        smtp.open()
        result = send_all(ready, contents, smtp)
    except (TransientDeliveryError, *TRANSIENT) as error:
        # Every digest of the chunk still pending now waits for a retry: record why on each
        # (the one in flight already says), so SMTP_RETRY_WINDOW_MINUTES bounds them all.
        _pending(ready_ids).filter(error="").update(error=f"retrying: {error}"[:2000])
        if isinstance(error, TransientDeliveryError):
            raise
        raise TransientDeliveryError(str(error)) from error
    finally:
        try:
            smtp.close()
        except Exception:
            log.debug("closing the SMTP connection failed", exc_info=True)
    if sending_paused():
        # Stopped for a pause: what is left goes back to the planner, which queues it again
        # as soon as sending resumes (not a lease later).
        _pending(ready_ids).update(enqueued_at=None)
    result.skipped = len(digests) - len(ready)
    return result


def expire_stale_pending(now: datetime) -> int:
    """Digests still pending after the retry window failed for transient reasons: give up.
    Their items stay (see ``_fail``)."""
    cutoff = now - timedelta(minutes=settings.SMTP_RETRY_WINDOW_MINUTES)
    return (
        Digest.objects.filter(state=Digest.State.PENDING, created_at__lt=cutoff)
        .exclude(error="")
        .update(state=Digest.State.FAILED, error=Concat(Value("gave up: "), F("error")))
    )
