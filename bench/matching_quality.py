#!/usr/bin/env python
"""Matching quality on judged interest profiles: nDCG@10, P@5, R@10 and the included set.

    .venv/bin/python bench/matching_quality.py [--eval PATH] [--dump PATH] [--json]
        [--large-listing PATH]

Runs, in the same process: a plain TF-IDF cosine baseline, the lexical core, and the hybrid
(lexical + sentence embeddings, when the semantic extra is installed). Grades >= 1 count as
relevant; nDCG uses the graded gains. The included set is what a digest would send (above the
threshold, capped at 10 papers): its precision and recall are pooled over all profiles (micro)
and also averaged per profile (macro).

``--large-listing`` also scores the same profiles against a large listing that has no judgments
(e.g. the 1,504 papers of ``samples/arxiv-rss-2024-11-28.xml``; embedding them takes minutes)
and prints how many papers each profile would find eligible before its cap: on such a listing
most papers are unrelated to a niche topic, and a threshold that adapts badly admits hundreds.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.ingest import parse, validate  # noqa: E402
from digest.ingest.records import PaperRecord  # noqa: E402
from digest.matching import semantic  # noqa: E402
from digest.matching.index import PaperIndex, PaperText  # noqa: E402
from digest.matching.interests import parse_interests  # noqa: E402
from digest.matching.score import Matcher  # noqa: E402

SHARED = ROOT.parent / "shared"
LIMIT = 10
BASELINE_THRESHOLD = 0.10


def load_papers(path: Path) -> list[PaperText]:
    with path.open("rb") as stream:
        _, items = parse(stream, today=date(2026, 11, 29))
        records = [validate(r) for r in items if isinstance(r, PaperRecord)]
    return [
        PaperText(key=r.title, title=r.title, abstract=r.abstract, upvotes=r.upvotes)
        for r in records
        if isinstance(r, PaperRecord)
    ]


def dcg(gains: list[float]) -> float:
    return sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(gains))


def metrics(
    ranking: list[str], included: list[str], judged: dict[str, int], scores: list[float]
) -> dict[str, Any]:
    relevant = {t for t, g in judged.items() if g >= 1}
    ideal = dcg(sorted(judged.values(), reverse=True)[:10])
    top10 = [judged.get(t, 0) for t in ranking[:10]]
    hits = len(set(included) & relevant)
    return {
        "top_relevant": [t in relevant for t in ranking[:LIMIT]],
        "top_scores": scores[:LIMIT],
        "ndcg@10": dcg(top10) / ideal if ideal else 0.0,
        "p@5": sum(1 for t in ranking[:5] if t in relevant) / 5,
        "r@10": sum(1 for t in ranking[:10] if t in relevant) / len(relevant),
        "inc_hits": hits,
        "inc_size": len(included),
        "relevant": len(relevant),
        "inc_p": hits / len(included) if included else 1.0,
        "inc_r": hits / len(relevant),
    }


def ceiling_recall(rows: list[dict[str, Any]], precision: float = 0.80) -> float:
    """The best included-set recall any per-profile cut-off of these rankings could reach with
    pooled precision >= ``precision``: an oracle picks, for every profile, how many of its top
    papers to include. No threshold rule on the same ranking can do better."""
    # Dynamic programming over profiles: best[size] = most relevant papers in ``size`` picks.
    best = {0: 0}
    for row in rows:
        gains = [0, *np.cumsum(row["top_relevant"]).tolist()]
        step: dict[int, int] = {}
        for size, hits in best.items():
            for k, gained in enumerate(gains):
                key = size + k
                step[key] = max(step.get(key, -1), hits + gained)
        best = step
    reachable = [hits for size, hits in best.items() if size and hits >= precision * size]
    return max(reachable, default=0) / sum(row["relevant"] for row in rows)


def global_cut_recall(rows: list[dict[str, Any]], precision: float = 0.80) -> float:
    """The best included-set recall one score cut-off shared by all profiles could reach on
    these rankings with pooled precision >= ``precision`` (each profile keeps its top papers
    scoring at least the cut-off): what a fixed threshold can do, next to the oracle above."""
    best = 0
    for cut in {score for row in rows for score in row["top_scores"]}:
        hits = size = 0
        for row in rows:
            pairs = zip(row["top_relevant"], row["top_scores"], strict=True)
            kept = [relevant for relevant, score in pairs if score >= cut]
            hits, size = hits + sum(kept), size + len(kept)
        if size and hits >= precision * size:
            best = max(best, hits)
    return best / sum(row["relevant"] for row in rows)


def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
    n = len(rows)
    out = {k: sum(r[k] for r in rows) / n for k in ("ndcg@10", "p@5", "r@10", "inc_p", "inc_r")}
    hits = sum(r["inc_hits"] for r in rows)
    size = sum(r["inc_size"] for r in rows)
    out["included_precision"] = hits / size if size else 1.0
    out["included_recall"] = hits / sum(r["relevant"] for r in rows)
    out["included_mean_size"] = size / n
    out["ceiling_recall_at_p80"] = ceiling_recall(rows)
    out["global_cut_recall_at_p80"] = global_cut_recall(rows)
    return out


def run_matcher(
    matcher: Matcher, papers: list[PaperText], profiles: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    rows = []
    for profile in profiles:
        ranked = matcher.rank(parse_interests(profile["interests"]), LIMIT)
        titles = [papers[r.paper].title for r in ranked]
        included = [papers[r.paper].title for r in ranked if r.included]
        scores = [r.score for r in ranked]
        rows.append(metrics(titles, included, profile["relevant"], scores))
    return rows


_WORD = re.compile(r"[a-z0-9]+")


def run_tfidf_baseline(
    papers: list[PaperText], profiles: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Plain TF-IDF cosine over title + abstract words: no stemming, no fields, no phrases."""
    docs = [Counter(_WORD.findall(f"{p.title} {p.abstract}".lower())) for p in papers]
    vocabulary = {w: i for i, w in enumerate(sorted({w for d in docs for w in d}))}

    def vector(counter: Counter[str]) -> sp.csr_matrix:
        cols = [vocabulary[w] for w in counter if w in vocabulary]
        vals = [1 + math.log(counter[w]) for w in counter if w in vocabulary]
        return sp.csr_matrix((vals, ([0] * len(cols), cols)), shape=(1, len(vocabulary)))

    matrix = sp.vstack([vector(d) for d in docs]).tocsr()
    df = np.asarray((matrix > 0).sum(axis=0)).ravel()
    idf = np.log((1 + len(docs)) / (1 + df)) + 1
    matrix = matrix @ sp.diags(idf)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    matrix = sp.diags(1 / np.maximum(norms, 1e-9)) @ matrix
    rows = []
    for profile in profiles:
        query = vector(Counter(_WORD.findall(profile["interests"].lower()))) @ sp.diags(idf)
        norm = math.sqrt(query.multiply(query).sum()) or 1.0
        scores = (matrix @ (query / norm).T).toarray().ravel()
        order = np.argsort(-scores, kind="stable")
        titles = [papers[i].title for i in order]
        included = [papers[i].title for i in order[:LIMIT] if scores[i] >= BASELINE_THRESHOLD]
        rows.append(metrics(titles, included, profile["relevant"], scores[order].tolist()))
    return rows


