"""The huggingface.co/papers listing saved as plain text, in either of its two layouts.

Old layout (the seed): a few header lines, the listing date ("Mar 11"), then per paper a title
line and an abstract line, separated by blank lines.

Card layout (newer pages): a header with navigation links and the listing date, then one card
per paper::

     [-] 12                                   upvotes ("-" means none)
    https://huggingface.co/login?next=...
    <title>
    https://huggingface.co/papers/<id>
    <abstract>
    https://huggingface.co/papers/<id>
    [
    3 authors](https://huggingface.co/papers/<id>)     or: " <organisation>" + its URL
    ·
    Oct 7, 2024                               no year when it is the listing's year
    2                                         optional comment count ...
    https://huggingface.co/papers/<id>#community      ... and its link

followed by footer links. In the old layout blank lines separate paragraphs, and a title or
abstract hard-wrapped over several lines is one paragraph; in the card layout every non-blank
line is a field of its own and blank lines carry no meaning.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from itertools import pairwise
from typing import BinaryIO

from digest.ingest.dates import MONTH_DAY, parse_month_day
from digest.ingest.decoding import decode_text
from digest.ingest.normalize import EXCERPT, clean_text, normalize_arxiv_id
from digest.ingest.records import Note, PaperRecord, Rejected

Entry = PaperRecord | Rejected | Note

_CARD_START = re.compile(r"^\[-\]\s*(?P<votes>-|\d[\d,]*(?:\.\d+)?[kK]?)$")
_PAPER_URL = re.compile(r"^https?://(?:www\.)?huggingface\.co/papers/[^\s/?#]+/?$")
_URL = re.compile(r"^https?://\S+$")
_LOGIN_URL = re.compile(r"^https?://(?:www\.)?huggingface\.co/login\b")
_AUTHORS = re.compile(r"(\d[\d,]*)\s+authors?\]")
_COUNT = re.compile(r"^\d[\d,]*$")
_SEPARATOR = "·"
# The listing date sits near the top; looking further would risk taking a title for it.
_HEADER_SEARCH = 40
# Lines of the page header, used only when a page has no date line to anchor on.
_KNOWN_HEADER = frozenset(
    {
        "new",
        "get trending papers in your email inbox!",
        "get trending papers in your email inbox once a day!",
        "subscribe",
        "byak and the research community",
        "daily papers",
    }
)


def parse_hf_text(stream: BinaryIO, *, today: date) -> Iterator[Entry]:
    """Parse a text capture of an HF papers page (either layout) from ``stream``."""
    text, note = decode_text(stream.read())
    if note is not None:
        yield note
    yield from parse_page_text(text, today=today)


def parse_page_text(text: str, *, today: date) -> Iterator[Entry]:
    """Parse the decoded text of an HF papers page; shared with the HTML parser."""
    lines = [clean_text(line) for line in text.split("\n")]
    filled = [line for line in lines if line]
    if any(_CARD_START.match(line) for line in filled):
        yield from _parse_cards(filled, today)
    else:
        yield from _parse_old_layout(_paragraphs(lines), today)


# --- old layout ----------------------------------------------------------------------------


def _paragraphs(lines: list[str]) -> list[list[str]]:
    """Runs of non-blank lines: a title or abstract hard-wrapped over lines stays whole."""
    paragraphs: list[list[str]] = []
    current: list[str] = []
    for line in lines:
        if line:
            current.append(line)
        elif current:
            paragraphs.append(current)
            current = []
    if current:
        paragraphs.append(current)
    return paragraphs


def _find_header_date(paragraphs: list[list[str]], today: date) -> tuple[int, date | None]:
    """Index of the first paragraph after the header, and the listing date the header names."""
    for index, paragraph in enumerate(paragraphs[:_HEADER_SEARCH]):
        for line in paragraph:
            if MONTH_DAY.match(line) and (listing := parse_month_day(line, today)):
                return index + 1, listing
    return 0, None


def _skip_known_header(paragraphs: list[list[str]]) -> int:
    index = 0
    while index < len(paragraphs) and " ".join(paragraphs[index]).lower() in _KNOWN_HEADER:
        index += 1
    return index


def _parse_old_layout(paragraphs: list[list[str]], today: date) -> Iterator[Entry]:
    start, listing = _find_header_date(paragraphs, today)
    if listing is None:
        yield Note("no listing date found in the page header")
        start = _skip_known_header(paragraphs)
    body = [" ".join(paragraph) for paragraph in paragraphs[start:]]
    for position, index in enumerate(range(0, len(body), 2), start=1):
        title = body[index]
        if index + 1 >= len(body):
            yield Rejected(position, "missing abstract", title[:EXCERPT])
            return
        yield PaperRecord(
            title=title, abstract=body[index + 1], position=position, listing_date=listing
        )


# --- card layout ---------------------------------------------------------------------------


def _parse_votes(text: str) -> int:
    if text == "-":
        return 0
    text = text.replace(",", "").lower()
    if text.endswith("k"):
        return int(float(text[:-1]) * 1000)
    return int(float(text))


def _header_listing_date(header: list[str], today: date) -> date | None:
    """The last month-day line before the first card: the date the listing is for."""
    for line in reversed(header):
        if MONTH_DAY.match(line) and (listing := parse_month_day(line, today)):
            return listing
    return None


def _parse_cards(lines: list[str], today: date) -> Iterator[Entry]:
    starts = [index for index, line in enumerate(lines) if _CARD_START.match(line)]
    listing = _header_listing_date(lines[: starts[0]], today)
    reference = listing or today
    for position, (begin, end) in enumerate(pairwise([*starts, len(lines)]), start=1):
        yield _parse_card(lines[begin:end], position, listing, reference)


def _next_paper_url(card: list[str], start: int) -> int:
    """Index of the next paper-link line at or after ``start``, or ``len(card)``."""
    for index in range(start, len(card)):
        if _PAPER_URL.match(card[index]):
            return index
    return len(card)


def _parse_card(
    card: list[str], position: int, listing: date | None, reference: date
) -> PaperRecord | Rejected:
    votes = _CARD_START.match(card[0])
    begin = 2 if len(card) > 1 and _LOGIN_URL.match(card[1]) else 1
    link = _next_paper_url(card, begin)
    if link == len(card):
        return Rejected(position, "card without a paper link", " ".join(card[begin:])[:EXCERPT])
    abstract_end = _next_paper_url(card, link + 1)
    arxiv_id = normalize_arxiv_id(card[link])
    record = PaperRecord(
        title=" ".join(card[begin:link]),
        abstract=" ".join(card[link + 1 : abstract_end]),
        position=position,
        arxiv_id=arxiv_id,
        listing_date=listing,
        upvotes=_parse_votes(votes["votes"]) if votes else None,
    )
    if arxiv_id:
        record.url_page = f"https://huggingface.co/papers/{arxiv_id}"
        record.url_abs = f"https://arxiv.org/abs/{arxiv_id}"
        record.url_pdf = f"https://arxiv.org/pdf/{arxiv_id}"
    _read_card_footer(card[abstract_end:], record, reference)
    return record


def _read_card_footer(footer: list[str], record: PaperRecord, reference: date) -> None:
    """Authors or organisation, date and comment count: the lines after the abstract."""
    separator = footer.index(_SEPARATOR) if _SEPARATOR in footer else len(footer)
    for index, line in enumerate(footer[:separator]):
        if authors := _AUTHORS.search(line):
            record.author_count = int(authors[1].replace(",", ""))
        elif (
            line != "["
            and not _URL.match(line)
            and index + 1 < separator
            and _URL.match(footer[index + 1])
        ):
            # An organisation card shows the org name followed by the org's page link.
            record.signals["organization"] = line
    after = footer[separator + 1 :]
    if after and (published := parse_month_day(after[0], reference)):
        record.published_on = published
        if len(after) > 1 and _COUNT.match(after[1]):
            follows = after[2] if len(after) > 2 else ""
            if not follows or follows.endswith("#community"):
                record.signals["comments"] = int(after[1].replace(",", ""))
