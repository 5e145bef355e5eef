"""``manage.py match`` and the database side of matching (candidates, stored embeddings)."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from digest.ingest.run import IngestOptions, ingest_path
from digest.matching import semantic, service
from digest.matching.interests import parse_interests
from digest.matching.service import candidate_papers, matcher_for, preview, reusable_matcher_for
from digest.models import Paper, PaperEmbedding, TopicEmbedding
from tests.conftest import SEED, require

FED = "FedD2S: Personalized Data-Free Federated Knowledge Distillation"


def match(*args: str) -> str:
    out = io.StringIO()
    call_command("match", *args, stdout=out)
    return out.getvalue()


def test_match_on_a_dump_with_the_lexical_core_prints_json() -> None:
    found = json.loads(
        match(
            "--interests",
            "federated learning",
            "--dump",
            str(SEED),
            "--lexical",
            "--json",
            "--top",
            "0",
        )
    )
    assert len(found) == 94
    assert {"title", "score", "included", "reason"} <= set(found[0])
    assert found[0]["title"] == FED and found[0]["included"]
    assert found[0]["reason"] == "matched: federated learning"
    assert [f["score"] for f in found] == sorted((f["score"] for f in found), reverse=True)
    assert sum(f["included"] for f in found) <= 10


def test_match_prints_a_table() -> None:
    output = match(
        "--interests", "mixture of experts", "--dump", str(SEED), "--lexical", "--top", "5"
    )
    assert "94 candidates, lexical" in output and "Mixture-of-Experts" in output


@pytest.mark.django_db
def test_match_on_stored_papers_by_listing(today_2026: Any) -> None:
    ingest_path(SEED, IngestOptions(source="test"))
    found = json.loads(
        match(
            "--interests", "graph neural networks", "--listing", "2026-03-11", "--lexical", "--json"
        )
    )
    assert found[0]["title"] == "Evaluating Deep Graph Neural Networks"
    assert found[0]["paper_id"] and found[0]["included"]
    with pytest.raises(CommandError, match="no candidate papers"):
        match("--interests", "x ray", "--listing", "2020-01-01", "--lexical")


@pytest.mark.parametrize(
    ("interests", "message"), [("the, of", "no words"), ("-survey", "Only exclusions")]
)
def test_match_refuses_a_profile_that_cannot_match(interests: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        match(f"--interests={interests}", "--dump", str(SEED))


@pytest.mark.django_db
def test_preview_of_the_latest_listing(today_2026: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMANTIC_MATCHING", "off")
    assert preview("federated learning", 5).papers == []
    ingest_path(SEED, IngestOptions(source="test"))
    shown = preview("federated learning", 5)
    assert shown.listing is not None and shown.listing.isoformat() == "2026-03-11"
    assert [p.title for p, _ in shown.papers] == [FED] and shown.candidates == 94


# --- the semantic extra (installed in CI) ----------------------------------------------------


@pytest.fixture
def semantic_extra() -> None:
    require(semantic.available(), "the semantic extra (pip install '.[semantic]')")


def test_hybrid_finds_what_words_alone_miss(semantic_extra: None) -> None:
    args = ["--interests", "code generation with LLMs", "--dump", str(SEED), "--json"]
    lexical = json.loads(match(*args, "--lexical"))
    hybrid = json.loads(match(*args))
    codegen = "CodeGen2: Lessons for Training LLMs on Programming and Natural Languages"
    assert codegen not in [f["title"] for f in lexical if f["included"]]
    assert codegen in [f["title"] for f in hybrid if f["included"]]


@pytest.mark.django_db
def test_embeddings_are_computed_once_and_kept(semantic_extra: None, today_2026: Any) -> None:
    ingest_path(SEED, IngestOptions(source="test"))
    papers = candidate_papers()
    matcher = matcher_for(papers)
    assert PaperEmbedding.objects.count() == 94
    stored = {e.paper_id: bytes(e.vector) for e in PaperEmbedding.objects.all()}
    matcher.rank(parse_interests("Bayesian deep learning"), 5)
    assert TopicEmbedding.objects.filter(text="Bayesian deep learning").exists()
    assert all(e.passages for e in PaperEmbedding.objects.all())
    first = matcher.rank(parse_interests("Bayesian deep learning"), 5)
    again = matcher_for(papers)
    assert {e.paper_id: bytes(e.vector) for e in PaperEmbedding.objects.all()} == stored
    # Computed now or read back later, a paper scores the same.
    assert again.rank(parse_interests("Bayesian deep learning"), 5) == first


def _fake_vectors(text: str, count: int) -> np.ndarray:
    """Stands in for the model: unit vectors that follow from the text alone."""
    rows = np.random.default_rng(sum(map(ord, text)) % 1000).normal(
        size=(count, semantic.DIMENSIONS)
    )
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _fake_embed_papers(calls: list[int]) -> Any:
    """``semantic.embed_papers`` without the model: three passages a paper, counted."""

    def embed_papers(papers: Any) -> Any:
        calls.append(len(papers))
        passages = [_fake_vectors(title, 3) for title, _abstract in papers]
        return np.stack([rows[0] for rows in passages]), passages

    return embed_papers


@pytest.mark.django_db
def test_embeddings_kept_from_before_passages_get_their_passages(
    today_2026: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest_path(SEED, IngestOptions(source="test"))
    papers = candidate_papers()[:6]
    calls: list[int] = []
    monkeypatch.setattr(semantic, "embed_papers", _fake_embed_papers(calls))
    old_vector = semantic.to_bytes(np.ones(semantic.DIMENSIONS, dtype=np.float32) / 20)
    for paper in papers[:4]:  # as stored before passages were embedded
        PaperEmbedding.objects.create(paper=paper, model=semantic.MODEL_NAME, vector=old_vector)
    vectors = service.paper_vectors(papers)
    assert calls == [6]  # 4 without passages, 2 without any row: one batch
    rows = {e.paper_id: e for e in PaperEmbedding.objects.all()}
    assert len(rows) == 6 and all(e.passages for e in rows.values())
    assert all(bytes(rows[p.pk].vector) == old_vector for p in papers[:4])  # left as they were
    assert vectors.whole.shape == (6, semantic.DIMENSIONS)
    assert vectors.passages.shape == (18, semantic.DIMENSIONS)
    assert vectors.starts.tolist() == [0, 3, 6, 9, 12, 15]
    again = service.paper_vectors(papers)
    assert calls == [6]  # nothing computed twice
    np.testing.assert_array_equal(again.passages, vectors.passages)
    np.testing.assert_array_equal(again.whole, vectors.whole)


# --- the matcher a worker keeps from one chunk to the next ----------------------------------


@pytest.fixture
def stored_papers(today_2026: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("SEMANTIC_MATCHING", "off")
    monkeypatch.setattr(service, "_kept", None)
    ingest_path(SEED, IngestOptions(source="test"))
    return candidate_papers


@pytest.mark.django_db
def test_kept_matcher_is_reused_while_the_candidates_are_unchanged(stored_papers: Any) -> None:
    first = reusable_matcher_for(stored_papers())
    assert reusable_matcher_for(stored_papers()) is first  # reloaded, same papers: same matcher


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change",
    [
        "a paper added",
        "a paper removed",
        "an abstract edited",
        "a title edited",
        "upvotes changed",
    ],
)
def test_kept_matcher_is_rebuilt_when_the_candidates_change(
    stored_papers: Any, change: str
) -> None:
    papers = stored_papers()
    first = reusable_matcher_for(papers)
    target = Paper.objects.get(pk=papers[0].pk)
    if change == "a paper added":
        extra = Paper.objects.get(pk=papers[1].pk)
        extra.pk, extra.key, extra.title_key = None, "title:new", "new"
        extra.title = "Federated learning on phones"
        extra.save()
    elif change == "a paper removed":
        target.delete()
    elif change == "an abstract edited":
        Paper.objects.filter(pk=target.pk).update(abstract="Federated learning, rewritten.")
    elif change == "a title edited":
        Paper.objects.filter(pk=target.pk).update(title="Graph neural networks, renamed")
    else:
        Paper.objects.filter(pk=target.pk).update(upvotes=(target.upvotes or 0) + 100)
    changed = stored_papers()
    second = reusable_matcher_for(changed)
    assert second is not first
    assert [p.key for p in second.index.papers] == [p.pk for p in changed]
    fresh = matcher_for(changed)
    profile = parse_interests("federated learning, graph neural networks")
    assert second.rank(profile, 10) == fresh.rank(profile, 10)


@pytest.mark.django_db
def test_kept_matcher_is_rebuilt_when_the_semantic_setting_changes(
    stored_papers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    papers = stored_papers()
    # As if the extra were installed, without loading the model: what is built is recorded.
    monkeypatch.setattr(service, "use_semantic", lambda requested=None: bool(requested))
    built: list[bool | None] = []
    real_matcher_for = service.matcher_for

    def recording_matcher_for(papers: Any, *, semantic_on: bool | None = None) -> Any:
        built.append(semantic_on)
        return real_matcher_for(papers, semantic_on=False)

    monkeypatch.setattr(service, "matcher_for", recording_matcher_for)
    lexical = reusable_matcher_for(papers, semantic_on=False)
    assert reusable_matcher_for(papers, semantic_on=False) is lexical
    hybrid = reusable_matcher_for(papers, semantic_on=True)
    assert hybrid is not lexical
    assert reusable_matcher_for(papers, semantic_on=True) is hybrid
    assert reusable_matcher_for(papers, semantic_on=False) is not hybrid
    assert built == [False, True, False]


@pytest.mark.django_db
def test_kept_matcher_forgets_its_topics_beyond_the_limit(
    stored_papers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "TOPIC_CACHE_LIMIT", 5)
    papers = stored_papers()
    matcher = reusable_matcher_for(papers)
    profiles = [parse_interests(f"topic number {n}") for n in range(8)]
    before = [matcher.rank(p, 5) for p in profiles]
    assert len(matcher._topics) == 8
    assert reusable_matcher_for(papers) is matcher
    assert len(matcher._topics) == 0  # bounded: memory does not grow with the subscribers
    assert [matcher.rank(p, 5) for p in profiles] == before


@pytest.mark.django_db
def test_after_an_ingest_recent_papers_without_passages_are_embedded(
    today_2026: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest_path(SEED, IngestOptions(source="test"))
    calls: list[int] = []
    monkeypatch.setattr(semantic, "embed_papers", _fake_embed_papers(calls))
    monkeypatch.setattr(semantic, "available", lambda: True)
    papers = candidate_papers()
    service.paper_vectors(papers[:10])
    PaperEmbedding.objects.filter(paper__in=papers[:3]).update(passages=None)
    assert service.embed_recent_papers(days=100_000) == 94 - 10 + 3
    assert not PaperEmbedding.objects.filter(passages__isnull=True).exists()
    assert service.embed_recent_papers(days=100_000) == 0


@pytest.mark.django_db
def test_a_preview_never_waits_for_sentences_to_be_embedded(
    today_2026: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest_path(SEED, IngestOptions(source="test"))
    papers = candidate_papers()
    calls: list[int] = []
    monkeypatch.setattr(semantic, "embed_papers", _fake_embed_papers(calls))
    monkeypatch.setattr(semantic, "available", lambda: True)
    service.paper_vectors(papers[:50])  # half the listing embedded with its sentences
    PaperEmbedding.objects.filter(paper__in=papers[:10]).update(passages=None)  # as before 0007
    wholes: list[int] = []

    def embed(texts: Any) -> np.ndarray:
        wholes.append(len(texts))
        found = [_fake_vectors(t, 1)[0] for t in texts]
        return np.array(found, dtype=np.float32).reshape(-1, semantic.DIMENSIONS)

    monkeypatch.setattr(semantic, "embed", embed)
    monkeypatch.setattr(service, "topic_vectors", lambda texts: {t: embed([t])[0] for t in texts})
    calls.clear()
    shown = preview("federated learning", 5)
    assert shown.candidates == 94
    assert calls == []  # no sentences embedded in the request
    assert wholes[0] == 44  # only the papers with no embedding at all, embedded whole
    assert PaperEmbedding.objects.count() == 94
    assert PaperEmbedding.objects.filter(passages__isnull=True).count() == 10 + 44
    # A paper without its sentences scores by its whole embedding alone.
    vectors = service.paper_vectors(papers[:12], embed_passages=False)
    np.testing.assert_array_equal(vectors.passages[:10], vectors.whole[:10])
    assert vectors.starts.tolist()[:11] == list(range(11))
    # The digest run (or the task after an ingest) stores the missing sentences.
    service.paper_vectors(papers)
    assert not PaperEmbedding.objects.filter(passages__isnull=True).exists()
