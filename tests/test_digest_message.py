"""The digest mail as a receiver sees it: parts, headers, escaping, size, CSS, DKIM, and the
"view in browser" page. Every message is parsed back with the standard library's parser."""

from __future__ import annotations

import base64
import email
import re
import subprocess
from email.message import EmailMessage
from email.policy import default
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dkim
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMultiAlternatives
from django.test import Client

from digest.delivery import tokens
from digest.delivery.message import (
    DigestContent,
    DigestPaper,
    DigestTooLarge,
    abstract_start,
    build_digest_message,
    content_for,
    contents_for,
    list_id,
    message_id,
    period_label,
    render_digest,
)
from digest.models import Digest, Paper
from subscriptions import tokens as subscription_tokens
from tests.browser import Recorder, browser_page, smtp_server
from tests.conftest import ROOT
from tests.factories import DigestFactory, DigestItemFactory, PaperFactory, SubscriberFactory

__all__ = ["browser_page", "smtp_server"]  # fixtures used below

pytestmark = pytest.mark.django_db

SITE = "https://digest.example.org"
EVIL_TITLE = '<script>alert(1)</script> Mamba & "friends"'
ARTIFACTS = ROOT / "artifacts" / "mail"
GMAIL_CLIP_BYTES = 102 * 1024


@pytest.fixture(autouse=True)
def _site(settings: Any) -> None:
    settings.SITE_URL = SITE
    settings.LIST_UNSUBSCRIBE_MAILTO = "unsubscribe@example.org"
    settings.LIST_ID = ""
    settings.DKIM_DOMAIN = settings.DKIM_SELECTOR = settings.DKIM_PRIVATE_KEY_PATH = ""


def make_digest(
    papers: list[Paper] | None = None,
    *,
    interests: str = "state space models, quantization",
    period: str = "2026-03-11",
    reason: str = "matches state space models",
) -> Digest:
    subscriber = SubscriberFactory(interests=interests)
    digest = DigestFactory(subscriber=subscriber, period=period)
    for rank, paper in enumerate(papers or [PaperFactory()], start=1):
        DigestItemFactory(digest=digest, paper=paper, rank=rank, reason=reason)
    return digest


def parsed(message: EmailMultiAlternatives) -> EmailMessage:
    """The message as Django's SMTP backend serializes it, parsed back."""
    result = email.message_from_bytes(message.message().as_bytes(linesep="\r\n"), policy=default)
    assert isinstance(result, EmailMessage)
    return result


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()  # type: ignore[attr-defined]


def has_link(html: str, url: str, label: str) -> bool:
    return bool(re.search(rf'<a [^>]*href="{re.escape(url)}"[^>]*>{label}</a>', html))


def realistic_paper(n: int) -> Paper:
    sentence = (
        "We introduce a selective state space model whose parameters depend on the input, "
        "which lets it propagate or forget information along the sequence length dimension "
        "depending on the current token, and we design a hardware-aware parallel algorithm "
        "in recurrent mode. "
    )
    return PaperFactory(
        title=(
            f"Scaling Selective State Space Models to Long Multimodal Contexts with Hardware-"
            f"Aware Parallel Scans and Mixed-Precision Quantization, Part {n}"
        ),
        abstract=(sentence * 7)[:1500],
        authors=[f"Firstname{i} Lastname-Doubleson{i}" for i in range(10)],
        arxiv_id=f"2403.{10000 + n}",
        url_abs=f"https://arxiv.org/abs/2403.{10000 + n}",
        url_pdf=f"https://arxiv.org/pdf/2403.{10000 + n}",
        url_code=f"https://github.com/example-lab/selective-ssm-long-context-{n}",
        upvotes=100 + n,
    )


def twenty_paper_digest() -> Digest:
    return make_digest(
        [realistic_paper(n) for n in range(20)],
        reason="matches “state space models” (title, abstract) and “quantization” (abstract)",
    )


