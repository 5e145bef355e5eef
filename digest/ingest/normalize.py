"""Normalization shared by every format: ids, titles, text, URLs, and the per-record limits.

Everything here is pure and deterministic; the regular expressions are compiled once at import
because ``validate`` runs once per record and must stay cheap (tens of thousands per second).
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from urllib.parse import urlsplit

from digest.ingest.records import PaperRecord, Rejected

MAX_TITLE = 1_000
MAX_ABSTRACT = 20_000
MAX_AUTHORS = 1_000
MAX_AUTHOR_NAME = 300
# Matches the URLField max_length of the Paper model: a longer URL could not be stored anyway.
MAX_URL = 500
EXCERPT = 120

# --- arXiv ids -----------------------------------------------------------------------------

# Archives that used the pre-2007 ``archive/YYMMNNN`` scheme; listing them keeps arbitrary
# ``word/1234567`` strings from passing as ids.
_OLD_ARCHIVES = (
    "acc-phys|adap-org|alg-geom|ao-sci|astro-ph|atom-ph|bayes-an|chao-dyn|chem-ph|cmp-lg|"
    "comp-gas|cond-mat|cs|dg-ga|funct-an|gr-qc|hep-ex|hep-lat|hep-ph|hep-th|math|math-ph|"
    "mtrl-th|nlin|nucl-ex|nucl-th|patt-sol|physics|plasm-ph|q-alg|q-bio|quant-ph|solv-int|"
    "supr-con"
)
_ARXIV_ID = re.compile(
    r"""^\s*
    (?:arxiv:\s*
      |oai:arxiv\.org:
      |https?://(?:www\.|export\.)?arxiv\.org/(?:abs|pdf|html)/
      |https?://(?:www\.)?huggingface\.co/papers/
    )?
    (?:
      (?P<new>\d{2}(?:0[1-9]|1[0-2])\.\d{4,5})
      |(?P<archive>"""
    + _OLD_ARCHIVES
    + r""")(?:\.[a-z]{2})?/(?P<number>\d{7})
    )
    (?:v\d+)?(?:\.pdf)?/?(?:[?\#].*)?\s*$""",
    re.IGNORECASE | re.VERBOSE,
)


def normalize_arxiv_id(value: str | None) -> str | None:
    """The arXiv id in ``value`` without version (``2410.17243``, ``math/0502287``), or None.

    Accepts bare ids, ``arXiv:`` and ``oai:arXiv.org:`` prefixes, arxiv.org abs/pdf/html URLs
    and huggingface.co/papers URLs. Old-style ids drop the subject class (``math.GT/0309136``
    is ``math/0309136``), as arXiv's own canonical form does.
    """
    if not value:
        return None
    match = _ARXIV_ID.match(value)
    if match is None:
        return None
    if match["new"]:
        return match["new"]
    return f"{match['archive'].lower()}/{match['number']}"


# --- text ----------------------------------------------------------------------------------

# Control characters (C0 except the whitespace that split() collapses anyway, DEL, C1),
# lone surrogates (JSON escapes can produce them; no database can store them), invisible
# format characters that would make equal titles look different, and bidirectional overrides
# that could make a title display as something it is not.
_JUNK = re.compile(
    r"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff"
    r"\u200b-\u200d\u2060\ufeff\u202a-\u202e\u2066-\u2069]"
)


def clean_text(value: str) -> str:
    """Collapse every whitespace run (hard wraps included) to one space, strip, drop controls."""
    if not value:
        return ""
    # Fast path: validate() re-cleans text the parsers already cleaned, and printable text
    # without doubled or edge spaces has nothing to change (isprintable() is False for every
    # control, format, surrogate and non-space whitespace character).
    if value.isprintable() and "  " not in value and value[0] != " " and value[-1] != " ":
        return value
    return " ".join(_JUNK.sub("", value).split())


# --- title keys ----------------------------------------------------------------------------

_GREEK_NAMES = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
    "sigma tau upsilon phi chi psi omega"
).split()
_TEX_GREEK = re.compile(r"\\(?:var)?(" + "|".join(_GREEK_NAMES) + r")(?![a-zA-Z])", re.IGNORECASE)
# Formatting commands carry no words of their own: ``\textbf{Foo}`` is ``Foo``. The same words
# also survive without their backslash when a converter strips it (``{scriptsize CODE2SEQ}``),
# so they are dropped after an opening brace as well.
_FORMATTING = (
    "textbf|textit|textsl|textsc|textrm|textsf|texttt|textup|textnormal|text|emph|underline|"
    "mathrm|mathbf|mathcal|mathit|mathsf|mathtt|mathbb|mathfrak|mathscr|boldsymbol|bm|"
    "operatorname|mbox|hbox|tiny|scriptsize|footnotesize|small|normalsize|large|Large|LARGE|"
    "huge|Huge|bf|it|rm|sf|tt|sc|em|sl"
)
_TEX_FORMATTING = re.compile(r"\\(?:" + _FORMATTING + r")(?![a-zA-Z])\s*")
_BARE_FORMATTING = re.compile(r"\{\s*(?:" + _FORMATTING + r")(?![a-zA-Z])\s*")
# Accent commands: ``\'e``, ``\"o``, ``\v{z}``, ``\c{s}``, ``\"{\i}``. Group 1 is the accent,
# group 2 or 3 the letter; title keys keep only the letter, so they meet the Unicode spelling
# (é, ö, ž, ş, ï) once accents are stripped.
TEX_ACCENT = re.compile(
    r"""\\(['"`^~=.]|[cvuHkrbd](?=\s*\{))\s*(?:\{\s*\\?([A-Za-z])\s*\}|\\?([A-Za-z]))"""
)
_NON_WORD = re.compile(r"[\W_]+")


