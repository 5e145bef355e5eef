"""The dump parsers against the real samples in ../shared, and format sniffing."""

from __future__ import annotations

import html
import io
import json
import re
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from digest.ingest import FORMATS, PARSERS, parse, sniff, validate
from digest.ingest.arxiv import split_creators
from digest.ingest.records import DumpError, Note, PaperRecord, Rejected

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SEED = SHARED / "seeds" / "000_66121929927fe5a4.txt"
SAMPLES = SHARED / "samples"
CAPTURE = SAMPLES / "hf-papers-page-capture.txt"
HF_JSON = SAMPLES / "hf-daily-papers-2024-10-25.json"
ATOM = SAMPLES / "arxiv-atom-query.xml"
RSS = SAMPLES / "arxiv-rss-2024-11-28.xml"
RSS_EMPTY = SAMPLES / "arxiv-rss-empty.xml"
TODAY = date(2026, 11, 29)

SEED_FIRST_TITLE = (
    "Recommendation as Language Processing (RLP): A Unified Pretrain, Personalized Prompt "
    "& Predict Paradigm (P5)"
)
SEED_HEADER = (
    "new",
    "Get trending papers in your email inbox!",
    "Subscribe",
    "byAK and the research community",
    "Mar 11",
)


def entries(path: Path, fmt: str | None = None, today: date = TODAY) -> list[object]:
    with path.open("rb") as stream:
        _, iterator = parse(stream, fmt, today=today)
        return list(iterator)


def records(path: Path, fmt: str | None = None, today: date = TODAY) -> list[PaperRecord]:
    found = entries(path, fmt, today)
    assert all(isinstance(entry, PaperRecord) for entry in found), found
    return [entry for entry in found if isinstance(entry, PaperRecord)]


# --- sniffing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (SEED, "hf-text"),
        (CAPTURE, "hf-text"),
        (HF_JSON, "hf-json"),
        (ATOM, "arxiv-atom"),
        (RSS, "arxiv-rss"),
        (RSS_EMPTY, "arxiv-rss"),
    ],
)
def test_every_sample_is_sniffed_as_its_format(path: Path, expected: str) -> None:
    assert sniff(path.read_bytes()[:8192]) == expected


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b'<?xml version="1.0"?>\n<!-- saved by hand -->\n<feed xmlns="x">', "arxiv-atom"),
        (b"\xef\xbb\xbf  \n<rss version='2.0'>", "arxiv-rss"),
        ('\ufeff<?xml version="1.0"?><feed>'.encode("utf-16-le"), "arxiv-atom"),
        (b'<!DOCTYPE feed [<!ENTITY x SYSTEM "file:///etc/passwd">]><feed>', "arxiv-atom"),
        (b"<!DOCTYPE rss [\n" + b'<!ENTITY a "aaaa">\n' * 1000, "arxiv-rss"),
        (b'<atom:feed xmlns:atom="http://www.w3.org/2005/Atom">', "arxiv-atom"),
        (b"<!doctype html><html><body>", "hf-html"),
        (b"<!DOCTYPE HTML PUBLIC '-//W3C//DTD HTML 4.01//EN'><html>", "hf-html"),
        (b"<html lang=en>", "hf-html"),
        (b"  <div class='x'>Mar 11</div>", "hf-html"),
        (b'[{"paper": {"id": "2410.17243"}}]', "hf-json"),
        (b'\n\n  [\n  {"paper"', "hf-json"),
        (b'{"dailyPapers": []}', "hf-json"),
        (b"[]", "hf-json"),
        (b" [-] 12\nhttps://huggingface.co/login\nTitle", "hf-text"),
        (b"Mar 11\n\nA title\n\nAn abstract", "hf-text"),
        (b"{scriptsize CODE2SEQ} is a title", "hf-text"),
    ],
)
def test_sniff_small_variants(head: bytes, expected: str) -> None:
    assert sniff(head) == expected


def test_formats_lists_every_parser() -> None:
    assert (
        set(FORMATS)
        == set(PARSERS)
        == {
            "hf-text",
            "hf-html",
            "hf-json",
            "arxiv-atom",
            "arxiv-rss",
        }
    )


