"""Forms for signup, preferences and "send me my link". Every rule is a clear form error."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from digest.matching.interests import MAX_CHARS, InterestError, parse_interests
from subscriptions.models import PREFERENCE_FIELDS, Subscriber, timezone_names

LINE_BREAK_ERROR = "Line breaks are not allowed here."


def normalize_email(value: str) -> str:
    """Keep the local part as typed (it may be case-sensitive); lower-case the domain."""
    local, _, domain = value.strip().rpartition("@")
    return f"{local}@{domain.lower()}" if local else value.strip()


class SingleLineEmailField(forms.EmailField):
    """An address on one line: CR/LF anywhere (header injection) is an error, not stripped."""

    def to_python(self, value: Any) -> str:
        if isinstance(value, str) and ("\r" in value or "\n" in value):
            raise ValidationError(LINE_BREAK_ERROR, code="line_break")
        return normalize_email(super().to_python(value) or "")


def timezone_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in timezone_names()]


class TimezoneField(forms.ChoiceField):
    """An IANA zone from a select; checked against a set (a CSV import validates many rows)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=timezone_choices, **kwargs)

    def valid_value(self, value: Any) -> bool:
        return value in _zones()


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(timezone_names())


class PreferencesForm(forms.ModelForm):
    interests = forms.CharField(
        required=False,
        max_length=MAX_CHARS,
        widget=forms.Textarea(
            attrs={
                "rows": 3,
                "placeholder": 'e.g. state space models, Mamba, "mixture of experts", -survey',
            }
        ),
        help_text='Comma-separated topics. "Quoted phrases" must appear as written; -word '
        "excludes. Leave empty for the top trending papers.",
    )
    timezone = TimezoneField(initial="UTC")

    class Meta:
        model = Subscriber
        fields = list(PREFERENCE_FIELDS)
        labels = {
            "delivery_hour": "Delivery hour (your time)",
            "max_papers": "Papers per digest",
            "weekday": "Day (weekly digests)",
        }
        widgets = {
            "delivery_hour": forms.Select(choices=[(h, f"{h:02d}:00") for h in range(24)]),
            "max_papers": forms.NumberInput(attrs={"min": 1, "max": 50}),
        }

    def clean_interests(self) -> str:
        text: str = self.cleaned_data.get("interests", "")
        try:
            parse_interests(text)
        except InterestError as error:
            raise ValidationError(str(error), code="interests") from None
        return text.strip()


class SubscribeForm(PreferencesForm):
    email = SingleLineEmailField(
        max_length=254,
        label="Email address",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    # A field people never see; bots fill it in. Named to look worth filling.
    website = forms.CharField(
        required=False,
        label="Leave this field empty",
        widget=forms.TextInput(attrs={"autocomplete": "off", "tabindex": "-1"}),
    )

    # ``email`` is deliberately not a model field of this form: the model's unique constraint
    # would then be checked here, and "already exists" would tell anyone who is subscribed.
    field_order = [
        "email",
        "interests",
        "frequency",
        "weekday",
        "delivery_hour",
        "timezone",
        "max_papers",
        "website",
    ]

    @property
    def is_bot(self) -> bool:
        return bool(self.data.get("website"))

    def preferences(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in PreferencesForm.Meta.fields}


class LinkRequestForm(forms.Form):
    email = SingleLineEmailField(
        max_length=254,
        label="Email address",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
