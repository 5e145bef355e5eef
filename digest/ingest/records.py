"""Plain data passed from the format parsers to the ingest pipeline.

Parsers know nothing of Django: they turn bytes into ``PaperRecord`` objects (one per entry),
``Rejected`` objects (an entry that could not be read, with the reason) and ``Note`` objects
(something the operator should know about the dump as a whole, e.g. an encoding fallback).
A dump that cannot be read at all raises ``DumpError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any


class DumpError(Exception):
    """The dump as a whole is unreadable (empty, binary, wrong shape, unsafe XML, ...)."""


@dataclass(slots=True)
class PaperRecord:
    """One paper as read from a dump; whitespace collapsed, otherwise as the source gave it."""

    title: str
    abstract: str
    position: int = 0
    arxiv_id: str | None = None
    authors: list[str] = field(default_factory=list)
    author_count: int | None = None
    published_on: date | None = None
    listing_date: date | None = None
    url_page: str = ""
    url_abs: str = ""
    url_pdf: str = ""
    url_code: str = ""
    url_project: str = ""
    upvotes: int | None = None
    signals: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class Rejected:
    """An entry of the dump that was not stored, and why."""

    position: int
    reason: str
    excerpt: str = ""


@dataclass(slots=True, frozen=True)
class Note:
    """A remark about the whole dump that is worth recording but does not reject anything."""

    message: str
