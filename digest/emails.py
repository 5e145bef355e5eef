"""The one mail helper: renders subject, text and HTML from Jinja2 templates and builds the
message with the headers every mail of this service carries.

Templates live in ``templates/email/``: ``NAME.subject.txt``, ``NAME.txt`` and ``NAME.html``.
Autoescape is on for HTML (text from dumps and from users is untrusted) and undefined names
are errors, so a template typo fails a test instead of mailing a blank.
"""

from __future__ import annotations

import binascii
import email
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from email import charset
from email.message import Message
from email.policy import compat32
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar, overload

import css_inline
import dkim
import jinja2
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import ADDRESS_HEADERS, forbid_multi_line_headers
from django.core.mail.utils import DNS_NAME


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


# Wrapped texts kept per process: the same titles, authors and abstracts recur in thousands of
# digests, and ``textwrap`` is the slowest step of rendering the text part. Bounded, so memory
# does not grow with the number of subscribers.
WRAP_CACHE_SIZE = 8192


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(settings.BASE_DIR / "templates" / "email")),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # Compiled templates are kept; checking the files' mtimes on every render is for
        # development only.
        auto_reload=settings.DEBUG,
    )
    env.filters["wordwrap"] = memoized_wordwrap(env)
    return env


def memoized_wordwrap(env: jinja2.Environment) -> Callable[..., str]:
    """Jinja2's own ``wordwrap`` filter, with its results remembered for plain strings."""

    @lru_cache(maxsize=WRAP_CACHE_SIZE)
    def wrapped(text: str, *args: Any) -> str:
        return str(jinja2.filters.do_wordwrap(env, text, *args))

    def wordwrap(text: Any, *args: Any, **kwargs: Any) -> str:
        if type(text) is not str or kwargs:
            return str(jinja2.filters.do_wordwrap(env, text, *args, **kwargs))
        return wrapped(text, *args)

    return wordwrap


def render(name: str, context: dict[str, Any]) -> RenderedMail:
    env = environment()
    context = {"site_name": settings.SITE_NAME, "site_url": settings.SITE_URL, **context}
    subject = env.get_template(f"{name}.subject.txt").render(context)
    # A subject is one line: whatever the template or the data did, no header injection.
    subject = " ".join(subject.split())
    return RenderedMail(
        subject=subject,
        text=env.get_template(f"{name}.txt").render(context),
        html=env.get_template(f"{name}.html").render(context),
    )


def list_unsubscribe_headers(unsubscribe_url: str, mailto: str = "") -> dict[str, str]:
    """RFC 2369 List-Unsubscribe with an https link (and a mailto where configured), plus
    RFC 8058 one-click: a POST to the link unsubscribes without any other step."""
    targets = [f"<{unsubscribe_url}>"]
    if mailto:
        targets.append(f"<mailto:{mailto}?subject=unsubscribe>")
    return {
        "List-Unsubscribe": ", ".join(targets),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


Mail = TypeVar("Mail", bound=EmailMultiAlternatives)


def build_message(
    to: str,
    mail: RenderedMail,
    *,
    headers: dict[str, str] | None = None,
    connection: BaseEmailBackend | None = None,
    message_class: type[Mail] = EmailMultiAlternatives,  # type: ignore[assignment]
) -> Mail:
    name, address = parseaddr(settings.DEFAULT_FROM_EMAIL)
    message = message_class(
        subject=mail.subject,
        body=mail.text,
        from_email=formataddr((name, address)),
        to=[to],
        headers={"Auto-Submitted": "auto-generated", **(headers or {})},
        connection=connection,
    )
    message.attach_alternative(mail.html, "text/html")
    return message


def send(
    to: str, name: str, context: dict[str, Any], *, headers: dict[str, str] | None = None
) -> None:
    """Render the ``name`` templates and send one message now (callers run in a task),
    DKIM-signed like the digests when a key is configured."""
    mail = render(name, context)
    with get_connection() as connection:
        build_message(
            to,
            mail,
            headers=headers,
            connection=connection,
            message_class=DkimEmailMultiAlternatives,
        ).send()


def inline_css(html: str) -> str:
    """Move the rules of the ``<style>`` block into ``style=`` attributes, as many mail clients
    ignore style blocks; the ``@media`` rules (dark mode, narrow screens) stay in the block for
    the clients that read it. Nothing remote is ever loaded."""
    inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
    return inliner.inline(html)


# --- Transfer encoding -----------------------------------------------------------------------

QP_LINE_LIMIT = 76  # RFC 2045 6.7: encoded lines, the "=" of a soft line break included


class Utf8QuotedPrintable(charset.Charset):
    """UTF-8 bodies in quoted-printable, encoded in C.

    Quoted-printable bodies are plain ASCII: no relay has a reason to re-encode them (as it may
    do with 8bit text for a server without 8BITMIME), which would break a DKIM signature. The
    standard library's encoder (``email.quoprimime``) is pure Python and was the largest single
    cost of building a digest; ``binascii.b2a_qp`` produces the same encoding in C. It can
    overshoot the line limit by a character or two where an encoded trailing space meets a soft
    break, so its output is checked and that rare body is encoded the slow way instead.
    """

    def __init__(self) -> None:
        super().__init__("utf-8")
        self.body_encoding = charset.QP

    @overload
    def body_encode(self, string: None) -> None: ...

    @overload
    def body_encode(self, string: str | bytes) -> str: ...

    def body_encode(self, string: str | bytes | None) -> str | None:
        if string is None:
            return None
        data = string.encode("utf-8") if isinstance(string, str) else string
        if not data:
            return ""
        encoded = binascii.b2a_qp(data, istext=True)
        if max(map(len, encoded.split(b"\n"))) <= QP_LINE_LIMIT:
            return encoded.decode("ascii")
        return super().body_encode(data)


UTF8_QP = Utf8QuotedPrintable()


# --- DKIM ------------------------------------------------------------------------------------

DKIM_SIGNED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Id",
    "MIME-Version",
    "Content-Type",
)


