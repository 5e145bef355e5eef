"""Subscribers: who wants which papers, when, and the consent behind every mail they get."""

from __future__ import annotations

import zoneinfo
from functools import lru_cache

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Lower


@lru_cache(maxsize=1)
def timezone_names() -> tuple[str, ...]:
    """IANA zone names a subscriber may choose (the tz database, without legacy aliases)."""
    names = zoneinfo.available_timezones()
    kept = sorted(
        n for n in names if "/" in n and not n.startswith(("Etc/", "SystemV/", "posix/", "right/"))
    )
    return (*kept, "UTC")


# What a subscriber chooses (the signup, manage, import and export forms all use this list).
PREFERENCE_FIELDS = ("interests", "frequency", "weekday", "delivery_hour", "timezone", "max_papers")


class Subscriber(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "pending confirmation"
        CONFIRMED = "confirmed", "confirmed"
        PAUSED = "paused", "paused"
        UNSUBSCRIBED = "unsubscribed", "unsubscribed"

    class Frequency(models.TextChoices):
        DAILY = "daily", "daily"
        WEEKLY = "weekly", "weekly"

    class Weekday(models.IntegerChoices):
        MONDAY = 0, "Monday"
        TUESDAY = 1, "Tuesday"
        WEDNESDAY = 2, "Wednesday"
        THURSDAY = 3, "Thursday"
        FRIDAY = 4, "Friday"
        SATURDAY = 5, "Saturday"
        SUNDAY = 6, "Sunday"

    class Source(models.TextChoices):
        WEB = "web", "signup form"
        IMPORT = "import", "CSV import"
        ADMIN = "admin", "added by an operator"

    email = models.EmailField(max_length=254, help_text="domain part lower-cased")
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    interests = models.TextField(blank=True, help_text="empty: top trending papers only")
    frequency = models.CharField(max_length=10, choices=Frequency.choices, default=Frequency.DAILY)
    weekday = models.PositiveSmallIntegerField(
        choices=Weekday.choices, default=Weekday.MONDAY, help_text="for weekly digests"
    )
    delivery_hour = models.PositiveSmallIntegerField(
        default=8, validators=[MaxValueValidator(23)], help_text="local hour, 0-23"
    )
    timezone = models.CharField(max_length=64, default="UTC")
    max_papers = models.PositiveSmallIntegerField(
        default=10, validators=[MinValueValidator(1), MaxValueValidator(50)]
    )
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.WEB)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    confirmation_sent_at = models.DateTimeField(null=True, blank=True)
    confirmations_sent = models.PositiveIntegerField(default=0)
    hard_failures = models.PositiveIntegerField(
        default=0, help_text="permanent delivery failures (5xx) in a row"
    )
    suppressed_at = models.DateTimeField(
        null=True,
        blank=True,
        db_index=True,
        help_text="set after repeated hard failures: no mail is sent until cleared",
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(Lower("email"), name="subscriber_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def is_active(self) -> bool:
        """Confirmed, not paused, not suppressed: the only state in which digests are sent."""
        return self.status == self.Status.CONFIRMED and self.suppressed_at is None


class SuppressedAddress(models.Model):
    """What is left of a deleted subscriber whose address must not be mailed again: a keyed
    hash of the normalised address (HMAC-SHA256 with the secret key), never the address itself.

    Kept only when suppression needs it (the address was suppressed after hard bounces). A CSV
    import or an operator cannot add the address back; its owner can, by signing up and
    confirming (double opt-in proves the mailbox works and wants mail), which lifts this.
    """

    class Reason(models.TextChoices):
        HARD_BOUNCES = "hard_bounces", "repeated hard bounces"

    address_hash = models.CharField(max_length=64, unique=True)
    reason = models.CharField(max_length=20, choices=Reason.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "suppressed address (deleted subscriber)"
        verbose_name_plural = "suppressed addresses (deleted subscribers)"

    def __str__(self) -> str:
        return f"{self.address_hash[:12]}… ({self.get_reason_display()})"
