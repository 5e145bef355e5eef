"""Signed links that stand in for accounts: confirm, manage and unsubscribe.

Each purpose has its own salt, so a token made for one can never be used for another. A token
names the subscriber and a fingerprint of the address, so it stops working when the row is
deleted and the id is later reused for someone else.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core import signing

from subscriptions.models import Subscriber

CONFIRM = "subscriptions.confirm"
MANAGE = "subscriptions.manage"
UNSUBSCRIBE = "subscriptions.unsubscribe"


@dataclass(frozen=True)
class Expired(Exception):
    """The signature is right but the link is older than its purpose allows."""

    purpose: str


class Invalid(Exception):
    """The token was tampered with, is for another purpose, or its subscriber is gone."""


class Gone(Invalid):
    """A genuine token whose subscriber was deleted (or whose address changed since)."""


def max_age(purpose: str) -> timedelta | None:
    """Confirmation links expire with the pending signup; manage links after a while (a fresh
    one comes with every mail); unsubscribe links never, as mail clients keep them for long."""
    if purpose == CONFIRM:
        return timedelta(days=settings.PENDING_SIGNUP_DAYS)
    if purpose == MANAGE:
        return timedelta(days=settings.MANAGE_LINK_DAYS)
    return None


def _fingerprint(email: str) -> str:
    return hashlib.sha256(email.lower().encode()).hexdigest()[:12]


def make_token(subscriber: Subscriber, purpose: str) -> str:
    payload = {"s": subscriber.pk, "e": _fingerprint(subscriber.email)}
    return signing.dumps(payload, salt=purpose, compress=False)


def read_token(token: str, purpose: str) -> Subscriber:
    """The subscriber a token names; raises ``Expired`` or ``Invalid``."""
    age = max_age(purpose)
    try:
        payload = signing.loads(token, salt=purpose, max_age=age)
    except signing.SignatureExpired:
        raise Expired(purpose) from None
    except signing.BadSignature:
        raise Invalid from None
    if not isinstance(payload, dict):
        raise Invalid
    pk = payload.get("s")
    if not isinstance(pk, int):
        raise Invalid
    subscriber = Subscriber.objects.filter(pk=pk).first()
    if subscriber is None or _fingerprint(subscriber.email) != payload.get("e"):
        raise Gone
    return subscriber
