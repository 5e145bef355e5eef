"""Papers and the record of every ingest run that produced them."""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.db.models import Q


class Paper(models.Model):
    """One paper, stored once however many dumps and sources mention it.

    ``key`` is ``arxiv:<id>`` when the arXiv id is known, else ``title:<normalized title>``;
    a later source that knows the id enriches the row (and its key) instead of duplicating it.
    """

    key = models.CharField(max_length=255, unique=True)
    # NULL, not "", for "unknown": the unique constraint below must ignore unknown ids.
    arxiv_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    title = models.TextField()
    title_key = models.CharField(max_length=255, db_index=True)
    abstract = models.TextField()
    authors = models.JSONField(default=list, blank=True)
    author_count = models.PositiveIntegerField(null=True, blank=True)
    published_on = models.DateField(null=True, blank=True)
    listing_date = models.DateField(null=True, blank=True, db_index=True)
    url_page = models.URLField("paper page", max_length=500, blank=True)
    url_abs = models.URLField("arXiv abstract", max_length=500, blank=True)
    url_pdf = models.URLField("PDF", max_length=500, blank=True)
    url_code = models.URLField("code repository", max_length=500, blank=True)
    url_project = models.URLField("project page", max_length=500, blank=True)
    upvotes = models.PositiveIntegerField(null=True, blank=True)
    signals = models.JSONField(default=dict, blank=True)
    sources = models.JSONField(default=list, blank=True)
    first_seen = models.DateTimeField(db_index=True)
    last_seen = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-listing_date", "-upvotes", "title"]
        constraints = [
            models.UniqueConstraint(
                fields=["arxiv_id"],
                condition=Q(arxiv_id__isnull=False),
                name="paper_arxiv_id_unique",
            )
        ]

    def __str__(self) -> str:
        return self.title[:120]


class IngestRun(models.Model):
    """One attempt to ingest one dump (a file or a fetched URL)."""

    class Status(models.TextChoices):
        RUNNING = "running", "running"
        SUCCESS = "success", "success"
        PARTIAL = "partial", "partial (some entries rejected)"
        FAILED = "failed", "failed"
        DUPLICATE = "duplicate", "duplicate (same content seen before)"
        NOT_MODIFIED = "not_modified", "not modified (HTTP 304)"
        DRY_RUN = "dry_run", "dry run"

    source = models.CharField(max_length=50, help_text="inbox, cli, admin, fetch ...")
    format = models.CharField(max_length=20, blank=True)
    location = models.CharField(max_length=1000, help_text="file path or URL")
    checksum = models.CharField(max_length=64, blank=True, db_index=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    error = models.TextField(blank=True, help_text="why the dump as a whole failed")
    notes = models.JSONField(default=list, blank=True)
    n_new = models.PositiveIntegerField("new", default=0)
    n_updated = models.PositiveIntegerField("updated", default=0)
    n_unchanged = models.PositiveIntegerField("unchanged", default=0)
    n_rejected = models.PositiveIntegerField("rejected", default=0)
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.location} ({self.status})"

    @property
    def duration(self) -> timedelta | None:
        if self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    @property
    def n_total(self) -> int:
        return self.n_new + self.n_updated + self.n_unchanged + self.n_rejected


class RejectedEntry(models.Model):
    """An entry of a dump that was not stored, with the reason."""

    run = models.ForeignKey(IngestRun, on_delete=models.CASCADE, related_name="rejected")
    position = models.PositiveIntegerField(help_text="1-based position of the entry in the dump")
    reason = models.CharField(max_length=500)
    excerpt = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["run", "position"]
        verbose_name_plural = "rejected entries"

    def __str__(self) -> str:
        return f"#{self.position}: {self.reason}"


class SourceState(models.Model):
    """What we know of a fetched source URL, for conditional requests and operator insight."""

    url = models.URLField(max_length=1000, unique=True)
    etag = models.CharField(max_length=500, blank=True)
    last_modified = models.CharField(max_length=100, blank=True)
    last_fetched_at = models.DateTimeField(null=True, blank=True)
    last_status = models.CharField(max_length=200, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return self.url


class PaperEmbedding(models.Model):
    """A paper's sentence embedding (semantic matching), computed once and kept."""

    paper = models.OneToOneField(Paper, on_delete=models.CASCADE, related_name="embedding")
    model = models.CharField(max_length=100)
    vector = models.BinaryField(help_text="little-endian float32, unit length")
    passages = models.BinaryField(
        null=True,
        help_text="one little-endian float16 row per abstract sentence; empty on rows made "
        "before passages were embedded (filled in when the paper is next a candidate)",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.model} embedding of paper #{self.paper_id}"


class TopicEmbedding(models.Model):
    """The embedding of one interest topic's text, shared by every profile that names it."""

    text = models.CharField(max_length=500)
    model = models.CharField(max_length=100)
    vector = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["text", "model"], name="topic_embedding_unique")
        ]

    def __str__(self) -> str:
        return self.text


