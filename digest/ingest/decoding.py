"""Bytes to text for the text-based formats (HF page as text or HTML), losing nothing.

Saved pages arrive in whatever encoding the saving tool chose, and hand-assembled dumps mix
them. UTF-8 is tried first; lines that are not UTF-8 fall back to Windows-1252 (the usual
culprit), so a few stray Latin-1 lines never cost the rest of the dump.
"""

from __future__ import annotations

import codecs
import io
import re
from typing import Any, BinaryIO

from digest.ingest.records import DumpError, Note

# Longest first: the UTF-32-LE BOM starts with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# Windows-1252 leaves five bytes undefined; those map to the Latin-1 code point of the same
# value so that every byte decodes to something and nothing is dropped.
_CP1252_TABLE = "".join(
    bytes([byte]).decode("cp1252", errors="replace").replace("\ufffd", chr(byte))
    for byte in range(256)
)
_FALLBACK_ERRORS = "digest-cp1252-fallback"

# Control characters that never occur in real text (tab, newlines and form feed excluded).
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
# More than this share of control characters means the "text" is really binary data.
_BINARY_SHARE = 0.05
_EMPTY = "empty file"
_BINARY = "binary content, not a paper listing"


def _cp1252_fallback(error: UnicodeError) -> tuple[str, int]:
    """Codec error handler: decode the offending bytes as Windows-1252 and carry on."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    bad = error.object[error.start : error.end]
    return "".join(_CP1252_TABLE[byte] for byte in bad), error.end


codecs.register_error(_FALLBACK_ERRORS, _cp1252_fallback)


def split_bom(data: bytes) -> tuple[str | None, bytes]:
    """The codec named by a byte-order mark at the start of ``data`` and the bytes after it."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return codec, data[len(bom) :]
    return None, data


def looks_binary(text: str) -> bool:
    """True when ``text`` has more control characters than any real listing would."""
    sample = text[:65536]
    if not sample:
        return False
    return len(_CONTROL.findall(sample)) / len(sample) > _BINARY_SHARE


def _decode_mixed(data: bytes) -> tuple[str, int]:
    """Decode line by line: UTF-8 where valid, Windows-1252 for the bytes that are not."""
    parts: list[str] = []
    fallback_lines = 0
    for line in data.splitlines(keepends=True):
        try:
            parts.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            fallback_lines += 1
            parts.append(line.decode("utf-8", errors=_FALLBACK_ERRORS))
    return "".join(parts), fallback_lines


def decode_text(data: bytes) -> tuple[str, Note | None]:
    """Text of a dump with newlines normalized to ``\\n``, plus a Note when a fallback was used.

    Raises ``DumpError`` for an empty or whitespace-only file and for binary content.
    """
    if not data.strip():
        raise DumpError(_EMPTY)
    codec, body = split_bom(data)
    note: Note | None = None
    if codec is not None and codec != "utf-8":
        text = body.decode(codec, errors="replace")
        if "\ufffd" in text:
            note = Note(f"text marked as {codec.upper()} contained invalid sequences; replaced")
    else:
        if b"\x00" in body:
            # Real text only has NUL bytes when it is UTF-16/32, and that comes with a BOM here.
            raise DumpError(_BINARY)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text, fallback_lines = _decode_mixed(body)
            lines = "line was" if fallback_lines == 1 else "lines were"
            note = Note(f"{fallback_lines} {lines} not valid UTF-8; decoded as Windows-1252")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise DumpError(_EMPTY)
    if "\x00" in text or looks_binary(text):
        raise DumpError(_BINARY)
    return text, note


class _Rejoined(io.RawIOBase):
    """A stream that replays the bytes already read from ``rest`` before reading on."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        super().__init__()
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            count = min(len(view), len(self._head))
            view[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        chunk = self._rest.read(len(view))
        view[: len(chunk)] = chunk
        return len(chunk)


def replay(head: bytes, rest: BinaryIO) -> BinaryIO:
    """A buffered stream of ``head`` followed by the rest of ``rest``.

    Lets a parser peek at the start of a dump that may not be seekable (a network body) and
    then hand the whole dump to a streaming parser.
    """
    return io.BufferedReader(_Rejoined(head, rest))