def content(
    count: int, topics: list[str], *, period: str = "Mar 11", digest_id: int = 1
) -> DigestContent:
    paper = DigestPaper(
        title="A paper",
        page_url=f"{SITE}/papers/1/",
        authors_short="Ada Lovelace",
        abstract_start="We study things.",
        reason="",
        arxiv_url="",
        pdf_url="",
        code_url="",
        upvotes=None,
    )
    return DigestContent(
        digest_id=digest_id,
        to="reader@example.org",
        period_label=period,
        papers=[paper] * count,
        topics=topics,
        manage_url=f"{SITE}/manage/t/",
        unsubscribe_url=f"{SITE}/unsubscribe/t/",
        archive_url=f"{SITE}/digests/t/",
        why="You get this daily digest because you subscribed.",
    )


# --- Structure and headers -------------------------------------------------------------------


def test_digest_is_multipart_alternative_with_the_same_papers_in_text_and_html() -> None:
    papers = [PaperFactory(title=f"Selective scans part {n}") for n in range(3)]
    message = parsed(build_digest_message(content_for(make_digest(papers))))

    assert message.get_content_type() == "multipart/alternative"
    subtypes = [part.get_content_type() for part in message.iter_parts()]
    assert subtypes == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in message.iter_parts())
    text, html = parts(message)
    for paper in papers:
        assert paper.title in text
        assert paper.title in html
        assert f"{SITE}/papers/{paper.pk}/" in text
        assert f'href="{SITE}/papers/{paper.pk}/"' in html


def test_digest_carries_the_headers_of_a_well_behaved_bulk_mail() -> None:
    digest = make_digest()
    message = parsed(build_digest_message(content_for(digest)))
    token = subscription_tokens.make_token(digest.subscriber, subscription_tokens.UNSUBSCRIBE)
    unsubscribe = f"{SITE}/unsubscribe/{token}/"

    assert message["From"] == "Paper Digest <digest@localhost>"
    assert message["To"] == digest.subscriber.email
    assert parsedate_to_datetime(message["Date"]).tzinfo is not None
    assert re.fullmatch(
        rf"<digest-{digest.pk}\.[0-9a-f]{{12}}@digest\.example\.org>", message["Message-ID"]
    )
    # Folded after the colon (the line would be too long), hence the strip().
    assert message["List-Unsubscribe"].strip() == (
        f"<{unsubscribe}>, <mailto:unsubscribe@example.org?subject=unsubscribe>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Id"] == "Paper Digest <digest.digest.example.org>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Precedence"] == "bulk"
    assert message["X-Auto-Response-Suppress"] == "OOF, AutoReply"
    assert "DKIM-Signature" not in message  # not configured


def test_list_unsubscribe_is_the_https_link_alone_without_a_mailto(settings: Any) -> None:
    settings.LIST_UNSUBSCRIBE_MAILTO = ""
    message = parsed(build_digest_message(content_for(make_digest())))
    assert re.fullmatch(rf"<{SITE}/unsubscribe/[^>\s]+/>", message["List-Unsubscribe"].strip())
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_list_id_setting_is_used_as_given(settings: Any) -> None:
    settings.LIST_ID = "Papers <papers.example.net>"
    message = parsed(build_digest_message(content_for(make_digest())))
    assert message["List-Id"] == "Papers <papers.example.net>"


def test_message_id_is_stable_across_builds_and_differs_between_digests() -> None:
    first = make_digest()
    second = make_digest()
    ids = [parsed(build_digest_message(content_for(first)))["Message-ID"] for _ in range(2)]
    reloaded = Digest.objects.get(pk=first.pk)  # a retry in another worker
    ids.append(parsed(build_digest_message(content_for(reloaded)))["Message-ID"])
    other = parsed(build_digest_message(content_for(second)))["Message-ID"]
    assert ids[0] == ids[1] == ids[2]
    assert other != ids[0]


def test_message_id_uses_the_dkim_domain_when_one_is_set(settings: Any) -> None:
    settings.DKIM_DOMAIN = "mail.example.net"
    content_ = content(1, ["Mamba"], digest_id=7)
    assert message_id(content_) == "<digest-7@mail.example.net>"
    assert list_id() == "Paper Digest <digest.mail.example.net>"


