#!/usr/bin/env python
"""Speed and memory of the matching phase for many subscribers.

    .venv/bin/python bench/matching_speed.py [--subscribers 100000] [--papers 1000] [--pg URL]

Setup (not timed), in a throw-away PostgreSQL database: the real papers of the arXiv RSS sample
(the first ``--papers`` of them) and ``--subscribers`` confirmed subscribers with 1-6 topics
drawn from those papers' own vocabulary (title words and word pairs). Then, each in a fresh
process so peak memory is its own:

- lexical: load the profiles from the database in chunks, score, threshold, top-k, reasons;
- hybrid: the same with the semantic score (paper and topic embeddings precomputed, as the
  service does at ingest and when a profile is saved), if the extra is installed;
- baseline: the same lexical scores from a per-pair Python loop on a 1% sample, extrapolated.

Peak RSS is also measured at a quarter of the subscribers: it should not grow with them.
Targets (issue 4): lexical <= 15 s on 2 cores and >= 100x the loop; memory bounded by the chunk.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import time
from collections import Counter
from typing import Any

from throwaway import (
    DEFAULT_PG,
    SAMPLE_RSS,
    peak_rss_kb,
    run_child,
    setup_django,
    throwaway_database,
)

CHUNK = 2000


def topic_pool(titles: list[str], size: int, rng: random.Random) -> list[str]:
    """Realistic topics: frequent title words and word pairs of the candidate papers."""
    from digest.matching.text import STOP_WORDS, words

    unigrams: Counter[str] = Counter()
    bigrams: Counter[str] = Counter()
    for title in titles:
        tokens = [w for w in words(title) if w not in STOP_WORDS and len(w) > 2]
        unigrams.update(tokens)
        bigrams.update(f"{a} {b}" for a, b in itertools.pairwise(tokens))
    pool = [w for w, _ in unigrams.most_common(size // 2)]
    pool += [b for b, _ in bigrams.most_common(size - len(pool))]
    pool = [topic for topic in pool if _usable(topic)]
    rng.shuffle(pool)
    return pool


def _usable(topic: str) -> bool:
    from digest.matching.interests import InterestError, parse_interests

    try:
        return not parse_interests(topic).is_trending_only
    except InterestError:
        return False


def populate(n_subscribers: int, n_papers: int, with_embeddings: bool) -> dict[str, Any]:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from digest.ingest.run import IngestOptions, ingest_path
    from digest.matching.interests import parse_interests
    from digest.models import Paper
    from subscriptions.models import Subscriber

    ingest_path(SAMPLE_RSS, IngestOptions(source="bench"))
    keep = list(Paper.objects.order_by("id").values_list("id", flat=True)[:n_papers])
    Paper.objects.exclude(id__in=keep).update(listing_date=None)
    papers = list(Paper.objects.filter(id__in=keep))
    rng = random.Random(11)
    pool = topic_pool([p.title for p in papers], 4000, rng)
    batch = []
    for i in range(n_subscribers):
        topics = rng.sample(pool, rng.randint(1, 6))
        batch.append(
            Subscriber(
                email=f"s{i}@bench.example",
                status="confirmed",
                interests=", ".join(topics),
                max_papers=rng.choice([5, 10, 20]),
            )
        )
        if len(batch) == 5000:
            Subscriber.objects.bulk_create(batch)
            batch = []
    Subscriber.objects.bulk_create(batch)
    if with_embeddings:
        from digest.matching.service import paper_vectors, topic_vectors

        paper_vectors(papers)
        topic_vectors([t.text for text in pool for t in parse_interests(text).topics])
    return {"papers": len(papers), "topics_in_pool": len(pool)}


def matching_phase(use_semantic: bool) -> dict[str, Any]:
    """The timed phase: everything from loading profiles to reasons, chunk by chunk."""
    from digest.matching.interests import parse_interests
    from digest.matching.service import candidate_papers, matcher_for
    from subscriptions.models import Subscriber

    start = time.perf_counter()
    papers = candidate_papers()
    matcher = matcher_for(papers, semantic_on=use_semantic)
    rows = (
        Subscriber.objects.filter(status="confirmed")
        .order_by("id")
        .values_list("interests", "max_papers")
    )
    chunk: list[tuple[str, int]] = []
    included = with_any = subscribers = 0

    def run(chunk: list[tuple[str, int]]) -> None:
        nonlocal included, with_any, subscribers
        profiles = [parse_interests(t) for t, _ in chunk]
        for found in matcher.digests(profiles, [m for _, m in chunk], chunk_size=CHUNK):
            subscribers += 1
            included += len(found)
            with_any += bool(found)
            assert all(r.reason for r in found)

    for row in rows.iterator(chunk_size=CHUNK):
        chunk.append(row)
        if len(chunk) == CHUNK:
            run(chunk)
            chunk = []
    if chunk:
        run(chunk)
    return {
        "seconds": time.perf_counter() - start,
        "subscribers": subscribers,
        "papers": len(papers),
        "included": included,
        "with_any": with_any,
        "rss_kb": peak_rss_kb(),
    }


def loop_baseline(sample_fraction: float) -> dict[str, Any]:
    """The same lexical score, one (profile, paper) pair at a time in Python."""
    from digest.matching.index import PAIR_WEIGHT, PaperIndex
    from digest.matching.interests import parse_interests
    from digest.matching.service import candidate_papers, texts_of
    from digest.matching.text import alternatives, pairs, terms
    from subscriptions.models import Subscriber

    papers = candidate_papers()
    index = PaperIndex(texts_of(papers))
    weights = index.weights.tocsr()
    inverse = {v: k for k, v in index.vocabulary.items()}
    per_paper = [
        {inverse[c]: float(w) for c, w in zip(weights[i].indices, weights[i].data, strict=True)}
        for i in range(index.size)
    ]
    total = Subscriber.objects.filter(status="confirmed").count()
    sample = list(
        Subscriber.objects.filter(status="confirmed")
        .order_by("id")
        .values_list("interests", flat=True)[: max(1, int(total * sample_fraction))]
    )
    start = time.perf_counter()
    kept = 0
    for text in sample:
        profile = parse_interests(text)
        for paper in per_paper:
            best = 0.0
            for topic in profile.topics:
                sequence = terms(" ".join(topic.words))
                for variant in [sequence, *alternatives(sequence)]:
                    score = sum(paper.get(t, 0.0) for t in set(variant))
                    score += PAIR_WEIGHT * sum(paper.get(p, 0.0) for p in set(pairs(variant)))
                    ideal = sum(index.ideal(t) for t in set(variant)) + PAIR_WEIGHT * sum(
                        index.ideal(p) for p in set(pairs(variant))
                    )
                    best = max(best, score / (ideal or 1.0))
            kept += best >= 0.3
    elapsed = time.perf_counter() - start
    return {
        "sample": len(sample),
        "seconds": elapsed,
        "extrapolated": elapsed * total / len(sample),
        "kept": kept,
    }


def child(mode: str) -> None:
    setup_django()
    if mode == "baseline":
        result = loop_baseline(0.01)
    else:
        result = matching_phase(use_semantic=mode == "hybrid")
    print(json.dumps(result))


def in_database(
    pg: str, n_subscribers: int, n_papers: int, modes: list[str], embeddings: bool
) -> dict[str, Any]:
    with throwaway_database(pg) as env:
        populate_args = ["--populate", str(n_subscribers), "--papers", str(n_papers)]
        setup = run_child(__file__, populate_args + (["--embeddings"] if embeddings else []), env)
        results: dict[str, Any] = {"setup": setup}
        for mode in modes:
            results[mode] = run_child(__file__, ["--child", mode], env)
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--papers", type=int, default=1000)
    parser.add_argument(
        "--pg",
        default=DEFAULT_PG,
    )
    parser.add_argument("--child", choices=["lexical", "hybrid", "baseline"])
    parser.add_argument("--populate", type=int)
    parser.add_argument("--embeddings", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    if args.populate is not None:
        setup_django()
        print(json.dumps(populate(args.populate, args.papers, args.embeddings)))
        return
    setup_django()
    from digest.matching import semantic

    hybrid = semantic.available()
    modes = ["lexical", "baseline"] + (["hybrid"] if hybrid else [])
    full = in_database(args.pg, args.subscribers, args.papers, modes, hybrid)
    small = in_database(args.pg, args.subscribers // 4, args.papers, ["lexical"], False)
    lex, base = full["lexical"], full["baseline"]
    print(
        f"{lex['subscribers']:,} confirmed subscribers, {lex['papers']:,} candidate papers "
        f"(arXiv RSS sample), topics from a pool of {full['setup']['topics_in_pool']:,}; "
        f"chunks of {CHUNK:,}"
    )
    print(
        f"lexical phase: {lex['seconds']:.2f} s, peak RSS {lex['rss_kb'] / 1024:.0f} MiB, "
        f"{lex['included']:,} papers included, {lex['with_any']:,} subscribers get a digest"
        "   [target <= 15 s]"
    )
    speedup = base["extrapolated"] / lex["seconds"]
    print(
        f"per-pair loop baseline: {base['seconds']:.1f} s for {base['sample']:,} subscribers "
        f"(1%), extrapolated {base['extrapolated']:.0f} s -> lexical is {speedup:.0f}x faster"
        "   [target >= 100x]"
    )
    if hybrid:
        hyb = full["hybrid"]
        print(
            f"hybrid phase (embeddings precomputed): {hyb['seconds']:.2f} s, peak RSS "
            f"{hyb['rss_kb'] / 1024:.0f} MiB, {hyb['included']:,} papers included"
        )
    quarter = small["lexical"]
    print(
        f"peak RSS of the lexical phase: {quarter['rss_kb'] / 1024:.0f} MiB at "
        f"{quarter['subscribers']:,} subscribers vs {lex['rss_kb'] / 1024:.0f} MiB at "
        f"{lex['subscribers']:,}"
    )


if __name__ == "__main__":
    main()