def _greek_table() -> dict[int, str]:
    """Unicode Greek letters (both cases) to their spaced-out English names."""
    table: dict[int, str] = {}
    for codepoint in range(0x0391, 0x03CA):
        name = unicodedata.name(chr(codepoint), "")
        if name.startswith("GREEK") and "LETTER" in name:
            table[codepoint] = f" {name.rsplit(' ', 1)[-1].lower()} "
    return table


_GREEK_TABLE = _greek_table()


def title_key(title: str) -> str:
    """A key under which titles that differ only in spelling details compare equal.

    Case, whitespace, punctuation, accents, TeX markup (``$\\alpha$``, ``\\textbf{}``) and Greek
    letters written as symbols or as names all vanish; what is left is lowercase words
    separated by single spaces.
    """
    text = _TEX_GREEK.sub(lambda m: f" {m[1].lower()} ", title)
    text = _TEX_FORMATTING.sub(" ", text)
    text = _BARE_FORMATTING.sub(" ", text)
    text = TEX_ACCENT.sub(lambda m: m[2] or m[3], text)
    if not text.isascii():
        # NFKD first: it folds math-alphabet and symbol variants (math italic alpha, lunate
        # epsilon, micro sign) onto plain letters, and splits accented letters into letter +
        # combining mark, which is then dropped.
        text = unicodedata.normalize("NFKD", text).translate(_GREEK_TABLE)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return _NON_WORD.sub(" ", text.casefold()).strip()


# --- URLs ----------------------------------------------------------------------------------

_TRAILING_PUNCT = ".,;:!?'\""
_HOST = re.compile(r"^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$|^\[[0-9a-f:.]+\]$", re.IGNORECASE)
_UNSAFE_CHARS = re.compile(r"[\s\x00-\x1f\x7f<>\"\\^`{|}]")


def _ends_unbalanced(url: str) -> bool:
    """True when the URL ends in a closing bracket that was opened in the prose, not in it."""
    last = url[-1]
    if last == ")":
        return url.count("(") < url.count(")")
    if last == "]":
        return url.count("[") < url.count("]")
    return False


def _trim_url(url: str) -> str:
    """Drop sentence punctuation and an unbalanced closing bracket that prose left on a URL."""
    while url and (url[-1] in _TRAILING_PUNCT or _ends_unbalanced(url)):
        url = url[:-1]
    return url


def safe_url(value: str | None) -> str:
    """``value`` if it is an absolute http(s) URL with a host, else "" (no javascript:, data:)."""
    if not value:
        return ""
    url = _trim_url(value.strip())
    if len(url) > MAX_URL or _UNSAFE_CHARS.search(url):
        return ""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:  # e.g. an invalid port or bracketed host
        return ""
    if parts.scheme.lower() not in ("http", "https") or not _HOST.match(host):
        return ""
    return url