def test_parse_rewinds_after_sniffing_and_names_the_format() -> None:
    stream = io.BytesIO(HF_JSON.read_bytes())
    fmt, iterator = parse(stream, today=TODAY)
    assert fmt == "hf-json"
    assert sum(1 for _ in iterator) == 29


def test_parse_accepts_a_forced_format() -> None:
    assert len(records(ATOM, "arxiv-atom")) == 10


def test_unknown_format_name_lists_the_valid_ones() -> None:
    with pytest.raises(DumpError, match="hf-text, hf-html, hf-json, arxiv-atom, arxiv-rss"):
        parse(io.BytesIO(b"x"), "csv", today=TODAY)


# --- HF page as text, old layout (the seed) ------------------------------------------------


def test_seed_yields_exactly_94_papers_in_file_order() -> None:
    papers = records(SEED)
    assert len(papers) == 94
    assert papers[0].title == SEED_FIRST_TITLE
    assert [paper.position for paper in papers] == list(range(1, 95))


def test_seed_titles_and_abstracts_are_exactly_the_file_lines() -> None:
    # Independent reading of the layout: 10 header lines, then title / blank / abstract / blank.
    lines = SEED.read_text(encoding="utf-8").split("\n")
    papers = records(SEED)
    assert [paper.title for paper in papers] == [" ".join(line.split()) for line in lines[10::4]]
    assert [paper.abstract for paper in papers] == [" ".join(line.split()) for line in lines[12::4]]


def test_seed_header_lines_never_become_papers() -> None:
    titles = {paper.title for paper in records(SEED)}
    assert titles.isdisjoint(SEED_HEADER)


@pytest.mark.parametrize(
    ("today", "listing"),
    [
        (date(2026, 11, 29), date(2026, 3, 11)),
        (date(2026, 3, 11), date(2026, 3, 11)),
        (date(2026, 3, 10), date(2025, 3, 11)),
        (date(2027, 1, 1), date(2026, 3, 11)),
    ],
)
def test_seed_listing_date_is_the_most_recent_mar_11_not_after_today(
    today: date, listing: date
) -> None:
    assert {paper.listing_date for paper in records(SEED, today=today)} == {listing}


@pytest.mark.parametrize(
    ("title_start", "code_url"),
    [
        ("Recommendation as Language Processing", "https://github.com/jeykigung/P5"),
        ("TinyFusion:", "https://github.com/VainF/TinyFusion"),
    ],
)
def test_seed_code_links_come_from_the_abstract_after_validate(
    title_start: str, code_url: str
) -> None:
    validated = [validate(paper) for paper in records(SEED)]
    assert all(isinstance(paper, PaperRecord) for paper in validated)
    (paper,) = [
        p for p in validated if isinstance(p, PaperRecord) and p.title.startswith(title_start)
    ]
    assert paper.url_code == code_url


def test_old_layout_title_without_abstract_at_the_end_is_rejected() -> None:
    text = b"new\n\nMar 11\n\nFirst title\n\nFirst abstract.\n\nDangling title\n"
    found = list(parse(io.BytesIO(text), today=TODAY)[1])
    assert found[0] == PaperRecord(
        title="First title", abstract="First abstract.", position=1, listing_date=date(2026, 3, 11)
    )
    assert found[1] == Rejected(2, "missing abstract", "Dangling title")


def test_old_layout_without_a_date_line_skips_the_known_header_and_says_so() -> None:
    text = b"new\n\nSubscribe\n\nA title\n\nAn abstract.\n"
    found = list(parse(io.BytesIO(text), today=TODAY)[1])
    assert found[0] == Note("no listing date found in the page header")
    assert found[1] == PaperRecord(title="A title", abstract="An abstract.", position=1)


# --- HF page as text, card layout (the capture) --------------------------------------------


def test_capture_yields_exactly_its_107_cards_with_their_ids() -> None:
    papers = records(CAPTURE)
    expected_ids = re.findall(r"login\?next=%2Fpapers%2F(\S+)", CAPTURE.read_text())
    assert len(papers) == 107
    assert [paper.arxiv_id for paper in papers] == expected_ids