def test_contents_read_items_and_papers_in_two_queries_in_rank_order(
    django_assert_num_queries: Any,
) -> None:
    papers = [PaperFactory(title=f"Paper {c}") for c in "abc"]
    digest = make_digest()
    digest.items.all().delete()
    for rank, paper in zip([3, 1, 2], papers, strict=True):
        DigestItemFactory(digest=digest, paper=paper, rank=rank)
    other = make_digest()
    other.items.all().delete()
    for rank, paper in enumerate(papers[:2], start=1):  # the same papers, read once
        DigestItemFactory(digest=other, paper=paper, rank=rank, reason=f"matched: {rank}")
    digests = list(Digest.objects.select_related("subscriber").filter(pk__in=[digest.pk, other.pk]))
    with django_assert_num_queries(2):
        first, second = contents_for(sorted(digests, key=lambda d: d.pk))
    assert [p.title for p in first.papers] == ["Paper b", "Paper c", "Paper a"]
    assert [(p.title, p.reason) for p in second.papers] == [
        ("Paper a", "matched: 1"),
        ("Paper b", "matched: 2"),
    ]


# --- What the mail says ----------------------------------------------------------------------


def test_each_paper_shows_authors_abstract_reason_links_and_upvotes() -> None:
    paper = PaperFactory(
        title="Mamba: Linear-Time Sequence Modeling",
        authors=["Albert Gu", "Tri Dao", "Third Author", "Fourth Author"],
        abstract="Foundation models are everywhere. Transformers are slow. A third sentence.",
        arxiv_id="2312.00752",
        url_abs="",
        url_pdf="",
        url_code="https://github.com/state-spaces/mamba",
        upvotes=42,
    )
    digest = make_digest([paper], reason="matches “state space models” (title)")
    text, html = parts(parsed(build_digest_message(content_for(digest))))

    for part in (text, html):
        assert "Albert Gu, Tri Dao, Third Author et al." in part
        assert "Foundation models are everywhere. Transformers are slow." in part
        assert "A third sentence" not in part
        assert "matches “state space models” (title)" in part
        assert "42 upvotes" in part
    assert has_link(html, "https://arxiv.org/abs/2312.00752", "arXiv")
    assert has_link(html, "https://arxiv.org/pdf/2312.00752", "PDF")
    assert has_link(html, "https://github.com/state-spaces/mamba", "Code")
    assert "<strong>Why:</strong>" in html
    assert "Why: matches" in text
    assert "arXiv: https://arxiv.org/abs/2312.00752" in text
    assert "Code:  https://github.com/state-spaces/mamba" in text


def test_footer_says_why_and_links_to_manage_and_unsubscribe_and_the_browser_copy() -> None:
    digest = make_digest([PaperFactory(title="First paper")])
    result = content_for(digest)
    text, html = parts(parsed(build_digest_message(result)))

    assert result.why == (
        "You get this daily digest because you subscribed to Paper Digest with the interests: "
        "state space models, quantization."
    )
    assert result.archive_url.startswith(f"{SITE}/digests/")
    for part in (text, html):
        assert result.manage_url in part
        assert result.unsubscribe_url in part
        assert result.archive_url in part
        # "View in browser" comes before the papers, the footer after them.
        paper_url = result.papers[0].page_url
        assert part.index(result.archive_url) < part.index(paper_url)
        assert part.index(paper_url) < part.index(result.unsubscribe_url)
    assert "You get this daily digest because" in html
    assert "View in browser" in html


def test_weekly_trending_digest_says_so() -> None:
    digest = make_digest(interests="", period="2026-W11")
    result = content_for(digest)
    assert result.topics == []
    assert result.period_label == "week of Mar 9"
    assert result.why == (
        "You get this weekly digest of the top trending papers because you subscribed to "
        "Paper Digest."
    )
    assert render_digest(result).subject == "1 trending paper · week of Mar 9"


