"""Dump parsing: bytes in, ``PaperRecord`` / ``Rejected`` / ``Note`` out. No Django here.

``parse`` picks the parser (sniffed from the content unless the caller names the format); the
pipeline then runs ``validate`` on each record and stores it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from typing import BinaryIO

from digest.ingest.arxiv import parse_arxiv_atom, parse_arxiv_rss
from digest.ingest.hf_html import parse_hf_html
from digest.ingest.hf_json import parse_hf_json
from digest.ingest.hf_text import parse_hf_text
from digest.ingest.normalize import normalize_arxiv_id, title_key, validate
from digest.ingest.records import DumpError, Note, PaperRecord, Rejected
from digest.ingest.sniff import FORMATS, HEAD_SIZE, sniff

Entry = PaperRecord | Rejected | Note
Parser = Callable[..., Iterator[Entry]]

PARSERS: dict[str, Parser] = {
    "hf-text": parse_hf_text,
    "hf-html": parse_hf_html,
    "hf-json": parse_hf_json,
    "arxiv-atom": parse_arxiv_atom,
    "arxiv-rss": parse_arxiv_rss,
}


def parse(stream: BinaryIO, fmt: str | None = None, *, today: date) -> tuple[str, Iterator[Entry]]:
    """The format of the dump in ``stream`` and an iterator over its entries.

    ``stream`` must be seekable when ``fmt`` is None (the head is read to sniff, then the
    stream is rewound). ``today`` anchors dates printed without a year. ``DumpError`` is raised
    here for an unknown format or an empty/binary head, and while iterating for a dump that
    turns out unreadable.
    """
    if fmt is None:
        start = stream.tell()
        head = stream.read(HEAD_SIZE)
        stream.seek(start)
        fmt = sniff(head)
    elif fmt not in PARSERS:
        raise DumpError(f"unknown format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    return fmt, PARSERS[fmt](stream, today=today)


__all__ = [
    "FORMATS",
    "PARSERS",
    "DumpError",
    "Note",
    "PaperRecord",
    "Rejected",
    "normalize_arxiv_id",
    "parse",
    "sniff",
    "title_key",
    "validate",
]
