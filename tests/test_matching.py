"""The pure matching core: language, ranking, inclusion, reasons, and batch == single."""

from __future__ import annotations

import numpy as np
import pytest

from digest.matching import semantic
from digest.matching.index import PaperIndex, PaperText
from digest.matching.interests import parse_interests
from digest.matching.score import HYBRID_FLOOR, MIN_CANDIDATES_FOR_OUTLIERS, Matcher
from digest.matching.text import alternatives, terms

FILLER = [
    ("Protein folding at scale", "We fold proteins with score-based generators on cryo data."),
    ("A benchmark for robot grasping", "Robots grasp household objects in cluttered scenes."),
    ("Speech enhancement in noisy rooms", "Denoising speech recorded in reverberant rooms."),
    ("Sparse attention for long documents", "Attention over long documents with sparsity."),
    ("Causal discovery from time series", "Granger causality and beyond for sensor data."),
    ("Weather forecasting at kilometre scale", "A global model forecasts weather and climate."),
    ("Image segmentation with few labels", "Semi-supervised segmentation of medical scans."),
    ("Tabular data generation", "Generating realistic tables for privacy-preserving release."),
]


def paper(title: str, abstract: str, upvotes: int | None = None) -> PaperText:
    return PaperText(key=title, title=title, abstract=abstract, upvotes=upvotes)


def matcher(*papers: PaperText, filler: int = 8) -> Matcher:
    rest = [paper(t, a) for t, a in FILLER[:filler]]
    return Matcher(PaperIndex([*papers, *rest]))


def titles(m: Matcher, interests: str, limit: int = 10) -> list[str]:
    ranked = m.rank(parse_interests(interests), limit)
    return [m.index.papers[r.paper].title for r in ranked if r.included]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("quantize", ["quantiz"]),
        ("quantization", ["quantiz"]),
        ("quantized", ["quantiz"]),
        ("LLMs", ["llm"]),
        ("llms", ["llm"]),
        ("GNNs and VLMs", ["gnn", "vlm"]),
        ("wider, deeper, smaller, bigger, easiest", ["wide", "deep", "small", "big", "easi"]),
        ("better", ["good"]),
        ("transformers and layers", ["transform", "layer"]),
        ("mixture-of-experts", ["mixtur", "expert"]),
        ("the state of the art", ["state", "art"]),
    ],
)
def test_terms_fold_case_inflection_and_stop_words(text: str, expected: list[str]) -> None:
    assert terms(text) == expected


@pytest.mark.parametrize(
    ("text", "other"),
    [
        ("LLM", ["larg", "languag", "model"]),
        ("large language models", ["llm"]),
        ("SSM", ["state", "space", "model"]),
        ("graph neural networks", ["gnn"]),
        ("VLM", ["vision", "languag", "model"]),
        ("RL", ["reinforc", "learn"]),
        ("KD", ["knowledg", "distil"]),
        ("MLLM", ["multimod", "larg", "languag", "model"]),
    ],
)
def test_acronyms_and_expansions_match_each_other(text: str, other: list[str]) -> None:
    assert other in alternatives(terms(text))


def test_inflections_match() -> None:
    m = matcher(paper("Quantized transformers on phones", "We quantize weights to 4 bits."))
    assert titles(m, "quantization") == ["Quantized transformers on phones"]


def test_comparatives_match_their_adjective() -> None:
    m = matcher(paper("Go wider instead of deeper", "Wider layers beat deeper stacks."))
    assert titles(m, "wide vs deep") == ["Go wider instead of deeper"]


@pytest.mark.parametrize("typed", ["LLMs", "llms", "code generation with LLMs"])
def test_an_acronym_plural_typed_in_a_profile_matches_the_papers(typed: str) -> None:
    # The parser lower-cases what was typed; "LLMs" must still meet the papers' "LLM".
    code = paper("Code generation with LLMs", "An LLM writes code; LLMs generate programs.")
    m = matcher(code)
    assert titles(m, typed) == ["Code generation with LLMs"]


