"""Scoring interest profiles against a paper index, many profiles at once.

A profile's topics are compiled into query rows (a topic may have several: "LLM" is also
"large language model"); one sparse product scores every row against every paper, a topic keeps
its best row, and a profile its best topic plus a small share of the others, so a paper strongly
about one topic ranks above a paper weakly about several. Scores are normalized by what an
ideal paper would score for the same words, so one threshold means the same for every profile,
and a profile may well get nothing ("no mail beats an irrelevant mail").
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import numpy as np
import scipy.sparse as sp

from digest.matching.index import PAIR_WEIGHT, PaperIndex
from digest.matching.interests import Profile, Topic
from digest.matching.text import alternatives, pairs, terms

# Inclusion. Scores are normalized (1.0 = every word of a topic in the title and abstract), and a
# paper is included when it is a clear match (STRONG), or a fair match (FLOOR) that also stands
# out from the rest of the candidates for this profile (OUTLIER_Z standard deviations above
# their mean): the per-profile threshold that adapts to how broad a topic is. Too few candidates
# make a poor statistic, so small sets use SMALL_SET alone.
STRONG = 0.70
FLOOR = 0.30
OUTLIER_Z = 2.5
MIN_CANDIDATES_FOR_OUTLIERS = 20
SMALL_SET = 0.45
# With the semantic score mixed in, every paper scores something and the scores of the bulk
# spread less evenly: a paper stands out when it lies HYBRID_OUTLIER_Z median absolute
# deviations above the median (robust to the very papers that stand out), and clears
# HYBRID_FLOOR. The median and the deviations are taken over the scores with the semantic part
# not clipped at zero: on a large listing most papers are unrelated to a niche topic, and their
# clipped scores are all 0, so the median and its deviation would be 0 too and "standing out"
# would admit any paper above the floor.
HYBRID_FLOOR = 0.35
HYBRID_OUTLIER_Z = 5.0
REASON_FLOOR = 0.15  # a hybrid topic score below which a further topic is not named in a reason
OTHER_TOPICS_SHARE = 0.15
TRENDING_BOOST = 0.05
SEMANTIC_WEIGHT = 0.6
EXCLUDED = -1.0
WORDS_MATCH = 0.2  # a topic's words-only score from which its words count as "matched"
TRENDING_ONLY = 1.0  # added to the scores of an empty profile: every paper qualifies


class SemanticScorer(Protocol):
    """Cosine similarities between topic texts and the indexed papers (optional extra)."""

    def topic_similarity(self, topics: Sequence[str]) -> np.ndarray: ...


class Ranked(NamedTuple):
    """One paper for one profile (a tuple: hundreds of thousands are made per run)."""

    paper: int  # position in ``PaperIndex.papers``
    score: float
    included: bool
    reason: str


@dataclass
class _Compiled:
    """Query rows for a batch of profiles, in profile -> topic -> variant order."""

    variant_rows: list[dict[int, float]] = field(default_factory=list)
    variant_ideal: list[float] = field(default_factory=list)
    topic_first_variant: list[int] = field(default_factory=list)
    topic_required: list[dict[int, float]] = field(default_factory=list)
    topic_need: list[float] = field(default_factory=list)
    topic_label: list[str] = field(default_factory=list)
    profile_first_topic: list[int] = field(default_factory=list)
    exclusion_rows: list[dict[int, float]] = field(default_factory=list)
    exclusion_need: list[float] = field(default_factory=list)
    exclusion_owner: list[int] = field(default_factory=list)
    # The words-only topic scores, kept when the semantic score is mixed in: a reason then
    # says "matched" only for topics whose words are in the paper, "related" for the rest.
    lexical_topics: np.ndarray | None = None
    # With the semantic score mixed in: the profile scores with the semantic part not clipped
    # at zero (for the statistics of the bulk, see HYBRID_FLOOR).
    open_scores: np.ndarray | None = None


_CompiledTopic = tuple[list[tuple[dict[int, float], float]], dict[int, float], float]


def group_max(rows: np.ndarray, starts: Sequence[int] | np.ndarray, end: int) -> np.ndarray:
    """Row-wise max over consecutive groups of rows (group i = rows[starts[i]:starts[i+1]]).

    Done slot by slot (the first row of every group, then the second ...): groups are small
    (a handful of topics per profile) and numpy's reduceat is slow along axis 0.
    """
    first = np.asarray(starts, dtype=np.int64)
    sizes = np.diff(np.append(first, end))
    best = rows[first].copy()
    for slot in range(1, int(sizes.max()) if len(sizes) else 0):
        has = np.flatnonzero(sizes > slot)
        best[has] = np.maximum(best[has], rows[first[has] + slot])
    return best


def group_sum(rows: np.ndarray, starts: Sequence[int] | np.ndarray, end: int) -> np.ndarray:
    """Row-wise sum over consecutive groups of rows, as one sparse-dense product."""
    first = np.asarray(starts, dtype=np.int64)
    sizes = np.diff(np.append(first, end))
    owner = np.repeat(np.arange(len(first)), sizes)
    indicator = sp.csr_matrix(
        (np.ones(len(owner), dtype=rows.dtype), (owner, np.arange(len(owner)))),
        shape=(len(first), len(rows)),
    )
    return np.asarray(indicator @ rows)


def _reason_text(n_topics: int, matched: list[str], related: list[str]) -> str:
    if not n_topics:
        return "top trending"
    parts = []
    if matched:
        parts.append("matched: " + ", ".join(matched))
    if related:
        parts.append("related to: " + ", ".join(related))
    return "; ".join(parts)


def _topic_label(topic: Topic) -> str:
    return topic.text


class Matcher:
    def __init__(
        self,
        index: PaperIndex,
        *,
        semantic: SemanticScorer | None = None,
        semantic_weight: float = SEMANTIC_WEIGHT,
        trending_boost: float = TRENDING_BOOST,
    ) -> None:
        self.index = index
        self.semantic = semantic
        self.semantic_weight = semantic_weight if semantic is not None else 0.0
        self.trending_boost = trending_boost
        top = float(index.upvotes.max()) if index.size else 0.0
        self.trending = (
            np.log1p(index.upvotes) / np.log1p(top)
            if top > 0
            else np.zeros(index.size, dtype=np.float32)
        )
        self._weights_t = index.weights.T.tocsr()
        self._topics: dict[tuple[tuple[str, ...], tuple[str, ...]], _CompiledTopic] = {}
        self._presence_t = index.presence.T.tocsr()

    def forget_topics(self, keep: int) -> None:
        """Drop the compiled topics once there are more than ``keep``: a matcher reused for
        many chunks would otherwise hold every topic of every subscriber it has seen."""
        if len(self._topics) > keep:
            self._topics.clear()

    # --- compiling profiles -----------------------------------------------------------------

    def _row(self, sequence: list[str]) -> tuple[dict[int, float], float]:
        vocabulary, row, ideal = self.index.vocabulary, {}, 0.0
        for term in dict.fromkeys(sequence):
            ideal += self.index.ideal(term)
            if term in vocabulary:
                row[vocabulary[term]] = 1.0
        for pair in dict.fromkeys(pairs(sequence)):
            ideal += PAIR_WEIGHT * self.index.ideal(pair)
            if pair in vocabulary:
                row[vocabulary[pair]] = PAIR_WEIGHT
        return row, ideal

    def _required(self, phrases: Sequence[str]) -> tuple[dict[int, float], float]:
        """Terms (one-word phrases) or pairs that must all be present; impossible -> inf."""
        needed: set[str] = set()
        for phrase in phrases:
            sequence = terms(phrase)
            needed.update(pairs(sequence) if len(sequence) > 1 else sequence)
        row = {self.index.vocabulary[t]: 1.0 for t in needed if t in self.index.vocabulary}
        return row, (float(len(needed)) if len(row) == len(needed) else float("inf"))

    def _topic(self, topic: Topic) -> _CompiledTopic:
        """Query rows of one topic, cached: many subscribers share topics."""
        key = (topic.words, topic.phrases)
        found = self._topics.get(key)
        if found is None:
            sequence = terms(" ".join(topic.words))
            variants = []
            for variant in [sequence, *alternatives(sequence)]:
                row, ideal = self._row(variant)
                variants.append((row, ideal or 1.0))
            found = (variants, *self._required(topic.phrases))
            self._topics[key] = found
        return found

    def _compile(self, profiles: Sequence[Profile]) -> _Compiled:
        out = _Compiled()
        for owner, profile in enumerate(profiles):
            out.profile_first_topic.append(len(out.topic_label))
            for topic in profile.topics:
                out.topic_first_variant.append(len(out.variant_rows))
                variants, required, need = self._topic(topic)
                for row, ideal in variants:
                    out.variant_rows.append(row)
                    out.variant_ideal.append(ideal)
                out.topic_required.append(required)
                out.topic_need.append(need)
                out.topic_label.append(_topic_label(topic))
            for excluded in profile.excluded:
                sequence = terms(excluded)
                needed = pairs(sequence) if len(sequence) > 1 else sequence
                row = {self.index.vocabulary[t]: 1.0 for t in needed if t in self.index.vocabulary}
                if needed and len(row) == len(needed):  # otherwise it can never be present
                    out.exclusion_rows.append(row)
                    out.exclusion_need.append(float(len(needed)))
                    out.exclusion_owner.append(owner)
        return out

    def _sparse(self, rows: list[dict[int, float]]) -> sp.csr_matrix:
        indptr: list[int] = [0]
        indices: list[int] = []
        data: list[float] = []
        for row in rows:
            indices.extend(row.keys())
            data.extend(row.values())
            indptr.append(len(indices))
        shape = (len(rows), len(self.index.vocabulary))
        return sp.csr_matrix((np.array(data, dtype=np.float32), indices, indptr), shape=shape)

    # --- scoring ---------------------------------------------------------------------------

    def _topic_scores(self, compiled: _Compiled) -> tuple[np.ndarray, np.ndarray | None]:
        """(topics x papers) scores in [0, ~1.5]: lexical, or hybrid with the semantic extra;
        and with the extra, the same with the semantic part not clipped at zero."""
        n_papers = self.index.size
        if not compiled.topic_label:
            return np.zeros((0, n_papers), dtype=np.float32), None
        queries = self._sparse(compiled.variant_rows)
        lexical = (queries @ self._weights_t).toarray()
        lexical /= np.array(compiled.variant_ideal, dtype=np.float32)[:, None]
        topics = group_max(lexical, compiled.topic_first_variant, len(compiled.variant_rows))
        need = np.array(compiled.topic_need, dtype=np.float32)
        if np.any(need > 0):
            hits = (self._sparse(compiled.topic_required) @ self._presence_t).toarray()
            topics[(need[:, None] > 0) & (hits < need[:, None])] = 0.0
        if self.semantic is not None:
            compiled.lexical_topics = topics
            similarity = self.semantic.topic_similarity(compiled.topic_label)
            return self._hybrid(topics, similarity, need)
        return topics, None

    def _hybrid(
        self, lexical: np.ndarray, similarity: np.ndarray, need: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The hybrid scores, and the same with the semantic part not clipped at zero: one
        rescale serves both (clipping at zero is the only difference), computed in place so
        that a chunk holds no more (topics x papers) arrays than these two and the words'."""
        from digest.matching.semantic import rescale

        weight = self.semantic_weight
        words = np.minimum(lexical, 1.0, dtype=np.float32)
        words *= 1 - weight
        meaning = rescale(similarity, clip_low=False)
        meaning *= weight
        unclipped = words + meaning
        np.maximum(meaning, 0.0, out=meaning)
        meaning += words
        missing = (need[:, None] > 0) & (lexical == 0)  # a missing phrase still excludes
        meaning[missing] = 0.0
        unclipped[missing] = 0.0
        return meaning, unclipped

    def score(self, profiles: Sequence[Profile]) -> tuple[np.ndarray, np.ndarray, _Compiled]:
        """(profiles x papers) final scores (EXCLUDED where an exclusion hits), the topic
        scores behind them, and the compiled rows (for reasons)."""
        compiled = self._compile(profiles)
        topics, unclipped = self._topic_scores(compiled)
        scores = self._profile_scores(compiled, topics, profiles)
        if unclipped is not None:
            compiled.open_scores = self._profile_scores(compiled, unclipped, profiles)
        if compiled.exclusion_rows:
            hits = (self._sparse(compiled.exclusion_rows) @ self._presence_t).toarray()
            need = np.array(compiled.exclusion_need, dtype=np.float32)[:, None]
            owners, papers = np.nonzero(hits >= need)
            scores[np.array(compiled.exclusion_owner)[owners], papers] = EXCLUDED
        return scores, topics, compiled

    def _profile_scores(
        self, compiled: _Compiled, topics: np.ndarray, profiles: Sequence[Profile]
    ) -> np.ndarray:
        scores = self._grouped(compiled, topics, len(profiles))
        scores += self.trending_boost * self.trending[None, :] * (scores > 0)
        for owner, row in enumerate(profiles):
            if row.is_trending_only:
                scores[owner] = self.trending + TRENDING_ONLY  # upvotes order everything
        return scores

    def _grouped(self, compiled: _Compiled, topics: np.ndarray, n_profiles: int) -> np.ndarray:
        """Best topic plus a share of the others, per profile, without a Python loop."""
        scores = np.zeros((n_profiles, self.index.size), dtype=np.float32)
        if not len(topics):
            return scores
        counts = np.diff([*compiled.profile_first_topic, len(compiled.topic_label)])
        has = counts > 0
        starts = np.array(compiled.profile_first_topic)[has]
        best = group_max(topics, starts, len(topics))
        total = group_sum(topics, starts, len(topics))
        scores[has] = best + OTHER_TOPICS_SHARE * (total - best)
        return scores

    # --- results ----------------------------------------------------------------------------

    def eligible(self, scores: np.ndarray, compiled: _Compiled) -> np.ndarray:
        """Which (profile, paper) scores clear the profile's threshold (see STRONG above).
        ``scores`` may have more papers set to EXCLUDED than ``score`` returned: they take no
        part in the statistics."""
        if self.index.size < MIN_CANDIDATES_FOR_OUTLIERS:
            return scores >= SMALL_SET
        if compiled.open_scores is not None:
            valid = np.where(scores > EXCLUDED, compiled.open_scores, np.nan)
            median = np.nanmedian(valid, axis=1, keepdims=True)
            spread = np.nanmedian(np.abs(valid - median), axis=1, keepdims=True) + 1e-6
            standing_out = (compiled.open_scores - median) / spread >= HYBRID_OUTLIER_Z
            return (scores >= STRONG) | ((scores >= HYBRID_FLOOR) & standing_out)
        valid = np.where(scores > EXCLUDED, scores, np.nan)
        mean = np.nanmean(valid, axis=1, keepdims=True)
        spread = np.nanstd(valid, axis=1, keepdims=True) + 1e-6
        standing_out = (scores - mean) / spread >= OUTLIER_Z
        return (scores >= STRONG) | ((scores >= FLOOR) & standing_out)

    def reasons(
        self, compiled: _Compiled, topics: np.ndarray, owners: np.ndarray, papers: np.ndarray
    ) -> list[str]:
        """Why each (profile, paper) pair matched: the best topic, and the others scoring at
        least half as much (and not next to nothing), computed for all pairs at once."""
        starts = np.array([*compiled.profile_first_topic, len(compiled.topic_label)])
        first = starts[owners]
        count = starts[owners + 1] - first
        pair_of = np.repeat(np.arange(len(owners)), count)
        offsets = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
        topic_of = first[pair_of] + offsets
        values = topics[topic_of, papers[pair_of]] if len(topic_of) else np.zeros(0)
        best = np.zeros(len(owners), dtype=np.float32)
        np.maximum.at(best, pair_of, values)
        floor = REASON_FLOOR if self.semantic is not None else FLOOR
        keep = (values > 0) & (
            (values >= best[pair_of]) | (values >= np.maximum(0.5 * best[pair_of], 0.5 * floor))
        )
        worded = np.ones(len(values), dtype=bool)
        if compiled.lexical_topics is not None and len(topic_of):
            worded = compiled.lexical_topics[topic_of, papers[pair_of]] >= WORDS_MATCH
        matched: list[list[str]] = [[] for _ in range(len(owners))]
        related: list[list[str]] = [[] for _ in range(len(owners))]
        labels = compiled.topic_label
        for pair, topic, by_words in zip(
            pair_of[keep].tolist(), topic_of[keep].tolist(), worded[keep].tolist(), strict=True
        ):
            (matched if by_words else related)[pair].append(labels[topic])
        return [
            _reason_text(n_topics, words, meaning)
            for n_topics, words, meaning in zip(count.tolist(), matched, related, strict=True)
        ]

    @staticmethod
    def _order_key(scores: np.ndarray) -> np.ndarray:
        """Best first; equal scores by paper position, so every code path orders alike."""
        return -scores.astype(np.float64) + np.arange(scores.shape[1]) * 1e-12

    def rank(self, profile: Profile, limit: int) -> list[Ranked]:
        """Every candidate for one profile, best first; ``included`` marks the digest's papers
        (above the threshold, not excluded, at most ``limit``)."""
        scores, topics, compiled = self.score([profile])
        row = scores[0]
        eligible = self.eligible(scores, compiled)[0]
        order = np.argsort(self._order_key(scores)[0])
        reasons = self.reasons(compiled, topics, np.zeros(len(order), dtype=int), order)
        ranked, included = [], 0
        for paper, reason in zip(order.tolist(), reasons, strict=True):
            value = float(row[paper])
            take = bool(eligible[paper]) and included < limit
            included += take
            if value == EXCLUDED:
                reason = "excluded"
            elif value <= 0:
                reason = ""
            ranked.append(Ranked(paper, round(value, 4), take, reason))
        return ranked

    def digests(
        self,
        profiles: Sequence[Profile],
        limits: Sequence[int],
        chunk_size: int = 2000,
        allowed: np.ndarray | None = None,
    ) -> Iterator[list[Ranked]]:
        """For each profile, the included papers only (best first), computed chunk by chunk so
        memory follows ``chunk_size``, not the number of profiles. ``allowed`` (profiles x
        papers, bool) limits each profile to some candidates, e.g. papers it has not had yet."""
        for start in range(0, len(profiles), chunk_size):
            end = start + chunk_size
            scores, topics, compiled = self.score(profiles[start:end])
            if allowed is not None:
                scores = np.where(allowed[start:end], scores, EXCLUDED)
            yield from self._pick(scores, topics, compiled, limits[start:end])

    def _pick(
        self, scores: np.ndarray, topics: np.ndarray, compiled: _Compiled, limits: Sequence[int]
    ) -> Iterator[list[Ranked]]:
        """Top-k of the eligible papers of every profile in the chunk, without a Python loop
        over (profile, paper) pairs."""
        n_profiles, n_papers = scores.shape
        caps = np.minimum(np.asarray(limits, dtype=int), n_papers)
        k = int(caps.max()) if n_profiles and n_papers else 0
        if k <= 0:
            yield from ([] for _ in range(n_profiles))
            return
        key = np.where(self.eligible(scores, compiled), self._order_key(scores), np.inf)
        top = np.argpartition(key, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(top, np.argsort(np.take_along_axis(key, top, 1), axis=1), 1)
        keep = np.isfinite(np.take_along_axis(key, top, 1)) & (np.arange(k) < caps[:, None])
        owners, slots = np.nonzero(keep)
        papers = top[owners, slots]
        values = np.round(scores[owners, papers].astype(np.float64), 4).tolist()
        reasons = self.reasons(compiled, topics, owners, papers)
        found: list[list[Ranked]] = [[] for _ in range(n_profiles)]
        for owner, paper, value, reason in zip(
            owners.tolist(), papers.tolist(), values, reasons, strict=True
        ):
            found[owner].append(Ranked(paper, value, True, reason))
        yield from found
