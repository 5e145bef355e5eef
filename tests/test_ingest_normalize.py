"""Ids, title keys, text and URL cleaning, dates, and the per-record limits of validate()."""

from __future__ import annotations

from datetime import date

import pytest

from digest.ingest import normalize_arxiv_id, title_key, validate
from digest.ingest.dates import most_recent, parse_month_day, parse_rfc822_date
from digest.ingest.normalize import clean_text, extract_links, safe_url
from digest.ingest.records import PaperRecord, Rejected

# --- arXiv ids -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2410.17243", "2410.17243"),
        ("2410.17243v2", "2410.17243"),
        ("arXiv:2410.17243v1", "2410.17243"),
        ("arxiv: 2410.17243", "2410.17243"),
        ("http://arxiv.org/abs/2410.17243v3", "2410.17243"),
        ("https://arxiv.org/abs/2410.17243", "2410.17243"),
        ("https://arxiv.org/pdf/2410.17243v1", "2410.17243"),
        ("https://arxiv.org/pdf/2410.17243v1.pdf", "2410.17243"),
        ("https://export.arxiv.org/abs/2410.17243?context=cs", "2410.17243"),
        ("oai:arXiv.org:2411.17700v1", "2411.17700"),
        ("https://huggingface.co/papers/2410.05434", "2410.05434"),
        ("0704.0001", "0704.0001"),
        ("math/0502287v1", "math/0502287"),
        ("http://arxiv.org/abs/math/0502287v1", "math/0502287"),
        ("hep-th/9901001", "hep-th/9901001"),
        ("math.GT/0309136", "math/0309136"),
        ("  1401.3665v4 ", "1401.3665"),
    ],
)
def test_normalize_arxiv_id_accepts_every_spelling(value: str, expected: str) -> None:
    assert normalize_arxiv_id(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "not an id",
        "2413.17243",  # month 13
        "2410.172",
        "10.1016/j.segan.2024.101477",  # a DOI
        "foo/0502287",  # not an arXiv archive
        "https://example.com/abs/2410.17243",
        "https://huggingface.co/papers/trending",
        "2410.17243 and more",
    ],
)
def test_normalize_arxiv_id_rejects_what_is_not_an_id(value: str | None) -> None:
    assert normalize_arxiv_id(value) is None


# --- title keys ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variants",
    [
        (
            r"Einstein-Weyl structures on almost $\alpha$-cosymplectic manifolds",
            "Einstein-Weyl structures on almost α-cosymplectic manifolds",
            "Einstein–Weyl Structures on Almost alpha-Cosymplectic Manifolds",
            "einstein weyl structures on almost ALPHA cosymplectic manifolds.",
        ),
        (r"\textbf{Foo}: a Bar", "Foo: a Bar", r"\emph{Foo} -- A BAR", "  foo\n  a bar "),
        ("{scriptsize CODE2SEQ} for code", r"{\scriptsize CODE2SEQ} for code", "Code2Seq for Code"),
        ("Café Über Naïve", "Cafe Uber Naive", r"Caf\'e \"Uber Na\"{\i}ve"),
        (
            r"$\beta$-VAE with $\mathcal{O}(n)$ cost",
            "β-VAE with O(n) cost",
            "beta VAE with O n cost",
        ),
        ("Toma\\v{z} and Pa\\c{s}cu", "Tomaž and Paşcu"),
        ("𝛼-nets and ϵ-greedy µ-law", "alpha nets and epsilon greedy mu law"),
        ("Straße", "STRASSE"),
    ],
)
def test_equivalent_titles_share_a_key(variants: tuple[str, ...]) -> None:
    keys = {title_key(variant) for variant in variants}
    assert len(keys) == 1, keys


@pytest.mark.parametrize(
    ("title", "key"),
    [
        (r"Almost $\alpha$-Cosymplectic", "almost alpha cosymplectic"),
        ("  Deep   Learning!!  ", "deep learning"),
        ("", ""),
        ("LLM-as-a-Judge (v2.0)", "llm as a judge v2 0"),
    ],
)
def test_title_key_values(title: str, key: str) -> None:
    assert title_key(title) == key
    assert title_key(title) == title_key(title)


def test_different_titles_keep_different_keys() -> None:
    assert title_key("Alpha Go") != title_key("Beta Go")
    assert title_key("CodeT5") != title_key("CodeT5+ Open") != title_key("Code T5")