_URL_IN_TEXT = re.compile(
    r"https?://[^\s<>\"'{}|\\^`]+"
    r"|(?<![\w./@-])(?:www\.)?(?:github\.com|gitlab\.com|bitbucket\.org|codeberg\.org)/[^\s<>\"'{}|\\^`]+",
    re.IGNORECASE,
)
_URL_HINTS = ("://", "github.com/", "gitlab.com/", "bitbucket.org/", "codeberg.org/")
_CODE_HOSTS = frozenset({"github.com", "gitlab.com", "bitbucket.org", "codeberg.org"})
# huggingface.co hosts code only under these first path segments; /papers, /docs, /blog ... are
# pages about things, not repositories.
_HF_REPO_SECTIONS = frozenset({"spaces", "datasets", "models"})


def _is_code_url(url: str) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").removeprefix("www.")
    if host in _CODE_HOSTS:
        return True
    if host == "huggingface.co":
        first = parts.path.strip("/").split("/", 1)[0].lower()
        return first in _HF_REPO_SECTIONS
    return False


def _first_hint(text: str) -> int:
    """Where the first URL may start, or -1: a cheap substring scan before the regex.

    Python's regex engine tries the URL pattern at every character, which costs tens of
    microseconds per abstract; most abstracts have no link or have it near the end.
    """
    found = [at for hint in _URL_HINTS if (at := text.find(hint)) >= 0]
    return max(min(found) - 8, 0) if found else -1


def extract_links(text: str) -> tuple[str, str]:
    """(code url, project url) found in ``text``; each is the first of its kind, or ""."""
    code = project = ""
    start = _first_hint(text or "")
    if start < 0:
        return code, project
    for match in _URL_IN_TEXT.finditer(text, start):
        raw = match[0]
        url = safe_url(raw if "://" in raw else f"https://{raw}")
        if not url:
            continue
        if _is_code_url(url):
            code = code or url
        else:
            project = project or url
        if code and project:
            break
    return code, project


# --- validation ----------------------------------------------------------------------------


def _reject(record: PaperRecord, reason: str, title: str, abstract: str) -> Rejected:
    return Rejected(record.position, reason, (title or abstract)[:EXCERPT])


def _clean_authors(names: list[str]) -> list[str]:
    cleaned = (
        clean_text(name)[:MAX_AUTHOR_NAME] for name in names[:MAX_AUTHORS] if isinstance(name, str)
    )
    return [name for name in cleaned if name]


def _non_negative(value: object) -> int | None:
    """An int >= 0 or None; bools and junk become None rather than a misleading number."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return max(number, 0)


def validate(record: PaperRecord) -> PaperRecord | Rejected:
    """Apply the limits every stored paper obeys, or say why the record cannot be stored.

    Returns a new record (the input is left untouched) with text cleaned, authors capped, URLs
    limited to http(s), and code/project links filled in from the abstract when missing.
    """
    title = clean_text(record.title) if isinstance(record.title, str) else ""
    abstract = clean_text(record.abstract) if isinstance(record.abstract, str) else ""
    if not title:
        return _reject(record, "missing title", title, abstract)
    if len(title) > MAX_TITLE:
        return _reject(record, f"title is {len(title)} characters (limit {MAX_TITLE})", title, "")
    if not abstract:
        return _reject(record, "missing abstract", title, abstract)
    if len(abstract) > MAX_ABSTRACT:
        reason = f"abstract is {len(abstract)} characters (limit {MAX_ABSTRACT})"
        return _reject(record, reason, title, abstract)

    authors = _clean_authors(list(record.authors or []))
    author_count = _non_negative(record.author_count)
    if author_count is None and len(record.authors or []) > MAX_AUTHORS:
        # The list was capped: keep the true number so nothing claims there were only 1,000.
        author_count = len(record.authors)
    url_code, url_project = safe_url(record.url_code), safe_url(record.url_project)
    if not (url_code and url_project):
        found_code, found_project = extract_links(abstract)
        url_code, url_project = url_code or found_code, url_project or found_project
    return dataclasses.replace(
        record,
        title=title,
        abstract=abstract,
        arxiv_id=normalize_arxiv_id(record.arxiv_id),
        authors=authors,
        author_count=author_count,
        url_page=safe_url(record.url_page),
        url_abs=safe_url(record.url_abs),
        url_pdf=safe_url(record.url_pdf),
        url_code=url_code,
        url_project=url_project,
        upvotes=None if record.upvotes is None else _non_negative(record.upvotes),
        signals=dict(record.signals or {}),
    )
