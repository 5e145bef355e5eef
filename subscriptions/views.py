"""Pages a subscriber touches: signup, confirm, manage, unsubscribe, "send me my link", and the
local outbox viewer. Thin: the rules live in ``subscriptions.services``."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from digest.clientip import client_network
from digest.matching import service as matching
from subscriptions import outbox as outbox_files
from subscriptions import ratelimit, services, tasks, tokens
from subscriptions.forms import LinkRequestForm, PreferencesForm, SubscribeForm
from subscriptions.models import Subscriber

TOO_MANY = "Too many requests. Please wait a while and try again."
TOO_MANY_PREVIEWS = "Too many previews from your network just now: try again a little later."


def _within_limits(
    request: HttpRequest, scope: str, email: str | None, per_ip: int | None = None
) -> bool:
    window = settings.SIGNUP_LIMIT_WINDOW_SECONDS
    per_ip = per_ip or settings.SIGNUP_LIMIT_PER_IP
    if not ratelimit.allow(f"{scope}-ip", client_network(request), per_ip, window):
        return False
    return email is None or ratelimit.allow(
        f"{scope}-address", email, settings.SIGNUP_LIMIT_PER_ADDRESS, window
    )


@require_http_methods(["GET", "HEAD", "POST"])
def subscribe(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return render(request, "subscriptions/subscribe.html", {"form": SubscribeForm()})
    form = SubscribeForm(request.POST)
    if request.POST.get("preview"):
        return _preview_page(request, form)
    if form.is_bot:
        # Same answer as a real signup: a bot learns nothing, a stranger gets no mail.
        return redirect("subscriptions:check_inbox")
    if not form.is_valid():
        return render(request, "subscriptions/subscribe.html", {"form": form}, status=400)
    email = form.cleaned_data["email"]
    if not _within_limits(request, "signup", email):
        form.add_error(None, TOO_MANY)
        return render(request, "subscriptions/subscribe.html", {"form": form}, status=429)
    # The request never looks the address up; the task does, so new, pending, confirmed and
    # unsubscribed addresses all get the same response in the same time.
    tasks.process_signup.delay(email, form.preferences())
    return redirect("subscriptions:check_inbox")


@dataclass
class _PreviewResult:
    listing: Any = None
    papers: list[Any] = field(default_factory=list)
    candidates: int = 0
    error: str = ""


def _preview(form: PreferencesForm) -> _PreviewResult:
    """What the latest listing would have sent with the interests typed in ``form``."""
    form.is_valid()
    if "interests" in form.errors:
        return _PreviewResult(error=" ".join(str(e) for e in form.errors["interests"]))
    limit = form.cleaned_data.get("max_papers") or 10
    shown = matching.preview(form.cleaned_data.get("interests", ""), limit)
    return _PreviewResult(shown.listing, shown.papers, shown.candidates)


def _preview_page(request: HttpRequest, form: SubscribeForm) -> HttpResponse:
    # A preview matches the whole latest listing (and may embed new topics): anonymous
    # visitors get PREVIEW_LIMIT_PER_IP of them per SIGNUP_LIMIT_WINDOW_SECONDS.
    allowed = _within_limits(request, "preview", None, settings.PREVIEW_LIMIT_PER_IP)
    preview = _preview(form) if allowed else _PreviewResult(error=TOO_MANY_PREVIEWS)
    # Show what was typed without flagging the fields a preview does not need (the address).
    fresh = SubscribeForm(initial={k: v for k, v in request.POST.items() if k != "website"})
    context = {"form": fresh, "preview": preview}
    return render(request, "subscriptions/subscribe.html", context, status=200 if allowed else 429)


def check_inbox(request: HttpRequest) -> HttpResponse:
    return render(
        request, "subscriptions/check_inbox.html", {"valid_days": settings.PENDING_SIGNUP_DAYS}
    )


def _link_problem(request: HttpRequest, error: Exception) -> HttpResponse:
    expired = isinstance(error, tokens.Expired)
    return render(
        request,
        "subscriptions/link_problem.html",
        {"expired": expired, "form": LinkRequestForm()},
        status=400,
    )


def _subscriber_for(token: str, purpose: str) -> Subscriber:
    return tokens.read_token(token, purpose)


@require_http_methods(["GET", "HEAD", "POST"])
def confirm(request: HttpRequest, token: str) -> HttpResponse:
    try:
        subscriber = _subscriber_for(token, tokens.CONFIRM)
    except (tokens.Expired, tokens.Invalid) as error:
        return _link_problem(request, error)
    if request.method != "POST":
        # Mail scanners follow links: only the button (a POST) confirms.
        return render(request, "subscriptions/confirm.html", {"subscriber": subscriber})
    services.confirm(subscriber)
    return render(
        request,
        "subscriptions/confirmed.html",
        {
            "subscriber": subscriber,
            "manage_url": services.manage_url(subscriber),
        },
    )


MANAGE_ACTIONS = ("save", "pause", "resume", "unsubscribe", "delete")


@require_http_methods(["GET", "HEAD", "POST"])
def manage(request: HttpRequest, token: str) -> HttpResponse:
    try:
        subscriber = _subscriber_for(token, tokens.MANAGE)
    except (tokens.Expired, tokens.Invalid) as error:
        return _link_problem(request, error)
    if request.method != "POST" and request.GET.get("download") == "json":
        return _download(subscriber)
    if request.method != "POST":
        return _manage_page(request, subscriber, PreferencesForm(instance=subscriber))
    action = request.POST.get("action", "save")
    if action == "preview":
        form = PreferencesForm(request.POST, instance=Subscriber.objects.get(pk=subscriber.pk))
        preview = _preview(form)
        return _manage_page(request, subscriber, form, extra={"preview": preview})
    if action not in MANAGE_ACTIONS:
        return _manage_page(request, subscriber, PreferencesForm(instance=subscriber), 400)
    if action == "delete":
        return _delete(request, subscriber)
    if action == "save":
        form = PreferencesForm(request.POST, instance=Subscriber.objects.get(pk=subscriber.pk))
        if not form.is_valid():
            return _manage_page(request, subscriber, form, 400)
        services.update_preferences(subscriber, form.cleaned_data)
        messages.success(request, "Your preferences are saved.")
    else:
        _status_action(request, subscriber, action)
    return HttpResponseRedirect(request.path)


def _status_action(request: HttpRequest, subscriber: Subscriber, action: str) -> None:
    change: dict[str, Callable[[Subscriber], bool]] = {
        "pause": services.pause,
        "resume": services.resume,
        "unsubscribe": services.unsubscribe,
    }
    done = change[action](subscriber)
    text = {
        "pause": "Your digests are paused.",
        "resume": "Your digests are on again.",
        "unsubscribe": "You are unsubscribed. No more digests will be sent.",
    }[action]
    if done:
        messages.success(request, text)
    else:
        messages.info(request, "Nothing to change: " + subscriber.get_status_display() + ".")


def _manage_page(
    request: HttpRequest,
    subscriber: Subscriber,
    form: PreferencesForm,
    status: int = 200,
    extra: dict[str, Any] | None = None,
) -> HttpResponse:
    return render(
        request,
        "subscriptions/manage.html",
        {
            "subscriber": subscriber,
            "form": form,
            "unsubscribe_url": reverse(
                "subscriptions:unsubscribe",
                args=[tokens.make_token(subscriber, tokens.UNSUBSCRIBE)],
            ),
            **(extra or {}),
        },
        status=status,
    )


def _download(subscriber: Subscriber) -> HttpResponse:
    body = json.dumps(services.export_data(subscriber), indent=2, ensure_ascii=False)
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="my-paper-digest-data.json"'
    return response


def _delete(request: HttpRequest, subscriber: Subscriber) -> HttpResponse:
    if request.POST.get("confirm_delete") != "yes":
        messages.error(request, "Tick the box to confirm that your data should be deleted.")
        return HttpResponseRedirect(request.path)
    kept_hash = services.delete(subscriber)
    return render(request, "subscriptions/deleted.html", {"kept_hash": kept_hash})


@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a button; POST unsubscribes. The POST is also RFC 8058's one-click target:
    no cookie, no CSRF token, no redirect, and the same answer however often it is sent. A
    genuine link whose subscriber was deleted answers that no mail will come (a mail provider
    would otherwise report a failed unsubscribe). The page does not lead to the settings:
    this link sits in every digest, forwarded ones included, and never expires; whoever holds
    it may stop the mail, not read or change the subscription (the owner asks for a link)."""
    try:
        subscriber = _subscriber_for(token, tokens.UNSUBSCRIBE)
    except tokens.Gone:
        return render(request, "subscriptions/unsubscribed.html", {"subscriber": None})
    except (tokens.Expired, tokens.Invalid) as error:
        return _link_problem(request, error)
    if request.method != "POST":
        return render(request, "subscriptions/unsubscribe.html", {"subscriber": subscriber})
    services.unsubscribe(subscriber)
    return render(request, "subscriptions/unsubscribed.html", {"subscriber": subscriber})