# --- text ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        (
            "Near Infinite Batch Size Scaling for\n  Contrastive Loss",
            "Near Infinite Batch Size Scaling for Contrastive Loss",
        ),
        ("  a\tb\r\nc  ", "a b c"),
        ("bell\x07 and nul\x00 gone", "bell and nul gone"),
        ("zero\u200bwidth\ufeff", "zerowidth"),
        ("no\xa0break", "no break"),
        ("evil\u202etxt.exe", "eviltxt.exe"),
        ("lone \ud83d surrogate", "lone surrogate"),
        ("", ""),
        ("already clean", "already clean"),
    ],
)
def test_clean_text(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


# --- URLs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("https://github.com/jeykigung/P5", "https://github.com/jeykigung/P5"),
        ("https://github.com/jeykigung/P5.", "https://github.com/jeykigung/P5"),
        ("http://example.com/a?b=1#c", "http://example.com/a?b=1#c"),
        ("https://en.wikipedia.org/wiki/Foo_(bar)", "https://en.wikipedia.org/wiki/Foo_(bar)"),
        ("https://example.com/x)", "https://example.com/x"),
        ("https://example.com/x).", "https://example.com/x"),
        ("https://example.com/x],", "https://example.com/x"),
        ("https://example.com/x!?", "https://example.com/x"),
        ("  https://example.com  ", "https://example.com"),
        ("HTTPS://EXAMPLE.COM/A", "HTTPS://EXAMPLE.COM/A"),
        ("javascript:alert(1)", ""),
        ("JavaScript://example.com/%0Aalert(1)", ""),
        ("data:text/html;base64,PHNjcmlwdD4=", ""),
        ("/papers/2410.17243", ""),
        ("//example.com/x", ""),
        ("ftp://example.com/file", ""),
        ("https://", ""),
        ("https:///path", ""),
        ("https://exa mple.com", ""),
        ("https://example.com/<script>", ""),
        ("not a url", ""),
        ("", ""),
        (None, ""),
        ("https://example.com/" + "a" * 600, ""),
        ("https://[::1]:99999/", ""),
    ],
)
def test_safe_url(raw: str | None, safe: str) -> None:
    assert safe_url(raw) == safe


@pytest.mark.parametrize(
    ("abstract", "code", "project"),
    [
        (
            "We release the source code at https://github.com/jeykigung/P5.",
            "https://github.com/jeykigung/P5",
            "",
        ),
        ("Our code is available at https://leap-llm.github.io", "", "https://leap-llm.github.io"),
        (
            "Project: https://diffsinger.github.io, code (https://github.com/Moon/DiffSinger).",
            "https://github.com/Moon/DiffSinger",
            "https://diffsinger.github.io",
        ),
        ("See gitlab.com/group/repo for code.", "https://gitlab.com/group/repo", ""),
        ("Demo at https://huggingface.co/spaces/a/b.", "https://huggingface.co/spaces/a/b", ""),
        ("Data: https://huggingface.co/datasets/a/b;", "https://huggingface.co/datasets/a/b", ""),
        (
            "Mirror https://codeberg.org/a/b and https://bitbucket.org/c/d",
            "https://codeberg.org/a/b",
            "",
        ),
        (
            "Paper page https://huggingface.co/papers/2410.05434",
            "",
            "https://huggingface.co/papers/2410.05434",
        ),
        ("No links here, only javascript:alert(1).", "", ""),
        ("", "", ""),
    ],
)
def test_extract_links(abstract: str, code: str, project: str) -> None:
    assert extract_links(abstract) == (code, project)


# --- dates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "not_after", "expected"),
    [
        ("Mar 11", date(2026, 11, 29), date(2026, 3, 11)),
        ("Mar 11", date(2026, 3, 10), date(2025, 3, 11)),
        ("Dec 31", date(2027, 1, 1), date(2026, 12, 31)),
        ("Feb 29", date(2026, 11, 29), date(2024, 2, 29)),
        ("Feb 3", date(2026, 3, 25), date(2026, 2, 3)),
        ("Oct 7, 2024", date(2020, 1, 1), date(2024, 10, 7)),
        ("March 11", date(2026, 11, 29), date(2026, 3, 11)),
        ("Sept. 3", date(2026, 11, 29), date(2026, 9, 3)),
        ("Foo 3", date(2026, 11, 29), None),
        ("Feb 30, 2024", date(2026, 11, 29), None),
        ("Mar 11 is a title", date(2026, 11, 29), None),
    ],
)
def test_parse_month_day(text: str, not_after: date, expected: date | None) -> None:
    assert parse_month_day(text, not_after) == expected


