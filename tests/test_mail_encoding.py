"""The faster mail path builds the same mail: quoted-printable bodies from the C encoder decode to
the text that was rendered and keep RFC 2045's line limit, a digest is serialized once and sent
as the bytes that were measured, and the remembered ``wordwrap`` wraps as Jinja2's own."""

from __future__ import annotations

import binascii
import dataclasses
import email
import email.header
import email.quoprimime
import random
import re
from email.message import EmailMessage
from email.policy import default
from typing import Any

import jinja2
import pytest
from django.core.mail import BadHeaderError, EmailMultiAlternatives

from digest import emails
from digest.delivery import message as digest_message
from digest.delivery.message import build_digest_message, content_for, contents_for
from digest.models import Paper
from tests.browser import Recorder, smtp_server
from tests.factories import DigestFactory, DigestItemFactory, PaperFactory

__all__ = ["smtp_server"]  # a fixture used below

ALPHABET = "ab xyz.=\t\n-é“”·\u00a0\U0001f600F"


def random_texts(count: int, seed: int = 5) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 400)))
        if rng.random() < 0.3:
            text = "From " + text
        if rng.random() < 0.3:
            text += " " * rng.randint(1, 3)
        texts.append(text)
    return texts


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plain ascii\n",
        "-- \nsignature separator keeps its trailing space\n",
        "a=b and = at the end=",
        ".\nA line that is a single dot, and one that starts with one:\n.dot\n",
        "x" * 200 + "\n" + "é" * 120,
        "trailing tab\t\nand space \n",
        "\u00b7 Mar 11 \u201cquoted\u201d \U0001f600",
    ],
)
def test_quoted_printable_bodies_decode_to_the_text_and_keep_the_line_limit(text: str) -> None:
    assert_good_quoted_printable(text)


def test_random_texts_survive_quoted_printable() -> None:
    for text in random_texts(500):
        assert_good_quoted_printable(text)


def assert_good_quoted_printable(text: str) -> None:
    encoded = emails.UTF8_QP.body_encode(text.encode())
    assert encoded.isascii()
    assert all(len(line) <= emails.QP_LINE_LIMIT for line in encoded.split("\n")), encoded
    assert binascii.a2b_qp(encoded.encode()) == text.encode()


def test_where_the_c_encoder_overshoots_the_line_limit_the_stdlib_encoder_is_used() -> None:
    # An encoded trailing space right at the limit: binascii writes a 77-character line.
    text = "x" * 74 + " \nnext"
    assert max(len(line) for line in binascii.b2a_qp(text.encode(), istext=True).split(b"\n")) > 76
    encoded = emails.UTF8_QP.body_encode(text.encode())
    assert encoded == email.quoprimime.body_encode(text)
    assert binascii.a2b_qp(encoded.encode()) == text.encode()


def digest_with_papers() -> Any:
    digest = DigestFactory()
    for rank in range(1, 4):
        paper = PaperFactory(title=f"Über “quoted” state space models · part {rank}")
        DigestItemFactory(digest=digest, paper=paper, rank=rank)
    return digest


@pytest.mark.django_db
def test_a_digest_is_serialized_once_and_sent_as_the_bytes_measured(
    settings: Any, smtp_server: Recorder
) -> None:
    settings.SITE_URL = "https://digest.example.org"
    message = build_digest_message(content_for(digest_with_papers()))
    frozen = message.message()
    assert message.message() is frozen  # the send and the size check share one serialization
    assert message.send() == 1
    smtp_server.wait_for(1)
    (received,) = smtp_server.raw
    assert received == frozen.as_bytes(linesep="\r\n")
    parsed = email.message_from_bytes(received, policy=default)
    assert isinstance(parsed, EmailMessage)
    text = parsed.get_body(preferencelist=("plain",))
    assert text is not None and text["Content-Transfer-Encoding"] == "quoted-printable"
    assert "Über “quoted” state space models · part 2" in text.get_content()


