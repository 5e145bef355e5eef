"""Token links are built from a path reversed once; they must be exactly what reverse() gives."""

from __future__ import annotations

import pytest
from django.core import signing
from django.http import HttpRequest, HttpResponse
from django.test import override_settings
from django.urls import clear_script_prefix, path, reverse, set_script_prefix, set_urlconf

from digest.links import token_path

NAMES = ["subscriptions:manage", "subscriptions:unsubscribe", "subscriptions:confirm"]
TOKENS = [
    signing.dumps({"s": 7, "e": "0a1b2c"}, salt="x", compress=False),
    signing.dumps({"d": 12, "f": "ffee"}, salt="y", compress=True),  # starts with "."
    "abc",
    "a.b~c_d-e:f",
    ".",
    "..",
    "with space",
    "ünïcode",
    "per%cent",
    "q?uery#frag",
]


@pytest.mark.parametrize("token", TOKENS)
@pytest.mark.parametrize("name", [*NAMES, "digest_archive"])
def test_token_path_is_what_reverse_gives(name: str, token: str) -> None:
    assert token_path(name, token) == reverse(name, args=[token])


@pytest.mark.parametrize("prefix", ["/digest/", "/a b/", "//double/"])
def test_token_path_follows_the_script_prefix(prefix: str) -> None:
    token = TOKENS[0]
    set_script_prefix(prefix)
    try:
        assert token_path("subscriptions:manage", token) == reverse(
            "subscriptions:manage", args=[token]
        )
        assert token_path("subscriptions:manage", token).startswith(reverse("home"))
    finally:
        clear_script_prefix()
    assert token_path("subscriptions:manage", token) == f"/manage/{token}/"


def _other(request: HttpRequest, token: str) -> HttpResponse:
    return HttpResponse()


# This module is also the URL configuration swapped in below.
urlpatterns = [path("m/<str:token>/", _other, name="digest_archive")]


def test_token_path_follows_the_url_configuration() -> None:
    token = TOKENS[0]
    assert token_path("digest_archive", token) == f"/digests/{token}/"
    set_urlconf(__name__)
    try:
        assert token_path("digest_archive", token) == f"/m/{token}/"
    finally:
        set_urlconf(None)
    assert token_path("digest_archive", token) == f"/digests/{token}/"
    with override_settings(ROOT_URLCONF=__name__):
        assert token_path("digest_archive", token) == f"/m/{token}/"
    assert token_path("digest_archive", token) == f"/digests/{token}/"
