"""The pipelining SMTP backend against a real SMTP server (aiosmtpd): what arrives is what
Django's own backend delivers, refusals raise what they raise there, and a refusal leaves the
connection usable for the next message."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.message import sanitize_address

from digest.emails import DkimEmailMultiAlternatives
from digest.smtp import EmailBackend, envelope_address, quote_data
from tests.browser import Recorder, serving_smtp


class Counting(Recorder):
    """Records messages and the commands of each connection; refuses what it is told to."""

    def __init__(self, pipelining: bool = True, **refuse: str) -> None:
        super().__init__(pipelining)
        self.refuse = refuse  # "MAIL" / "RCPT" / "DATA" -> the reply
        self.envelopes: list[tuple[str, list[str]]] = []
        self.mail_options: list[list[str]] = []

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if "MAIL" in self.refuse:
            return self.refuse["MAIL"]
        envelope.mail_from, envelope.mail_options = address, options
        self.mail_options.append(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.startswith("refused") and "RCPT" in self.refuse:
            return self.refuse["RCPT"]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if "DATA" in self.refuse:
            return self.refuse["DATA"]
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def server(settings: Any, request: pytest.FixtureRequest) -> Iterator[Counting]:
    settings.EMAIL_TIMEOUT = 5
    handler = getattr(request, "param", None) or Counting()
    with serving_smtp(settings, handler) as running:
        yield running


def refusal_code(error: BaseException, address: str) -> int:
    """The code the server refused with: the recipient's own, or the command's."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return int(error.recipients[address][0])
    assert isinstance(error, smtplib.SMTPResponseException)
    return error.smtp_code


def message(to: str, body: str = "Hello.\n", **kwargs: Any) -> EmailMultiAlternatives:
    mail = EmailMultiAlternatives(
        "Subject", body, "Paper Digest <digest@papers.example.org>", [to], **kwargs
    )
    mail.attach_alternative(f"<p>{body}</p>", "text/html")
    return mail


@pytest.mark.parametrize("pipelining", [True, False])
def test_many_messages_arrive_intact_over_one_connection(settings: Any, pipelining: bool) -> None:
    """Lines that start with "." (dot-stuffing), the envelope Django would give, and the size
    declared to a server that takes SIZE, pipelined or not."""
    body = ".starts with a dot\n..two\nmiddle . dot\n.\nend"
    handler = Counting(pipelining=pipelining)
    with serving_smtp(settings, handler) as server, get_connection() as connection:
        assert isinstance(connection, EmailBackend)
        sent = connection.send_messages([message(f"r{i}@example.org", body) for i in range(5)])
        assert connection.connection.has_extn("pipelining") is pipelining
    assert sent == 5
    assert [to for _, to in server.envelopes] == [[f"r{i}@example.org"] for i in range(5)]
    assert {sender for sender, _ in server.envelopes} == {"digest@papers.example.org"}
    for received in server.messages:
        text = received.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        assert text.replace("\r\n", "\n").rstrip("\n") == body
    assert all(any(o.startswith("SIZE=") for o in options) for options in server.mail_options)


def test_the_bytes_that_arrive_are_the_bytes_the_message_serialized_to(server: Counting) -> None:
    mail = DkimEmailMultiAlternatives(
        "Subject", "line one\n.line two\n", "digest@papers.example.org", ["reader@example.org"]
    )
    mail.attach_alternative("<p>.dot</p>", "text/html")
    expected = mail.freeze().data
    with get_connection() as connection:
        connection.send_messages([mail])
    # aiosmtpd gives the content with the dots unstuffed and without the final CRLF.
    assert server.raw[0].rstrip(b"\r\n") == expected.rstrip(b"\r\n")


@pytest.mark.parametrize(
    ("server", "error", "code"),
    [
        (Counting(MAIL="550 5.7.1 sender not allowed"), smtplib.SMTPSenderRefused, 550),
        (Counting(MAIL="451 4.3.0 try later"), smtplib.SMTPSenderRefused, 451),
        (Counting(RCPT="550 5.1.1 no such user"), smtplib.SMTPRecipientsRefused, 550),
        (Counting(RCPT="452 4.2.2 mailbox full"), smtplib.SMTPRecipientsRefused, 452),
        (Counting(DATA="554 5.6.0 message rejected"), smtplib.SMTPDataError, 554),
        (Counting(DATA="451 4.7.1 greylisted"), smtplib.SMTPDataError, 451),
    ],
    indirect=["server"],
)
def test_a_refusal_raises_what_smtplib_raises_and_the_connection_goes_on(
    server: Counting, error: type[Exception], code: int
) -> None:
    with get_connection() as connection:
        with pytest.raises(error) as raised:
            connection.send_messages([message("refused@example.org")])
        assert refusal_code(raised.value, "refused@example.org") == code
        # The refused transaction was reset: the next message on the same connection goes
        # through (unless the server refuses it for the same reason).
        server.refuse.clear()
        assert connection.send_messages([message("next@example.org")]) == 1
    assert [to for _, to in server.envelopes] == [["next@example.org"]]