@pytest.mark.parametrize(
    ("text", "args"),
    [
        ("a " * 100, (68, False)),
        ("Averyveryveryverylongwordthatdoesnotfit" * 3 + " and more", (20, False)),
        ("Averyveryveryverylongwordthatdoesnotfit" * 3 + " and more", (20, True)),
        ("first paragraph\nsecond paragraph that is long enough to wrap", (16,)),
        ("state-of-the-art hyphenated-words wrap-or-not", (10, False, None, False)),
        ("", (72, False)),
    ],
)
def test_remembered_wordwrap_wraps_like_jinja2(
    text: str, args: tuple[Any, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = jinja2.Environment(autoescape=True)
    wrap = emails.memoized_wordwrap(env)
    expected = jinja2.filters.do_wordwrap(env, text, *args)
    real = jinja2.filters.do_wordwrap
    calls: list[Any] = []

    def counted(*a: Any, **k: Any) -> Any:
        calls.append(a)
        return real(*a, **k)

    monkeypatch.setattr(jinja2.filters, "do_wordwrap", counted)
    assert wrap(text, *args) == expected
    assert wrap(text, *args) == expected and len(calls) == 1  # the second from the cache
    assert wrap(jinja2.filters.Markup(text), *args) == expected  # not a plain str: not cached
    assert len(calls) == 2
    assert wrap(text, width=args[0]) == jinja2.filters.do_wordwrap(env, text, width=args[0])


# --- paper entries kept from one chunk to the next ----------------------------------------------


@pytest.mark.django_db
def test_an_edited_paper_shows_its_new_text_in_the_next_digest(settings: Any) -> None:
    settings.SITE_URL = "https://digest.example.org"
    paper = PaperFactory(title="Old title", abstract="Old abstract.", url_code="")
    first, second = DigestFactory(), DigestFactory()
    for digest in (first, second):
        DigestItemFactory(digest=digest, paper=paper, rank=1)
    (before,) = contents_for([first])
    Paper.objects.filter(pk=paper.pk).update(
        title="New title", abstract="New abstract.", url_code="https://github.com/new/code"
    )
    (after,) = contents_for([second])
    assert before.papers[0].title == "Old title" and before.papers[0].code_url == ""
    assert after.papers[0].title == "New title"
    assert after.papers[0].abstract_start == "New abstract."
    assert after.papers[0].code_url == "https://github.com/new/code"
    settings.SITE_URL = "https://elsewhere.example.org"
    (moved,) = contents_for([second])
    assert moved.papers[0].page_url.startswith("https://elsewhere.example.org/")


@pytest.mark.django_db
def test_kept_paper_entries_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(digest_message, "ENTRY_CACHE_SIZE", 3)
    monkeypatch.setattr(digest_message, "_entries", {})
    digest = DigestFactory()
    for rank in range(1, 6):
        DigestItemFactory(digest=digest, rank=rank, reason=f"reason {rank}")
    (content,) = contents_for([digest])
    assert 0 < len(digest_message._entries) <= 3  # kept, and dropped beyond the bound
    assert [p.reason for p in content.papers] == [f"reason {n}" for n in range(1, 6)]
    assert len({p.title for p in content.papers}) == 5


# --- The direct serialization: the bytes Django's own serialization would produce ---------------

BOUNDARY = re.compile(rb"={15}\d{19}==")


def django_bytes(message: emails.DkimEmailMultiAlternatives) -> bytes:
    return bytes(EmailMultiAlternatives.message(message).as_bytes(linesep="\r\n"))


@pytest.mark.parametrize(
    ("fields", "headers"),
    [
        (
            {"subject": "6 new papers: Mamba, quantization · Mar 11", "to": ["r@example.org"]},
            {"Message-ID": "<digest-1@example.org>", "List-Id": "Paper Digest <d.example.org>"},
        ),
        (
            {"subject": "x" * 140, "to": ["Ünïcode Name <user@bücher.example>"]},
            {"List-Unsubscribe": "<https://example.org/u/" + "a" * 150 + ">, <mailto:u@x.org>"},
        ),
        (
            {"subject": "Plain", "to": ["a@example.org", "b@example.org"], "cc": ["c@x.org"]},
            {"From": "Ça Digest <d@example.org>", "Reply-To": "help@example.org"},
        ),
    ],
)
@pytest.mark.parametrize("text", ["", "line\r\nwindows line\n", "é“”·" * 40 + "\n" + "x" * 300])
def test_direct_serialization_is_the_bytes_django_writes(
    settings: Any, fields: dict[str, Any], headers: dict[str, str], text: str
) -> None:
    settings.DKIM_DOMAIN = settings.DKIM_SELECTOR = settings.DKIM_PRIVATE_KEY_PATH = ""
    message = emails.DkimEmailMultiAlternatives(
        body=text,
        from_email="Paper Digest <digest@example.org>",
        headers={"Date": "Sun, 29 Nov 2026 10:00:00 +0000", "Message-ID": "<m@x>", **headers},
        **fields,
    )
    message.attach_alternative("<p>Über “this”</p>\n" * 40 + text, "text/html")
    direct = message.freeze().data
    assert BOUNDARY.sub(b"B", direct) == BOUNDARY.sub(b"B", django_bytes(message))
    parsed = email.message_from_bytes(direct, policy=default)
    assert isinstance(parsed, EmailMessage)
    html = parsed.get_body(preferencelist=("html",))
    assert html is not None and "<p>Über “this”</p>" in html.get_content()
    assert parsed["Subject"].strip() == fields["subject"]
    assert message.message()["Message-ID"] == parsed["Message-ID"]  # look-ups read the bytes


def test_direct_serialization_refuses_a_line_break_in_a_header() -> None:
    message = emails.DkimEmailMultiAlternatives(
        subject="Hello\r\nBcc: victim@example.org", body="x", from_email="d@x.org", to=["r@x.org"]
    )
    message.attach_alternative("<p>x</p>", "text/html")
    with pytest.raises(BadHeaderError):
        message.freeze()


def test_other_shapes_of_mail_are_serialized_by_django() -> None:
    message = emails.DkimEmailMultiAlternatives(
        subject="With a file", body="see attached", from_email="d@x.org", to=["r@x.org"]
    )
    message.attach_alternative("<p>see attached</p>", "text/html")
    message.attach("notes.txt", "some notes", "text/plain")
    parsed = email.message_from_bytes(message.freeze().data, policy=default)
    assert parsed.get_content_type() == "multipart/mixed"
    assert [part.get_filename() for part in parsed.iter_attachments()] == ["notes.txt"]


ASCII_VALUES = [
    "Sun, 29 Nov 2026 10:00:00 +0000",
    "<digest-5001.b312708b0291@papers.example.org>",
    "Paper Digest <digest.papers.example.org>",
    "List-Unsubscribe=One-Click",
    "OOF, AutoReply",
    "bulk",
    "6 new papers: Mamba, quantization; more = yes (really) \"quoted\" 'x' [y] ?!",
    "=?utf-8?q?looks_encoded?=",
    "x" * 68,  # the longest that fits a line after "Subject: "
    "x" * 69,
    "word " * 20 + "end",
    "two  spaces",
    " leading space",
    "trailing space ",
    "tab\there",
    "",
]


@pytest.mark.parametrize("value", ASCII_VALUES)
@pytest.mark.parametrize("name", ["Subject", "List-Id", "X-Auto-Response-Suppress"])
def test_every_header_line_is_the_one_the_standard_library_folds(name: str, value: str) -> None:
    """The short way for short ASCII values gives the very bytes of the standard way."""
    emails.header_line.cache_clear()
    assert emails.header_line(name, value) == emails._standard_header_line(name, value)


SUBJECTS = [
    "5 new papers: regularity · Dec 8",
    "12 new papers: state space models, Mamba, quantization… · week of Mar 9",
    "3 new papers: 量子 计算, Mamba · Dec 8",
    "20 new papers: " + "量子计算" * 20,
    "1 new paper: émoji 🚀🧪 and ﬁ ligatures, Ünïcödé · Dec 8",
    "é" * 200,
    "a" * 70 + "·" + "b" * 70,
    "naïve_underscore_and=equals?question · ok",
]


def encoded_word_lines(line: bytes) -> list[str]:
    text = line.decode("ascii")
    assert text.endswith("\r\n")
    return text[:-2].split("\r\n")


@pytest.mark.parametrize("subject", SUBJECTS)
def test_non_ascii_subjects_decode_to_their_text_in_well_formed_encoded_words(
    subject: str,
) -> None:
    emails.header_line.cache_clear()
    line = emails.header_line("Subject", subject)
    lines = encoded_word_lines(line)
    assert all(len(each) <= emails.ENCODED_LINE_LIMIT for each in lines)
    assert lines[0].startswith("Subject: ") and all(each.startswith(" ") for each in lines[1:])
    words = [each.removeprefix("Subject: ").strip() for each in lines]
    for word in filter(None, words):
        assert len(word) <= emails.ENCODED_WORD_LIMIT
        # Each word is whole characters: it decodes as UTF-8 on its own.
        ((raw, charset),) = email.header.decode_header(word)
        assert charset == "utf-8" and isinstance(raw, bytes)
        raw.decode("utf-8")
    parsed = email.message_from_bytes(line + b"\r\nbody\r\n", policy=default)
    assert str(parsed["Subject"]) == subject
    # The same text as the standard library's encoding of it (which may put the words on
    # the next line, after a folding space that a reader then shows).
    standard = email.message_from_bytes(
        emails._standard_header_line("Subject", subject) + b"\r\nbody\r\n", policy=default
    )
    assert str(standard["Subject"]).strip() == subject


def test_random_non_ascii_subjects_decode_to_their_text() -> None:
    rng = random.Random(11)
    alphabet = "abc XYZ 019,:;=?_·…é中文🚀ß\u0301"
    for _ in range(300):
        subject = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 160))).strip()
        subject = " ".join(subject.split())
        if subject.isascii():
            continue
        line = emails.header_line("Subject", subject)
        assert all(len(each) <= emails.ENCODED_LINE_LIMIT for each in encoded_word_lines(line))
        parsed = email.message_from_bytes(line + b"\r\nbody\r\n", policy=default)
        assert str(parsed["Subject"]) == subject


