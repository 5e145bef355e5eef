"""Forms of the dashboard's actions; each says clearly what is wrong with bad input."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from subscriptions import services
from subscriptions.models import Subscriber


class UploadForm(forms.Form):
    dump = forms.FileField(
        label="Dump file",
        help_text="Any supported format (sniffed from the content); it goes through the inbox.",
    )

    def clean_dump(self) -> Any:
        dump = self.cleaned_data["dump"]
        if dump.size > settings.INGEST_MAX_BYTES:
            raise forms.ValidationError(
                f"The file is {filesizeformat(dump.size)}; INGEST_MAX_BYTES allows "
                f"{filesizeformat(settings.INGEST_MAX_BYTES)}."
            )
        if dump.size == 0:
            raise forms.ValidationError("The file is empty.")
        return dump


class SourceForm(forms.Form):
    url = forms.ChoiceField(label="Source", choices=())

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["url"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(url, url) for url in settings.SOURCE_URLS]


class SubscriberField(forms.EmailField):
    """A subscriber, named by address (a select of every subscriber would not scale)."""

    def clean(self, value: Any) -> Subscriber | None:  # type: ignore[override]
        email = super().clean(value)
        if not email:
            return None
        subscriber = services.find(email)
        if subscriber is None:
            raise forms.ValidationError(f"No subscriber has the address {email}.")
        return subscriber


class PreviewForm(forms.Form):
    subscriber = SubscriberField(label="Subscriber's address")


class TestDigestForm(forms.Form):
    to = forms.EmailField(label="Send to")
    subscriber = SubscriberField(
        label="As subscriber",
        required=False,
        help_text="Whose digest to send; empty: the top trending papers.",
    )

    def clean_to(self) -> str:
        to = str(self.cleaned_data["to"])
        bounced = Subscriber.objects.filter(email__iexact=to, suppressed_at__isnull=False)
        if bounced.exists() or services.is_suppressed_address(to):
            raise forms.ValidationError(
                "This address is suppressed after hard bounces: no mail goes to it."
            )
        return to

    def clean(self) -> dict[str, Any]:
        from digest.delivery.plan import sending_paused

        cleaned = super().clean() or {}
        if sending_paused():
            raise forms.ValidationError("Sending is paused: resume it to send a test digest.")
        return cleaned


class SendingForm(forms.Form):
    paused = forms.TypedChoiceField(
        choices=[("true", "pause"), ("false", "resume")], coerce=lambda v: v == "true"
    )
