"""What happens to a subscriber: signup, confirmation, preferences, pause, unsubscribe, delete.

Views and tasks call these functions; the rules live here. The web request never looks an
address up: ``process_signup`` and ``process_link_request`` run in a task, so the response
(and its timing) is the same whether the address is new, pending, confirmed or unsubscribed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.crypto import salted_hmac

from digest import emails
from digest.links import token_path
from digest.matching import semantic
from subscriptions import tokens
from subscriptions.models import PREFERENCE_FIELDS, Subscriber, SuppressedAddress

log = logging.getLogger(__name__)


def absolute(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def confirm_url(subscriber: Subscriber) -> str:
    token = tokens.make_token(subscriber, tokens.CONFIRM)
    return absolute(token_path("subscriptions:confirm", token))


def manage_url(subscriber: Subscriber) -> str:
    token = tokens.make_token(subscriber, tokens.MANAGE)
    return absolute(token_path("subscriptions:manage", token))


def unsubscribe_url(subscriber: Subscriber) -> str:
    token = tokens.make_token(subscriber, tokens.UNSUBSCRIBE)
    return absolute(token_path("subscriptions:unsubscribe", token))


def find(email: str) -> Subscriber | None:
    return Subscriber.objects.filter(email__iexact=email).first()


def _claim_mail_slot(subscriber: Subscriber) -> bool:
    """At most one confirmation-type mail per address per interval, decided atomically so two
    concurrent signups cannot both mail (the form must not become a mail bomb)."""
    now = timezone.now()
    cutoff = now - timedelta(minutes=settings.CONFIRMATION_INTERVAL_MINUTES)
    claimed = Subscriber.objects.filter(
        Q(confirmation_sent_at__isnull=True) | Q(confirmation_sent_at__lt=cutoff),
        pk=subscriber.pk,
    ).update(confirmation_sent_at=now)
    return claimed == 1


@contextmanager
def _slot_released_on_failure(subscriber: Subscriber) -> Iterator[None]:
    """If the mail could not be handed over, give the slot back so the task's retry can send."""
    try:
        yield
    except Exception:
        Subscriber.objects.filter(pk=subscriber.pk).update(
            confirmation_sent_at=subscriber.confirmation_sent_at
        )
        raise


def process_signup(email: str, preferences: dict[str, Any], source: str = "web") -> str:
    """Create or refresh a pending signup and mail its confirmation; returns what was done."""
    prefs = {k: v for k, v in preferences.items() if k in PREFERENCE_FIELDS}
    with transaction.atomic():
        subscriber = find(email)
        if subscriber is None:
            subscriber = Subscriber.objects.create(email=email, source=source, **prefs)
        elif subscriber.status in (Subscriber.Status.CONFIRMED, Subscriber.Status.PAUSED):
            # Someone (perhaps not the owner) signed this address up again: do not change
            # anything, just remind the owner where their settings are.
            return _send_reminder(subscriber)
        else:
            # Pending or unsubscribed: this signup's choices win, and consent is asked again.
            for name, value in prefs.items():
                setattr(subscriber, name, value)
            subscriber.status = Subscriber.Status.PENDING
            subscriber.save()
    _embed_interests_later(subscriber.interests)
    return send_confirmation(subscriber)


def send_confirmation(subscriber: Subscriber) -> str:
    if subscriber.status != Subscriber.Status.PENDING:
        return "not pending"
    if not _claim_mail_slot(subscriber):
        return "throttled"
    with _slot_released_on_failure(subscriber):
        emails.send(
            subscriber.email,
            "confirm",
            {
                "confirm_url": confirm_url(subscriber),
                "valid_days": settings.PENDING_SIGNUP_DAYS,
                # Nothing typed into the form is repeated: anyone can make this mail go to
                # any address, and it must not carry a stranger's text (the settings page,
                # after confirming, shows the interests).
            },
        )
    Subscriber.objects.filter(pk=subscriber.pk).update(
        confirmations_sent=subscriber.confirmations_sent + 1
    )
    return "confirmation sent"


def _send_reminder(subscriber: Subscriber) -> str:
    if not _claim_mail_slot(subscriber):
        return "throttled"
    with _slot_released_on_failure(subscriber):
        emails.send(
            subscriber.email,
            "manage_link",
            {
                "manage_url": manage_url(subscriber),
                "unsubscribe_url": unsubscribe_url(subscriber),
                "valid_days": settings.MANAGE_LINK_DAYS,
                "status": subscriber.get_status_display(),
            },
            headers=emails.list_unsubscribe_headers(
                unsubscribe_url(subscriber), settings.LIST_UNSUBSCRIBE_MAILTO
            ),
        )
    return "manage link sent"


