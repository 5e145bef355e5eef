"""Subscriber CSV import and export, for the admin (kept out of it so it can be read and tested
on its own).

Import validates every row with the same form logic as the signup page, so a file can never
create a subscriber the site itself would have refused. Export is for spreadsheets: cells that a
spreadsheet would run as a formula are neutralised (interests are text anyone can type).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Protocol

from django import forms
from django.db import IntegrityError, models, transaction
from django.db.models import QuerySet
from django.db.models.functions import Lower
from django.utils import timezone

from subscriptions import services, tasks
from subscriptions.forms import PreferencesForm, SingleLineEmailField
from subscriptions.models import PREFERENCE_FIELDS, Subscriber

log = logging.getLogger(__name__)

MAX_IMPORT_BYTES = 2 * 1024 * 1024
PREFERENCE_COLUMNS = PREFERENCE_FIELDS
IMPORT_COLUMNS = ("email", *PREFERENCE_COLUMNS)
EXPORT_COLUMNS = (
    "email",
    "status",
    *PREFERENCE_COLUMNS,
    "source",
    "created_at",
    "confirmed_at",
    "unsubscribed_at",
)
# What a spreadsheet reads as the start of a formula (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
WEEKDAYS = {
    name: value
    for value, label in Subscriber.Weekday.choices
    for name in (label.lower(), label.lower()[:3])
}
LOOKUP_CHUNK = 500
SUPPRESSED = (
    "refused: this address was deleted after repeated delivery failures and stays suppressed; "
    "its owner can sign up again on the site"
)


class CsvImportError(ValueError):
    """The file as a whole cannot be imported; the message is for the operator."""


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


@dataclass(frozen=True)
class RowError:
    row: int
    email: str
    reason: str


@dataclass
class ImportReport:
    consented: bool
    created: list[str] = field(default_factory=list)
    existing: int = 0
    duplicates: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def confirmations_queued(self) -> int:
        return 0 if self.consented else len(self.created)


@dataclass(frozen=True)
class _Row:
    email: str
    preferences: dict[str, Any]
    number: int = 0


# --- export ---------------------------------------------------------------------------------


def neutralize(value: str) -> str:
    """Prefix an apostrophe so a spreadsheet shows the cell as text instead of running it."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return neutralize(str(value))


class _Echo:
    """A file-like object whose write returns the line, so csv.writer can feed a stream."""

    def write(self, value: str) -> str:
        return value


def export_rows(queryset: QuerySet[Subscriber]) -> Iterator[str]:
    """CSV lines (with a UTF-8 BOM first, so spreadsheets read non-ASCII text correctly)."""
    writer = csv.writer(_Echo())
    yield "\ufeff" + writer.writerow(EXPORT_COLUMNS)
    for subscriber in queryset.iterator(chunk_size=1000):
        yield writer.writerow([_cell(getattr(subscriber, name)) for name in EXPORT_COLUMNS])


# --- import: reading the file ---------------------------------------------------------------