def test_most_recent_is_never_after_the_reference() -> None:
    assert most_recent(11, 29, date(2026, 11, 29)) == date(2026, 11, 29)
    assert most_recent(11, 30, date(2026, 11, 29)) == date(2025, 11, 30)


def test_rss_pub_date_keeps_its_own_day() -> None:
    assert parse_rfc822_date("Thu, 28 Nov 2024 00:00:00 -0500") == date(2024, 11, 28)
    assert parse_rfc822_date("garbage") is None


# --- validate ------------------------------------------------------------------------------


def record(**fields: object) -> PaperRecord:
    base: dict[str, object] = {"title": "A title", "abstract": "An abstract.", "position": 7}
    base.update(fields)
    return PaperRecord(**base)  # type: ignore[arg-type]


def test_validate_keeps_a_good_record_and_leaves_the_input_alone() -> None:
    original = record(title="  A\n title ", upvotes=3)
    checked = validate(original)
    assert isinstance(checked, PaperRecord)
    assert checked.title == "A title"
    assert original.title == "  A\n title "
    assert checked.upvotes == 3


def test_validate_rejects_a_10000_character_title() -> None:
    checked = validate(record(title="x" * 10_000))
    assert checked == Rejected(7, "title is 10000 characters (limit 1000)", "x" * 120)


def test_validate_accepts_a_title_at_the_limit() -> None:
    assert isinstance(validate(record(title="x" * 1000)), PaperRecord)


@pytest.mark.parametrize(
    ("fields", "reason", "excerpt"),
    [
        ({"title": ""}, "missing title", "An abstract."),
        ({"title": " \n\t "}, "missing title", "An abstract."),
        ({"title": "", "abstract": ""}, "missing title", ""),
        ({"abstract": ""}, "missing abstract", "A title"),
        ({"abstract": "\x00\x01"}, "missing abstract", "A title"),
        ({"abstract": "y" * 20_001}, "abstract is 20001 characters (limit 20000)", "A title"),
    ],
)
def test_validate_rejects_missing_or_oversized_text(
    fields: dict[str, object], reason: str, excerpt: str
) -> None:
    assert validate(record(**fields)) == Rejected(7, reason, excerpt)


def test_validate_caps_authors() -> None:
    names = [f"  Author {n}\n" for n in range(1500)] + ["", "   "]
    checked = validate(record(authors=[*names[:3], "x" * 400, *names[3:]]))
    assert isinstance(checked, PaperRecord)
    assert len(checked.authors) == 1000
    assert checked.authors[:3] == ["Author 0", "Author 1", "Author 2"]
    assert checked.authors[3] == "x" * 300
    assert checked.author_count == 1503


@pytest.mark.parametrize(
    ("upvotes", "expected"),
    [(5, 5), (0, 0), (-3, 0), ("12", 12), (None, None), (True, None), ("lots", None)],
)
def test_validate_upvotes_are_non_negative_ints(upvotes: object, expected: int | None) -> None:
    checked = validate(record(upvotes=upvotes))
    assert isinstance(checked, PaperRecord)
    assert checked.upvotes == expected


def test_validate_limits_urls_to_http_and_fills_links_from_the_abstract() -> None:
    checked = validate(
        record(
            abstract="Code at https://github.com/a/b. Site: https://a.github.io/b/.",
            url_page="javascript:alert(1)",
            url_abs="https://arxiv.org/abs/2401.00001",
            url_pdf="data:application/pdf;base64,AAAA",
            arxiv_id="arXiv:2401.00001v3",
        )
    )
    assert isinstance(checked, PaperRecord)
    assert checked.url_page == ""
    assert checked.url_abs == "https://arxiv.org/abs/2401.00001"
    assert checked.url_pdf == ""
    assert checked.url_code == "https://github.com/a/b"
    assert checked.url_project == "https://a.github.io/b/"
    assert checked.arxiv_id == "2401.00001"


def test_validate_keeps_links_the_parser_found() -> None:
    checked = validate(
        record(abstract="https://github.com/other/repo", url_code="https://gitlab.com/mine/x")
    )
    assert isinstance(checked, PaperRecord)
    assert checked.url_code == "https://gitlab.com/mine/x"
