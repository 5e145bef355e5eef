"""The database side of matching: which papers are candidates, their cached embeddings, and a
ready ``Matcher``. The pure core (``index``, ``score``) never touches the database."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import numpy as np
from django.db.models import Max, Q
from django.utils import timezone

from digest.matching import semantic
from digest.matching.index import PaperIndex, PaperText
from digest.matching.interests import parse_interests
from digest.matching.score import Matcher, Ranked
from digest.models import Paper, PaperEmbedding, TopicEmbedding

log = logging.getLogger(__name__)

CANDIDATE_FIELDS = (
    "id",
    "title",
    "abstract",
    "upvotes",
    "listing_date",
    "arxiv_id",
    "url_page",
    "url_abs",
    "url_code",
)


def latest_listing() -> date | None:
    return Paper.objects.aggregate(latest=Max("listing_date"))["latest"]


def candidate_papers(*, listing: date | None = None, since: date | None = None) -> list[Paper]:
    """Papers of one listing (default: the latest), or first seen since a day."""
    papers = Paper.objects.only(*CANDIDATE_FIELDS).order_by("id")
    if since is not None:
        start = timezone.make_aware(datetime.combine(since, time.min))
        return list(papers.filter(first_seen__gte=start))
    day = listing or latest_listing()
    return list(papers.filter(listing_date=day)) if day else []


def texts_of(papers: Sequence[Paper]) -> list[PaperText]:
    return [
        PaperText(key=p.pk, title=p.title, abstract=p.abstract, upvotes=p.upvotes) for p in papers
    ]


def paper_vectors(papers: Sequence[Paper], *, embed_passages: bool = True) -> semantic.PaperVectors:
    """Stored embeddings of ``papers`` (whole paper and passages); the missing ones are
    computed now and kept.

    Embedding a paper's sentences takes several times longer than embedding it whole. A web
    request (the signup preview) passes ``embed_passages=False``: a paper whose sentences are
    not stored yet then stands in for them with its whole embedding (its similarity is the
    whole paper's), and only the whole embeddings that are missing are computed; the task
    that runs after each ingest, or the next digest, stores the sentences."""
    ids = [p.pk for p in papers]
    rows = {
        e.paper_id: e
        for e in PaperEmbedding.objects.filter(paper_id__in=ids, model=semantic.MODEL_NAME)
    }
    whole = {i: semantic.from_bytes(bytes(e.vector)) for i, e in rows.items()}
    parts = {
        i: semantic.passages_from_bytes(bytes(e.passages))
        for i, e in rows.items()
        if e.passages is not None
    }
    if embed_passages:
        _embed_with_passages([p for p in papers if p.pk not in parts], rows, whole, parts)
    else:
        _embed_whole([p for p in papers if p.pk not in whole], whole)
        parts.update({i: whole[i][None, :] for i in ids if i not in parts})
    return semantic.PaperVectors.of(
        np.stack([whole[i] for i in ids]) if ids else np.zeros((0, semantic.DIMENSIONS)),
        [parts[i] for i in ids],
    )


def _embed_with_passages(
    missing: Sequence[Paper],
    rows: dict[int, PaperEmbedding],
    whole: dict[int, np.ndarray],
    parts: dict[int, np.ndarray],
) -> None:
    if not missing:
        return
    vectors, passages = semantic.embed_papers([(p.title, p.abstract) for p in missing])
    new, old = [], []
    for paper, vector, rows_of in zip(missing, vectors, passages, strict=True):
        # Read back as stored, so that a paper scores the same now as on the next run.
        blob = semantic.passages_to_bytes(rows_of)
        parts[paper.pk] = semantic.passages_from_bytes(blob)
        stored = rows.get(paper.pk)
        if stored is None:
            whole[paper.pk] = vector
            new.append(
                PaperEmbedding(
                    paper_id=paper.pk,
                    model=semantic.MODEL_NAME,
                    vector=semantic.to_bytes(vector),
                    passages=blob,
                )
            )
        else:  # kept from before passages were embedded: its whole vector stands
            stored.passages = blob
            old.append(stored)
    PaperEmbedding.objects.bulk_create(new, ignore_conflicts=True, batch_size=500)
    PaperEmbedding.objects.bulk_update(old, ["passages"], batch_size=500)


def _embed_whole(missing: Sequence[Paper], whole: dict[int, np.ndarray]) -> None:
    if not missing:
        return
    vectors = semantic.embed([semantic.paper_text(p.title, p.abstract) for p in missing])
    PaperEmbedding.objects.bulk_create(
        [
            PaperEmbedding(paper_id=p.pk, model=semantic.MODEL_NAME, vector=semantic.to_bytes(v))
            for p, v in zip(missing, vectors, strict=True)
        ],
        ignore_conflicts=True,
        batch_size=500,
    )
    whole.update({p.pk: v for p, v in zip(missing, vectors, strict=True)})


def topic_vectors(texts: Sequence[str]) -> dict[str, np.ndarray]:
    """Stored embeddings of topic texts; missing ones are computed now and kept."""
    wanted = list(dict.fromkeys(t[:500] for t in texts))
    found = {
        e.text: semantic.from_bytes(bytes(e.vector))
        for e in TopicEmbedding.objects.filter(text__in=wanted, model=semantic.MODEL_NAME)
    }
    missing = [t for t in wanted if t not in found]
    if missing:
        vectors = semantic.embed(missing)
        TopicEmbedding.objects.bulk_create(
            [
                TopicEmbedding(text=t, model=semantic.MODEL_NAME, vector=semantic.to_bytes(v))
                for t, v in zip(missing, vectors, strict=True)
            ],
            ignore_conflicts=True,
            batch_size=500,
        )
        found.update(zip(missing, vectors, strict=True))
    return found


class StoredEmbeddingScorer(semantic.EmbeddingScorer):
    """Like ``EmbeddingScorer``, but topic embeddings come from (and go to) the database."""

    def topic_similarity(self, topics: Sequence[str]) -> np.ndarray:
        unknown = [t for t in dict.fromkeys(topics) if t not in self.cache]
        if unknown:
            self.cache.update(topic_vectors(unknown))
        return super().topic_similarity(topics)


def embed_recent_papers(days: int = 14, limit: int = 5000) -> int:
    """Compute the missing embeddings of recently seen papers (after an ingest)."""
    if not semantic.available():
        return 0
    since = timezone.now() - timedelta(days=days)
    papers = list(
        Paper.objects.filter(first_seen__gte=since)
        .filter(Q(embedding__isnull=True) | Q(embedding__passages__isnull=True))
        .only("id", "title", "abstract")
        .order_by("-first_seen")[:limit]
    )
    paper_vectors(papers)
    return len(papers)


def embed_profile(interests: str) -> None:
    """Compute and keep the embeddings of a profile's topics (when a profile is saved)."""
    if semantic.available():
        topic_vectors([t.text for t in parse_interests(interests).topics])


def use_semantic(requested: bool | None = None) -> bool:
    return semantic.available() if requested is None else requested and semantic.available()


def matcher_for(
    papers: Sequence[Paper], *, semantic_on: bool | None = None, embed_passages: bool = True
) -> Matcher:
    index = PaperIndex(texts_of(papers))
    scorer = None
    if use_semantic(semantic_on):
        scorer = StoredEmbeddingScorer(paper_vectors(papers, embed_passages=embed_passages))
    return Matcher(index, semantic=scorer)


# A worker sends chunk after chunk against the same candidate papers; building their index is
# the costliest step of matching, so the last matcher is kept for the next chunk. What it caches
# per topic is bounded, so a worker's memory does not grow with the number of subscribers.
TOPIC_CACHE_LIMIT = 5000


@dataclass
class _KeptMatcher:
    key: str
    matcher: Matcher


_kept: _KeptMatcher | None = None


def candidates_key(papers: Sequence[Paper], semantic_on: bool) -> str:
    """Names the candidate set by everything an index is built from: the papers, their text
    and upvotes, and whether the semantic score is mixed in. Any change makes a new key."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"semantic={semantic_on};model={semantic.MODEL_NAME}".encode())
    for paper in papers:
        fields = (str(paper.pk), paper.title, paper.abstract, str(paper.upvotes))
        digest.update("\x1f".join(fields).encode("utf-8", "surrogatepass") + b"\x1e")
    return digest.hexdigest()


def reusable_matcher_for(papers: Sequence[Paper], *, semantic_on: bool | None = None) -> Matcher:
    """Like ``matcher_for``, but the same matcher again while the candidate set is unchanged."""
    global _kept
    on = use_semantic(semantic_on)
    key = candidates_key(papers, on)
    if _kept is not None and _kept.key == key:
        _kept.matcher.forget_topics(TOPIC_CACHE_LIMIT)
        scorer = _kept.matcher.semantic
        if isinstance(scorer, StoredEmbeddingScorer):
            scorer.forget(TOPIC_CACHE_LIMIT)
        return _kept.matcher
    _kept = None  # the old index can go before the new one is built
    _kept = _KeptMatcher(key, matcher_for(papers, semantic_on=on))
    return _kept.matcher


@dataclass(frozen=True)
class Preview:
    listing: date | None
    papers: list[tuple[Paper, Ranked]]
    candidates: int


def preview(interests: str, max_papers: int) -> Preview:
    """What the latest listing would have sent to someone with these interests."""
    day = latest_listing()
    papers = candidate_papers(listing=day)
    if not papers:
        return Preview(day, [], 0)
    # A web request: it never waits for a listing's sentences to be embedded.
    matcher = matcher_for(papers, embed_passages=False)
    ranked = matcher.rank(parse_interests(interests), max_papers)
    return Preview(day, [(papers[r.paper], r) for r in ranked if r.included], len(papers))