@pytest.mark.parametrize(
    ("interests", "title"),
    [
        ("LLM", "Scaling large language models"),
        ("large language models", "LLMs as judges"),
        ("GNN", "Graph neural networks for molecules"),
        ("state space models", "SSMs everywhere"),
    ],
)
def test_acronym_profiles_find_spelled_out_papers_and_back(interests: str, title: str) -> None:
    m = matcher(paper(title, f"{title}. We study this in depth with many experiments."))
    assert titles(m, interests) == [title]


def test_quoted_phrase_must_appear_as_a_phrase() -> None:
    together = paper("Sparse mixture of experts routing", "A mixture-of-experts router.")
    apart = paper("Experts disagree", "A mixture of opinions from several experts on data.")
    m = matcher(together, apart)
    assert titles(m, '"mixture of experts"') == ["Sparse mixture of experts routing"]


def test_exclusions_remove_papers() -> None:
    survey = paper("A survey of diffusion models", "We survey diffusion models for images.")
    method = paper("Faster diffusion models", "Diffusion models sample faster with our solver.")
    m = matcher(survey, method)
    assert set(titles(m, "diffusion models")) == {
        "A survey of diffusion models",
        "Faster diffusion models",
    }
    assert titles(m, "diffusion models -survey") == ["Faster diffusion models"]
    assert titles(m, 'diffusion models -"faster diffusion"') == ["A survey of diffusion models"]


def test_a_paper_strongly_about_one_topic_beats_one_weakly_about_several() -> None:
    strong = paper("Mamba state space models", "Mamba is a selective state space model.")
    weak = paper("Notes on systems", "We mention quantization, pruning, and federated data once.")
    m = matcher(strong, weak)
    ranked = m.rank(parse_interests("Mamba, quantization, pruning, federated learning"), 10)
    assert m.index.papers[ranked[0].paper].title == "Mamba state space models"


def test_no_mail_beats_an_irrelevant_mail() -> None:
    m = matcher(paper("Mamba state space models", "Mamba is a selective state space model."))
    assert titles(m, "knowledge graphs for drug discovery") == []


def test_included_papers_are_capped_at_the_subscriber_maximum() -> None:
    many = [
        paper(f"Diffusion model variant {i}", "Diffusion models for images and video.")
        for i in range(6)
    ]
    m = matcher(*many)
    assert len(titles(m, "diffusion models", limit=3)) == 3


def test_every_included_paper_says_why() -> None:
    m = matcher(paper("Mamba meets quantization", "We quantize Mamba state space models."))
    ranked = m.rank(parse_interests("Mamba, quantization, protein design"), 10)
    top = ranked[0]
    assert top.included and top.reason.startswith("matched: ")
    assert "Mamba" in top.reason and "quantization" in top.reason
    assert "protein design" not in top.reason


def test_empty_profile_means_top_trending_by_upvotes() -> None:
    m = matcher(paper("Popular", "An abstract.", upvotes=120), paper("Less", "Text.", upvotes=3))
    ranked = m.rank(parse_interests(""), 2)
    assert [m.index.papers[r.paper].title for r in ranked if r.included] == ["Popular", "Less"]
    assert ranked[0].reason == "top trending"


def test_small_candidate_sets_use_the_absolute_threshold() -> None:
    m = matcher(
        paper("Mamba state space models", "Mamba is a selective state space model."), filler=2
    )
    assert titles(m, "Mamba") == ["Mamba state space models"]
    assert titles(m, "protein language models") == []


def test_batch_scoring_equals_one_by_one_and_does_not_depend_on_chunks() -> None:
    m = matcher(
        paper("Mamba state space models", "Mamba is a selective state space model."),
        paper("Quantized LLMs", "We quantize large language models to 4 bits."),
        paper("Graph neural networks at scale", "GNNs on billion-edge graphs."),
    )
    texts = [
        "Mamba",
        "LLM quantization",
        "",
        "GNN -billion",
        "weather, climate",
        '"state space" -mamba',
        "protein folding, diffusion",
        "robots",
    ] * 3
    profiles = [parse_interests(t) for t in texts]
    limits = [3] * len(profiles)
    single = [[(r.paper, r.score, r.reason) for r in m.rank(p, 3) if r.included] for p in profiles]
    for chunk in (1, 5, 100):
        batch = [
            [(r.paper, r.score, r.reason) for r in found]
            for found in m.digests(profiles, limits, chunk_size=chunk)
        ]
        assert batch == single