def test_untrusted_text_is_escaped_in_html_and_plain_in_text() -> None:
    paper = PaperFactory(title=EVIL_TITLE, abstract="An <b>abstract</b> with <img src=x>.")
    digest = make_digest(
        [paper], reason="matches <i>quantization</i>", interests="<b>quantization</b>"
    )
    text, html = parts(parsed(build_digest_message(content_for(digest))))

    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Mamba &amp;" in html
    assert "<b>" not in html and "<i>" not in html and "<img" not in html
    assert "&lt;i&gt;quantization&lt;/i&gt;" in html
    assert EVIL_TITLE in text
    assert "matches <i>quantization</i>" in text


@pytest.mark.parametrize("field", ["url_code", "url_pdf", "url_abs"], ids=["code", "pdf", "arxiv"])
@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", " JaVaScRiPt:alert(1)", "data:text/html,<b>x</b>", "//evil.example/x"],
)
def test_only_http_links_are_rendered(field: str, url: str) -> None:
    links: dict[str, Any] = {"url_abs": "", "url_pdf": "", "url_code": "", field: url}
    paper = PaperFactory(arxiv_id=None, **links)
    text, html = parts(parsed(build_digest_message(content_for(make_digest([paper])))))
    assert "javascript" not in html.lower() and "javascript" not in text.lower()
    assert "data:" not in html and "evil.example" not in html
    assert not re.search(r">(Code|PDF|arXiv)</a>", html)


def test_a_link_labelled_arxiv_leads_to_arxiv() -> None:
    paper = PaperFactory(
        arxiv_id="2401.00001", url_abs="https://tracker.example/abs/2401.00001", url_pdf=""
    )
    _, html = parts(parsed(build_digest_message(content_for(make_digest([paper])))))
    assert "tracker.example" not in html
    assert has_link(html, "https://arxiv.org/abs/2401.00001", "arXiv")


def test_html_loads_nothing_remote_and_links_only_to_our_site_arxiv_and_code() -> None:
    _, html = parts(parsed(build_digest_message(content_for(twenty_paper_digest()))))
    lowered = html.lower()
    for banned in ("<img", "<script", "<link", "@import", "url(", "<iframe", "<object", "src="):
        assert banned not in lowered, banned
    hosts = {urlsplit(url).hostname for url in re.findall(r"https?://[^\s\"'<>)]+", html)}
    assert hosts == {"digest.example.org", "arxiv.org", "github.com"}


def test_css_is_inlined_and_the_media_queries_survive() -> None:
    _, html = parts(parsed(build_digest_message(content_for(make_digest()))))
    styles = re.findall(r"<style[^>]*>(.*?)</style>", html, re.DOTALL)
    assert len(styles) == 1
    assert "@media (prefers-color-scheme: dark)" in styles[0]
    assert "@media (max-width: 480px)" in styles[0]
    # Only the @media rules are left in the block; everything else moved into the elements.
    assert styles[0].strip().startswith("@media")
    assert re.search(r'<td class="paper" style="[^"]*padding: 16px 24px', html)
    assert re.search(r'<a class="title-link" href="[^"]+" style="[^"]*color: #0b5cad', html)
    assert 'name="color-scheme" content="light dark"' in html


def test_twenty_paper_digest_stays_under_gmail_clipping_and_the_size_limit(
    settings: Any,
) -> None:
    digest = twenty_paper_digest()
    built = build_digest_message(content_for(digest))
    raw = built.message().as_bytes(linesep="\r\n")
    message = email.message_from_bytes(raw, policy=default)
    _, html = parts(message)  # type: ignore[arg-type]
    html_bytes = len(html.encode())
    html_part = message.get_body(preferencelist=("html",))
    assert html_part is not None
    # Gmail clips at 102 KB; count the decoded HTML and the HTML part as transmitted.
    assert html_bytes < GMAIL_CLIP_BYTES
    assert len(html_part.get_payload()) < GMAIL_CLIP_BYTES
    assert len(raw) < settings.MAIL_MAX_BYTES
    assert html.count('class="paper"') == 20
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "digest-20.html").write_text(html)
    (ARTIFACTS / "digest-20.eml").write_bytes(raw)
    print(f"20-paper digest: HTML {html_bytes} bytes, message {len(raw)} bytes")


