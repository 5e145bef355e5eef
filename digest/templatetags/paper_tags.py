"""Filters for showing papers from untrusted dumps: plain text out, autoescape does the rest."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from django import template

from digest.models import Paper

register = template.Library()

SHOWN_AUTHORS = 3
EXCERPT_CHARS = 300


@register.filter
def http_url(value: object) -> str:
    """The URL if it is http(s) with a host, else "": a ``javascript:`` link never renders."""
    if not isinstance(value, str):
        return ""
    url = value.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return url if parts.scheme.lower() in {"http", "https"} and parts.netloc else ""


@register.filter
def short_authors(authors: Sequence[object] | None, count: int | None = None) -> str:
    """ "A, B, C et al." when there are more than three; ``count`` may exceed the stored list."""
    names = [str(name) for name in authors or [] if str(name).strip()]
    total = max(len(names), count or 0)
    shown = ", ".join(names[:SHOWN_AUTHORS])
    if shown and total > SHOWN_AUTHORS:
        return f"{shown} et al."
    return shown


@register.filter
def excerpt(text: str | None, limit: int = EXCERPT_CHARS) -> str:
    """The start of ``text``, cut at a word boundary within ``limit`` characters."""
    text = " ".join((text or "").split())
    if len(text) <= limit:
        return text
    cut = text[: limit + 1].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return cut.rstrip(" ,;:.-") + "…"


LINK_LABELS = (
    ("url_page", "Paper page"),
    ("url_abs", "arXiv abstract"),
    ("url_pdf", "PDF"),
    ("url_code", "Code"),
    ("url_project", "Project page"),
)


@register.filter
def paper_links(paper: Paper) -> list[tuple[str, str]]:
    """(label, url) for each of the paper's links that is safe to render."""
    links = [(label, http_url(getattr(paper, name))) for name, label in LINK_LABELS]
    return [(label, url) for label, url in links if url]


@register.filter
def unlisted_authors(paper: Paper) -> int:
    """How many authors a source counted but did not name."""
    return max(0, (paper.author_count or 0) - len(paper.authors or []))
