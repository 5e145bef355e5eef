"""Admin for papers, ingest runs (with their rejected entries) and fetched sources."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import JSONField, QuerySet, URLField
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from digest.models import (
    DeliveryControl,
    Digest,
    DigestItem,
    IngestRun,
    Paper,
    RejectedEntry,
    SourceState,
)


class SourceFilter(admin.SimpleListFilter):
    """Filter papers by a source they came from (stored as a JSON list)."""

    title = "source"
    parameter_name = "source"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = IngestRun.objects.exclude(format="").values_list("format", flat=True).distinct()
        return [(name, name) for name in sorted(set(names))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Paper]) -> QuerySet[Paper]:
        value = self.value()
        if not value:
            return queryset
        # A JSON-string match works on SQLite and PostgreSQL alike ("contains" on JSON lists
        # is not supported by SQLite).
        return queryset.filter(sources__icontains=f'"{value}"')


@admin.register(Paper)
class PaperAdmin(admin.ModelAdmin):
    list_display = (
        "title_short",
        "arxiv_id",
        "listing_date",
        "upvotes",
        "code_link",
        "source_list",
        "first_seen",
    )
    list_filter = ("listing_date", SourceFilter)
    search_fields = ("title", "arxiv_id", "abstract")
    date_hierarchy = "listing_date"
    readonly_fields = ("key", "title_key", "first_seen", "last_seen", "updated_at", "sources")
    list_per_page = 50
    show_full_result_count = False
    formfield_overrides = {URLField: {"assume_scheme": "https"}}

    @admin.display(description="title", ordering="title")
    def title_short(self, obj: Paper) -> str:
        return obj.title if len(obj.title) <= 100 else obj.title[:99] + "…"

    @admin.display(description="code")
    def code_link(self, obj: Paper) -> str:
        if not obj.url_code:
            return "-"
        return format_html('<a href="{}" rel="noopener noreferrer">code</a>', obj.url_code)

    @admin.display(description="sources")
    def source_list(self, obj: Paper) -> str:
        return ", ".join(obj.sources)


class RejectedInline(admin.TabularInline):
    model = RejectedEntry
    extra = 0
    can_delete = False
    fields = ("position", "reason", "excerpt")
    readonly_fields = fields
    max_num = 0
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(IngestRun)
class IngestRunAdmin(admin.ModelAdmin):
    list_display = (
        "started_at",
        "source",
        "format",
        "location",
        "status",
        "n_new",
        "n_updated",
        "n_unchanged",
        "n_rejected",
        "duration",
    )
    list_filter = ("status", "source", "format")
    search_fields = ("location", "checksum", "error")
    inlines = [RejectedInline]
    formfield_overrides = {JSONField: {}}
    readonly_fields = (
        "source",
        "format",
        "location",
        "checksum",
        "size_bytes",
        "status",
        "error",
        "notes_list",
        "n_new",
        "n_updated",
        "n_unchanged",
        "n_rejected",
        "started_at",
        "finished_at",
        "duration",
    )
    exclude = ("notes",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="notes")
    def notes_list(self, obj: IngestRun) -> str:
        if not obj.notes:
            return "-"
        return format_html(
            "<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((note,) for note in obj.notes))
        )


@admin.register(SourceState)
class SourceStateAdmin(admin.ModelAdmin):
    list_display = ("url", "last_fetched_at", "last_status", "consecutive_failures", "etag")
    readonly_fields = (
        "etag",
        "last_modified",
        "last_fetched_at",
        "last_status",
        "consecutive_failures",
    )


class DigestItemInline(admin.TabularInline):
    model = DigestItem
    extra = 0
    can_delete = False
    fields = ("rank", "paper", "score", "reason")
    readonly_fields = fields
    max_num = 0

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Digest)
class DigestAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "subscriber",
        "period",
        "state",
        "attempts",
        "sent_at",
        "subject",
        "error_short",
    )
    list_filter = ("state", "period")
    search_fields = ("subscriber__email", "subject", "error")
    date_hierarchy = "created_at"
    inlines = [DigestItemInline]
    list_select_related = ("subscriber",)
    readonly_fields = (
        "subscriber",
        "period",
        "state",
        "created_at",
        "claimed_at",
        "enqueued_at",
        "sent_at",
        "attempts",
        "error",
        "subject",
        "size_bytes",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="error")
    def error_short(self, obj: Digest) -> str:
        return obj.error[:80]


@admin.register(DeliveryControl)
class DeliveryControlAdmin(admin.ModelAdmin):
    """The kill switch: tick "paused" to stop planning and sending at once."""

    list_display = ("__str__", "paused", "note", "changed_at")
    list_editable = ("paused", "note")
    list_display_links = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not DeliveryControl.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[DeliveryControl]:
        DeliveryControl.current()
        return super().get_queryset(request)