def test_too_large_digest_raises_digest_too_large(settings: Any) -> None:
    settings.MAIL_MAX_BYTES = 10_000
    with pytest.raises(DigestTooLarge) as raised:
        build_digest_message(content_for(twenty_paper_digest()))
    assert raised.value.size > raised.value.limit == 10_000
    assert "MAIL_MAX_BYTES" in str(raised.value)


# --- Subject and small helpers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "topics", "subject"),
    [
        (1, ["Mamba"], "1 new paper: Mamba · Mar 11"),
        (6, ["Mamba", "quantization"], "6 new papers: Mamba, quantization · Mar 11"),
        (6, [], "6 trending papers · Mar 11"),
        (1, [], "1 trending paper · Mar 11"),
        (3, ["a", "b", "c"], "3 new papers: a, b, c · Mar 11"),
        (3, ["a", "b", "c", "d", "e"], "3 new papers: a, b, c… · Mar 11"),
        (
            2,
            ["speculative decoding for large language models", "mixture of experts routing"],
            "2 new papers: speculative decoding for large language models… · Mar 11",
        ),
        (
            2,
            ["retrieval augmented generation with knowledge graphs and long context windows x"],
            "2 new papers: retrieval augmented generation with knowledge graphs and… · Mar 11",
        ),
    ],
    ids=["one", "several", "trending", "one-trending", "three", "many", "long", "one-too-long"],
)
def test_subject_says_what_is_inside(count: int, topics: list[str], subject: str) -> None:
    assert render_digest(content(count, topics)).subject == subject


def test_subject_uses_topic_labels_without_quotes_or_exclusions() -> None:
    digest = make_digest(interests='"mixture of experts", quantization -survey')
    assert render_digest(content_for(digest)).subject == (
        "1 new paper: mixture of experts, quantization · Mar 11"
    )


def test_subject_cannot_inject_headers() -> None:
    digest = make_digest(interests="Mamba\r\nBcc: victim@example.org")
    message = parsed(build_digest_message(content_for(digest)))
    assert "Bcc" not in message
    assert "\n" not in message["Subject"]


@pytest.mark.parametrize(
    ("period", "label"),
    [("2026-03-11", "Mar 11"), ("2026-12-01", "Dec 1"), ("2026-W11", "week of Mar 9"), ("x", "x")],
)
def test_period_label(period: str, label: str) -> None:
    assert period_label(period) == label


@pytest.mark.parametrize(
    ("abstract", "start"),
    [
        ("One. Two. Three.", "One. Two."),
        ("  Spaced\n out.\n\nNext one.  ", "Spaced out. Next one."),
        (
            "Scores rise from 3.5 to 4.2 points. Then more.",
            "Scores rise from 3.5 to 4.2 points. Then more.",
        ),
        ("A" * 10 + ". " + "Bb " * 200, "A" * 10 + "."),
        ("word " * 100, ("word " * 60).strip() + "…"),
        ("", ""),
    ],
    ids=["two-sentences", "whitespace", "decimals", "second-too-long", "no-sentence", "empty"],
)
def test_abstract_start_is_one_or_two_sentences(abstract: str, start: str) -> None:
    assert abstract_start(abstract) == start


def test_abstract_start_is_at_most_about_300_characters() -> None:
    long = "This is a very long first sentence " * 20 + "that ends. Short second."
    result = abstract_start(long)
    assert len(result) <= 301 and result.endswith("…")
    assert not result.endswith(" …")


# --- DKIM ------------------------------------------------------------------------------------


@pytest.fixture
def dkim_txt(tmp_path: Path, settings: Any) -> bytes:
    """Configure DKIM with a fresh key; returns the TXT record that publishes its public half."""
    path = tmp_path / "dkim.pem"
    settings.DKIM_DOMAIN = "example.org"
    settings.DKIM_SELECTOR = "digest2026"
    settings.DKIM_PRIVATE_KEY_PATH = str(path)
    return new_dkim_key(path)