@dataclass(frozen=True)
class DkimKey:
    domain: str
    selector: str
    private_key: bytes


def dkim_key() -> DkimKey | None:
    """The configured signing key, or None when DKIM is off. Half a configuration is an error
    rather than a silent switch to unsigned mail."""
    names = ("DKIM_DOMAIN", "DKIM_SELECTOR", "DKIM_PRIVATE_KEY_PATH")
    values = {name: getattr(settings, name, "") for name in names}
    if not any(values.values()):
        return None
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise ImproperlyConfigured(f"DKIM signing needs {', '.join(missing)} set as well")
    path = Path(values["DKIM_PRIVATE_KEY_PATH"])
    try:
        # Read once per version of the file (every message is signed; a rotated key is seen).
        stat = path.stat()
        private_key = _read_key(str(path), stat.st_mtime_ns, stat.st_size)
    except OSError as exc:
        raise ImproperlyConfigured(f"DKIM_PRIVATE_KEY_PATH: cannot read {path}: {exc}") from exc
    return DkimKey(values["DKIM_DOMAIN"], values["DKIM_SELECTOR"], private_key)


@lru_cache(maxsize=4)
def _read_key(path: str, mtime_ns: int, size: int) -> bytes:
    return Path(path).read_bytes()


def dkim_signature(data: bytes, key: DkimKey) -> bytes:
    """The ``DKIM-Signature:`` header line, CRLF included, for the CRLF-serialized ``data``."""
    signature: bytes = dkim.sign(
        data,
        key.selector.encode(),
        key.domain.encode(),
        key.private_key,
        canonicalize=(b"relaxed", b"relaxed"),
        signature_algorithm=b"rsa-sha256",
        include_headers=[name.lower().encode() for name in DKIM_SIGNED_HEADERS],
    )
    return signature


class FrozenMessage:
    """A MIME message frozen into its bytes (signed, when DKIM is on).

    Django's backends send ``message().as_bytes(linesep="\\r\\n")``; this returns exactly the
    bytes that were measured and signed, so nothing can re-fold a header or pick another MIME
    boundary between the size check, signing and sending, and the message is serialized once.
    Header look-ups go to the message those bytes parse to (or to the one they were made from).
    """

    def __init__(self, data: bytes, original: Message | None = None) -> None:
        self.data = data
        self._original = original

    @property
    def original(self) -> Message:
        if self._original is None:
            self._original = email.message_from_bytes(self.data, policy=compat32)
        return self._original

    def as_bytes(self, unixfrom: bool = False, linesep: str = "\n") -> bytes:
        if linesep == "\r\n":
            return self.data
        return self.data.replace(b"\r\n", linesep.encode())

    def as_string(self, unixfrom: bool = False, linesep: str = "\n") -> str:
        return self.as_bytes(linesep=linesep).decode("utf-8", errors="surrogateescape")

    def __bytes__(self) -> bytes:
        return self.as_bytes()

    def __str__(self) -> str:
        return self.as_string()

    def __getitem__(self, name: str) -> Any:
        return self.original[name]

    def __contains__(self, name: str) -> bool:
        return name in self.original

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("data", "original"):
            # Not set yet (copy.deepcopy makes the object without __init__), or private.
            raise AttributeError(name)
        return getattr(self.original, name)


