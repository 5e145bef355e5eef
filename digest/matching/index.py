"""A BM25 index over a set of candidate papers, as sparse matrices ready for batch scoring.

Each paper becomes one row of weights over a vocabulary of stemmed words and adjacent-word
pairs. Title and abstract are separate BM25 fields, the title weighing ``TITLE_WEIGHT`` times
more; pairs add a phrase/proximity bonus. Scoring many interest profiles is then a sparse
matrix product (see ``score.py``), not a loop over (profile, paper) pairs.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from digest.matching.text import pairs, terms

K1 = 1.2
B = 0.75
TITLE_WEIGHT = 2.5
PAIR_WEIGHT = 0.6


@dataclass(frozen=True)
class PaperText:
    """What matching needs of a paper (the database layer fills it in)."""

    key: object
    title: str
    abstract: str
    upvotes: int | None = None


def _field_terms(text: str) -> Counter[str]:
    sequence = terms(text)
    return Counter(sequence) + Counter(pairs(sequence))


class PaperIndex:
    """BM25 weights (papers x terms), term presence, and what is needed to normalize scores."""

    def __init__(self, papers: Sequence[PaperText]) -> None:
        self.papers = list(papers)
        titles = [_field_terms(p.title) for p in self.papers]
        abstracts = [_field_terms(p.abstract) for p in self.papers]
        self.vocabulary: dict[str, int] = {}
        for counter in (*titles, *abstracts):
            for term in counter:
                self.vocabulary.setdefault(term, len(self.vocabulary))
        self.size = len(self.papers)
        title_tf = self._matrix(titles)
        abstract_tf = self._matrix(abstracts)
        self.presence = ((title_tf + abstract_tf) > 0).astype(np.float32).tocsr()
        df = np.asarray(self.presence.sum(axis=0)).ravel()
        self.idf = self._idf(df)
        weights = (
            TITLE_WEIGHT * self._saturate(title_tf, titles) + self._saturate(abstract_tf, abstracts)
        ).tocsr()
        # No term may count for more than an ideal mention (once in the title, once in the
        # abstract): repeating a common word cannot make up for a missing distinctive one.
        weights.data = np.minimum(weights.data, TITLE_WEIGHT + 1.0)
        self.weights = (weights @ sp.diags(self.idf)).astype(np.float32).tocsr()
        self.upvotes = np.array([p.upvotes or 0 for p in self.papers], dtype=np.float32)

    def _matrix(self, counters: list[Counter[str]]) -> sp.csr_matrix:
        rows, cols, vals = [], [], []
        for row, counter in enumerate(counters):
            for term, count in counter.items():
                rows.append(row)
                cols.append(self.vocabulary[term])
                vals.append(count)
        shape = (self.size, len(self.vocabulary))
        return sp.csr_matrix((np.array(vals, dtype=np.float32), (rows, cols)), shape=shape)

    def _saturate(self, tf: sp.csr_matrix, counters: list[Counter[str]]) -> sp.csr_matrix:
        """BM25's term-frequency saturation with length normalization, per field."""
        lengths = np.array([sum(c.values()) for c in counters], dtype=np.float32)
        average = float(lengths.mean()) if self.size and lengths.mean() > 0 else 1.0
        norm = K1 * (1 - B + B * lengths / average)
        out = tf.tocoo(copy=True)
        out.data = out.data * (K1 + 1) / (out.data + norm[out.row])
        return out.tocsr()

    def _idf(self, df: np.ndarray) -> np.ndarray:
        n = max(self.size, 1)
        return np.log(1.0 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)

    def idf_of(self, term: str) -> float:
        """IDF of a term; one no paper has gets the highest IDF a term could have."""
        column = self.vocabulary.get(term)
        if column is not None:
            return float(self.idf[column])
        n = max(self.size, 1)
        return math.log(1.0 + (n + 0.5) / 0.5)

    def ideal(self, term: str) -> float:
        """What one occurrence in the title and one in the abstract contribute (at average
        field lengths): the yardstick scores are normalized by."""
        return self.idf_of(term) * (TITLE_WEIGHT + 1.0)
