"""Hostile and broken dumps: each fails with a clear reason, or keeps what can be kept."""

from __future__ import annotations

import io
import json
import time
from datetime import date
from pathlib import Path

import pytest

from digest.ingest import FORMATS, parse, sniff, validate
from digest.ingest.decoding import decode_text
from digest.ingest.records import DumpError, Note, PaperRecord, Rejected

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
HF_JSON = SHARED / "samples" / "hf-daily-papers-2024-10-25.json"
TODAY = date(2026, 11, 29)

SMALL_SEED = "new\n\nSubscribe\n\nMar 11\n\nCafé Über Naïve\n\nAn abstract about “quotes” – 5 €.\n"


def run(data: bytes, fmt: str | None = None) -> list[object]:
    return list(parse(io.BytesIO(data), fmt, today=TODAY)[1])


# --- empty and binary ----------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"   \n\n\t  \r\n", b"\xef\xbb\xbf", b"\xef\xbb\xbf  \n"])
def test_empty_file_is_refused(data: bytes) -> None:
    with pytest.raises(DumpError, match="empty file"):
        run(data)


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_file_is_refused_by_every_forced_parser(fmt: str) -> None:
    with pytest.raises(DumpError, match="empty file"):
        run(b"  \n ", fmt)


@pytest.mark.parametrize(
    "data",
    [
        bytes(range(256)) * 40,
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00\x01" * 500,
        b"\x01\x02\x03\x04 some text \x05\x06\x07\x08" * 100,  # no NUL, mostly control bytes
        b"Mar 11\n\nTitle\x00\n\nAbstract\n",
    ],
)
def test_binary_junk_is_refused(data: bytes) -> None:
    with pytest.raises(DumpError, match="binary content, not a paper listing"):
        run(data)


@pytest.mark.parametrize("fmt", ["hf-text", "hf-html"])
def test_binary_junk_is_refused_by_the_text_parsers_when_forced(fmt: str) -> None:
    with pytest.raises(DumpError, match="binary"):
        run(bytes(range(256)) * 40, fmt)


# --- encodings -----------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32", "utf-8-sig"])
def test_text_with_a_byte_order_mark_is_decoded(codec: str) -> None:
    data = SMALL_SEED.encode(codec)
    if codec == "utf-16-be":
        data = b"\xfe\xff" + data  # Python writes no BOM for the explicit-endian codecs
    assert sniff(data) == "hf-text"
    (paper,) = run(data)
    assert isinstance(paper, PaperRecord)
    assert paper.title == "Café Über Naïve"
    assert paper.abstract == "An abstract about “quotes” – 5 €."


def test_windows_1252_file_is_decoded_with_a_note() -> None:
    found = run(SMALL_SEED.encode("cp1252"))
    assert found[0] == Note("2 lines were not valid UTF-8; decoded as Windows-1252")
    paper = found[1]
    assert isinstance(paper, PaperRecord)
    assert paper.title == "Café Über Naïve"
    assert paper.abstract == "An abstract about “quotes” – 5 €."


def test_mixed_encodings_lose_nothing() -> None:
    data = (
        b"Mar 11\n\n"
        + "Zürich in UTF-8\n\n".encode()
        + "Abstract with latin-1 é and ñ\n\n".encode("latin-1")
        + "Second title — UTF-8 dash\n\n".encode()
        + "Second abstract, cp1252 “smart quotes”\n".encode("cp1252")
    )
    text, note = decode_text(data)
    assert note == Note("2 lines were not valid UTF-8; decoded as Windows-1252")
    assert "Zürich in UTF-8" in text
    assert "latin-1 é and ñ" in text
    assert "Second title — UTF-8 dash" in text
    assert "cp1252 “smart quotes”" in text


def test_a_line_mixing_utf8_and_cp1252_keeps_both() -> None:
    text, note = decode_text("naïve ".encode() + "café".encode("cp1252") + b"\n")
    assert text == "naïve café\n"
    assert note == Note("1 line was not valid UTF-8; decoded as Windows-1252")


def test_undefined_cp1252_bytes_map_to_latin1() -> None:
    text, _ = decode_text(b"a\x81b\x9dc \xff")
    assert text == "a\x81b\x9dc ÿ"


