"""The dashboard's pages and actions: staff only (each view is wrapped by ``admin_view``),
actions by POST with CSRF, each confirming what it did with a message. An action also needs
the model permission that matches what it does (granted in the admin, as for any model)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from digest.dashboard import actions, health
from digest.dashboard.forms import (
    PreviewForm,
    SendingForm,
    SourceForm,
    TestDigestForm,
    UploadForm,
)
from digest.dashboard.overview import overview
from digest.delivery.preview import preview_digest

# What each action needs beyond staff status.
INGEST = "digest.add_paper"  # upload a dump, fetch a source
PLAN = "digest.add_digest"  # run the due digests
PAUSE = "digest.change_deliverycontrol"  # pause or resume all sending
SEE_SUBSCRIBERS = "subscriptions.view_subscriber"  # preview or test-send someone's digest
ACTION_PERMISSIONS = (INGEST, PLAN, PAUSE, SEE_SUBSCRIBERS)


def needs(permission: str) -> Any:
    return permission_required(permission, raise_exception=True)


def _page(request: HttpRequest, template: str, title: str, **context: Any) -> TemplateResponse:
    return TemplateResponse(
        request,
        template,
        {**admin.site.each_context(request), "title": title, **context},
    )


def _forms(**bound: Any) -> dict[str, Any]:
    forms = {
        "upload_form": UploadForm(),
        "source_form": SourceForm(),
        "preview_form": PreviewForm(),
        "test_form": TestDigestForm(),
    }
    forms.update(bound)
    return forms


def _dashboard(request: HttpRequest, status: int = 200, **bound: Any) -> TemplateResponse:
    response = _page(
        request, "admin/dashboard/index.html", "Dashboard", **overview(), **_forms(**bound)
    )
    response.status_code = status
    return response


@require_safe
def dashboard(request: HttpRequest) -> HttpResponse:
    return _dashboard(request)


@require_safe
def schedules(request: HttpRequest) -> HttpResponse:
    jobs = health.jobs()
    return _page(
        request,
        "admin/dashboard/schedules.html",
        "Schedules",
        jobs=jobs,
        now=timezone.now(),
        factor=settings.JOB_OVERDUE_FACTOR,
    )


def _back() -> HttpResponseRedirect:
    return redirect("dashboard:index")


@require_POST
@needs(INGEST)
def ingest_upload(request: HttpRequest) -> HttpResponse:
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, "Nothing was ingested: see the upload form.")
        return _dashboard(request, 400, upload_form=form)
    where = actions.save_upload(form.cleaned_data["dump"])
    messages.success(
        request,
        f"Saved the upload as {where.name} and queued its ingest: it shows under "
        f"“Recent ingest runs” once a worker has read it.",
    )
    return _back()


@require_POST
@needs(INGEST)
def ingest_source(request: HttpRequest) -> HttpResponse:
    form = SourceForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Nothing was fetched: pick one of the configured sources.")
        return _dashboard(request, 400, source_form=form)
    actions.queue_fetch(form.cleaned_data["url"])
    messages.success(request, f"Queued a fetch of {form.cleaned_data['url']}.")
    return _back()


@require_POST
@needs(PLAN)
def run_due_digests(request: HttpRequest) -> HttpResponse:
    if actions.queue_planning():
        messages.success(request, "Queued a planner run: due digests are created and sent now.")
    else:
        messages.warning(request, "Sending is paused: nothing was planned. Resume it first.")
    return _back()


@require_POST
@needs(PAUSE)
def sending(request: HttpRequest) -> HttpResponse:
    form = SendingForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Nothing changed: say whether to pause or to resume.")
        return _back()
    paused = form.cleaned_data["paused"]
    actions.set_paused(paused, request.user.get_username())
    if paused:
        messages.success(request, "Sending is paused: nothing is planned or sent until resumed.")
    elif not settings.SENDING_ENABLED:
        messages.warning(request, "Resumed here, but SENDING_ENABLED=false still stops sending.")
    else:
        messages.success(request, "Sending is resumed.")
    return _back()


@require_POST
@needs(SEE_SUBSCRIBERS)
def preview(request: HttpRequest) -> HttpResponse:
    form = PreviewForm(request.POST)
    if not form.is_valid():
        messages.error(request, "No preview: see the preview form.")
        return _dashboard(request, 400, preview_form=form)
    subscriber = form.cleaned_data["subscriber"]
    result = preview_digest(subscriber)
    messages.info(
        request,
        f"Preview for {subscriber.email}: {len(result.items)} of {result.candidates} candidate "
        f"papers. Nothing was saved or sent.",
    )
    return _page(
        request,
        "admin/dashboard/preview.html",
        f"Digest preview for {subscriber.email}",
        preview=result,
        test_form=TestDigestForm(initial={"subscriber": subscriber.email}),
    )


@require_POST
@needs(SEE_SUBSCRIBERS)
def test_digest(request: HttpRequest) -> HttpResponse:
    form = TestDigestForm(request.POST)
    if not form.is_valid():
        messages.error(request, "No test digest was sent: see the test digest form.")
        return _dashboard(request, 400, test_form=form)
    subscriber = form.cleaned_data["subscriber"]
    to = form.cleaned_data["to"]
    actions.queue_test_digest(to, subscriber.pk if subscriber else None)
    whose = f"{subscriber.email}'s digest" if subscriber else "a digest of the trending papers"
    messages.success(request, f"Queued a test digest to {to}: {whose}, marked [Test].")
    return _back()
