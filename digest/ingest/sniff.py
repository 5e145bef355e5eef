"""Tell the dump format from the first few kilobytes, so operators never have to say it."""

from __future__ import annotations

import re

from digest.ingest.decoding import looks_binary, split_bom
from digest.ingest.records import DumpError

FORMATS = ("hf-text", "hf-html", "hf-json", "arxiv-atom", "arxiv-rss")
HEAD_SIZE = 8192

# Things that may precede the root element of an XML or HTML document. A DOCTYPE may carry an
# internal subset in brackets (that is where entity bombs live), so it must be skipped whole.
_PROLOG = re.compile(
    r"""\s*(?:
        <\?.*?\?>
      | <!--.*?-->
      | <!doctype\s+(?P<doctype>[^\s>\[]+)(?:[^>\[]*\[.*?\])?[^>\[]*>
    )""",
    re.IGNORECASE | re.DOTALL | re.VERBOSE,
)
_DOCTYPE_OPEN = re.compile(r"<!doctype\s+([^\s>\[]+)", re.IGNORECASE)
_TAG = re.compile(r"<(?:[\w.-]+:)?([A-Za-z][\w.-]*)")
# JSON starts with a bracket or brace followed by a JSON value; ``[-] 12``, the upvote button of
# a page saved as text, also starts with a bracket and must not pass for JSON.
_JSON_START = re.compile(r"""(?:\[\s*(?:[\[{"\]tfn]|-?\d)|\{\s*["}])""")


def _head_text(head: bytes) -> str:
    """Decode the head for inspection; a multi-byte character cut at the end is harmless."""
    codec, body = split_bom(head)
    if not body.strip():
        raise DumpError("empty file")
    if codec is None and b"\x00" in body:
        raise DumpError("binary content, not a paper listing")
    text = body.decode(codec or "utf-8", errors="replace")
    if looks_binary(text):
        raise DumpError("binary content, not a paper listing")
    return text.lstrip()


def _by_root_name(name: str) -> str:
    name = name.lower()
    if name == "rss":
        return "arxiv-rss"
    if name == "feed":
        return "arxiv-atom"
    return "hf-html"


def _markup_format(text: str) -> str:
    """Format of a document that starts with ``<``: by its root element."""
    position = 0
    while match := _PROLOG.match(text, position):
        # The DOCTYPE name need not match the root element in XML (a crafted feed may say
        # <!DOCTYPE x [...]><feed>), so only an HTML doctype decides here.
        if (match["doctype"] or "").lower() == "html":
            return "hf-html"
        position = match.end()
    rest = text[position:].lstrip()
    if root := _TAG.match(rest):
        return _by_root_name(root[1])
    # A head cut off inside a long DOCTYPE (an entity bomb can fill kilobytes) ends before
    # the root element; the DOCTYPE's name is the best remaining clue.
    opened = _DOCTYPE_OPEN.match(rest)
    return _by_root_name(opened[1]) if opened else "hf-html"


def sniff(head: bytes) -> str:
    """The format name (one of ``FORMATS``) of a dump whose first bytes are ``head``.

    Raises ``DumpError`` for an empty or binary head.
    """
    text = _head_text(head)
    if text.startswith("<"):
        return _markup_format(text)
    if _JSON_START.match(text):
        return "hf-json"
    return "hf-text"
