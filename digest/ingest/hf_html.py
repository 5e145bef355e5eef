"""The huggingface.co/papers listing saved as HTML.

A saved page usually embeds the listing as JSON in ``data-props`` of a hydration element
(``<div class="SVELTE_HYDRATER contents" data-target="DailyPapers" data-props="...">``); that
JSON has the same items as the daily-papers API, so it is read exactly like ``hf_json``. A page
without it (saved after scripts removed it, or a different view) is read through its visible
text, which is the page the text parser already understands.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from typing import Any, BinaryIO

from bs4 import BeautifulSoup, Comment, NavigableString, Tag

from digest.ingest.dates import parse_iso_date
from digest.ingest.decoding import decode_text
from digest.ingest.hf_json import parse_items
from digest.ingest.hf_text import parse_page_text
from digest.ingest.records import DumpError, Note, PaperRecord, Rejected

Entry = PaperRecord | Rejected | Note

# Elements whose content is never visible text (or is executable): never read.
_INVISIBLE = ("script", "style", "noscript", "template", "head", "svg", "iframe", "object")
# Elements that start a new line when rendered; everything else flows inline.
_BLOCKS = frozenset(
    "address article aside blockquote dd details div dl dt fieldset figcaption figure footer "
    "form h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section summary table tbody td tfoot "
    "th thead tr ul button label time".split()
)
# A private-use character (removed from the page first) marks the line breaks, so that the
# whitespace collapsing of HTML, where source newlines mean nothing, leaves them alone. It must
# not be a character that str.split() treats as whitespace.
_BREAK = "\ue000"
_ENTITY_DECLARATION = re.compile(r"<!DOCTYPE[^>\[]*\[[^\]]*<!ENTITY", re.IGNORECASE)
_PROLOG_SIZE = 65536


def parse_hf_html(stream: BinaryIO, *, today: date) -> Iterator[Entry]:
    """Parse a saved HF papers page: its embedded JSON if present, else its visible text."""
    text, note = decode_text(stream.read())
    if _ENTITY_DECLARATION.search(text, 0, _PROLOG_SIZE):
        # HTML parsers ignore a DTD, but a page that declares entities is an attack or an XML
        # file in disguise; refuse it like the XML parsers do.
        raise DumpError("unsafe XML: entity declarations are not allowed")
    if note is not None:
        yield note
    soup = BeautifulSoup(text.replace(_BREAK, " "), "lxml")
    embedded = _embedded_listing(soup)
    if embedded is not None:
        papers, listing = embedded
        yield from parse_items(papers, listing)
        return
    yield from parse_page_text(visible_text(soup), today=today)


def _embedded_listing(soup: BeautifulSoup) -> tuple[list[Any], date | None] | None:
    """The ``dailyPapers`` items and ``dateString`` of the first data-props that has them."""
    for element in soup.find_all(True, attrs={"data-props": True}):
        try:
            props = json.loads(str(element.get("data-props", "")))
        except (TypeError, ValueError):
            continue  # some other widget's props, or broken JSON: not the listing
        if isinstance(props, dict) and isinstance(props.get("dailyPapers"), list):
            return props["dailyPapers"], parse_iso_date(props.get("dateString"))
    return None


def visible_text(soup: BeautifulSoup) -> str:
    """The text a reader sees: one line per block element, no scripts, styles or comments."""
    for element in soup.find_all(_INVISIBLE):
        element.decompose()
    for comment in soup.find_all(string=lambda node: isinstance(node, Comment)):
        comment.extract()
    for element in soup.find_all(["br", *_BLOCKS]):
        if not isinstance(element, Tag):
            continue
        if element.name == "br":
            element.replace_with(NavigableString(_BREAK))
        else:
            element.insert_before(NavigableString(_BREAK))
            element.insert_after(NavigableString(_BREAK))
    flowing = " ".join(soup.get_text().split())
    # Blank lines between blocks: the text parser reads the old layout as paragraphs.
    return "\n\n".join(line.strip() for line in flowing.split(_BREAK) if line.strip())