def test_capture_first_card() -> None:
    first = records(CAPTURE)[0]
    assert first.arxiv_id == "2410.05434"
    assert first.title == (
        "Better than Your Teacher: LLM Agents that learn from Privileged AI Feedback"
    )
    assert first.abstract.startswith("While large language models (LLMs) show impressive")
    assert first.author_count == 2
    assert first.published_on == date(2024, 10, 7)
    assert first.upvotes == 1
    assert first.url_page == "https://huggingface.co/papers/2410.05434"
    assert first.listing_date == date(2026, 3, 25)


def test_capture_upvotes_dash_means_zero() -> None:
    papers = records(CAPTURE)
    assert all(isinstance(paper.upvotes, int) for paper in papers)
    assert sum(1 for paper in papers if paper.upvotes == 0) == 46
    assert max(paper.upvotes or 0 for paper in papers) == 108


def test_capture_author_counts_and_organisations() -> None:
    papers = records(CAPTURE)
    by_id = {paper.arxiv_id: paper for paper in papers}
    assert by_id["2305.06161"].author_count == 67
    assert by_id["2509.18420"].author_count == 1
    orgs = {p.arxiv_id: p.signals["organization"] for p in papers if "organization" in p.signals}
    assert len(orgs) == 8
    assert orgs["2510.21057"] == "Google"
    assert orgs["2309.13320"] == "CIS, LMU Munich"
    assert all(by_id[arxiv_id].author_count is None for arxiv_id in orgs)
    assert sum(1 for paper in papers if paper.author_count is None) == 8


def test_capture_dates_without_year_belong_to_the_listing_year() -> None:
    by_id = {paper.arxiv_id: paper for paper in records(CAPTURE)}
    assert by_id["2602.04289"].published_on == date(2026, 2, 3)
    assert by_id["2305.06161"].published_on == date(2023, 5, 8)
    assert all(paper.published_on is not None for paper in by_id.values())
    assert all(paper.listing_date == date(2026, 3, 25) for paper in by_id.values())


def test_capture_comment_counts() -> None:
    by_id = {paper.arxiv_id: paper for paper in records(CAPTURE)}
    assert by_id["2310.17680"].signals["comments"] == 10
    assert by_id["2510.21057"].signals == {"organization": "Google", "comments": 1}
    assert "comments" not in by_id["2410.05434"].signals
    assert sum(1 for paper in by_id.values() if "comments" in paper.signals) == 33


def test_capture_nav_and_footer_lines_never_become_papers() -> None:
    titles = {paper.title for paper in records(CAPTURE)}
    for line in ("Previous", "Trending Papers ranked by GitHub stars activity", "Daily Papers"):
        assert line not in titles
    assert all(not title.startswith("http") for title in titles)


def test_capture_all_cards_pass_validation() -> None:
    validated = [validate(paper) for paper in records(CAPTURE)]
    assert all(isinstance(paper, PaperRecord) for paper in validated)
    first = validated[0]
    assert isinstance(first, PaperRecord)
    assert first.url_project == "https://leap-llm.github.io"


def test_card_without_abstract_is_rejected_by_validate() -> None:
    card = (
        "Mar 25\n\n [-] 3\n\nhttps://huggingface.co/login?next=%2Fpapers%2F2401.00001\n\n"
        "Lonely Title\n\nhttps://huggingface.co/papers/2401.00001\n\n"
        "https://huggingface.co/papers/2401.00001\n\n[\n\n2 authors](x)\n\n·\n\nJan 2, 2024\n"
    )
    (card_record,) = list(parse(io.BytesIO(card.encode()), today=TODAY)[1])
    assert isinstance(card_record, PaperRecord)
    assert card_record.arxiv_id == "2401.00001"
    assert validate(card_record) == Rejected(1, "missing abstract", "Lonely Title")


# --- HF daily-papers JSON --------------------------------------------------------------------


