#!/usr/bin/env python
"""Ingest speed and memory: a generated HF-JSON dump into PostgreSQL, then the same dump again.

    .venv/bin/python bench/ingest_speed.py [--papers 20000] [--small 5000] [--pg URL]

Prints, for the full dump: papers/s of the first run and of the repeat (checksum short-circuit),
the repeat's speed-up, and a baseline measured in the same run (a plain per-paper
``update_or_create`` loop, the obvious way to write it) so the figures can be read on a noisy
machine. Peak RSS is measured in a fresh process per dump size, at two sizes, to show whether
memory grows with the dump. Each measurement runs in its own throw-away PostgreSQL database.
Targets (issue 2): first run >= 2,000 papers/s; repeat >= 5x faster; memory flat in dump size.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from throwaway import DEFAULT_PG, peak_rss_kb, run_child, setup_django, throwaway_database

ROOT = Path(__file__).resolve().parent.parent
WORDS = (
    "model learning language neural training data attention diffusion graph reward policy "
    "benchmark transformer retrieval quantization inference scaling agent vision token "
    "memory sparse efficient robust alignment reasoning multimodal generation"
).split()


def generate(path: Path, papers: int, seed: int = 7) -> None:
    """Write an HF daily-papers dump of ``papers`` realistic items, streaming to disk."""
    rng = random.Random(seed)
    with path.open("w") as out:
        out.write("[")
        for i in range(papers):
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(150, 260)))
            item = {
                "paper": {
                    "id": f"{2400 + i // 90000}.{i % 90000:05d}",
                    "authors": [
                        {"name": f"Author {rng.randint(1, 99999)}", "hidden": False}
                        for _ in range(rng.randint(2, 12))
                    ],
                    "publishedAt": "2024-10-22T17:59:30.000Z",
                    "title": f"Paper {i}: " + " ".join(rng.choice(WORDS) for _ in range(9)),
                    "summary": words.capitalize() + ". Code: https://github.com/lab/repo" + str(i),
                    "upvotes": rng.randint(0, 300),
                },
                "publishedAt": "2024-10-25T00:00:00.000Z",
                "title": f"Paper {i}",
                "numComments": rng.randint(0, 9),
            }
            out.write(("," if i else "") + json.dumps(item))
        out.write("]")


def with_database(pg: str, fn_args: list[str]) -> dict[str, Any]:
    """Run this script as a child in a fresh database; return the JSON it prints."""
    with throwaway_database(pg) as env:
        return run_child(__file__, fn_args, env)


def child(mode: str, dump: Path, limit: int) -> None:
    """Inside a fresh database: migrate, then measure ``mode``; print one JSON line."""
    setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from digest.ingest.run import IngestOptions, ingest_path

    if mode == "pipeline":
        rss_before = peak_rss_kb()
        start = time.perf_counter()
        first = ingest_path(dump, IngestOptions(source="bench"))
        first_s = time.perf_counter() - start
        start = time.perf_counter()
        repeat = ingest_path(dump, IngestOptions(source="bench"))
        repeat_s = time.perf_counter() - start
        assert first.status == "success", first.error
        assert repeat.status == "duplicate", repeat.status
        print(
            json.dumps(
                {
                    "papers": first.n_new,
                    "first_s": first_s,
                    "repeat_s": repeat_s,
                    "rss_before_kb": rss_before,
                    "rss_peak_kb": peak_rss_kb(),
                }
            )
        )
    else:
        print(json.dumps(naive_baseline(dump, limit)))


def naive_baseline(dump: Path, limit: int) -> dict[str, float]:
    """The obvious implementation: json.load the dump, update_or_create one paper at a time."""
    from django.utils import timezone

    from digest.models import Paper

    items = json.loads(dump.read_text())[:limit]
    start = time.perf_counter()
    now = timezone.now()
    for item in items:
        paper = item["paper"]
        Paper.objects.update_or_create(
            arxiv_id=paper["id"],
            defaults={
                "key": f"arxiv:{paper['id']}",
                "title": item["title"],
                "title_key": item["title"].lower(),
                "abstract": paper["summary"],
                "authors": [a["name"] for a in paper["authors"]],
                "upvotes": paper["upvotes"],
                "first_seen": now,
                "last_seen": now,
            },
        )
    return {"papers": len(items), "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--papers", type=int, default=20_000)
    parser.add_argument("--small", type=int, default=5_000)
    parser.add_argument("--baseline-papers", type=int, default=2_000)
    parser.add_argument(
        "--pg",
        default=DEFAULT_PG,
    )
    parser.add_argument("--child", choices=["pipeline", "baseline"])
    parser.add_argument("--dump", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.dump, args.baseline_papers)
        return

    with tempfile.TemporaryDirectory() as tmp:
        big, small = Path(tmp) / "big.json", Path(tmp) / "small.json"
        generate(big, args.papers)
        generate(small, args.small)
        mb = big.stat().st_size / 1e6
        print(
            f"dump: {args.papers:,} papers, {mb:.1f} MB; small dump: {args.small:,} papers, "
            f"{small.stat().st_size / 1e6:.1f} MB"
        )
        base = with_database(
            args.pg,
            [
                "--child",
                "baseline",
                "--dump",
                str(big),
                "--baseline-papers",
                str(args.baseline_papers),
            ],
        )
        full = with_database(args.pg, ["--child", "pipeline", "--dump", str(big)])
        little = with_database(args.pg, ["--child", "pipeline", "--dump", str(small)])

    base_rate = base["papers"] / base["seconds"]
    first_rate = full["papers"] / full["first_s"]
    repeat_rate = full["papers"] / full["repeat_s"]
    print(
        f"baseline (json.load + update_or_create per paper, {base['papers']:,.0f} papers): "
        f"{base_rate:,.0f} papers/s"
    )
    print(
        f"first run:  {first_rate:,.0f} papers/s ({full['first_s']:.2f} s)  "
        f"= {first_rate / base_rate:.1f}x baseline   [target >= 2,000 papers/s]"
    )
    print(
        f"repeat run: {repeat_rate:,.0f} papers/s ({full['repeat_s']:.3f} s)  "
        f"= {repeat_rate / first_rate:.1f}x the first run   [target >= 5x]"
    )
    for label, result, n in (("small", little, args.small), ("full", full, args.papers)):
        print(
            f"peak RSS, {label} dump ({n:,} papers): {result['rss_peak_kb'] / 1024:.1f} MiB "
            f"(after Django setup and migrate: {result['rss_before_kb'] / 1024:.1f} MiB)"
        )
    growth = (full["rss_peak_kb"] - little["rss_peak_kb"]) / 1024
    print(
        f"peak RSS growth for {args.papers / args.small:.0f}x the papers: {growth:+.1f} MiB "
        f"(the full dump is {mb:.1f} MB on disk)"
    )


if __name__ == "__main__":
    main()