@require_http_methods(["GET", "HEAD", "POST"])
def request_link(request: HttpRequest) -> HttpResponse:
    form = LinkRequestForm(request.POST or None)
    if request.method != "POST" or not form.is_valid():
        status = 400 if request.method == "POST" else 200
        return render(request, "subscriptions/request_link.html", {"form": form}, status=status)
    email = form.cleaned_data["email"]
    if not _within_limits(request, "link", email):
        form.add_error(None, TOO_MANY)
        return render(request, "subscriptions/request_link.html", {"form": form}, status=429)
    tasks.process_link_request.delay(email)
    return render(request, "subscriptions/link_sent.html")


# --- local outbox ---------------------------------------------------------------------------


def _outbox_allowed(request: HttpRequest) -> None:
    user: Any = request.user
    if not (settings.DEBUG or (user.is_authenticated and user.is_staff)):
        raise Http404("no outbox here")


def outbox(request: HttpRequest) -> HttpResponse:
    _outbox_allowed(request)
    return render(
        request,
        "subscriptions/outbox.html",
        {"mails": outbox_files.list_mails(), "folder": settings.OUTBOX_DIR},
    )


def outbox_message(request: HttpRequest, name: str) -> HttpResponse:
    _outbox_allowed(request)
    mail = outbox_files.read_mail(name)
    if mail is None:
        raise Http404("no such mail")
    return render(request, "subscriptions/outbox_message.html", {"mail": mail})


def outbox_html(request: HttpRequest, name: str) -> HttpResponse:
    """The HTML part alone, for an iframe: sandboxed so nothing in a mail can run here."""
    _outbox_allowed(request)
    mail = outbox_files.read_mail(name)
    if mail is None or not mail.html:
        raise Http404("no HTML part")
    response = HttpResponse(mail.html, content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = (
        "sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
    )
    response["X-Frame-Options"] = "SAMEORIGIN"
    return response