def test_one_refused_recipient_of_several_does_not_stop_the_others(settings: Any) -> None:
    handler = Counting(RCPT="550 5.1.1 no such user")
    with serving_smtp(settings, handler) as server, get_connection() as connection:
        data = message("refused@example.org").message().as_bytes(linesep="\r\n")
        refused = connection.connection.sendmail(
            "digest@papers.example.org", ["refused@example.org", "ok@example.org"], data
        )
    assert list(refused) == ["refused@example.org"]
    assert server.envelopes == [("digest@papers.example.org", ["ok@example.org"])]


@pytest.mark.parametrize(
    "address",
    [
        "reader@example.org",
        "first.last+tag@mail.example.co.uk",
        "o'brien@example.org",
        "UPPER@example.org",
        "reader@EXAMPLE.org",
        "reader@localhost",
        "Reader Name <reader@example.org>",
        '"quoted local"@example.org',
        "reader@bücher.example",
        "jürgen@example.org",
        "a..b@example.org",
        "reader@-bad.example",
        "=?utf-8?q?abc?=@example.com",
        "=?us-ascii?q?x?=.y@example.com",
        "=?utf-8?q?a_b?=@example.com",
        "a=b?c@example.org",
        "a@" + "b" * 63 + ".com",
        "a@" + "b" * 64 + ".com",
    ],
)
def test_envelope_addresses_are_what_django_makes_of_them(address: str) -> None:
    try:
        expected = sanitize_address(address, "utf-8")
    except (ValueError, UnicodeError) as refused:
        with pytest.raises(type(refused)):
            envelope_address(address, "utf-8")
        return
    assert envelope_address(address, "utf-8") == expected


@pytest.mark.parametrize(
    "data",
    [b"", b".", b"a\r\n.b\r\n", b".a\r\n..b\r\n.\r\n", b"no end", b"x\r\n\r\n.\r\n.\r\n"],
)
def test_dot_stuffing_is_smtplibs(data: bytes) -> None:
    expected = smtplib._quote_periods(data)  # type: ignore[attr-defined]
    if not expected.endswith(b"\r\n"):
        expected += b"\r\n"
    assert quote_data(data) == expected + b".\r\n"


class HangsUp(Counting):
    """Refuses ``command`` with ``reply`` and closes the connection before answering the rest
    of the pipelined commands."""

    def __init__(self, command: str, reply: str) -> None:
        super().__init__()
        self.command, self.reply = command, reply

    async def hang_up(self, server: Any) -> str:
        await server.push(self.reply)
        server.transport.close()
        return self.reply

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.command == "MAIL":
            return await self.hang_up(server)
        return await super().handle_MAIL(server, session, envelope, address, options)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.command == "RCPT":
            return await self.hang_up(server)
        return await super().handle_RCPT(server, session, envelope, address, options)


@pytest.mark.parametrize(
    ("handler", "error", "code"),
    [
        (Counting(MAIL="421 4.3.2 shutting down"), smtplib.SMTPSenderRefused, 421),
        (HangsUp("MAIL", "421 4.3.2 shutting down"), smtplib.SMTPSenderRefused, 421),
        (HangsUp("MAIL", "550 5.7.1 go away"), smtplib.SMTPSenderRefused, 550),
        (HangsUp("RCPT", "550 5.1.1 no such user"), smtplib.SMTPRecipientsRefused, 550),
    ],
)
def test_a_refusal_before_the_server_hangs_up_is_raised_as_smtplib_raises_it(
    settings: Any, handler: Counting, error: type[Exception], code: int
) -> None:
    """A hang-up after a refusal must not turn a refused address (which counts towards
    suppression) into a mere disconnection (which is retried)."""
    with serving_smtp(settings, handler), get_connection() as connection:
        with pytest.raises(error) as raised:
            connection.send_messages([message("reader@example.org")])
        assert refusal_code(raised.value, "reader@example.org") == code
        assert connection.connection.sock is None
