"""The one mail helper: renders subject, text and HTML from Jinja2 templates and builds the
message with the headers every mail of this service carries.

Templates live in ``templates/email/``: ``NAME.subject.txt``, ``NAME.txt`` and ``NAME.html``.
Autoescape is on for HTML (text from dumps and from users is untrusted) and undefined names
are errors, so a template typo fails a test instead of mailing a blank.
"""

from __future__ import annotations

from dataclasses import dataclass
from email import charset
from email.message import Message
from email.utils import formataddr, parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Any

import css_inline
import dkim
import jinja2
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(settings.BASE_DIR / "templates" / "email")),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


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


def build_message(
    to: str,
    mail: RenderedMail,
    *,
    headers: dict[str, str] | None = None,
    connection: BaseEmailBackend | None = None,
    message_class: type[EmailMultiAlternatives] = EmailMultiAlternatives,
) -> EmailMultiAlternatives:
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


# --- DKIM ------------------------------------------------------------------------------------

# Quoted-printable bodies are plain ASCII: no relay has a reason to re-encode them (as it may do
# with 8bit text for a server without 8BITMIME), which would break the signature.
UTF8_QP = charset.Charset("utf-8")
UTF8_QP.body_encoding = charset.QP

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
        private_key = path.read_bytes()
    except OSError as exc:
        raise ImproperlyConfigured(f"DKIM_PRIVATE_KEY_PATH: cannot read {path}: {exc}") from exc
    return DkimKey(values["DKIM_DOMAIN"], values["DKIM_SELECTOR"], private_key)


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


class SignedMessage:
    """A MIME message frozen into its signed bytes.

    Django's backends send ``message().as_bytes(linesep="\\r\\n")``; this returns exactly the
    bytes that were signed, so nothing can re-fold a header or pick another MIME boundary
    between signing and sending. Header look-ups go to the message as built.
    """

    def __init__(self, original: Message, signed: bytes) -> None:
        self.original = original
        self.signed = signed

    def as_bytes(self, unixfrom: bool = False, linesep: str = "\n") -> bytes:
        if linesep == "\r\n":
            return self.signed
        return self.signed.replace(b"\r\n", linesep.encode())

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
        return getattr(self.original, name)


class DkimEmailMultiAlternatives(EmailMultiAlternatives):
    """Text + HTML mail in quoted-printable UTF-8, DKIM-signed when DKIM_* is configured.

    Signing happens in ``message()``, the method every Django backend calls to serialize, so
    the SMTP backend transmits the very bytes that were signed.
    """

    encoding = UTF8_QP  # Django accepts a Charset here as well as a name

    def message(self) -> Any:
        message = super().message()
        key = dkim_key()
        if key is None:
            return message
        data = message.as_bytes(linesep="\r\n")
        return SignedMessage(message, dkim_signature(data, key) + data)
