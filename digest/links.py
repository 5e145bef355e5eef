"""Paths of the pages a signed token opens (manage, unsubscribe, confirm, archive).

Every digest carries three such links, and ``reverse()`` costs about a tenth of a millisecond
each: a good share of what sending adds to rendering. The path around the token is the same for
every token, so it is reversed once (per URL name, script prefix and URL configuration) with a
placeholder, and a token is put in its place. Only tokens that ``reverse()`` would neither quote
nor refuse take that way (``signing`` makes nothing else); any other token goes through
``reverse()`` itself, so the result is always the path ``reverse()`` gives.
"""

from __future__ import annotations

import re
from functools import lru_cache

from django.conf import settings
from django.urls import get_script_prefix, get_urlconf, reverse

# Unreserved characters plus ":" (URL-safe base64 and signing's separator): reverse() leaves
# them as they are, and a <str:...> segment takes them.
_PLAIN_TOKEN = re.compile(r"[A-Za-z0-9._~:-]+")
_PLACEHOLDER = "0token0"


@lru_cache(maxsize=64)
def _around(name: str, prefix: str, urlconf: str | None) -> tuple[str, str] | None:
    """The path before and after the token, or None when the placeholder is not found once
    (a URL pattern that constrains or repeats the token)."""
    path = reverse(name, args=[_PLACEHOLDER], urlconf=urlconf)
    if path.count(_PLACEHOLDER) != 1:
        return None
    before, _, after = path.partition(_PLACEHOLDER)
    return before, after


def token_path(name: str, token: str) -> str:
    """``reverse(name, args=[token])``, for URL patterns whose one argument is a token."""
    if _PLAIN_TOKEN.fullmatch(token):
        urlconf = get_urlconf() or settings.ROOT_URLCONF
        around = _around(name, get_script_prefix(), urlconf)
        if around is not None:
            return around[0] + token + around[1]
    return reverse(name, args=[token])
