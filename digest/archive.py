"""The "view in browser" page of a digest, reached by a signed link."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from digest.delivery.message import content_for, template_context
from digest.delivery.tokens import (
    ArchiveGone,
    InvalidArchiveToken,
    archive_url,
    read_archive_token,
)

__all__ = ["archive_url", "digest_archive"]


@require_safe
def digest_archive(request: HttpRequest, token: str) -> HttpResponse:
    try:
        digest = read_archive_token(token)
    except ArchiveGone:
        context = {"gone": True, "retention_days": settings.DIGEST_RETENTION_DAYS}
        response = render(request, "digest_archive.html", context, status=410)
    except InvalidArchiveToken:
        response = render(request, "digest_archive.html", {"invalid": True}, status=400)
    else:
        response = render(request, "digest_archive.html", template_context(content_for(digest)))
    # A personal page behind a secret link: keep it out of shared caches and search engines.
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response
