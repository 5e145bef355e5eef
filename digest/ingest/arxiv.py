"""arXiv feeds: the API's Atom responses and the daily RSS announcement feeds.

Both are parsed incrementally (one ``<entry>``/``<item>`` at a time, each dropped once read)
through defusedxml, so a feed cannot declare entities: no entity bomb expands and no external
file or URL is ever read.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from datetime import date
from typing import BinaryIO
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as DefusedET
from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden

from digest.ingest.dates import parse_iso_date, parse_rfc822_date
from digest.ingest.decoding import replay
from digest.ingest.normalize import (
    TEX_ACCENT,
    clean_text,
    extract_links,
    normalize_arxiv_id,
    safe_url,
)
from digest.ingest.records import DumpError, Note, PaperRecord, Rejected

Entry = PaperRecord | Rejected | Note

_ARXIV = "{http://arxiv.org/schemas/atom}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_ABSTRACT = re.compile(r"\bAbstract:\s*")
_ANNOUNCE = re.compile(r"Announce Type:\s*([\w-]+)")
_AUTHOR_SEPARATOR = re.compile(r"\s*,\s*(?:and\s+)?|\s+and\s+")
_PARENTHESES = re.compile(r"\s*\([^()]*\)")
# TeX accent commands as arXiv author lists write them (\"o, \'e, \v{z}, \c{s}) and the
# combining mark each stands for; joined to its letter they give the usual Unicode spelling.
_TEX_ACCENTS = {
    "'": "\u0301",
    "`": "\u0300",
    "^": "\u0302",
    '"': "\u0308",
    "~": "\u0303",
    "=": "\u0304",
    ".": "\u0307",
    "u": "\u0306",
    "v": "\u030c",
    "H": "\u030b",
    "c": "\u0327",
    "k": "\u0328",
    "r": "\u030a",
}


class _Malformed(DumpError):
    """The XML stops being well-formed (e.g. a feed cut off mid-download)."""


def _keep_complete(entries: Iterator[Entry]) -> Iterator[Entry]:
    """Pass entries through; when the XML breaks off after complete entries, keep those and
    reject the rest with the reason (as for truncated JSON) instead of failing the whole dump."""
    count = 0
    try:
        for entry in entries:
            if not isinstance(entry, Note):
                count += 1
            yield entry
    except _Malformed as error:
        if count == 0:
            raise
        yield Rejected(count + 1, f"XML breaks off after entry {count}: {error}")


def parse_arxiv_atom(stream: BinaryIO, *, today: date) -> Iterator[Entry]:
    """Parse an arXiv API (Atom) response; ``today`` is unused, Atom dates are complete."""
    del today
    return _keep_complete(_atom_entries(stream))


def _atom_entries(stream: BinaryIO) -> Iterator[Entry]:
    entries = _children_of_root(stream, "feed", "entry")
    for position, (element, _) in enumerate(entries, start=1):
        yield _atom_entry(element, position)


def parse_arxiv_rss(stream: BinaryIO, *, today: date) -> Iterator[Entry]:
    """Parse an arXiv RSS 2.0 announcement feed (``today`` is unused)."""
    del today
    return _keep_complete(_rss_entries(stream))


def _rss_entries(stream: BinaryIO) -> Iterator[Entry]:
    listing: date | None = None
    # Items read before the channel's pubDate wait for it; in arXiv's feeds it comes first.
    waiting: list[PaperRecord | Rejected] = []
    position = 0
    for element, name in _children_of_root(stream, "rss", "item", "pubDate"):
        if name == "pubDate":
            listing = listing or parse_rfc822_date(element.text)
            for entry in waiting:
                yield _with_listing(entry, listing)
            waiting.clear()
            continue
        position += 1
        entry = _rss_item(element, position)
        if listing is None:
            waiting.append(entry)
        else:
            yield _with_listing(entry, listing)
    yield from waiting


# --- XML plumbing --------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children_of_root(
    stream: BinaryIO, root_name: str, *wanted: str
) -> Iterator[tuple[Element, str]]:
    """Yield each finished element named in ``wanted`` that sits one or two levels below the
    root (``feed/entry``, ``rss/channel/item``), then drop it so memory stays flat."""
    head = stream.read(4096)
    if not head.strip():
        raise DumpError("empty file")
    stack: list[Element] = []
    for event, element in _events(replay(head, stream)):
        if event == "start":
            if not stack and _local(element.tag) != root_name:
                raise DumpError(f"not an arXiv feed: the root element is <{_local(element.tag)}>")
            stack.append(element)
            continue
        stack.pop()
        name = _local(element.tag)
        if name in wanted and 1 <= len(stack) <= 2:
            yield element, name
            stack[-1].remove(element)


def _events(stream: BinaryIO) -> Iterator[tuple[str, Element]]:
    """XML parse events, with every parser failure turned into a DumpError that says why."""
    try:
        yield from DefusedET.iterparse(
            stream,
            events=("start", "end"),
            forbid_dtd=False,
            forbid_entities=True,
            forbid_external=True,
        )
    except (EntitiesForbidden, DTDForbidden) as error:
        raise DumpError("unsafe XML: entity declarations are not allowed") from error
    except ExternalReferenceForbidden as error:
        raise DumpError("unsafe XML: external references are not allowed") from error
    except ParseError as error:
        raise _Malformed(f"not well-formed XML: {error}") from error


def _text(element: Element, name: str) -> str:
    """Cleaned text of the first direct child with local name ``name``."""
    for child in element:
        if _local(child.tag) == name:
            return clean_text(child.text or "")
    return ""


def _texts(element: Element, name: str) -> list[str]:
    return [clean_text(child.text or "") for child in element if _local(child.tag) == name]


def _accented(match: re.Match[str]) -> str:
    return (match[2] or match[3]) + _TEX_ACCENTS[match[1]]


def _drop_parentheses(text: str) -> str:
    """Remove parenthesized parts (affiliations), innermost first so nesting is handled."""
    while "(" in text and _PARENTHESES.search(text):
        text = _PARENTHESES.sub("", text)
    return text


def author_name(raw: str) -> str:
    """An author as arXiv lists one: affiliations in parentheses dropped, TeX accents resolved."""
    name = _drop_parentheses(raw)
    if "\\" in name:
        name = unicodedata.normalize("NFC", TEX_ACCENT.sub(_accented, name))
    return clean_text(name).strip(" ,")


def split_creators(creators: str) -> list[str]:
    """Split RSS ``dc:creator`` ("A, B, and C"; "A and B") into names.

    Affiliations are dropped before splitting, because they hold commas and "and" too.
    """
    parts = _AUTHOR_SEPARATOR.split(_drop_parentheses(creators))
    return [name for part in parts if (name := author_name(part))]


# --- entries -------------------------------------------------------------------------------


def _atom_links(entry: Element) -> tuple[str, str]:
    """The abstract page (rel=alternate) and PDF link of an Atom entry."""
    abs_url = pdf_url = ""
    for link in entry:
        if _local(link.tag) != "link":
            continue
        href = link.get("href", "")
        if link.get("title") == "pdf" or link.get("type") == "application/pdf":
            pdf_url = pdf_url or safe_url(href)
        elif link.get("rel", "alternate") == "alternate":
            abs_url = abs_url or safe_url(href)
    return abs_url, pdf_url


def _atom_signals(entry: Element) -> dict[str, object]:
    signals: dict[str, object] = {}
    categories = [child.get("term", "") for child in entry if _local(child.tag) == "category"]
    if categories := [term for term in categories if term]:
        signals["categories"] = categories
    primary = entry.find(f"{_ARXIV}primary_category")
    if primary is not None and primary.get("term"):
        signals["primary_category"] = primary.get("term")
    for name, key in (("comment", "comment"), ("journal_ref", "journal_ref"), ("doi", "doi")):
        if value := clean_text(entry.findtext(f"{_ARXIV}{name}") or ""):
            signals[key] = value
    return signals


def _atom_entry(entry: Element, position: int) -> PaperRecord | Rejected:
    entry_id = _text(entry, "id")
    if "/api/errors" in entry_id:
        # The API reports a bad query as a one-entry feed whose summary is the message.
        return Rejected(position, f"arXiv API error: {_text(entry, 'summary')}"[:200])
    abs_url, pdf_url = _atom_links(entry)
    signals = _atom_signals(entry)
    code, project = extract_links(str(signals.get("comment", "")))
    return PaperRecord(
        title=_text(entry, "title"),
        abstract=_text(entry, "summary"),
        position=position,
        arxiv_id=normalize_arxiv_id(entry_id),
        authors=[
            name
            for author in entry
            if _local(author.tag) == "author" and (name := author_name(_text(author, "name")))
        ],
        published_on=parse_iso_date(_text(entry, "published")),
        url_abs=abs_url,
        url_pdf=pdf_url,
        url_code=code,
        url_project=project,
        signals=signals,
    )


def _rss_signals(item: Element, announce: str) -> dict[str, object]:
    signals: dict[str, object] = {}
    if announce:
        signals["announce_type"] = announce
    if categories := [term for term in _texts(item, "category") if term]:
        signals["categories"] = categories
    for name, key in (("journal_reference", "journal_ref"), ("DOI", "doi")):
        if value := clean_text(item.findtext(f"{_ARXIV}{name}") or ""):
            signals[key] = value
    if rights := clean_text(item.findtext(f"{_DC}rights") or ""):
        signals["license"] = rights
    return signals


def _rss_item(item: Element, position: int) -> PaperRecord:
    description = item.findtext("description") or ""
    parts = _ABSTRACT.split(description, maxsplit=1)
    announce = clean_text(item.findtext(f"{_ARXIV}announce_type") or "")
    if not announce and (found := _ANNOUNCE.search(parts[0])):
        announce = found[1]
    arxiv_id = normalize_arxiv_id(_text(item, "guid")) or normalize_arxiv_id(_text(item, "link"))
    record = PaperRecord(
        title=_text(item, "title"),
        abstract=clean_text(parts[-1]),
        position=position,
        arxiv_id=arxiv_id,
        authors=split_creators(", ".join(_texts(item, "creator"))),
        url_abs=safe_url(_text(item, "link")),
        signals=_rss_signals(item, announce),
    )
    if arxiv_id:
        record.url_abs = record.url_abs or f"https://arxiv.org/abs/{arxiv_id}"
        record.url_pdf = f"https://arxiv.org/pdf/{arxiv_id}"
    return record


def _with_listing(entry: PaperRecord | Rejected, listing: date | None) -> PaperRecord | Rejected:
    """Stamp the channel's date; a new announcement is published on the day it is listed."""
    if isinstance(entry, PaperRecord) and listing is not None:
        entry.listing_date = listing
        if entry.signals.get("announce_type") == "new":
            entry.published_on = listing
    return entry
