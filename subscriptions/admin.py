"""Admin for subscribers: list, filters, status actions through the services, CSV in and out.

Status is never edited by hand: the actions go through ``subscriptions.services`` so the
timestamps that record consent stay true.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone

from subscriptions import csv_io, services, tasks
from subscriptions.forms import PreferencesForm, SingleLineEmailField
from subscriptions.models import Subscriber, SuppressedAddress

log = logging.getLogger(__name__)

CONSENT_LABEL = "These people already consented to receive the digest (skip the confirmation mail)"


class TimezoneInUseFilter(admin.SimpleListFilter):
    """Only the zones subscribers actually use, not all ~400 of the tz database."""

    title = "timezone"
    parameter_name = "timezone"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = Subscriber.objects.order_by().values_list("timezone", flat=True).distinct()
        return [(name, name) for name in sorted(names)]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[Subscriber]
    ) -> QuerySet[Subscriber]:
        value = self.value()
        return queryset.filter(timezone=value) if value else queryset


class SubscriberAdminForm(PreferencesForm):
    """The signup page's validation (address on one line, interests, known zones) for operators
    too."""

    email = SingleLineEmailField(max_length=254)

    class Meta(PreferencesForm.Meta):
        fields = ["email", *PreferencesForm.Meta.fields]

    def clean_email(self) -> str:
        email: str = self.cleaned_data["email"]
        changed = self.instance.pk is None or email.lower() != self.instance.email.lower()
        if changed and Subscriber.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError(
                "A subscriber with this address exists already (addresses are compared "
                "without regard to case)."
            )
        if changed and services.is_suppressed_address(email):
            raise forms.ValidationError(
                "This address belonged to a subscriber who was deleted after repeated delivery "
                "failures; it stays suppressed. Its owner can sign up again on the site and "
                "confirm (that lifts the suppression)."
            )
        return email


class ImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="UTF-8, at most 2 MB. Columns: email (required), interests, frequency, "
        "weekday, delivery_hour, timezone, max_papers.",
    )
    consented = forms.BooleanField(
        required=False, initial=False, label=CONSENT_LABEL, label_suffix=""
    )

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > csv_io.MAX_IMPORT_BYTES:
            raise forms.ValidationError("The file is larger than 2 MB.")
        return upload


def _stream_csv(queryset: QuerySet[Subscriber], filename: str) -> StreamingHttpResponse:
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    return StreamingHttpResponse(
        csv_io.export_rows(queryset.order_by("pk")),
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}-{stamp}.csv"'},
    )


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class SuppressedFilter(admin.SimpleListFilter):
    title = "delivery"
    parameter_name = "suppressed"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "suppressed (hard bounces)"), ("no", "not suppressed")]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[Subscriber]
    ) -> QuerySet[Subscriber]:
        if self.value() == "yes":
            return queryset.filter(suppressed_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(suppressed_at__isnull=True)
        return queryset


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    form = SubscriberAdminForm
    list_display = (
        "email",
        "status",
        "frequency",
        "timezone",
        "delivery_hour",
        "interests_short",
        "created_at",
        "confirmed_at",
    )
    list_filter = ("status", SuppressedFilter, "frequency", TimezoneInUseFilter)
    search_fields = ("email", "interests")
    date_hierarchy = "created_at"
    readonly_fields = (
        "status",
        "source",
        "created_at",
        "updated_at",
        "confirmed_at",
        "unsubscribed_at",
        "confirmation_sent_at",
        "confirmations_sent",
        "hard_failures",
        "suppressed_at",
    )
    list_per_page = 100
    actions = [
        "pause_selected",
        "resume_selected",
        "unsubscribe_selected",
        "resend_confirmation",
        "clear_suppression",
        "export_selected",
    ]

    @admin.display(description="interests", ordering="interests")
    def interests_short(self, obj: Subscriber) -> str:
        return obj.interests if len(obj.interests) <= 60 else obj.interests[:59] + "…"

    def save_model(self, request: HttpRequest, obj: Subscriber, form: Any, change: bool) -> None:
        """An address added here still confirms it wants the digest, like a signup; so does a
        subscriber's address changed here (the new one gave no consent yet)."""
        readdressed = change and "email" in form.changed_data
        if not change:
            obj.source = Subscriber.Source.ADMIN
        elif readdressed and obj.status != Subscriber.Status.UNSUBSCRIBED:
            obj.status = Subscriber.Status.PENDING
            obj.confirmed_at = None
        super().save_model(request, obj, form, change)
        if not change or (readdressed and obj.status == Subscriber.Status.PENDING):
            transaction.on_commit(partial(tasks.send_confirmation.delay, obj.pk))
            if change:
                self.message_user(
                    request,
                    f"The address changed: {obj.email} gets a confirmation mail and no digest "
                    "until it is confirmed.",
                    messages.WARNING,
                )

    # --- deleting: always through the service, so a suppressed address leaves its hash -------

    def delete_model(self, request: HttpRequest, obj: Subscriber) -> None:
        services.delete(obj)
        log.info("user %s deleted subscriber %s and their data", request.user.pk, obj.pk)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        """Django's "Delete selected" action, after its confirmation page."""
        deleted, kept = services.delete_all(queryset)
        log.info(
            "user %s deleted %d subscribers and their data (%d suppressed addresses kept)",
            request.user.pk,
            deleted,
            kept,
        )

    # --- actions --------------------------------------------------------------------------

    def _apply(
        self,
        request: HttpRequest,
        queryset: QuerySet[Subscriber],
        change: Callable[[Subscriber], bool],
        done: str,
        rule: str,
    ) -> None:
        changed = sum(change(subscriber) for subscriber in queryset)
        skipped = queryset.count() - changed
        text = f"{done} {_plural(changed, 'subscriber')}."
        if skipped:
            text += f" Skipped {skipped} ({rule})."
        self.message_user(request, text, messages.SUCCESS if changed else messages.WARNING)

    @admin.action(description="Pause selected subscribers", permissions=["change"])
    def pause_selected(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        self._apply(
            request, queryset, services.pause, "Paused", "only confirmed subscribers can be paused"
        )

    @admin.action(description="Resume selected subscribers", permissions=["change"])
    def resume_selected(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        self._apply(
            request,
            queryset,
            partial(services.resume, by_owner=False),
            "Resumed",
            "only paused subscribers can be resumed here; someone who unsubscribed must "
            "subscribe again themselves",
        )

    @admin.action(description="Unsubscribe selected subscribers", permissions=["change"])
    def unsubscribe_selected(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        self._apply(request, queryset, services.unsubscribe, "Unsubscribed", "already unsubscribed")

    @admin.action(description="Resend confirmation mail (pending only)", permissions=["change"])
    def resend_confirmation(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        pending = list(
            queryset.filter(status=Subscriber.Status.PENDING).values_list("pk", flat=True)
        )
        for pk in pending:
            transaction.on_commit(partial(tasks.send_confirmation.delay, pk))
        skipped = queryset.count() - len(pending)
        self.message_user(
            request,
            f"Queued {_plural(len(pending), 'confirmation mail')}; skipped {skipped} not "
            "pending. An address mailed in the last few minutes is not mailed again yet.",
            messages.SUCCESS if pending else messages.WARNING,
        )

    @admin.action(description="Clear delivery suppression", permissions=["change"])
    def clear_suppression(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        """Repeated hard bounces suppress an address; an operator who fixed it lifts that."""
        cleared = queryset.filter(suppressed_at__isnull=False).update(
            suppressed_at=None, hard_failures=0
        )
        self.message_user(request, f"Cleared suppression of {_plural(cleared, 'subscriber')}.")

    @admin.action(description="Export selected as CSV", permissions=["view"])
    def export_selected(
        self, request: HttpRequest, queryset: QuerySet[Subscriber]
    ) -> StreamingHttpResponse:
        log.info("user %s exported %d subscribers", request.user.pk, queryset.count())
        return _stream_csv(queryset, "subscribers-selected")

    # --- extra views ----------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        own = [
            path("import/", self.admin_site.admin_view(self.import_view), name=f"{name}_import"),
            path("export/", self.admin_site.admin_view(self.export_view), name=f"{name}_export"),
        ]
        return own + super().get_urls()

    def export_view(self, request: HttpRequest) -> StreamingHttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        log.info("user %s exported all subscribers", request.user.pk)
        return _stream_csv(Subscriber.objects.all(), "subscribers")

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form, report = ImportForm(), None
        if request.method == "POST":
            form = ImportForm(request.POST, request.FILES)
            report = self._import(request, form)
            if report is not None:
                form = ImportForm()  # consent is stated per file, never carried over
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Import subscribers from CSV",
            "form": form,
            "report": report,
        }
        return TemplateResponse(request, "admin/subscriptions/subscriber/import.html", context)

    def _import(self, request: HttpRequest, form: ImportForm) -> csv_io.ImportReport | None:
        if not form.is_valid():
            return None
        consented = form.cleaned_data["consented"]
        try:
            report = csv_io.import_rows(form.cleaned_data["file"], consented=consented)
        except csv_io.CsvImportError as error:
            form.add_error("file", str(error))
            return None
        # Who stated that these people consented is part of the consent record.
        log.info(
            "user %s imported %d subscribers (consent stated: %s)",
            request.user.pk,
            len(report.created),
            consented,
        )
        return report


@admin.register(SuppressedAddress)
class SuppressedAddressAdmin(admin.ModelAdmin):
    """Read-only: the hashes cannot be read back into addresses, but an address can be looked up
    (the search box hashes what is typed). Deleting a row lifts the suppression."""

    list_display = ("address_hash", "reason", "created_at")
    list_filter = ("reason",)
    search_fields = ("address_hash",)
    search_help_text = "Type a whole e-mail address to check whether it is suppressed."

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[SuppressedAddress], search_term: str
    ) -> tuple[QuerySet[SuppressedAddress], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(address_hash__in=services.address_hashes(term)), False
