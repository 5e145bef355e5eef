"""The signed "view in browser" link of a digest.

Its own salt keeps it apart from the subscription links. The token names the digest and a
fingerprint of it, so a link stops working when the digest is deleted and its id is later reused.
It does not expire: it is a copy of a mail the subscriber already has.
"""

from __future__ import annotations

import hashlib

from django.core import signing

from digest.links import token_path
from digest.models import Digest
from subscriptions.services import absolute

SALT = "digest.archive"


class InvalidArchiveToken(Exception):
    """The token was tampered with, made for something else, or its digest is gone."""


class ArchiveGone(InvalidArchiveToken):
    """A genuine link whose digest no longer exists (pruned after DIGEST_RETENTION_DAYS, or
    deleted with its subscriber's data)."""


def fingerprint(digest: Digest) -> str:
    """Short, stable and unique to this digest row even across a database that was reset."""
    created = int(digest.created_at.timestamp()) if digest.created_at else 0
    raw = f"{digest.pk}|{digest.subscriber_id}|{digest.period}|{created}"
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


def make_archive_token(digest: Digest) -> str:
    return signing.dumps({"d": digest.pk, "f": fingerprint(digest)}, salt=SALT, compress=False)


def read_archive_token(token: str) -> Digest:
    """The digest a token names; raises ``ArchiveGone`` for a real link whose digest was
    deleted, ``InvalidArchiveToken`` for anything else."""
    try:
        payload = signing.loads(token, salt=SALT)
    except signing.BadSignature:
        raise InvalidArchiveToken from None
    if not isinstance(payload, dict) or not isinstance(payload.get("d"), int):
        raise InvalidArchiveToken
    digest = Digest.objects.select_related("subscriber").filter(pk=payload["d"]).first()
    if digest is None or fingerprint(digest) != payload.get("f"):
        # The signature is ours, so the link was real: its digest has been deleted.
        raise ArchiveGone

    return digest


def archive_url(digest: Digest) -> str:
    """The absolute, signed "view in browser" link."""
    return absolute(token_path("digest_archive", make_archive_token(digest)))