def test_hf_json_yields_29_records_with_unwrapped_titles() -> None:
    items = json.loads(HF_JSON.read_text())
    papers = records(HF_JSON)
    assert len(papers) == 29
    assert [paper.title for paper in papers] == [item["title"] for item in items]
    assert all("\n" not in paper.title and "\n" not in paper.abstract for paper in papers)
    assert papers[0].title == (
        "Breaking the Memory Barrier: Near Infinite Batch Size Scaling for Contrastive Loss"
    )


def test_hf_json_fields() -> None:
    first = records(HF_JSON)[0]
    assert first.arxiv_id == "2410.17243"
    assert first.url_page == "https://huggingface.co/papers/2410.17243"
    assert first.url_abs == "https://arxiv.org/abs/2410.17243"
    assert first.url_pdf == "https://arxiv.org/pdf/2410.17243"
    assert first.listing_date == date(2024, 10, 25)
    assert first.published_on == date(2024, 10, 22)
    assert first.upvotes == 64
    assert first.signals == {"comments": 3}
    assert first.authors[:2] == ["Zesen Cheng", "Hang Zhang"]
    assert first.author_count == 9
    assert first.abstract.startswith("Contrastive loss is a powerful approach for representation")


def test_hf_json_skips_hidden_authors() -> None:
    by_id = {paper.arxiv_id: paper for paper in records(HF_JSON)}
    authors = [name for paper in by_id.values() for name in paper.authors]
    assert "Zhanchao Zhou" not in authors
    assert len(authors) == 190
    assert by_id["2410.17897"].upvotes == 5


def test_hf_json_accepts_the_embedded_object_and_bare_papers() -> None:
    item = json.loads(HF_JSON.read_text())[0]
    embedded = json.dumps({"dailyPapers": [item], "dateString": "2024-10-25"}).encode()
    bare = json.dumps([item["paper"]]).encode()
    (from_object,) = list(parse(io.BytesIO(embedded), today=TODAY)[1])
    (from_bare,) = list(parse(io.BytesIO(bare), today=TODAY)[1])
    assert isinstance(from_object, PaperRecord)
    assert isinstance(from_bare, PaperRecord)
    assert from_object.title == item["title"]
    # The bare paper only has the hard-wrapped title; it is collapsed.
    assert from_bare.title == item["title"]
    assert from_bare.arxiv_id == from_object.arxiv_id == "2410.17243"
    assert from_bare.listing_date is None


def test_hf_json_github_repo_and_stars_are_kept() -> None:
    paper = {
        "id": "2401.00001",
        "title": "T",
        "summary": "S",
        "githubRepo": "https://github.com/a/b",
        "projectPage": "javascript:alert(1)",
        "githubStars": 12,
    }
    item = {"paper": paper, "title": "T", "numComments": 0, "publishedAt": "2024-01-02T00:00Z"}
    (record,) = list(parse(io.BytesIO(json.dumps([item]).encode()), today=TODAY)[1])
    assert isinstance(record, PaperRecord)
    assert record.url_code == "https://github.com/a/b"
    assert record.url_project == ""
    assert record.signals == {"comments": 0, "github_stars": 12}


# --- arXiv Atom and RSS --------------------------------------------------------------------


def test_atom_yields_10_entries_with_old_style_ids() -> None:
    papers = records(ATOM)
    assert len(papers) == 10
    ids = [paper.arxiv_id for paper in papers]
    assert ids[0] == "1801.05533"
    assert "math/0502287" in ids
    assert "math/0507289" in ids


def test_atom_entry_fields() -> None:
    first = records(ATOM)[0]
    assert first.title == "Einstein-Weyl structures on almost cosymplectic manifolds"
    assert first.abstract.startswith("In this article, we study the Einstein-Weyl structures")
    assert "\n" not in first.abstract
    assert first.authors == ["Xiaomin Chen"]
    assert first.published_on == date(2018, 1, 17)
    assert first.url_abs == "http://arxiv.org/abs/1801.05533v1"
    assert first.url_pdf == "http://arxiv.org/pdf/1801.05533v1"
    assert first.signals == {
        "categories": ["math.DG", "53D10, 53D15"],
        "primary_category": "math.DG",
        "comment": "12 pages, no figures",
    }


