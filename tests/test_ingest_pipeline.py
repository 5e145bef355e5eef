"""The ingest pipeline end to end on the database: counts, dedupe, enrichment, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from digest.ingest.run import IngestOptions, ingest_bytes, ingest_path
from digest.models import IngestRun, Paper, RejectedEntry
from tests.conftest import SAMPLES, SEED, hf_item, hf_json, seed_layout

pytestmark = pytest.mark.django_db

P5 = (
    "Recommendation as Language Processing (RLP): A Unified Pretrain, Personalized Prompt "
    "& Predict Paradigm (P5)"
)


def snapshot() -> list[dict[str, Any]]:
    return list(Paper.objects.order_by("pk").values())


def test_seed_dump_yields_its_94_papers_with_listing_date_and_code_links(today_2026: Any) -> None:
    run = ingest_path(SEED, IngestOptions(source="test"))
    assert (run.status, run.format, run.n_new, run.n_rejected) == ("success", "hf-text", 94, 0)
    assert Paper.objects.count() == 94
    assert not Paper.objects.filter(
        title__in=["new", "Subscribe", "Mar 11", "byAK and the research community"]
    ).exists()
    p5 = Paper.objects.get(title=P5)
    assert p5.url_code == "https://github.com/jeykigung/P5"
    assert p5.listing_date.isoformat() == "2026-03-11"
    assert p5.arxiv_id is None and p5.key.startswith("title:")
    tiny = Paper.objects.get(title__startswith="TinyFusion")
    assert tiny.url_code == "https://github.com/VainF/TinyFusion"
    assert all(p.sources == ["hf-text"] for p in Paper.objects.all())


def test_same_file_twice_records_duplicate_and_changes_nothing(today_2026: Any) -> None:
    first = ingest_path(SEED, IngestOptions(source="test"))
    before = snapshot()
    second = ingest_path(SEED, IngestOptions(source="test"))
    assert second.status == IngestRun.Status.DUPLICATE
    assert (second.n_new, second.n_updated, second.n_unchanged) == (0, 0, 0)
    assert second.checksum == first.checksum
    assert f"#{first.pk}" in second.notes[0]
    assert snapshot() == before


def test_capture_layout_yields_107_papers_with_arxiv_ids(today_2026: Any) -> None:
    run = ingest_path(SAMPLES / "hf-papers-page-capture.txt", IngestOptions(source="test"))
    assert (run.status, run.n_new, run.n_rejected) == ("success", 107, 0)
    assert Paper.objects.filter(arxiv_id__isnull=True).count() == 0
    first = Paper.objects.get(arxiv_id="2410.05434")
    assert first.upvotes == 1 and first.author_count == 2
    assert first.published_on.isoformat() == "2024-10-07"
    assert Paper.objects.filter(upvotes=0).count() == 46


@pytest.mark.parametrize(
    ("sample", "fmt", "count"),
    [
        ("hf-daily-papers-2024-10-25.json", "hf-json", 29),
        ("arxiv-atom-query.xml", "arxiv-atom", 10),
        ("arxiv-rss-2024-11-28.xml", "arxiv-rss", 1504),
        ("arxiv-rss-empty.xml", "arxiv-rss", 0),
    ],
)
def test_real_samples_ingest_completely(sample: str, fmt: str, count: int, today_2026: Any) -> None:
    run = ingest_path(SAMPLES / sample, IngestOptions(source="test"))
    assert (run.status, run.format, run.n_rejected) == ("success", fmt, 0)
    assert run.n_new + run.n_updated + run.n_unchanged == count
    assert Paper.objects.count() == run.n_new


def test_hf_json_sample_stores_authors_upvotes_and_links() -> None:
    ingest_path(SAMPLES / "hf-daily-papers-2024-10-25.json", IngestOptions(source="test"))
    paper = Paper.objects.get(arxiv_id="2410.17243")
    assert paper.title == (
        "Breaking the Memory Barrier: Near Infinite Batch Size Scaling for Contrastive Loss"
    )
    assert paper.authors[0] == "Zesen Cheng" and len(paper.authors) == 9
    assert paper.upvotes == 64
    assert paper.url_abs == "https://arxiv.org/abs/2410.17243"
    assert paper.listing_date.isoformat() == "2024-10-25"
    assert paper.key == "arxiv:2410.17243"


def test_paper_from_two_formats_is_one_row_enriched_with_arxiv_id(today_2026: Any) -> None:
    ingest_path(SEED, IngestOptions(source="test"))
    # The same paper in the HF JSON format, its title differing in case, spacing and punctuation.
    variant = (
        "recommendation as language processing (RLP) -- a unified pretrain,  personalized "
        "prompt & predict paradigm (P5)"
    )
    run = ingest_bytes(
        hf_json(
            [hf_item("2203.13366", variant, upvotes=12, authors=["Shijie Geng", "Shuchang Liu"])]
        ),
        "variant.json",
    )
    assert (run.n_new, run.n_updated) == (0, 1)
    assert Paper.objects.count() == 94
    paper = Paper.objects.get(arxiv_id="2203.13366")
    assert paper.title == P5  # the stored title is kept, not replaced
    assert paper.key == "arxiv:2203.13366"
    assert paper.authors == ["Shijie Geng", "Shuchang Liu"]
    assert paper.upvotes == 12
    assert paper.url_code == "https://github.com/jeykigung/P5"
    assert paper.sources == ["hf-text", "hf-json"]


@pytest.mark.parametrize(
    "other_title",
    [
        "Einstein-Weyl structures on almost $\\alpha$-cosymplectic manifolds",
        "EINSTEIN–WEYL STRUCTURES ON ALMOST α-COSYMPLECTIC MANIFOLDS.",
        "Einstein-Weyl structures on almost {\\alpha}-cosymplectic\n  manifolds",
    ],
)
def test_titles_differing_in_case_punctuation_or_latex_are_one_paper(other_title: str) -> None:
    title = "Einstein-Weyl structures on almost alpha-cosymplectic manifolds"
    ingest_bytes(seed_layout([(title, "Abstract one.")]), "a.txt")
    run = ingest_bytes(seed_layout([(other_title, "Abstract two.")], "Mar 12"), "b.txt")
    assert run.n_new == 0
    assert Paper.objects.count() == 1
    assert Paper.objects.get().abstract == "Abstract one."


def test_later_dump_updates_signals_and_never_blanks_fields() -> None:
    ingest_bytes(
        hf_json(
            [hf_item("2410.00001", "Paper One", upvotes=5, githubRepo="https://github.com/a/b")]
        ),
        "day1.json",
    )
    run = ingest_bytes(
        json.dumps(
            [
                {
                    "paper": {
                        "id": "2410.00001",
                        "title": "Paper One",
                        "summary": "An abstract.",
                        "upvotes": 40,
                    }
                }
            ]
        ).encode(),
        "day2.json",
    )
    assert run.n_updated == 1
    paper = Paper.objects.get(arxiv_id="2410.00001")
    assert paper.upvotes == 40
    assert paper.authors == ["A. Author"]
    assert paper.url_code == "https://github.com/a/b"
    assert paper.published_on is not None
    # An older dump with fewer upvotes does not lower them.
    ingest_bytes(hf_json([hf_item("2410.00001", "Paper One", upvotes=3, summary="x")]), "old.json")
    assert Paper.objects.get(arxiv_id="2410.00001").upvotes == 40


def test_unchanged_papers_in_a_new_dump_count_as_unchanged() -> None:
    items = [hf_item("2410.00001", "Paper One"), hf_item("2410.00002", "Paper Two")]
    ingest_bytes(hf_json(items), "a.json")
    run = ingest_bytes(hf_json(items) + b"\n", "a-copy.json")  # other bytes, same content
    assert (run.status, run.n_new, run.n_updated, run.n_unchanged) == ("success", 0, 0, 2)


def test_duplicates_inside_one_dump_make_one_row() -> None:
    items = [
        hf_item("2410.00001", "Paper One", upvotes=1),
        hf_item("2410.00001v2", "Paper One", upvotes=9),
    ]
    run = ingest_bytes(hf_json(items), "dups.json")
    assert Paper.objects.count() == 1
    assert Paper.objects.get().upvotes == 9
    assert (run.n_new, run.n_updated) == (1, 1)


def test_two_papers_with_the_same_title_but_different_arxiv_ids_stay_apart() -> None:
    ingest_bytes(hf_json([hf_item("2410.00001", "Erratum")]), "a.json")
    ingest_bytes(hf_json([hf_item("2410.00002", "Erratum")]), "b.json")
    assert Paper.objects.count() == 2


def test_small_batches_give_the_same_result(settings: Any, today_2026: Any) -> None:
    settings.INGEST_BATCH_SIZE = 7
    run = ingest_path(SEED, IngestOptions(source="test"))
    assert run.n_new == 94 and Paper.objects.count() == 94


def test_dry_run_counts_but_stores_nothing(today_2026: Any) -> None:
    run = ingest_path(SEED, IngestOptions(source="test", dry_run=True))
    assert run.status == IngestRun.Status.DRY_RUN and run.n_new == 94 and run.pk is None
    assert Paper.objects.count() == 0 and IngestRun.objects.count() == 0


# --- bad input: a clear reason, good entries kept, stored papers untouched -----------------

GOOD = hf_item("2410.99999", "A Good Paper", summary="Good abstract.")


@pytest.fixture
def stored() -> list[dict[str, Any]]:
    ingest_bytes(hf_json([hf_item("2410.00001", "Already Stored", upvotes=7)]), "base.json")
    return snapshot()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"   \n\n  \n", "empty"),
        (bytes(range(256)) * 40, "binary"),
        (b'[{"paper": {"id": "2410.1', "JSON"),
        (b'{"hello": "world"}', "shape"),
        (
            b'<?xml version="1.0"?><!DOCTYPE f [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><title>&x;</title></entry></feed>',
            "entit",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 '
            b'"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><rss version="2.0"><channel>'
            b"<item><title>&lol2;</title></item></channel></rss>",
            "entit",
        ),
        (b"<rss version='2.0'><channel><item><title>cut off", "XML"),
    ],
    ids=[
        "empty",
        "blank",
        "binary",
        "truncated-json-start",
        "json-wrong-shape",
        "xxe",
        "entity-bomb",
        "truncated-xml",
    ],
)
def test_unreadable_dump_fails_with_reason_and_touches_nothing(
    data: bytes, reason: str, stored: list[dict[str, Any]]
) -> None:
    run = ingest_bytes(data, "bad.dump")
    assert run.status == IngestRun.Status.FAILED
    assert reason.lower() in run.error.lower()
    assert run.finished_at is not None
    assert snapshot() == stored


def test_dump_over_the_size_limit_is_refused(settings: Any, stored: list[dict[str, Any]]) -> None:
    settings.INGEST_MAX_BYTES = 2048
    run = ingest_bytes(hf_json([GOOD] * 20), "big.json")
    assert run.status == "failed" and "size limit" in run.error
    assert snapshot() == stored


def test_truncated_json_keeps_the_complete_entries(stored: list[dict[str, Any]]) -> None:
    data = hf_json([GOOD, hf_item("2410.99998", "Second Good Paper")])[:-40]
    run = ingest_bytes(data, "cut.json")
    assert run.status == IngestRun.Status.PARTIAL
    assert run.n_new == 1 and run.n_rejected == 1
    assert "truncated" in run.rejected.get().reason.lower()
    assert Paper.objects.filter(arxiv_id="2410.99999").exists()


def test_bad_entries_are_rejected_one_by_one_and_good_ones_stored(
    stored: list[dict[str, Any]],
) -> None:
    items: list[Any] = [
        GOOD,
        hf_item("2410.90001", "T" * 10_000),
        {"paper": {"id": "2410.90002", "summary": "No title here."}},
        {"paper": {"id": "2410.90003", "title": "No abstract here"}},
        42,
        hf_item("2410.00001", "Already Stored", upvotes=8),
    ]
    run = ingest_bytes(json.dumps(items).encode(), "mixed.json")
    assert run.status == IngestRun.Status.PARTIAL
    assert (run.n_new, run.n_updated, run.n_rejected) == (1, 1, 4)
    reasons = list(run.rejected.values_list("position", "reason"))
    assert [pos for pos, _ in reasons] == [2, 3, 4, 5]
    assert "10000" in reasons[0][1] or "10,000" in reasons[0][1]
    assert "title" in reasons[1][1] and "abstract" in reasons[2][1]
    assert Paper.objects.count() == 2
    assert Paper.objects.get(arxiv_id="2410.00001").upvotes == 8


def test_a_dump_where_every_entry_is_bad_fails(stored: list[dict[str, Any]]) -> None:
    run = ingest_bytes(b"[1, 2, 3]", "numbers.json")
    assert run.status == IngestRun.Status.FAILED and "all 3" in run.error
    assert RejectedEntry.objects.filter(run=run).count() == 3
    assert snapshot() == stored


def test_html_with_script_and_javascript_links_stores_only_safe_text() -> None:
    items = [
        hf_item(
            "2410.77777",
            "Safe <script>alert(1)</script> Title",
            summary="See javascript:alert(1) and https://github.com/ok/repo.",
            projectPage="javascript:alert(1)",
        )
    ]
    props = json.dumps({"dailyPapers": items, "dateString": "2024-10-25"})
    from html import escape

    page = (
        f'<!doctype html><html><head><script>var x = "<h3>evil</h3>";</script></head><body>'
        f'<div class="SVELTE_HYDRATER contents" data-target="DailyPapers" '
        f'data-props="{escape(props)}"></div><a href="javascript:alert(2)">x</a></body></html>'
    )
    run = ingest_bytes(page.encode(), "page.html")
    assert (run.status, run.format, run.n_new) == ("success", "hf-html", 1)
    paper = Paper.objects.get()
    assert paper.url_project == ""
    assert paper.url_code == "https://github.com/ok/repo"
    assert "javascript:" not in " ".join([paper.url_page, paper.url_abs, paper.url_pdf])


def test_mixed_encoding_text_dump_loses_nothing() -> None:
    data = seed_layout(
        [("Caf\u00e9 Networks", "An abstract about caf\u00e9s."), ("Second Paper", "Plain.")]
    )
    data = data.replace("Caf\u00e9 Networks".encode(), "Caf\u00e9 Networks".encode("cp1252"))
    run = ingest_bytes(data, "mixed.txt")
    assert run.n_new == 2 and run.status == "success"
    assert Paper.objects.filter(title="Caf\u00e9 Networks").exists()
    assert any("1252" in note for note in run.notes)


def test_forced_format_overrides_sniffing(today_2026: Any) -> None:
    run = ingest_path(SEED, IngestOptions(source="test", fmt="hf-json"))
    assert run.status == "failed" and run.format == "hf-json"
    assert Paper.objects.count() == 0


def test_unexpected_error_is_recorded_not_raised(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("parser bug")

    monkeypatch.setattr("digest.ingest.run.parse", boom)
    run = ingest_bytes(hf_json([GOOD]), "x.json")
    assert run.status == "failed" and "RuntimeError: parser bug" in run.error


def test_feed_cut_off_mid_download_keeps_its_complete_entries(
    stored: list[dict[str, Any]],
) -> None:
    data = (SAMPLES / "arxiv-rss-2024-11-28.xml").read_bytes()
    cut = data[: len(data) // 2]
    run = ingest_bytes(cut, "half.xml")
    assert run.status == IngestRun.Status.PARTIAL and run.n_rejected == 1
    assert run.n_new > 500
    assert "breaks off after entry" in run.rejected.get().reason
    assert Paper.objects.count() == run.n_new + 1