def process_link_request(email: str) -> str:
    """ "Send me my link": the manage link to a subscriber, a new confirmation to a pending
    signup, nothing to an unknown address (and the page says the same in every case)."""
    subscriber = find(email)
    if subscriber is None:
        return "unknown"
    if subscriber.status == Subscriber.Status.PENDING:
        return send_confirmation(subscriber)
    return _send_reminder(subscriber)


def confirm(subscriber: Subscriber) -> bool:
    """Pending → confirmed. Idempotent; an unsubscribed address is not revived by an old link."""
    now = timezone.now()
    changed = Subscriber.objects.filter(pk=subscriber.pk, status=Subscriber.Status.PENDING).update(
        # A person who had left and signed up again is subscribed now: no "left" date stays.
        status=Subscriber.Status.CONFIRMED,
        confirmed_at=now,
        unsubscribed_at=None,
        updated_at=now,
    )
    subscriber.refresh_from_db()
    if changed:
        if lift_suppression(subscriber.email):
            log.info(
                "subscriber %s confirmed: the suppression of the address is lifted", subscriber.pk
            )
        log.info("subscriber %s confirmed", subscriber.pk)
    return bool(changed)


def unsubscribe(subscriber: Subscriber) -> bool:
    """Takes effect at once: delivery checks the status right before each send. Idempotent."""
    now = timezone.now()
    changed = (
        Subscriber.objects.filter(pk=subscriber.pk)
        .exclude(status=Subscriber.Status.UNSUBSCRIBED)
        .update(status=Subscriber.Status.UNSUBSCRIBED, unsubscribed_at=now, updated_at=now)
    )
    subscriber.refresh_from_db()
    return bool(changed)


def pause(subscriber: Subscriber) -> bool:
    changed = Subscriber.objects.filter(
        pk=subscriber.pk, status=Subscriber.Status.CONFIRMED
    ).update(status=Subscriber.Status.PAUSED, updated_at=timezone.now())
    subscriber.refresh_from_db()
    return bool(changed)


def resume(subscriber: Subscriber, *, by_owner: bool = True) -> bool:
    """Paused → confirmed; an unsubscribed subscriber who resumes from the manage page is
    confirmed again too (the signed manage link proves they own the address), and delivery
    stopped by repeated refusals starts again (the link reached them by mail). An operator
    (``by_owner=False``) resumes paused subscribers only: someone who left gave no consent
    to mail again, whoever ticks the box in the admin (suppression has its own action)."""
    now = timezone.now()
    mine = Subscriber.objects.filter(pk=subscriber.pk)
    if by_owner:
        changed = mine.filter(
            Q(status__in=[Subscriber.Status.PAUSED, Subscriber.Status.UNSUBSCRIBED])
            | Q(status=Subscriber.Status.CONFIRMED, suppressed_at__isnull=False)
        ).update(
            status=Subscriber.Status.CONFIRMED,
            unsubscribed_at=None,
            suppressed_at=None,
            hard_failures=0,
            updated_at=now,
        )
    else:
        changed = mine.filter(status=Subscriber.Status.PAUSED).update(
            status=Subscriber.Status.CONFIRMED, unsubscribed_at=None, updated_at=now
        )
    subscriber.refresh_from_db()
    return bool(changed)


def update_preferences(subscriber: Subscriber, preferences: dict[str, Any]) -> None:
    for name in PREFERENCE_FIELDS:
        if name in preferences:
            setattr(subscriber, name, preferences[name])
    subscriber.save(update_fields=[*PREFERENCE_FIELDS, "updated_at"])
    _embed_interests_later(subscriber.interests)


def _embed_interests_later(interests: str) -> None:
    """Topic embeddings are computed when a profile is saved, off the request."""
    if interests and semantic.available():
        from digest.tasks import embed_interests

        transaction.on_commit(lambda: embed_interests.delay(interests))


def export_data(subscriber: Subscriber) -> dict[str, Any]:
    """Everything stored about this subscriber, for "download my data"."""

    def stamp(value: Any) -> str | None:
        return value.isoformat() if value else None

    return {
        "email": subscriber.email,
        "status": subscriber.status,
        "preferences": {name: getattr(subscriber, name) for name in PREFERENCE_FIELDS},
        "signed_up_via": subscriber.source,
        "created_at": stamp(subscriber.created_at),
        "confirmed_at": stamp(subscriber.confirmed_at),
        "unsubscribed_at": stamp(subscriber.unsubscribed_at),
        "confirmation_sent_at": stamp(subscriber.confirmation_sent_at),
        "confirmations_sent": subscriber.confirmations_sent,
    }


# --- deleting a subscriber's data, and the suppression that may outlive it -------------------

