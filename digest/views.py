"""Public pages: the latest listing, older listings, and one paper."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from digest import listings
from digest.models import Paper
from subscriptions.forms import SubscribeForm


def home(request: HttpRequest) -> HttpResponse:
    day = listings.latest_listing_date()
    if day is None:
        return render(request, "home.html", {"day": None, "papers": [], "form": SubscribeForm()})
    return _render_listing(request, day, list(listings.papers_for(day)))


def listing(request: HttpRequest, day: str) -> HttpResponse:
    when = listings.parse_day(day)
    if when is None:
        raise Http404("Not a date (expected YYYY-MM-DD).")
    papers = list(listings.papers_for(when))
    if not papers:
        raise Http404("No papers were listed on that day.")
    return _render_listing(request, when, papers)


def paper_detail(request: HttpRequest, pk: int) -> HttpResponse:
    paper = get_object_or_404(Paper, pk=pk)
    return render(request, "paper_detail.html", {"paper": paper, "form": SubscribeForm()})


def _render_listing(request: HttpRequest, day: date, papers: list[Paper]) -> HttpResponse:
    context: dict[str, Any] = {
        "day": day,
        "papers": papers,
        "nav": listings.neighbours(day),
        "form": SubscribeForm(),
    }
    return render(request, "home.html", context)