# --- Serialization ---------------------------------------------------------------------------

WIRE = compat32.clone(linesep="\r\n")
# Header lines kept per process: From, List-Id and the other fixed headers are the same in every
# digest, and encoding and folding them was a large part of building one.
HEADER_CACHE_SIZE = 512


@lru_cache(maxsize=HEADER_CACHE_SIZE)
def header_line(name: str, value: str) -> bytes:
    """One header as it goes on the wire, CRLF included: checked and encoded by Django's rules
    (no line breaks, non-ASCII text in encoded words, addresses sanitized), folded by the
    standard library as Django's own serialization folds it. Two kinds of header take a
    shorter way, as they differ in every digest and the standard library's takes a tenth of a
    millisecond or more: a short single-spaced ASCII value, which Django and the standard
    library leave as it is (the same bytes), and non-ASCII text (the subject), which is put in
    encoded words here (``encoded_words``: decoded, the same text as the standard library's)."""
    if "\n" in value or "\r" in value or name.lower() in ADDRESS_HEADERS:
        return _standard_header_line(name, value)
    if value.isascii():
        if value == " ".join(value.split()) and len(name) + 2 + len(value) <= HEADER_LINE_LIMIT:
            return f"{name}: {value}\r\n".encode("ascii")
        return _standard_header_line(name, value)
    room = ENCODED_LINE_LIMIT - len(name) - len(": ")
    if room < ENCODED_WORD_MIN:
        return _standard_header_line(name, value)
    return f"{name}: {CONTINUATION.join(encoded_words(value, room))}\r\n".encode("ascii")


def _standard_header_line(name: str, value: str) -> bytes:
    name, encoded = forbid_multi_line_headers(name, value, "utf-8")
    holder = Message()
    holder[name] = encoded
    return holder.as_bytes(policy=WIRE)[: -len(b"\r\n")]  # without the end of the header block


HEADER_LINE_LIMIT = 78  # RFC 5322 2.1.1, and the standard library's folding width
ENCODED_WORD_LIMIT = 75  # RFC 2047 2: "=?utf-8?q?...?=" at most
ENCODED_LINE_LIMIT = 76  # RFC 2047 2: a line holding encoded words
# The shortest first word: room for any one character (a Q-encoded four-byte one is longest).
ENCODED_WORD_MIN = len("=?utf-8?q?") + len("=F0=9F=9A=80") + len("?=")
CONTINUATION = "\r\n "
_Q_PREFIX, _B_PREFIX, _SUFFIX = "=?utf-8?q?", "=?utf-8?b?", "?="
_Q_PLAIN = frozenset(string.ascii_letters + string.digits + "!*+-/")  # RFC 2047 5(3)


@lru_cache(maxsize=4096)
def _q_character(character: str) -> str:
    if character == " ":
        return "_"
    if character in _Q_PLAIN:
        return character
    return "".join(f"={byte:02X}" for byte in character.encode("utf-8"))