def test_atom_comment_links_fill_code_url() -> None:
    atom = (
        b'<feed xmlns="http://www.w3.org/2005/Atom" xmlns:arxiv="http://arxiv.org/schemas/atom">'
        b"<entry><id>http://arxiv.org/abs/2401.00001v2</id><title>T</title><summary>S</summary>"
        b"<arxiv:comment>Code: https://github.com/a/b.</arxiv:comment></entry></feed>"
    )
    (record,) = list(parse(io.BytesIO(atom), today=TODAY)[1])
    assert isinstance(record, PaperRecord)
    assert record.arxiv_id == "2401.00001"
    assert record.url_code == "https://github.com/a/b"


def test_rss_yields_1504_records() -> None:
    papers = records(RSS)
    assert len(papers) == 1504
    assert Counter(paper.signals["announce_type"] for paper in papers) == {
        "new": 926,
        "replace": 569,
        "cross": 9,
    }
    assert all(paper.arxiv_id for paper in papers)
    assert {paper.listing_date for paper in papers} == {date(2024, 11, 28)}


def test_rss_item_fields() -> None:
    papers = records(RSS)
    first = papers[0]
    assert first.arxiv_id == "2411.17700"
    assert first.abstract.startswith("This study investigates the influence of generative")
    assert "Announce Type" not in first.abstract
    assert first.authors == ["Jun Cui"]
    assert first.signals["categories"] == ["cs.CY"]
    assert first.published_on == date(2024, 11, 28)
    assert first.url_abs == "https://arxiv.org/abs/2411.17700"
    assert first.url_pdf == "https://arxiv.org/pdf/2411.17700"
    replaced = next(paper for paper in papers if paper.arxiv_id == "1401.3665")
    assert replaced.signals["announce_type"] == "replace"
    assert replaced.published_on is None


def test_rss_authors_keep_names_whole_across_affiliation_commas() -> None:
    by_id = {paper.arxiv_id: paper for paper in records(RSS)}
    tex_names = next(p for p in by_id.values() if "Patrik Penc" in p.authors)
    assert tex_names.authors == [
        "Patrik Penc",
        "Cătălin Paşcu Moca",
        "Örs Legeza",
        "Tomaž Prosen",
        "Gergely Zaránd",
        "Miklós Antal Werner",
    ]
    with_affiliations = next(p for p in by_id.values() if "Tianliang Yan" in p.authors)
    assert len(with_affiliations.authors) == 8
    assert with_affiliations.authors[-1] == "Denis Martynov"


@pytest.mark.parametrize(
    ("creators", "names"),
    [
        ("A, B, and C", ["A", "B", "C"]),
        ("A, B and C", ["A", "B", "C"]),
        ("A and B", ["A", "B"]),
        ("Ann Lee (Univ. of X, and Y Lab), Bo Wu", ["Ann Lee", "Bo Wu"]),
        ("Alexander Sandberg", ["Alexander Sandberg"]),
    ],
)
def test_split_creators(creators: str, names: list[str]) -> None:
    assert split_creators(creators) == names


def test_empty_rss_parses_to_nothing() -> None:
    assert entries(RSS_EMPTY) == []


def test_all_rss_records_pass_validation() -> None:
    assert all(isinstance(validate(paper), PaperRecord) for paper in records(RSS))


# --- HF page as HTML -----------------------------------------------------------------------


def _hydrated_page(props: dict[str, object]) -> bytes:
    escaped = html.escape(json.dumps(props), quote=True)
    return (
        "<!DOCTYPE html><html><head><title>Daily Papers - Hugging Face</title>"
        '<script>window.hubConfig = {"title": "Not a paper"};</script></head><body>'
        '<div class="SVELTE_HYDRATER contents" data-target="MainHeader" data-props="{}"></div>'
        '<div class="SVELTE_HYDRATER contents" data-target="DailyPapers" '
        f'data-props="{escaped}"></div>'
        '<article><h3><a href="/papers/2410.17243">Visible card title</a></h3></article>'
        "</body></html>"
    ).encode()