def test_a_header_name_too_long_for_an_encoded_word_takes_the_standard_way() -> None:
    name = "X-" + "Long" * 15
    assert emails.header_line(name, "é and more") == emails._standard_header_line(
        name, "é and more"
    )
    shorter = name[: emails.ENCODED_LINE_LIMIT - 2 - emails.ENCODED_WORD_MIN]
    for text in ("é and more", "🚀 and plenty of plain text after it"):
        line = emails.header_line(shorter, text)
        assert all(len(each) <= emails.ENCODED_LINE_LIMIT for each in encoded_word_lines(line))
        parsed = email.message_from_bytes(line + b"\r\nbody\r\n", policy=default)
        assert str(parsed[shorter]) == text


@pytest.mark.parametrize("name", ["Subject", "To", "List-Id"])
def test_a_line_break_in_any_header_is_refused(name: str) -> None:
    with pytest.raises(BadHeaderError):
        emails.header_line(name, "Hello\nBcc: victim@example.org")


def test_a_paper_with_its_reason_keeps_every_other_field() -> None:
    fields = [field.name for field in dataclasses.fields(digest_message.DigestPaper)]
    entry = digest_message.DigestPaper(**{name: f"{name}-value" for name in fields})
    made = digest_message.with_reason(entry, "matched:\n  Mamba ")
    assert made == dataclasses.replace(entry, reason="matched: Mamba")