def encoded_words(text: str, first_room: int) -> list[str]:
    """``text`` as RFC 2047 encoded words in UTF-8, one per line: the first fits in
    ``first_room`` characters (at least ``ENCODED_WORD_MIN``), the others in a continuation
    line. Q encoding, or B when that is shorter (mostly non-Latin text), as the
    standard library chooses. Words are split between characters, never inside one, so each
    decodes on its own; the folding whitespace between two encoded words is not part of the
    text (RFC 2047 6.2)."""
    data = text.encode("utf-8")
    q_tokens = [_q_character(character) for character in text]
    use_q = sum(map(len, q_tokens)) <= 4 * -(-len(data) // 3)
    prefix = _Q_PREFIX if use_q else _B_PREFIX
    chrome = len(prefix) + len(_SUFFIX)
    room = min(first_room, ENCODED_WORD_LIMIT) - chrome
    words: list[str] = []
    chunk: list[str] = []
    length = 0
    for character, token in zip(text, q_tokens, strict=True):
        size = len(token) if use_q else len(character.encode("utf-8"))
        fits = length + size <= room if use_q else 4 * -(-(length + size) // 3) <= room
        if chunk and not fits:
            words.append(_encoded_word(chunk, use_q))
            chunk, length, room = [], 0, ENCODED_WORD_LIMIT - chrome
        chunk.append(token if use_q else character)
        length += size
    words.append(_encoded_word(chunk, use_q))
    return words


def _encoded_word(chunk: list[str], use_q: bool) -> str:
    if use_q:
        return f"{_Q_PREFIX}{''.join(chunk)}{_SUFFIX}"
    payload = binascii.b2a_base64("".join(chunk).encode("utf-8"), newline=False)
    return f"{_B_PREFIX}{payload.decode('ascii')}{_SUFFIX}"


def text_part(subtype: str, text: str) -> bytes:
    """A ``text/SUBTYPE`` part in quoted-printable UTF-8; its body is plain ASCII."""
    body = UTF8_QP.body_encode(text.replace("\r\n", "\n")).encode("ascii")
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        "MIME-Version: 1.0\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    ).encode("ascii") + body.replace(b"\n", b"\r\n")


def new_boundary() -> str:
    """A boundary of "=" and digits, like the standard library's. Quoted-printable bodies carry
    "=" only before two hex digits or a line break, so no body line can be mistaken for it."""
    return f"{'=' * 15}{secrets.randbelow(10**19):019d}=="


def serialize_alternative(headers: list[tuple[str, str]], text: str, html: str) -> bytes:
    """A multipart/alternative message (text, then HTML; an empty text is left out, as Django
    does) as CRLF bytes, built directly: the bytes Django's serialization writes, but for the
    boundary, at a fraction of its cost."""
    boundary = new_boundary()
    delimiter = f"\r\n--{boundary}\r\n".encode("ascii")
    parts = [text_part("plain", text)] if text else []
    parts.append(text_part("html", html))
    return b"".join(
        (
            f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n'.encode("ascii"),
            b"MIME-Version: 1.0\r\n",
            *(header_line(name, value) for name, value in headers),
            # The blank line that ends the header block is the start of the first delimiter.
            *(delimiter + part for part in parts),
            f"\r\n--{boundary}--\r\n".encode("ascii"),
        )
    )


class DkimEmailMultiAlternatives(EmailMultiAlternatives):
    """Text + HTML mail in quoted-printable UTF-8, DKIM-signed when DKIM_* is configured.

    Signing happens in ``message()``, the method every Django backend calls to serialize, so
    the SMTP backend transmits the very bytes that were signed. The message is serialized (and
    signed) once: ``message()`` returns those bytes from then on, and later changes to this
    object are not sent (build a new one instead). A text part with one HTML alternative, the
    shape of every mail this service sends, is serialized by ``serialize_alternative``; any
    other shape by Django.
    """

    encoding = UTF8_QP  # Django accepts a Charset here as well as a name
    _frozen: FrozenMessage | None = None

    def message(self) -> Any:
        return self.freeze()

    def freeze(self) -> FrozenMessage:
        """Serialize (and sign) now; what ``message()`` returns from then on."""
        if self._frozen is None:
            original: Message | None = None
            data = self._serialized()
            if data is None:
                original = super().message()
                # Django's SafeMIME classes take a line separator.
                data = original.as_bytes(linesep="\r\n")  # type: ignore[call-arg]
            key = dkim_key()
            if key is not None:
                data = dkim_signature(data, key) + data
                original = None  # look-ups see the signature too
            self._frozen = FrozenMessage(data, original)
        return self._frozen

    def _serialized(self) -> bytes | None:
        """The message's bytes when it has the shape ``serialize_alternative`` builds."""
        alternatives = list(self.alternatives)
        if (
            self.attachments
            or self.encoding is not UTF8_QP
            or self.content_subtype != "plain"
            or self.alternative_subtype != "alternative"
            or len(alternatives) != 1
            or alternatives[0][1] != "text/html"
            or not isinstance(alternatives[0][0], str)
        ):
            return None
        return serialize_alternative(self._headers(), str(self.body), alternatives[0][0])

    def _headers(self) -> list[tuple[str, str]]:
        """The headers Django's ``message()`` sets, in its order, with the same defaults."""
        extra = self.extra_headers
        names = {name.lower(): name for name in extra}
        headers = [
            ("Subject", str(self.subject)),
            ("From", str(extra.get("From", self.from_email))),
        ]
        for name, values in (("To", self.to), ("Cc", self.cc), ("Reply-To", self.reply_to)):
            if name.lower() in names:
                headers.append((name, str(extra[names[name.lower()]])))
            elif values:
                headers.append((name, ", ".join(str(value) for value in values)))
        if "date" not in names:
            headers.append(("Date", formatdate(localtime=settings.EMAIL_USE_LOCALTIME)))
        if "message-id" not in names:
            headers.append(("Message-ID", make_msgid(domain=DNS_NAME)))
        skip = {"from", "to", "cc", "reply-to"}
        headers.extend(
            (name, str(value)) for name, value in extra.items() if name.lower() not in skip
        )
        return headers