def test_html_with_embedded_daily_papers_is_read_like_the_json() -> None:
    items = json.loads(HF_JSON.read_text())[:3]
    for item in items:
        item.pop("publishedAt")  # the page's dateString must stand in
    page = _hydrated_page({"dailyPapers": items, "dateString": "2024-10-24"})
    fmt, iterator = parse(io.BytesIO(page), today=TODAY)
    papers = list(iterator)
    assert fmt == "hf-html"
    assert [p.title for p in papers if isinstance(p, PaperRecord)] == [i["title"] for i in items]
    assert {p.listing_date for p in papers if isinstance(p, PaperRecord)} == {date(2024, 10, 24)}


OLD_LAYOUT_PAGE = b"""<!DOCTYPE html>
<html><head><title>Daily Papers - Hugging Face</title>
<style>.card { color: red }</style>
<script>document.title = "Injected Title"; var abstract = "<p>Injected abstract</p>";</script>
</head>
<body>
<nav><a href="/">Hugging Face</a></nav>
<div>new</div>
<h2>Get trending papers in your email inbox!</h2>
<a href="javascript:alert(document.cookie)">Subscribe</a>
<p>by<a href="/akhaliq">AK</a> and the research community</p>
<noscript>Please enable JavaScript</noscript>
<time>Mar 11</time>
<article>
  <h3><a href="javascript:alert(1)">Deep Model
      Assembling</a></h3>
  <p>Large models are hard to train.
     We assemble them. Code: <a href="javascript:alert(2)">https://github.com/LeapLabTHU/Model-Assembling</a>.</p>
</article>
<!-- <article><h3>Commented Out</h3><p>Not visible.</p></article> -->
<article>
  <h3><a href="/papers/2">Second <em>Paper</em></a></h3>
  <p>Second abstract.<script>alert("x")</script></p>
</article>
</body></html>
"""


def test_html_without_embedded_data_is_read_through_its_visible_text() -> None:
    fmt, iterator = parse(io.BytesIO(OLD_LAYOUT_PAGE), today=TODAY)
    papers = list(iterator)
    assert fmt == "hf-html"
    assert papers == [
        PaperRecord(
            title="Deep Model Assembling",
            abstract=(
                "Large models are hard to train. We assemble them. "
                "Code: https://github.com/LeapLabTHU/Model-Assembling."
            ),
            position=1,
            listing_date=date(2026, 3, 11),
        ),
        PaperRecord(
            title="Second Paper",
            abstract="Second abstract.",
            position=2,
            listing_date=date(2026, 3, 11),
        ),
    ]


def test_html_script_content_and_javascript_links_never_reach_a_record() -> None:
    props = {
        "dailyPapers": [
            {
                "paper": {
                    "id": "2401.00001",
                    "title": "T",
                    "summary": "S",
                    "githubRepo": "javascript:alert(1)",
                    "projectPage": " JAVASCRIPT:alert(1)",
                }
            }
        ]
    }
    pages = [OLD_LAYOUT_PAGE, _hydrated_page(props)]
    for page in pages:
        for entry in parse(io.BytesIO(page), today=TODAY)[1]:
            assert isinstance(entry, PaperRecord)
            checked = validate(entry)
            assert isinstance(checked, PaperRecord)
            text = repr(checked)
            assert "Injected" not in text
            assert "alert" not in text
            assert "javascript" not in text.lower()
            assert "Please enable JavaScript" not in text


def test_every_parser_accepts_its_sample_when_forced() -> None:
    for path, fmt in [(SEED, "hf-text"), (HF_JSON, "hf-json"), (RSS_EMPTY, "arxiv-rss")]:
        assert all(not isinstance(entry, Rejected) for entry in entries(path, fmt))


def test_a_feed_forced_as_the_other_feed_format_fails_clearly() -> None:
    with pytest.raises(DumpError, match="root element is <feed>"):
        entries(ATOM, "arxiv-rss")