class FakeSemantic:
    """Stands in for the embedding model: says every topic is close to paper 0."""

    def topic_similarity(self, topics: list[str]) -> np.ndarray:
        similarity = np.zeros((len(topics), 9), dtype=np.float32)
        similarity[:, 0] = 0.9
        return similarity


def test_a_reason_says_related_when_only_the_meaning_matched() -> None:
    close = paper("Programs written by language models", "Models that write software.")
    index = PaperIndex([close, *(paper(t, a) for t, a in FILLER)])
    hybrid = Matcher(index, semantic=FakeSemantic())
    ranked = hybrid.rank(parse_interests("code generation, robot grasping"), 10)
    by_title = {index.papers[r.paper].title: r.reason for r in ranked}
    assert by_title["Programs written by language models"].startswith("related to: ")
    assert "code generation" in by_title["Programs written by language models"]
    assert by_title["A benchmark for robot grasping"].startswith("matched: robot grasping")


# --- the semantic score's passages (no model needed: vectors are made up) --------------------


def test_passages_are_the_abstracts_sentences_and_the_title_when_it_has_none() -> None:
    abstract = (
        "Earth system models drift over long runs. We learn their errors from data "
        "assimilation increments. Ok. 3D turbulence is the test case!"
    )
    assert semantic.passages("Title", abstract) == [
        "Earth system models drift over long runs.",
        "We learn their errors from data assimilation increments.",
        "3D turbulence is the test case!",
    ]
    assert semantic.passages("Only a title", "") == ["Only a title"]
    many = " ".join(f"Sentence number {i} says something." for i in range(40))
    assert len(semantic.passages("T", many)) == semantic.MAX_PASSAGES


def test_paper_vectors_need_a_passage_for_every_paper() -> None:
    whole = np.eye(2, semantic.DIMENSIONS, dtype=np.float32)
    with pytest.raises(ValueError, match="at least one passage"):
        semantic.PaperVectors.of(whole, [whole[:1], whole[:0]])


def _unit(*hot: int) -> np.ndarray:
    vector = np.zeros(semantic.DIMENSIONS, dtype=np.float32)
    vector[list(hot)] = 1.0
    return vector / np.linalg.norm(vector)