class Digest(models.Model):
    """One digest for one subscriber and one period, created with its items before sending.

    ``period`` names the subscriber's local day (``2026-03-11``) or ISO week (``2026-W11``); the
    unique constraint makes a second digest for the same period impossible.
    """

    class State(models.TextChoices):
        PENDING = "pending", "pending"
        SENDING = "sending", "sending"
        SENT = "sent", "sent"
        FAILED = "failed", "failed"
        SKIPPED = "skipped", "skipped (nothing to send)"

    # No index of its own: the (subscriber, period) constraint's index starts with it. Every
    # claim updates two rows, and each index fewer is less work for each of them.
    subscriber = models.ForeignKey(
        "subscriptions.Subscriber",
        on_delete=models.CASCADE,
        related_name="digests",
        db_index=False,
    )
    period = models.CharField(max_length=20)
    # Indexed in Meta: a plain index, without the pattern-matching twin that db_index adds on
    # PostgreSQL (states are only ever compared whole).
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    subject = models.CharField(max_length=300, blank=True)
    size_bytes = models.PositiveIntegerField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["subscriber", "period"], name="digest_once_per_period")
        ]
        indexes = [models.Index(fields=["state"], name="digest_state")]

    def __str__(self) -> str:
        return f"digest {self.period} for subscriber #{self.subscriber_id} ({self.state})"


class DigestItem(models.Model):
    """A paper in a digest, with why it matched. A paper goes to a subscriber at most once."""

    digest = models.ForeignKey(Digest, on_delete=models.CASCADE, related_name="items")
    # A copy of the digest's subscriber, for the (subscriber, paper) constraint. No index of its
    # own (that constraint's index starts with it) and no foreign-key check in the database:
    # the digest's own key already holds there (a subscriber with digests cannot be deleted),
    # and checking it again for every item stored was about a seventh of storing them. Deleting a
    # subscriber through Django still deletes their items.
    subscriber = models.ForeignKey(
        "subscriptions.Subscriber",
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    paper = models.ForeignKey(Paper, on_delete=models.CASCADE, related_name="+")
    rank = models.PositiveSmallIntegerField()
    score = models.FloatField()
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["digest", "rank"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscriber", "paper"], name="paper_once_per_subscriber"
            )
        ]

    def __str__(self) -> str:
        return f"#{self.rank} of {self.digest}"


class DeliveryControl(models.Model):
    """The operator's kill switch: one row; while ``paused``, nothing is planned or sent.

    Pausing keeps the schedule: subscribers' next digests simply cover everything since their
    previous one. ``SENDING_ENABLED=false`` in the environment does the same from settings.
    """

    paused = models.BooleanField(default=False)
    note = models.CharField(max_length=200, blank=True)
    changed_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "delivery control"

    def __str__(self) -> str:
        return "sending paused" if self.paused else "sending on"

    @classmethod
    def current(cls) -> DeliveryControl:
        control, _ = cls.objects.get_or_create(pk=1)
        return control


class JobStatus(models.Model):
    """The latest runs of one periodic task, written by the processes that queue and run it.

    The web process cannot ask beat or a worker anything (the embedded defaults share no cache),
    so the dashboard reads this table instead.
    """

    task = models.CharField(max_length=200, unique=True)
    last_queued_at = models.DateTimeField(null=True, blank=True, help_text="sent by beat")
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_finished_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    runs = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name_plural = "job statuses"

    def __str__(self) -> str:
        return self.task


class Heartbeat(models.Model):
    """When a worker (one row per host name) or beat last showed that it was alive."""

    class Role(models.TextChoices):
        WORKER = "worker", "worker"
        BEAT = "beat", "beat"

    role = models.CharField(max_length=10, choices=Role.choices)
    name = models.CharField(max_length=255)
    last_seen_at = models.DateTimeField()

    class Meta:
        ordering = ["role", "name"]
        constraints = [
            models.UniqueConstraint(fields=["role", "name"], name="heartbeat_once_per_process")
        ]

    def __str__(self) -> str:
        return f"{self.role} {self.name}"
