"""The public pages: latest listing, older listings, one paper, and the signup box on them."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date

import pytest
from bs4 import BeautifulSoup
from django.contrib.staticfiles import finders
from django.db import connection
from django.template.loader import render_to_string
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from digest.models import Paper
from digest.templatetags.paper_tags import excerpt, http_url, short_authors
from subscriptions.forms import SubscribeForm
from tests.factories import PaperFactory

pytestmark = pytest.mark.django_db

LATEST = date(2024, 3, 11)
OLDER = date(2024, 3, 8)
OLDEST = date(2024, 3, 1)
SCRIPT = "<script>alert(1)</script>"
ATTRIBUTE_BREAKOUT = '"><img src=x onerror=alert(1)>'
LONG_ABSTRACT = " ".join(f"word{n}" for n in range(120)) + " THE-VERY-END."


def get_html(client: Client, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status
    return response.content.decode()


def soup(html: str) -> BeautifulSoup:
    return BeautifulSoup(html, "html.parser")


def listing_url(day: date) -> str:
    return reverse("listing", args=[day.isoformat()])


def card_titles(html: str) -> list[str]:
    return [h.get_text(strip=True) for h in soup(html).select(".paper-card .paper-title")]


@pytest.fixture
def three_days() -> dict[date, list[Paper]]:
    """Papers on three listing days with gaps between them (no papers on the days in between)."""
    return {
        LATEST: [
            PaperFactory(title="Middle", upvotes=20, listing_date=LATEST),
            PaperFactory(title="Unvoted", upvotes=None, listing_date=LATEST),
            PaperFactory(title="Top", upvotes=50, listing_date=LATEST),
            PaperFactory(title="Bottom", upvotes=5, listing_date=LATEST),
            PaperFactory(title="Also twenty", upvotes=20, listing_date=LATEST),
        ],
        OLDER: [PaperFactory(title="Older paper", upvotes=99, listing_date=OLDER)],
        OLDEST: [PaperFactory(title="Oldest paper", upvotes=1, listing_date=OLDEST)],
    }


# --- Listings ---------------------------------------------------------------------------------


def test_home_shows_latest_listing_by_upvotes_then_title(
    client: Client, three_days: dict[date, list[Paper]]
) -> None:
    html = get_html(client, "/")

    assert card_titles(html) == ["Top", "Also twenty", "Middle", "Bottom", "Unvoted"]
    assert "Older paper" not in html
    assert "Oldest paper" not in html
    assert '<time datetime="2024-03-11">Monday, 11 March 2024</time>' in html


def test_home_links_to_previous_listing_and_has_no_next(
    client: Client, three_days: dict[date, list[Paper]]
) -> None:
    page = soup(get_html(client, "/"))

    assert [a["href"] for a in page.select("a[rel=prev]")] == [listing_url(OLDER)] * 2
    assert page.select("a[rel=next]") == []


def test_older_listing_shows_its_papers_and_both_neighbours_skipping_empty_days(
    client: Client, three_days: dict[date, list[Paper]]
) -> None:
    html = get_html(client, listing_url(OLDER))
    page = soup(html)

    assert card_titles(html) == ["Older paper"]
    assert {a["href"] for a in page.select("a[rel=prev]")} == {listing_url(OLDEST)}
    assert {a["href"] for a in page.select("a[rel=next]")} == {listing_url(LATEST)}


def test_oldest_listing_has_no_previous_link(
    client: Client, three_days: dict[date, list[Paper]]
) -> None:
    page = soup(get_html(client, listing_url(OLDEST)))

    assert page.select("a[rel=prev]") == []
    assert {a["href"] for a in page.select("a[rel=next]")} == {listing_url(OLDER)}


def test_papers_without_listing_date_stay_off_listings(client: Client) -> None:
    PaperFactory(title="Listed", listing_date=LATEST)
    PaperFactory(title="Undated", listing_date=None)

    assert card_titles(get_html(client, "/")) == ["Listed"]


@pytest.mark.parametrize(
    "day",
    ["2024-03-12", "2024-03-09", "2024-02-30", "2024-13-01", "yesterday", "20240311", "2024-3-11"],
)
def test_unknown_or_malformed_listing_date_is_404(
    client: Client, three_days: dict[date, list[Paper]], day: str
) -> None:
    assert client.get(f"/listing/{day}/").status_code == 404


def test_empty_site_shows_friendly_empty_state_and_the_form(client: Client) -> None:
    page = soup(get_html(client, "/"))

    assert page.select_one("#papers-title").get_text(strip=True) == "No papers yet"
    assert page.select(".paper-card") == []
    assert page.select_one("form.subscribe-form input[name=email]") is not None
    assert page.select(".day-nav") == []


def test_card_shows_link_excerpt_short_authors_code_and_upvotes(client: Client) -> None:
    paper = PaperFactory(
        abstract=LONG_ABSTRACT,
        authors=["Ann", "Bob", "Cy", "Dee", "Eve"],
        url_code="https://github.com/example/repo",
        upvotes=42,
    )
    card = soup(get_html(client, "/")).select_one(".paper-card")

    assert card.select_one(".paper-title a")["href"] == reverse("paper", args=[paper.pk])
    assert card.select_one(".authors").get_text() == "Ann, Bob, Cy et al."
    shown = card.select_one(".abstract").get_text()
    assert shown.endswith("…") and len(shown) <= 301 and "THE-VERY-END" not in shown
    code = card.select_one(".paper-links a")
    assert code["href"] == "https://github.com/example/repo"
    assert code["rel"] == ["noopener", "noreferrer"]
    assert card.select_one(".votes-count").get_text() == "42"


def test_card_leaves_out_unknown_upvotes_and_code(client: Client) -> None:
    PaperFactory(upvotes=None, url_code="")
    card = soup(get_html(client, "/")).select_one(".paper-card")

    assert card.select(".votes") == []
    assert card.select(".paper-links") == []


# --- Paper page -------------------------------------------------------------------------------


def test_paper_page_shows_full_abstract_all_authors_links_and_facts(client: Client) -> None:
    authors = ["Ann", "Bob", "Cy", "Dee", "Eve"]
    links = {
        "url_page": "https://huggingface.co/papers/2403.00001",
        "url_abs": "https://arxiv.org/abs/2403.00001",
        "url_pdf": "https://arxiv.org/pdf/2403.00001",
        "url_code": "https://github.com/example/repo",
        "url_project": "http://example.org/project",
    }
    paper = PaperFactory(
        abstract=LONG_ABSTRACT, authors=authors, upvotes=7, arxiv_id="2403.00001", **links
    )
    html = get_html(client, reverse("paper", args=[paper.pk]))
    page = soup(html)

    assert page.select_one("h1").get_text() == paper.title
    assert LONG_ABSTRACT in page.select_one(".abstract-full").get_text()
    assert page.select_one(".authors-full").get_text() == "Ann, Bob, Cy, Dee, Eve"
    anchors = page.select(".link-list a")
    assert [a["href"] for a in anchors] == list(links.values())
    assert all(a["rel"] == ["noopener", "noreferrer"] for a in anchors)
    facts = page.select_one(".facts").get_text(" ", strip=True)
    assert "Upvotes 7" in facts and "11 March 2024" in facts and "2403.00001" in facts
    assert page.select_one(f'a[href="{listing_url(LATEST)}"]') is not None
    assert page.select_one("form.subscribe-form") is not None


def test_paper_page_counts_authors_the_source_did_not_name(client: Client) -> None:
    paper = PaperFactory(authors=["Ann", "Bob"], author_count=12)
    html = get_html(client, reverse("paper", args=[paper.pk]))

    assert soup(html).select_one(".authors-full").get_text() == "Ann, Bob and 10 more"


def test_unknown_paper_is_404(client: Client) -> None:
    assert client.get(reverse("paper", args=[999_999])).status_code == 404


# --- Untrusted paper data ---------------------------------------------------------------------


@pytest.fixture
def hostile_paper() -> Paper:
    return PaperFactory(
        title=f"Title {SCRIPT} {ATTRIBUTE_BREAKOUT}",
        abstract=f"Abstract {SCRIPT} {ATTRIBUTE_BREAKOUT}",
        authors=[f"Author {SCRIPT}", f"Mallory {ATTRIBUTE_BREAKOUT}"],
        url_code="javascript:alert(1)",
        url_project=" JavaScript:alert(1)",
        url_page="data:text/html,<script>alert(1)</script>",
    )


PAGES: dict[str, Callable[[Paper], str]] = {
    "home": lambda paper: "/",
    "listing": lambda paper: listing_url(LATEST),
    "detail": lambda paper: reverse("paper", args=[paper.pk]),
}


@pytest.mark.parametrize("page", PAGES)
def test_paper_text_is_escaped(client: Client, hostile_paper: Paper, page: str) -> None:
    html = get_html(client, PAGES[page](hostile_paper))

    assert SCRIPT not in html
    assert ATTRIBUTE_BREAKOUT not in html
    assert "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in html


@pytest.mark.parametrize("page", PAGES)
def test_non_http_links_are_not_rendered(client: Client, hostile_paper: Paper, page: str) -> None:
    html = get_html(client, PAGES[page](hostile_paper))
    hrefs = [a["href"] for a in soup(html).select("a[href]")]

    assert not [h for h in hrefs if not h.startswith(("/", "#", "http://", "https://"))]
    assert "javascript:" not in html.lower()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/a/b", "https://github.com/a/b"),
        ("http://example.org/x?y=1", "http://example.org/x?y=1"),
        ("HTTPS://EXAMPLE.ORG/", "HTTPS://EXAMPLE.ORG/"),
        ("javascript:alert(1)", ""),
        (" javascript:alert(1)", ""),
        ("data:text/html,hi", ""),
        ("//evil.example/x", ""),
        ("https://", ""),
        ("http://[::1", ""),
        ("", ""),
        (None, ""),
    ],
)
def test_http_url_keeps_only_http_links(url: str | None, expected: str) -> None:
    assert http_url(url) == expected


@pytest.mark.parametrize(
    ("authors", "count", "expected"),
    [
        ([], None, ""),
        (["A"], 1, "A"),
        (["A", "B", "C"], 3, "A, B, C"),
        (["A", "B", "C", "D"], 4, "A, B, C et al."),
        (["A", "B"], 9, "A, B et al."),
        (["A", " ", "B"], None, "A, B"),
    ],
)
def test_short_authors(authors: list[str], count: int | None, expected: str) -> None:
    assert short_authors(authors, count) == expected


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short text", 300, "short text"),
        ("alpha beta gamma", 12, "alpha beta…"),
        ("alpha beta, gamma", 12, "alpha beta…"),
        ("abcdefghijklmnop", 5, "abcde…"),
        ("  spaced\n\nout  ", 300, "spaced out"),
        (None, 300, ""),
    ],
)
def test_excerpt_cuts_on_a_word_boundary(text: str | None, limit: int, expected: str) -> None:
    assert excerpt(text, limit) == expected


# --- The page itself: scripts, form, accessibility --------------------------------------------

INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc\s*=)[^>]*>", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"<[a-zA-Z][^>]*\son\w+\s*=", re.IGNORECASE)


@pytest.mark.parametrize("page", PAGES)
def test_pages_have_no_inline_script_or_event_handlers(
    client: Client, hostile_paper: Paper, page: str
) -> None:
    html = get_html(client, PAGES[page](hostile_paper))

    assert INLINE_SCRIPT.findall(html) == []
    assert EVENT_HANDLER.findall(html) == []
    scripts = soup(html).select("script")
    assert [s["src"] for s in scripts] == ["/static/js/timezone.js"]
    assert all(s.has_attr("defer") for s in scripts)


def test_base_layout_has_landmarks_skip_link_and_manage_link(client: Client) -> None:
    page = soup(get_html(client, "/"))

    assert page.html["lang"] == "en"
    assert page.select_one('meta[name="viewport"]') is not None
    assert page.select_one("a.skip-link")["href"] == "#main"
    assert page.select_one("main#main") is not None
    assert page.select_one("header a.site-name").get_text() == "Paper Digest"
    assert page.select_one("header a.site-name")["href"] == reverse("home")
    manage = page.select_one("footer a")
    assert manage["href"] == reverse("subscriptions:request_link")
    assert manage.get_text() == "Manage your subscription"
    assert page.select_one('link[rel="stylesheet"]')["href"] == "/static/css/site.css"


def test_static_assets_exist() -> None:
    assert finders.find("css/site.css")
    assert finders.find("js/timezone.js")


def test_home_has_subscribe_form_with_a_label_for_every_visible_field(client: Client) -> None:
    PaperFactory()
    page = soup(get_html(client, "/"))
    box = page.select_one("#subscribe")

    assert box.select_one("h2").get_text() == "Get trending papers in your email inbox"
    form = box.select_one("form")
    assert form["action"] == reverse("subscriptions:subscribe")
    assert form["method"] == "post"
    assert form.select_one("input[name=csrfmiddlewaretoken]") is not None
    controls = [
        c
        for c in form.select("input, select, textarea")
        if c.get("type") != "hidden" and not c.find_parent(class_="hp")
    ]
    assert [c["name"] for c in controls] == [
        "email",
        "interests",
        "frequency",
        "weekday",
        "delivery_hour",
        "timezone",
        "max_papers",
    ]
    for control in controls:
        assert form.select_one(f'label[for="{control["id"]}"]') is not None, control["name"]
    assert [c["name"] for c in form.select("details.options select, details.options input")] == [
        "frequency",
        "weekday",
        "delivery_hour",
        "timezone",
        "max_papers",
    ]
    assert form.select_one("details.options summary").get_text() == "Schedule and options"


def test_help_text_is_tied_to_its_field(client: Client) -> None:
    page = soup(get_html(client, "/"))
    interests = page.select_one("#id_interests")

    help_id = interests["aria-describedby"]
    assert "Comma-separated topics" in page.select_one(f"#{help_id}").get_text()


def test_honeypot_is_hidden_by_class_and_from_assistive_tech(client: Client) -> None:
    page = soup(get_html(client, "/"))
    trap = page.select_one("input[name=website]")
    wrapper = trap.find_parent(class_="hp")

    assert wrapper is not None and wrapper["aria-hidden"] == "true"
    assert "style" not in wrapper.attrs
    assert trap["tabindex"] == "-1"


def test_timezone_select_offers_iana_names_with_utc_preselected(client: Client) -> None:
    page = soup(get_html(client, "/"))
    select = page.select_one("select#id_timezone")
    values = [o["value"] for o in select.select("option")]

    assert {"Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC"} <= set(values)
    assert select.select_one("option[selected]")["value"] == "UTC"
    assert select.find_parent("form").has_attr("data-guess-timezone")


def test_subscribe_box_renders_a_bound_form_with_errors() -> None:
    form = SubscribeForm(
        data={
            "email": "not-an-address",
            "frequency": "hourly",
            "timezone": "Mars/Base",
            "delivery_hour": "8",
            "weekday": "0",
            "max_papers": "10",
        }
    )
    assert not form.is_valid()
    request = RequestFactory().post("/subscribe/")
    page = soup(render_to_string("includes/subscribe_box.html", {"form": form}, request=request))

    summary = page.select_one(".error-summary")
    assert summary["role"] == "alert"
    assert {a["href"] for a in summary.select("a")} == {
        "#id_email",
        "#id_frequency",
        "#id_timezone",
    }
    email = page.select_one("#id_email")
    assert email["aria-invalid"] == "true"
    assert "id_email_error" in email["aria-describedby"].split()
    assert page.select_one("#id_email_error").get_text(strip=True)
    assert email["value"] == "not-an-address"
    assert page.select_one("details.options").has_attr("open")
    # A re-rendered form keeps the visitor's choices; the script must not guess over them.
    assert not page.select_one("form").has_attr("data-guess-timezone")


# --- Efficiency -------------------------------------------------------------------------------


def home_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/").status_code == 200
    return len(queries)


def test_home_page_query_count_does_not_grow_with_papers(
    client: Client, django_assert_max_num_queries: Callable[..., object]
) -> None:
    PaperFactory(listing_date=OLDER)
    PaperFactory.create_batch(5, url_code="https://github.com/a/b")
    few = home_queries(client)
    PaperFactory.create_batch(45, url_code="https://github.com/a/b")

    with django_assert_max_num_queries(few):  # type: ignore[operator]
        html = get_html(client, "/")
    assert len(card_titles(html)) == 50
    assert few <= 4