def eligible_counts(path: Path, profiles: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Papers each profile finds eligible (no cap) in an unjudged listing, per method."""
    papers = load_papers(path)
    index = PaperIndex(papers)
    matchers = {"lexical": Matcher(index)}
    if semantic.available():
        vectors = semantic.PaperVectors.embed([(p.title, p.abstract) for p in papers])
        matchers["hybrid"] = Matcher(index, semantic=semantic.EmbeddingScorer(vectors))
    return {
        name: [
            sum(r.included for r in matcher.rank(parse_interests(p["interests"]), len(papers)))
            for p in profiles
        ]
        for name, matcher in matchers.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eval", type=Path, default=SHARED / "eval" / "dev_interests.json")
    parser.add_argument("--dump", type=Path, default=SHARED / "seeds" / "000_66121929927fe5a4.txt")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--per-profile", action="store_true")
    parser.add_argument("--large-listing", type=Path, help="also count eligible papers here")
    args = parser.parse_args()
    profiles = json.loads(args.eval.read_text())["profiles"]
    papers = load_papers(args.dump)
    index = PaperIndex(papers)
    results = {
        "tfidf-baseline": run_tfidf_baseline(papers, profiles),
        "lexical": run_matcher(Matcher(index), papers, profiles),
    }
    if semantic.available():
        vectors = semantic.PaperVectors.embed([(p.title, p.abstract) for p in papers])
        scorer = semantic.EmbeddingScorer(vectors)
        results["hybrid"] = run_matcher(Matcher(index, semantic=scorer), papers, profiles)
    else:
        print("semantic extra not installed: the hybrid is not measured", file=sys.stderr)
    summary = {name: summarize(rows) for name, rows in results.items()}
    counts = eligible_counts(args.large_listing, profiles) if args.large_listing else None
    if args.json:
        print(json.dumps({**summary, "large_listing_eligible": counts}, indent=2))
        return
    print(
        f"{len(profiles)} profiles, {len(papers)} papers ({args.dump.name}); "
        f"included set capped at {LIMIT}"
    )
    print(
        f"{'method':16} {'nDCG@10':>8} {'P@5':>6} {'R@10':>6} {'inc-P':>6} {'inc-R':>6} "
        f"{'inc/profile':>11} {'ceiling-R':>9} {'one-cut-R':>9}"
    )
    for name, s in summary.items():
        print(
            f"{name:16} {s['ndcg@10']:8.3f} {s['p@5']:6.3f} {s['r@10']:6.3f} "
            f"{s['included_precision']:6.3f} {s['included_recall']:6.3f} "
            f"{s['included_mean_size']:11.2f} {s['ceiling_recall_at_p80']:9.3f} "
            f"{s['global_cut_recall_at_p80']:9.3f}"
        )
    print(
        "ceiling-R: the included-set recall an oracle choosing each profile's cut-off in this\n"
        "ranking could reach at pooled precision >= 0.80 (an upper bound for any threshold);\n"
        "one-cut-R: the same for the best single score cut-off shared by every profile."
    )
    if counts is not None and args.large_listing:
        print(f"eligible papers per profile (before the cap) in {args.large_listing.name}:")
        for name, found in counts.items():
            print(f"  {name:14} median {int(np.median(found))}, max {max(found)}: {found}")
    if args.per_profile:
        for name, rows in results.items():
            print(name)
            for profile, r in zip(profiles, rows, strict=True):
                print(
                    f"  {profile['interests'][:45]:45} ndcg={r['ndcg@10']:.2f} "
                    f"inc={r['inc_hits']:.0f}/{r['inc_size']:.0f} rel={r['relevant']:.0f}"
                )


if __name__ == "__main__":
    main()