def test_windows_line_endings_are_normalized() -> None:
    text, note = decode_text(b"Mar 11\r\n\r\nT\r\n\r\nA\rB")
    assert text == "Mar 11\n\nT\n\nA\nB"
    assert note is None


# --- JSON ----------------------------------------------------------------------------------


def test_truncated_json_keeps_the_complete_items_and_rejects_the_rest() -> None:
    data = HF_JSON.read_bytes()
    cut = data.index(b'"paper"', data.index(b'"paper"', data.index(b'"paper"') + 1) + 1) + 200
    found = run(data[:cut])
    papers = [entry for entry in found if isinstance(entry, PaperRecord)]
    assert len(papers) == 2
    items = json.loads(data)
    assert [paper.arxiv_id for paper in papers] == [item["paper"]["id"] for item in items[:2]]
    rejected = found[-1]
    assert isinstance(rejected, Rejected)
    assert rejected.position == 3
    assert rejected.reason.startswith("truncated JSON after entry 2: ")
    assert len(rejected.reason) < 300


def test_json_cut_one_byte_short_keeps_all_29() -> None:
    data = HF_JSON.read_bytes()
    found = run(data[:-1])
    assert sum(isinstance(entry, PaperRecord) for entry in found) == 29
    assert isinstance(found[-1], Rejected)
    assert found[-1].reason.startswith("truncated JSON after entry 29")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'[{"paper": {"id": "2410.1', "not valid JSON"),
        (b"[nope]", "not valid JSON"),
        (b"nope", "not valid JSON"),
        (b'{"hello": "world"}', "JSON of the wrong shape"),
        (b'{"dailyPapers": 3}', "JSON of the wrong shape"),
        (b"42", "JSON of the wrong shape"),
        (b'"a string"', "JSON of the wrong shape"),
        (b"null", "JSON of the wrong shape"),
    ],
)
def test_unusable_json_fails_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(DumpError, match=message):
        run(data, "hf-json")


def test_json_entries_that_are_not_objects_are_rejected_one_by_one() -> None:
    found = run(b'[1, "two", null, [3], {"paper": {"id": "2401.00001", "title": "T"}}]')
    assert found[:4] == [
        Rejected(1, "entry is not an object", "1"),
        Rejected(2, "entry is not an object", "two"),
        Rejected(3, "entry is not an object", "None"),
        Rejected(4, "entry is not an object", "[3]"),
    ]
    last = found[4]
    assert isinstance(last, PaperRecord)
    assert validate(last) == Rejected(5, "missing abstract", "T")


def test_json_with_a_bom_and_leading_whitespace_is_read() -> None:
    data = b"\xef\xbb\xbf \n " + HF_JSON.read_bytes()
    assert sum(isinstance(entry, PaperRecord) for entry in run(data)) == 29


def test_utf16_json_is_read() -> None:
    data = HF_JSON.read_text(encoding="utf-8").encode("utf-16")
    assert sniff(data[:8192]) == "hf-json"
    assert sum(isinstance(entry, PaperRecord) for entry in run(data)) == 29


def test_json_items_of_odd_types_do_not_crash() -> None:
    data = (
        b'[{"paper": {"id": 5, "title": ["x"], "summary": "S", "authors": "nobody",'
        b' "upvotes": "many", "publishedAt": 7}, "title": "T", "numComments": true}]'
    )
    (paper,) = run(data)
    assert isinstance(paper, PaperRecord)
    assert (paper.title, paper.arxiv_id, paper.authors, paper.upvotes) == ("T", None, [], None)
    assert paper.published_on is None
    assert paper.signals == {}


# --- XML -----------------------------------------------------------------------------------

