"""Read the ``.eml`` files the embedded mail backend writes, for the local outbox page."""

from __future__ import annotations

import email
import re
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

from django.conf import settings

from digest.ingest.normalize import safe_url

NAME = re.compile(r"^[\w.-]+\.eml$")
URL = re.compile(r"https?://[^\s<>\"']+")
LIMIT = 200


@dataclass
class OutboxMail:
    name: str
    subject: str
    to: str
    sender: str
    date: str
    text: str = ""
    html: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def links(self) -> list[str]:
        """The http(s) links of the text part, so a local user can follow them."""
        found = (safe_url(url) for url in URL.findall(self.text))
        return list(dict.fromkeys(url for url in found if url))


def _folder() -> Path:
    return Path(settings.OUTBOX_DIR)


def _parse(path: Path, with_body: bool) -> OutboxMail:
    message = email.message_from_bytes(path.read_bytes(), policy=default)
    assert isinstance(message, EmailMessage)
    mail = OutboxMail(
        name=path.name,
        subject=str(message.get("Subject", "")),
        to=str(message.get("To", "")),
        sender=str(message.get("From", "")),
        date=str(message.get("Date", "")),
    )
    if with_body:
        mail.headers = [(k, str(v)) for k, v in message.items()]
        text = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))
        mail.text = text.get_content() if text is not None else ""  # type: ignore[attr-defined]
        mail.html = html.get_content() if html is not None else ""  # type: ignore[attr-defined]
    return mail


def list_mails() -> list[OutboxMail]:
    folder = _folder()
    if not folder.is_dir():
        return []
    paths = sorted((p for p in folder.iterdir() if NAME.match(p.name)), reverse=True)
    return [_parse(path, with_body=False) for path in paths[:LIMIT]]


def read_mail(name: str) -> OutboxMail | None:
    """The mail called ``name`` in the outbox; None for unknown or unsafe names."""
    if not NAME.match(name):
        return None
    path = _folder() / name
    if not path.is_file() or path.resolve().parent != _folder().resolve():
        return None
    return _parse(path, with_body=True)