def new_dkim_key(path: Path) -> bytes:
    """Write a fresh private key to ``path``; the TXT record that publishes its public half."""
    key = subprocess.run(["openssl", "genrsa", "2048"], capture_output=True, check=True).stdout
    public = subprocess.run(
        ["openssl", "rsa", "-pubout", "-outform", "DER"], input=key, capture_output=True, check=True
    ).stdout
    path.write_bytes(key)
    return b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def dns_for(txt: bytes) -> Any:
    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return txt if name == b"digest2026._domainkey.example.org." else None

    return lookup


def test_dkim_signature_verifies_on_the_bytes_django_sends(dkim_txt: bytes) -> None:
    message = build_digest_message(content_for(make_digest([PaperFactory(title=EVIL_TITLE)])))
    raw = message.message().as_bytes(linesep="\r\n")

    assert raw.startswith(b"DKIM-Signature: ")
    assert dkim.verify(raw, dnsfunc=dns_for(dkim_txt))
    header = email.message_from_bytes(raw, policy=default)["DKIM-Signature"]
    tags = dict(
        tag.strip().split("=", 1) for tag in "".join(header.split()).split(";") if tag.strip()
    )
    assert tags["a"] == "rsa-sha256"
    assert tags["c"] == "relaxed/relaxed"
    assert tags["d"] == "example.org" and tags["s"] == "digest2026"
    signed = set(tags["h"].lower().split(":"))
    assert signed >= {
        "from", "to", "subject", "date", "message-id", "list-unsubscribe",
        "list-unsubscribe-post", "mime-version", "content-type",
    }  # fmt: skip


def test_a_rotated_dkim_key_signs_the_next_message(dkim_txt: bytes, settings: Any) -> None:
    def signed() -> bytes:
        message = build_digest_message(content_for(make_digest()))
        return bytes(message.message().as_bytes(linesep="\r\n"))

    assert dkim.verify(signed(), dnsfunc=dns_for(dkim_txt))
    rotated = new_dkim_key(Path(settings.DKIM_PRIVATE_KEY_PATH))
    raw = signed()
    assert dkim.verify(raw, dnsfunc=dns_for(rotated))
    assert not dkim.verify(raw, dnsfunc=dns_for(dkim_txt))


def test_dkim_verification_fails_when_the_body_is_changed_after_signing(dkim_txt: bytes) -> None:
    digest = make_digest([PaperFactory(title="An honest title")])
    raw = build_digest_message(content_for(digest)).message().as_bytes(linesep="\r\n")
    assert dkim.verify(raw, dnsfunc=dns_for(dkim_txt))
    assert raw.count(b"An honest title") >= 2
    tampered = raw.replace(b"An honest title", b"A forged title!")
    assert not dkim.verify(tampered, dnsfunc=dns_for(dkim_txt))
    forged_header = raw.replace(
        b"Precedence: bulk", b"Precedence: bulk\r\nReply-To: x@evil.example", 1
    )
    assert dkim.verify(forged_header, dnsfunc=dns_for(dkim_txt))  # unsigned header: still valid
    forged_subject = re.sub(rb"\r\nSubject: ", b"\r\nSubject: FREE ", raw, count=1)
    assert not dkim.verify(forged_subject, dnsfunc=dns_for(dkim_txt))


def test_dkim_signature_verifies_after_a_real_smtp_hop(
    dkim_txt: bytes, smtp_server: Recorder
) -> None:
    papers = [realistic_paper(n) for n in range(3)] + [PaperFactory(title=EVIL_TITLE)]
    message = build_digest_message(content_for(make_digest(papers)))
    assert message.send() == 1
    smtp_server.wait_for(1)
    (received,) = smtp_server.raw

    assert dkim.verify(received, dnsfunc=dns_for(dkim_txt))
    parsed_back = email.message_from_bytes(received, policy=default)
    assert parsed_back["Message-ID"] == message.extra_headers["Message-ID"]
    text, html = parts(parsed_back)  # type: ignore[arg-type]
    assert EVIL_TITLE in text and "&lt;script&gt;" in html