XXE_ATOM = (
    b'<?xml version="1.0"?>\n<!DOCTYPE feed [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
    b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>http://arxiv.org/abs/2401.00001</id>'
    b"<title>&x;</title><summary>S</summary></entry></feed>"
)
XXE_RENAMED_DOCTYPE = XXE_ATOM.replace(b"DOCTYPE feed", b"DOCTYPE f")
XXE_PARAMETER = (
    b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;]>'
    b"<rss><channel></channel></rss>"
)
BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + b"".join(
        b' <!ENTITY lol%d "%s">\n' % (n, (b"&lol%d;" % (n - 1) if n > 1 else b"&lol;") * 10)
        for n in range(1, 10)
    )
    + b']>\n<rss version="2.0"><channel><item><title>&lol9;</title></item></channel></rss>'
)


@pytest.mark.parametrize(
    "data",
    [XXE_ATOM, XXE_RENAMED_DOCTYPE, XXE_PARAMETER, BILLION_LAUGHS],
    ids=["xxe", "xxe-renamed-doctype", "xxe-parameter-entity", "billion-laughs"],
)
def test_entity_declarations_are_refused_without_expanding_anything(data: bytes) -> None:
    assert sniff(data) in ("arxiv-atom", "arxiv-rss")
    started = time.perf_counter()
    with pytest.raises(DumpError, match="unsafe XML: entity declarations are not allowed"):
        run(data)
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize("fmt", ["hf-html", "hf-text"])
def test_an_entity_bomb_forced_through_a_text_parser_never_expands(fmt: str) -> None:
    try:
        found = run(BILLION_LAUGHS, fmt)
    except DumpError as error:
        assert "unsafe" in str(error) or "entity" in str(error)
    else:
        assert all("lollol" not in repr(entry) for entry in found)


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (b"<rss version='2.0'><channel><item><title>cut off", "arxiv-rss"),
        (b'<feed xmlns="http://www.w3.org/2005/Atom"><entry></feed>', "arxiv-atom"),
        (b"<feed><entry><title>a & b</title></entry></feed>", "arxiv-atom"),
    ],
)
def test_malformed_xml_fails_with_a_reason(data: bytes, fmt: str) -> None:
    with pytest.raises(DumpError, match="not well-formed XML: "):
        run(data, fmt)


def test_xml_that_is_not_a_feed_fails_with_a_reason() -> None:
    with pytest.raises(DumpError, match=r"not an arXiv feed: the root element is <html>"):
        run(b"<html><body/></html>", "arxiv-atom")


# --- HTML ----------------------------------------------------------------------------------


def test_html_that_declares_entities_is_refused() -> None:
    page = b'<!DOCTYPE html [<!ENTITY x SYSTEM "file:///etc/passwd">]><html><p>&x;</p></html>'
    with pytest.raises(DumpError, match="unsafe XML"):
        run(page)


def test_html_with_broken_data_props_falls_back_to_text() -> None:
    page = (
        b"<html><body><div data-props='{not json'></div><div data-props='[1]'></div>"
        b"<time>Mar 11</time><h3>A Title</h3><p>An abstract.</p></body></html>"
    )
    assert run(page) == [
        PaperRecord(
            title="A Title", abstract="An abstract.", position=1, listing_date=date(2026, 3, 11)
        )
    ]


# --- oversized and missing fields through a real dump --------------------------------------


def test_a_10000_character_title_in_a_dump_is_rejected_by_validate() -> None:
    data = f"Mar 11\n\n{'T' * 10_000}\n\nAbstract.\n\nFine title\n\nFine abstract.\n".encode()
    checked = [validate(entry) for entry in run(data) if isinstance(entry, PaperRecord)]
    assert checked[0] == Rejected(1, "title is 10000 characters (limit 1000)", "T" * 120)
    assert isinstance(checked[1], PaperRecord)


def test_old_layout_title_hard_wrapped_over_lines_stays_one_paper() -> None:
    data = b"Mar 11\n\nA title wrapped\n  over two lines\n\nAn abstract\nwrapped too.\n"
    assert run(data) == [
        PaperRecord(
            title="A title wrapped over two lines",
            abstract="An abstract wrapped too.",
            position=1,
            listing_date=date(2026, 3, 11),
        )
    ]


def test_card_without_paper_link_is_rejected() -> None:
    data = b"Mar 25\n\n [-] 3\n\nOrphan title\n\nno link anywhere\n"
    assert run(data) == [Rejected(1, "card without a paper link", "Orphan title no link anywhere")]
