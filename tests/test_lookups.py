"""``__any``: id lists as one array parameter on PostgreSQL, ``__in`` elsewhere; the same rows
either way (the suite runs on both)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from digest.models import Digest, DigestItem
from tests.factories import DigestFactory, DigestItemFactory

pytestmark = pytest.mark.django_db


def test_any_finds_what_in_finds_for_keys_and_foreign_keys() -> None:
    digests = DigestFactory.create_batch(6)
    for digest in digests[:4]:
        DigestItemFactory(digest=digest)
    chosen = [d.pk for d in digests[1:5]]
    assert set(Digest.objects.filter(pk__any=chosen)) == set(Digest.objects.filter(pk__in=chosen))
    owners = [d.subscriber_id for d in digests[:3]]
    assert set(Digest.objects.filter(subscriber_id__any=owners).exclude(pk__any=chosen)) == {
        digests[0]
    }
    assert set(DigestItem.objects.filter(digest__any=chosen).values_list("digest", flat=True)) == {
        d.pk for d in digests[1:4]
    }


def test_any_of_nothing_matches_nothing_and_excluding_nothing_keeps_everything() -> None:
    digests = DigestFactory.create_batch(3)
    assert not Digest.objects.filter(pk__any=[]).exists()
    assert Digest.objects.exclude(pk__any=[]).count() == 3
    # None in the list is left out, as __in leaves it out (an unsaved digest's subscriber).
    assert not Digest.objects.filter(subscriber_id__any=[None]).exists()
    assert list(Digest.objects.filter(pk__any=[None, digests[0].pk])) == [digests[0]]
    assert Digest.objects.exclude(pk__any=[None]).count() == 3


def test_a_chunk_sized_list_is_one_parameter_on_postgresql() -> None:
    digests = DigestFactory.create_batch(3)
    ids = [d.pk for d in digests] + list(range(10**9, 10**9 + 500))
    with CaptureQueriesContext(connection) as queries:
        found = list(Digest.objects.filter(pk__any=ids).values_list("pk", flat=True))
    assert sorted(found) == sorted(d.pk for d in digests)
    (query,) = queries.captured_queries
    if connection.vendor == "postgresql":
        assert "= ANY(" in query["sql"] and " IN (" not in query["sql"]
    else:
        assert " IN (" in query["sql"]