def test_half_a_dkim_configuration_is_an_error(settings: Any) -> None:
    settings.DKIM_DOMAIN = "example.org"
    with pytest.raises(ImproperlyConfigured, match="DKIM_SELECTOR, DKIM_PRIVATE_KEY_PATH"):
        build_digest_message(content_for(make_digest()))


def test_an_unreadable_dkim_key_is_an_error(settings: Any, tmp_path: Path) -> None:
    settings.DKIM_DOMAIN, settings.DKIM_SELECTOR = "example.org", "s1"
    settings.DKIM_PRIVATE_KEY_PATH = str(tmp_path / "missing.pem")
    with pytest.raises(ImproperlyConfigured, match="cannot read"):
        build_digest_message(content_for(make_digest()))


# --- The "view in browser" page --------------------------------------------------------------


def test_archive_page_shows_the_digest_for_a_valid_token(client: Client) -> None:
    digest = make_digest([PaperFactory(title=EVIL_TITLE), PaperFactory(title="Second paper")])
    url = tokens.archive_url(digest)
    response = client.get(urlsplit(url).path)

    assert response.status_code == 200
    page = response.content.decode()
    assert "Second paper" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)" not in page
    assert "2 new papers: state space models, quantization" in page
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Robots-Tag"] == "noindex, nofollow"
    assert "no-store" in response.headers["Cache-Control"]


@pytest.mark.parametrize("how", ["tampered", "other-purpose", "garbage"])
def test_archive_page_refuses_a_bad_token(client: Client, how: str) -> None:
    digest = make_digest([PaperFactory(title="Secret paper")])
    token = tokens.make_archive_token(digest)
    if how == "tampered":
        token = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    elif how == "other-purpose":
        token = subscription_tokens.make_token(digest.subscriber, subscription_tokens.MANAGE)
    else:
        token = "not-a-token"
    response = client.get(f"/digests/{token}/")

    assert response.status_code == 400
    page = response.content.decode()
    assert "This link does not work" in page
    assert "Secret paper" not in page
    assert "Content-Security-Policy" in response.headers


def test_archive_token_names_its_digest_and_no_other() -> None:
    first, second = make_digest(), make_digest()
    assert tokens.read_archive_token(tokens.make_archive_token(first)) == first
    forged = tokens.signing.dumps(
        {"d": second.pk, "f": tokens.fingerprint(first)}, salt="digest.archive"
    )
    with pytest.raises(tokens.InvalidArchiveToken):
        tokens.read_archive_token(forged)


# --- In a real browser -----------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)  # Playwright's event loop gets its own DB connection
def test_html_part_is_readable_at_320_pixels_in_light_and_dark(browser_page: Any) -> None:
    papers = [realistic_paper(n) for n in range(3)] + [PaperFactory(title=EVIL_TITLE, upvotes=None)]
    _, html = parts(parsed(build_digest_message(content_for(make_digest(papers)))))
    page = browser_page
    page.set_viewport_size({"width": 320, "height": 800})
    page.route("**/*", lambda route: route.abort())  # a mail must not load anything
    page.set_content(html)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.screenshot(path=str(ARTIFACTS / f"digest-320-{scheme}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= 320
        background = page.evaluate(
            "getComputedStyle(document.querySelector('.card')).backgroundColor"
        )
        assert background == ("rgb(255, 255, 255)" if scheme == "light" else "rgb(22, 27, 34)")
    assert page.evaluate("window.__alerted === undefined")
    assert page.locator(".paper").count() == 4


def test_subscription_mails_are_signed_too(dkim_txt: bytes, mailbox: list[Any]) -> None:
    from subscriptions.models import Subscriber
    from subscriptions.services import send_confirmation

    subscriber = Subscriber.objects.create(email="new@example.org", interests="mamba")
    assert send_confirmation(subscriber) == "confirmation sent"
    raw = mailbox[0].message().as_bytes(linesep="\r\n")
    assert raw.startswith(b"DKIM-Signature: ")
    assert dkim.verify(raw, dnsfunc=dns_for(dkim_txt))