def test_a_topic_scores_a_paper_by_its_whole_text_and_its_best_passage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Paper 0 is about the topic in one sentence of three; paper 1 is about it nowhere.
    papers = semantic.PaperVectors.of(
        np.stack([_unit(0, 1, 2), _unit(1, 2)]),
        [np.stack([_unit(1), _unit(0), _unit(2)]), np.stack([_unit(1), _unit(2)])],
    )
    monkeypatch.setattr(semantic, "TOPIC_BLOCK", 1)  # blocks of topics give the same rows
    scorer = semantic.EmbeddingScorer(papers, {"topic": _unit(0), "other": _unit(2)})
    similarity = scorer.topic_similarity(["topic", "other", "topic"])
    share = semantic.DOC_SHARE
    whole = 1 / np.sqrt(3)
    np.testing.assert_allclose(similarity[0], [share * whole + (1 - share) * 1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(similarity[2], similarity[0])
    np.testing.assert_allclose(
        similarity[1], [share * whole + (1 - share), share / np.sqrt(2) + (1 - share)], atol=1e-6
    )
    assert set(scorer.rows) == {"topic", "other"}
    scorer.forget(keep=1)
    assert not scorer.rows and not scorer.cache


def test_stored_passages_read_back_close_to_what_was_computed() -> None:
    rows = np.random.default_rng(1).normal(size=(5, semantic.DIMENSIONS)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    back = semantic.passages_from_bytes(semantic.passages_to_bytes(rows))
    assert back.shape == rows.shape
    np.testing.assert_allclose(back, rows, atol=1e-3)


class SpreadSemantic:
    """As with a real model, every paper is a little related to every topic (0.20-0.30);
    papers 0, 1 and 2 are much more related than the rest."""

    def topic_similarity(self, topics: list[str]) -> np.ndarray:
        similarity = np.tile(np.linspace(0.20, 0.30, 24, dtype=np.float32), (len(topics), 1))
        similarity[:, :3] = [[0.80, 0.50, 0.48]]
        return similarity


def test_with_the_semantic_score_papers_are_included_when_they_stand_out_of_the_bulk() -> None:
    standing_out = [
        paper("Programs written by language models", "Models that write software."),
        paper("Autocompletion for editors", "Suggestions while typing source files."),
        paper("Repairing bugs automatically", "Patches for failing unit tests."),
    ]
    bulk = [paper(f"{t} (part {n})", a) for n in range(3) for t, a in FILLER[:7]]
    index = PaperIndex([*standing_out, *bulk])
    assert index.size == 24 > MIN_CANDIDATES_FOR_OUTLIERS
    ranked = Matcher(index, semantic=SpreadSemantic()).rank(parse_interests("code generation"), 10)
    # All three lie far above the median of the bulk, counted in median absolute deviations;
    # a mean and standard deviation would be pulled up by the three themselves and leave the
    # last two out. None of the a-little-related bulk is included.
    assert [index.papers[r.paper].title for r in ranked if r.included] == [
        p.title for p in standing_out
    ]


class LargeListingSemantic:
    """A listing of 400 papers, as an arXiv feed holds, most unrelated to any one niche topic:
    their cosines lie below ``semantic.LOW`` (-0.3 to 0.14), so their clipped scores are all 0.
    Papers 3-32 are loosely related (0.40-0.42); papers 0-2 are about the topic (0.75) when
    ``about`` is set, loosely related too when it is not."""

    size = 400

    def __init__(self, about: bool) -> None:
        self.about = about

    def topic_similarity(self, topics: list[str]) -> np.ndarray:
        row = np.linspace(-0.30, 0.14, self.size, dtype=np.float32)
        row[:33] = np.linspace(0.40, 0.42, 33)
        if self.about:
            row[:3] = 0.75
        return np.tile(row, (len(topics), 1))


@pytest.mark.parametrize("about", [True, False])
def test_on_a_large_listing_a_zero_median_does_not_admit_everything_above_the_floor(
    about: bool,
) -> None:
    rest = [paper(f"{t} (part {n})", a) for n in range(50) for t, a in FILLER]
    index = PaperIndex(rest[: LargeListingSemantic.size])
    hybrid = Matcher(index, semantic=LargeListingSemantic(about))
    profile = parse_interests("quantum error correction")
    scores = hybrid.score([profile])[0][0]
    # What made the rule degenerate: the clipped scores' median and median absolute deviation
    # are both 0, and 30 or more loosely related papers clear the floor.
    assert np.median(scores) == 0.0 and np.median(np.abs(scores)) == 0.0
    assert (scores[:33] >= HYBRID_FLOOR).all()
    included = [r.paper for r in hybrid.rank(profile, 50) if r.included]
    # Only the papers about the topic; and when none is, nothing ("no mail beats ...").
    assert included == ([0, 1, 2] if about else [])


def test_a_paper_included_on_many_weak_topics_still_says_why() -> None:
    # Twenty topics each a little related (0.6 x 0.175 = 0.105 after rescaling): their sum
    # clears the floor, no single topic does.
    class Weak:
        def topic_similarity(self, topics: list[str]) -> np.ndarray:
            similarity = np.full((len(topics), 24), 0.10, dtype=np.float32)
            similarity[:, 0] = 0.22
            return similarity

    index = PaperIndex([paper(f"{t} (part {n})", a) for n in range(3) for t, a in FILLER])
    interests = ", ".join(f"topic{n}" for n in range(20))
    ranked = Matcher(index, semantic=Weak()).rank(parse_interests(interests), 10)
    top = ranked[0]
    assert top.included
    assert top.reason.startswith("related to: topic")