def _decode(file: Readable) -> str:
    data = file.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        raise CsvImportError(f"The file is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB.")
    if b"\x00" in data:
        raise CsvImportError(
            "This is not a CSV text file (it contains binary data). Save the "
            "sheet as “CSV UTF-8 (comma delimited)” and upload that."
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CsvImportError(
            "The file is not UTF-8 text. Save it as “CSV UTF-8 (comma "
            "delimited)” and upload it again."
        ) from None


def _header(reader: Iterator[list[str]]) -> list[str]:
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        raise CsvImportError("The file is empty.") from None
    except csv.Error as error:
        raise CsvImportError(f"The header row is not valid CSV: {error}.") from None
    if "email" not in header:
        raise CsvImportError(
            "The first row must be a header with an “email” column (columns "
            f"are separated by commas). Allowed: {', '.join(IMPORT_COLUMNS)}."
        )
    unknown = [name for name in header if name not in IMPORT_COLUMNS]
    if unknown:
        raise CsvImportError(
            f"Unknown columns: {', '.join(unknown)}. Allowed: {', '.join(IMPORT_COLUMNS)}."
        )
    if len(set(header)) != len(header):
        raise CsvImportError("A column name appears twice in the header row.")
    return header


def _records(text: str) -> Iterator[tuple[int, dict[str, str] | str]]:
    """(row number as a spreadsheet shows it, cells by column, or why the row is unreadable)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = _header(reader)
    number = 1
    while True:
        number += 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield number, f"not valid CSV: {error}"
            continue
        if not any(cell.strip() for cell in cells):
            continue  # blank lines, as spreadsheets leave at the end
        if len(cells) > len(header):
            yield number, f"{len(cells)} cells but the header has {len(header)} columns"
            continue
        yield number, dict(zip(header, cells, strict=False))


# --- import: validating rows ----------------------------------------------------------------


def _unneutralize(value: str) -> str:
    """Undo what export_rows did, so an exported "-survey" comes back as an exclusion."""
    value = value.strip()
    return value[1:] if value[:1] == "'" and value[1:].startswith(FORMULA_STARTS) else value


def _default(name: str) -> Any:
    model_field = Subscriber._meta.get_field(name)
    assert isinstance(model_field, models.Field)
    return model_field.get_default()


def _preference_data(cells: dict[str, str]) -> tuple[tuple[str, Any], ...]:
    """Form data for PreferencesForm: blank or missing cells take the model's defaults."""
    data: dict[str, Any] = {}
    for name in PREFERENCE_COLUMNS:
        value = _unneutralize(cells.get(name) or "")
        if name in ("frequency", "weekday"):
            value = value.lower()
        data[name] = value or _default(name)
    data["weekday"] = WEEKDAYS.get(str(data["weekday"]), data["weekday"])
    return tuple(data.items())


def _form_reason(form: forms.BaseForm) -> str:
    return "; ".join(
        f"{name}: {' '.join(map(str, messages))}" for name, messages in form.errors.items()
    )


def _check_preferences(data: tuple[tuple[str, Any], ...]) -> dict[str, Any] | str:
    """Cleaned preferences, or why they are refused (the signup page's rules)."""
    form = PreferencesForm(data=dict(data))
    if not form.is_valid():
        return _form_reason(form)
    return {name: form.cleaned_data[name] for name in PREFERENCE_COLUMNS}


class _Validator:
    """Validates rows; each distinct set of preferences is checked once per file, because the
    form costs milliseconds (it scans every time zone) and most files repeat their values."""

    def __init__(self) -> None:
        self.email_field = SingleLineEmailField(max_length=254)
        self.checked: dict[tuple[tuple[str, Any], ...], dict[str, Any] | str] = {}

    def __call__(self, number: int, cells: dict[str, str] | str) -> _Row | RowError:
        if isinstance(cells, str):
            return RowError(number, "", cells)
        raw_email = _unneutralize(cells.get("email") or "")
        try:
            email = self.email_field.clean(raw_email)
        except forms.ValidationError as error:
            return RowError(number, raw_email, f"email: {' '.join(error.messages)}")
        data = _preference_data(cells)
        if data not in self.checked:
            self.checked[data] = _check_preferences(data)
        preferences = self.checked[data]
        if isinstance(preferences, str):
            return RowError(number, email, preferences)
        return _Row(email, preferences, number)


def _valid_rows(text: str, report: ImportReport) -> list[_Row]:
    """Rows that may be imported, first occurrence of each address only; errors go to report."""
    rows: dict[str, _Row] = {}
    validate = _Validator()
    for number, cells in _records(text):
        result = validate(number, cells)
        if isinstance(result, RowError):
            report.errors.append(result)
        elif result.email.lower() in rows:
            report.duplicates += 1
        else:
            rows[result.email.lower()] = result
    return list(rows.values())


# --- import: writing ------------------------------------------------------------------------


def _existing(addresses: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(addresses), LOOKUP_CHUNK):
        chunk = addresses[start : start + LOOKUP_CHUNK]
        found.update(
            Subscriber.objects.annotate(address=Lower("email"))
            .filter(address__in=chunk)
            .values_list("address", flat=True)
        )
    return found


def _new_subscriber(row: _Row, consented: bool, now: datetime) -> Subscriber:
    status = Subscriber.Status.CONFIRMED if consented else Subscriber.Status.PENDING
    return Subscriber(
        email=row.email,
        source=Subscriber.Source.IMPORT,
        status=status,
        confirmed_at=now if consented else None,
        **row.preferences,
    )


def _create(rows: Iterable[_Row], consented: bool) -> list[Subscriber]:
    now = timezone.now()
    created = Subscriber.objects.bulk_create(
        [_new_subscriber(row, consented, now) for row in rows], batch_size=LOOKUP_CHUNK
    )
    if not consented:
        for subscriber in created:
            transaction.on_commit(partial(tasks.send_confirmation.delay, subscriber.pk))
    return created


def _refuse_suppressed(rows: list[_Row], report: ImportReport) -> list[_Row]:
    """Addresses a deleted subscriber left suppressed are reported, not imported."""
    suppressed = services.suppressed_among([row.email for row in rows])
    if not suppressed:
        return rows
    refused = [row for row in rows if services.normalize_address(row.email) in suppressed]
    report.errors.extend(RowError(row.number, row.email, SUPPRESSED) for row in refused)
    report.errors.sort(key=lambda error: error.row)
    return [row for row in rows if row not in refused]


def import_rows(file: Readable, consented: bool) -> ImportReport:
    """Import subscribers from a CSV file in one transaction; never changes existing ones.

    New addresses become pending and get a confirmation mail once the transaction commits, or,
    when the operator states they already consented, confirmed without any mail.
    """
    report = ImportReport(consented=consented)
    rows = _refuse_suppressed(_valid_rows(_decode(file), report), report)
    try:
        with transaction.atomic():
            existing = _existing([row.email.lower() for row in rows])
            report.existing = len(existing)
            created = _create([r for r in rows if r.email.lower() not in existing], consented)
    except IntegrityError:
        # Someone signed up with one of these addresses while the file was being imported.
        raise CsvImportError(
            "An address in the file was added by someone else during the import. Nothing was "
            "imported; please upload the file again."
        ) from None
    report.created = [subscriber.email for subscriber in created]
    log.info(
        "CSV import: %d created (consented=%s), %d existing, %d duplicates, %d errors",
        len(report.created),
        consented,
        report.existing,
        report.duplicates,
        len(report.errors),
    )
    return report