SUPPRESSION_SALT = "subscriptions.suppression"


def normalize_address(email: str) -> str:
    """The form addresses are compared in: trimmed and lower-cased, as the unique constraint
    on ``Subscriber.email`` compares them."""
    return email.strip().lower()


def address_hashes(email: str) -> list[str]:
    """HMAC-SHA256 of the normalised address with the secret key, then with each of
    ``SECRET_KEY_FALLBACKS`` (so rotating the key does not silently lift suppressions); the
    first is what is stored."""
    value = normalize_address(email)
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return [
        salted_hmac(SUPPRESSION_SALT, value, secret=key, algorithm="sha256").hexdigest()
        for key in keys
    ]


def is_suppressed_address(email: str) -> bool:
    """True when a deleted subscriber left this address suppressed."""
    return SuppressedAddress.objects.filter(address_hash__in=address_hashes(email)).exists()


def suppressed_among(emails: list[str]) -> set[str]:
    """The addresses of ``emails`` (normalised) that deleted subscribers left suppressed."""
    by_hash = {h: normalize_address(e) for e in emails for h in address_hashes(e)}
    found: set[str] = set()
    hashes = list(by_hash)
    for start in range(0, len(hashes), 500):
        chunk = hashes[start : start + 500]
        stored = SuppressedAddress.objects.filter(address_hash__in=chunk)
        found.update(by_hash[h] for h in stored.values_list("address_hash", flat=True))
    return found


def _forget_topics(interests: list[str]) -> None:
    """The stored embeddings of deleted subscribers' topics, unless someone else names them
    (what remains is caught by the retention job's clean-up of unused topics)."""
    from digest.matching.interests import topic_texts
    from digest.models import TopicEmbedding

    texts = {topic for text in interests for topic in topic_texts(text)}
    unused = [t for t in texts if not Subscriber.objects.filter(interests__icontains=t).exists()]
    TopicEmbedding.objects.filter(text__in=unused).delete()


def delete_all(subscribers: QuerySet[Subscriber]) -> tuple[int, int]:
    """Delete these subscribers and everything tied to them (their digests with their items,
    and so their "view in browser" pages; their signed links stop working with the rows). An
    address suppressed for hard bounces leaves only a keyed hash, so it cannot be imported or
    added back by someone else. Every way of deleting subscribers goes through here. Returns
    (subscribers deleted, suppressed addresses kept)."""
    with transaction.atomic():
        # Read under a lock: a bounce that suppresses an address meanwhile must not be lost.
        rows = list(
            subscribers.select_for_update().values_list("pk", "email", "suppressed_at", "interests")
        )
        if not rows:
            return 0, 0
        suppressed = {address_hashes(email)[0] for _, email, at, _ in rows if at is not None}
        SuppressedAddress.objects.bulk_create(
            [
                SuppressedAddress(address_hash=h, reason=SuppressedAddress.Reason.HARD_BOUNCES)
                for h in suppressed
            ],
            ignore_conflicts=True,
        )
        Subscriber.objects.filter(pk__in=[pk for pk, *_ in rows]).delete()
        _forget_topics([interests for *_, interests in rows])
    return len(rows), len(suppressed)


def delete(subscriber: Subscriber) -> bool:
    """Delete one subscriber with their data (see ``delete_all``); whether a hash was kept."""
    _, kept = delete_all(Subscriber.objects.filter(pk=subscriber.pk))
    log.info("subscriber %s deleted with their data (suppression kept: %s)", subscriber.pk, kept)
    return kept > 0


def lift_suppression(email: str) -> int:
    """The owner confirmed this address themselves: a suppression left by deletion ends."""
    deleted, _ = SuppressedAddress.objects.filter(address_hash__in=address_hashes(email)).delete()
    return deleted


def purge_stale_pending(now: Any = None) -> int:
    """Signups not confirmed within the confirmation window: counted from the latest
    confirmation mail (a link mailed on day 6 works its full window), not from the row's
    creation. A person who had unsubscribed and was signed up again (perhaps by someone else)
    goes back to unsubscribed, record kept; other stale signups are deleted. Returns how many
    were deleted."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.PENDING_SIGNUP_DAYS)
    stale = Subscriber.objects.filter(status=Subscriber.Status.PENDING, created_at__lt=cutoff)
    stale = stale.filter(Q(confirmation_sent_at__isnull=True) | Q(confirmation_sent_at__lt=cutoff))
    stale.filter(unsubscribed_at__isnull=False).update(
        status=Subscriber.Status.UNSUBSCRIBED, updated_at=now
    )
    # A suppressed address that was signed up again and never confirmed keeps its hash.
    deleted, _ = delete_all(stale.filter(unsubscribed_at__isnull=True))
    return deleted
