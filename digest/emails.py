"""The one mail helper: renders subject, text and HTML from Jinja2 templates and builds the
message with the headers every mail of this service carries.

Templates live in ``templates/email/``: ``NAME.subject.txt``, ``NAME.txt`` and ``NAME.html``.
Autoescape is on for HTML (text from dumps and from users is untrusted) and undefined names
are errors, so a template typo fails a test instead of mailing a blank.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import formataddr, parseaddr
from functools import lru_cache
from typing import Any

import jinja2
from django.conf import settings
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
) -> EmailMultiAlternatives:
    name, address = parseaddr(settings.DEFAULT_FROM_EMAIL)
    message = EmailMultiAlternatives(
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
    """Render the ``name`` templates and send one message now (callers run in a task)."""
    mail = render(name, context)
    with get_connection() as connection:
        build_message(to, mail, headers=headers, connection=connection).send()
