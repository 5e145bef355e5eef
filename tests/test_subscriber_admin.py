"""Subscriber admin: list, filters, status actions, CSV export and import, permissions, escaping."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpResponse, StreamingHttpResponse
from django.test import Client

from digest.celery import app
from subscriptions import csv_io, services, tasks
from subscriptions.models import Subscriber
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/subscriptions/subscriber/"
IMPORT = CHANGELIST + "import/"
EXPORT = CHANGELIST + "export/"
XSS = "<script>alert(1)</script>"


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Ids handed to the confirmation task, instead of a broker."""
    ids: list[int] = []
    monkeypatch.setattr(tasks.send_confirmation, "delay", ids.append)
    return ids


@pytest.fixture
def commit(django_capture_on_commit_callbacks: Any) -> Callable[[], Any]:
    """Run on_commit callbacks as a real commit would (the test itself runs in a transaction)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def sent_mail(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[list[tuple]]:
    """Celery runs tasks in-process and the mail helper records what it would send."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.CELERY_TASK_ALWAYS_EAGER = True
    calls: list[tuple] = []
    monkeypatch.setattr(services.emails, "send", lambda *args, **kw: calls.append(args))
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield calls
    app.conf.task_always_eager = previous


def upload(text: str | bytes, name: str = "people.csv") -> SimpleUploadedFile:
    data = text.encode() if isinstance(text, str) else text
    return SimpleUploadedFile(name, data, content_type="text/csv")


def import_csv(client: Client, text: str | bytes, consented: bool = False) -> HttpResponse:
    data: dict[str, Any] = {"file": upload(text)}
    if consented:
        data["consented"] = "on"
    return client.post(IMPORT, data)


def act(client: Client, action: str, subscribers: list[Subscriber]) -> HttpResponse:
    selected = [s.pk for s in subscribers]
    return client.post(CHANGELIST, {"action": action, "_selected_action": selected}, follow=True)


def read_csv(response: StreamingHttpResponse) -> list[dict[str, str]]:
    body = b"".join(response.streaming_content).decode("utf-8-sig")  # type: ignore[arg-type]
    return list(csv.DictReader(io.StringIO(body, newline="")))


def status_of(email: str) -> str:
    return Subscriber.objects.get(email=email).status


# --- list -----------------------------------------------------------------------------------


def test_change_list_searches_address_and_interests(admin_client: Client) -> None:
    SubscriberFactory(email="ada@example.org", interests="mamba")
    SubscriberFactory(email="alan@example.org", interests="diffusion models")
    by_address = admin_client.get(CHANGELIST, {"q": "ada@"}).content.decode()
    assert "ada@example.org" in by_address and "alan@example.org" not in by_address
    by_interest = admin_client.get(CHANGELIST, {"q": "diffusion"}).content.decode()
    assert "alan@example.org" in by_interest and "ada@example.org" not in by_interest


@pytest.mark.parametrize(
    ("params", "shown", "hidden"),
    [
        ({"status__exact": "paused"}, "paused@example.org", "daily@example.org"),
        ({"frequency__exact": "weekly"}, "weekly@example.org", "daily@example.org"),
        ({"timezone": "Europe/Berlin"}, "berlin@example.org", "daily@example.org"),
        ({"created_at__year": "2023"}, "old@example.org", "daily@example.org"),
    ],
)
def test_change_list_filters(
    admin_client: Client, params: dict[str, str], shown: str, hidden: str
) -> None:
    SubscriberFactory(email="daily@example.org")
    SubscriberFactory(email="paused@example.org", status=Subscriber.Status.PAUSED)
    SubscriberFactory(email="weekly@example.org", frequency=Subscriber.Frequency.WEEKLY)
    SubscriberFactory(email="berlin@example.org", timezone="Europe/Berlin")
    old = SubscriberFactory(email="old@example.org")
    Subscriber.objects.filter(pk=old.pk).update(created_at=datetime(2023, 5, 1, tzinfo=UTC))
    body = admin_client.get(CHANGELIST, params).content.decode()
    assert shown in body and hidden not in body


def test_timezone_filter_offers_only_zones_in_use(admin_client: Client) -> None:
    SubscriberFactory(timezone="Europe/Berlin")
    SubscriberFactory(timezone="America/Chicago")
    body = admin_client.get(CHANGELIST).content.decode()
    assert "?timezone=Europe%2FBerlin" in body and "?timezone=America%2FChicago" in body
    assert "?timezone=Asia%2FTokyo" not in body


def test_change_list_shortens_long_interests(admin_client: Client) -> None:
    SubscriberFactory(interests="quantization, " * 20)
    body = admin_client.get(CHANGELIST).content.decode()
    assert "quantization, " * 20 not in body and "…" in body


def test_change_list_links_to_import_and_export(admin_client: Client) -> None:
    body = admin_client.get(CHANGELIST).content.decode()
    assert f'href="{IMPORT}"' in body and f'href="{EXPORT}"' in body


# --- actions --------------------------------------------------------------------------------


def test_pause_action_pauses_confirmed_and_skips_others(admin_client: Client) -> None:
    confirmed = SubscriberFactory()
    pending = SubscriberFactory(status=Subscriber.Status.PENDING)
    body = act(admin_client, "pause_selected", [confirmed, pending]).content.decode()
    assert status_of(confirmed.email) == "paused" and status_of(pending.email) == "pending"
    assert "Paused 1 subscriber." in body and "Skipped 1" in body


def test_resume_action_confirms_paused_and_never_revives_who_left(admin_client: Client) -> None:
    paused = SubscriberFactory(status=Subscriber.Status.PAUSED)
    pending = SubscriberFactory(status=Subscriber.Status.PENDING)
    left = SubscriberFactory(status=Subscriber.Status.UNSUBSCRIBED)
    body = act(admin_client, "resume_selected", [paused, pending, left]).content.decode()
    assert status_of(paused.email) == "confirmed" and status_of(pending.email) == "pending"
    assert status_of(left.email) == "unsubscribed"
    assert "Resumed 1 subscriber." in body and "Skipped 2" in body


def test_unsubscribe_action_records_when(admin_client: Client) -> None:
    people = [SubscriberFactory(), SubscriberFactory(status=Subscriber.Status.PAUSED)]
    body = act(admin_client, "unsubscribe_selected", people).content.decode()
    assert "Unsubscribed 2 subscribers." in body
    for person in people:
        person.refresh_from_db()
        assert person.status == "unsubscribed" and person.unsubscribed_at is not None


def test_resend_confirmation_queues_only_pending(
    admin_client: Client, queued: list[int], commit: Callable[[], Any]
) -> None:
    pending = [SubscriberFactory(status=Subscriber.Status.PENDING) for _ in range(2)]
    confirmed = SubscriberFactory()
    with commit():
        body = act(admin_client, "resend_confirmation", [*pending, confirmed]).content.decode()
    assert sorted(queued) == sorted(p.pk for p in pending)
    assert "Queued 2 confirmation mails; skipped 1 not pending." in body


def test_resend_confirmation_mails_through_the_task(
    admin_client: Client, sent_mail: list[tuple], commit: Callable[[], Any]
) -> None:
    pending = SubscriberFactory(status=Subscriber.Status.PENDING, email="wait@example.org")
    with commit():
        act(admin_client, "resend_confirmation", [pending, SubscriberFactory()])
    assert [(to, template) for to, template, *_ in sent_mail] == [("wait@example.org", "confirm")]


# --- export ---------------------------------------------------------------------------------


def test_export_all_has_every_column(admin_client: Client) -> None:
    SubscriberFactory(
        email="ada@example.org",
        interests="mamba",
        timezone="Europe/Berlin",
        weekday=Subscriber.Weekday.FRIDAY,
    )
    response = admin_client.get(EXPORT)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    [row] = read_csv(response)
    assert list(row) == list(csv_io.EXPORT_COLUMNS)
    assert row["email"] == "ada@example.org" and row["timezone"] == "Europe/Berlin"
    assert row["weekday"] == "4" and row["status"] == "confirmed" and row["unsubscribed_at"] == ""
    assert row["confirmed_at"].startswith("2024-03-11T12:00:00")


def test_export_selected_contains_only_selection(admin_client: Client) -> None:
    chosen, _other = SubscriberFactory(), SubscriberFactory()
    response = admin_client.post(
        CHANGELIST, {"action": "export_selected", "_selected_action": [chosen.pk]}
    )
    assert [row["email"] for row in read_csv(response)] == [chosen.email]


@pytest.mark.parametrize(
    "formula", ['=HYPERLINK("http://x")', "+1+1", "-survey", "@SUM(A1)", "\tcmd", "\rcmd"]
)
def test_export_neutralizes_formulas(admin_client: Client, formula: str) -> None:
    Subscriber.objects.create(email="f@example.org", interests=formula)
    [row] = read_csv(admin_client.get(EXPORT))
    assert row["interests"] == "'" + formula


def test_exported_file_imports_back_with_exclusions_intact(
    admin_client: Client, queued: list[int]
) -> None:
    SubscriberFactory(email="round@example.org", interests="mamba -survey")
    exported = b"".join(admin_client.get(EXPORT).streaming_content).decode("utf-8-sig")
    Subscriber.objects.all().delete()
    columns = ",".join(csv_io.IMPORT_COLUMNS)
    rows = [
        {k: r[k] for k in csv_io.IMPORT_COLUMNS}
        for r in csv.DictReader(io.StringIO(exported, newline=""))
    ]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns.split(","))
    writer.writeheader()
    writer.writerows(rows)
    import_csv(admin_client, out.getvalue())
    assert Subscriber.objects.get().interests == "mamba -survey"


# --- import ---------------------------------------------------------------------------------


def test_import_creates_pending_and_queues_a_confirmation_each(
    admin_client: Client, queued: list[int], commit: Callable[[], Any]
) -> None:
    text = (
        "email,interests,frequency,weekday,delivery_hour,timezone,max_papers\n"
        "ada@EXAMPLE.org,mamba,weekly,friday,7,Europe/Berlin,5\n"
        "alan@example.org,,,,,,\n"
    )
    with commit():
        body = import_csv(admin_client, text).content.decode()
    ada = Subscriber.objects.get(email="ada@example.org")
    assert (ada.status, ada.source, ada.frequency, ada.weekday, ada.delivery_hour) == (
        "pending",
        "import",
        "weekly",
        4,
        7,
    )
    assert (ada.timezone, ada.max_papers, ada.interests, ada.confirmed_at) == (
        "Europe/Berlin",
        5,
        "mamba",
        None,
    )
    alan = Subscriber.objects.get(email="alan@example.org")
    assert (alan.frequency, alan.timezone, alan.max_papers, alan.delivery_hour) == (
        "daily",
        "UTC",
        10,
        8,
    )
    assert sorted(queued) == sorted([ada.pk, alan.pk])
    assert "Imported: 2" in body and "2 confirmation mails queued" in body


def test_import_sends_confirmation_through_the_service(
    admin_client: Client, sent_mail: list[tuple], commit: Callable[[], Any]
) -> None:
    with commit():
        import_csv(admin_client, "email\nnew@example.org\n")
    assert [(to, template) for to, template, *_ in sent_mail] == [("new@example.org", "confirm")]
    assert Subscriber.objects.get().confirmations_sent == 1


def test_consented_import_confirms_without_mail(
    admin_client: Client, queued: list[int], commit: Callable[[], Any]
) -> None:
    with commit():
        body = import_csv(admin_client, "email\nyes@example.org\n", consented=True).content
    person = Subscriber.objects.get()
    assert (person.status, person.source) == ("confirmed", "import")
    assert person.confirmed_at is not None and queued == []
    assert b"no mail sent" in body


def test_import_form_leaves_consent_unchecked(admin_client: Client) -> None:
    page = admin_client.get(IMPORT)
    assert page.status_code == 200
    body = page.content.decode()
    assert "These people already consented to receive the digest" in body
    assert 'name="consented"' in body and "checked" not in body


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("not-an-address,", "email: Enter a valid email address."),
        ('"a@example.org\r\nBcc: x@evil.test",', "email: Line breaks are not allowed here."),
        ("tz@example.org,,Mars/Olympus", "timezone: Select a valid choice."),
        ("freq@example.org,,,hourly", "frequency: Select a valid choice."),
        ('stop@example.org,"the, of"', "interests: "),
        ("zero@example.org,,,,0", "max_papers: Ensure this value is greater than or equal to 1"),
        (",mamba", "email: This field is required."),
        ("extra@example.org,a,UTC,daily,5,surplus", "6 cells but the header has 5 columns"),
    ],
)
def test_import_reports_bad_rows_with_reason(
    admin_client: Client, queued: list[int], row: str, reason: str
) -> None:
    text = f"email,interests,timezone,frequency,max_papers\ngood@example.org,mamba\n{row}\n"
    report = csv_io.import_rows(io.BytesIO(text.encode()), consented=False)
    assert report.created == ["good@example.org"]
    [error] = report.errors
    assert error.row == 3 and reason in error.reason
    body = import_csv(admin_client, text.replace("good@", "good2@")).content.decode()
    assert "Rows with errors (not imported): 1" in body and "<td>3</td>" in body


def test_import_reports_every_row_that_repeats_a_bad_value(queued: list[int]) -> None:
    text = "email,timezone\na@example.org,Mars/Olympus\nb@example.org,Mars/Olympus\n"
    report = csv_io.import_rows(io.BytesIO(text.encode()), consented=False)
    assert [(e.row, e.email) for e in report.errors] == [(2, "a@example.org"), (3, "b@example.org")]
    assert report.created == []


def test_import_of_an_empty_file_says_so() -> None:
    with pytest.raises(csv_io.CsvImportError, match=r"The file is empty\."):
        csv_io.import_rows(io.BytesIO(b"\xef\xbb\xbf"), consented=False)


def test_import_skips_existing_addresses_unchanged(admin_client: Client, queued: list[int]) -> None:
    old = SubscriberFactory(
        email="Known@example.org", interests="mamba", status=Subscriber.Status.UNSUBSCRIBED
    )
    body = import_csv(
        admin_client, "email,interests\nknown@EXAMPLE.org,diffusion\nfresh@example.org,\n"
    ).content.decode()
    old.refresh_from_db()
    assert (old.email, old.interests, old.status) == ("Known@example.org", "mamba", "unsubscribed")
    assert Subscriber.objects.count() == 2
    assert "Already subscribed (skipped, unchanged): 1" in body


def test_import_duplicate_rows_first_wins(queued: list[int]) -> None:
    text = "email,interests\nsame@example.org,mamba\nSAME@example.org,diffusion\n"
    report = csv_io.import_rows(io.BytesIO(text.encode()), consented=False)
    assert report.duplicates == 1 and Subscriber.objects.get().interests == "mamba"


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_import_reads_utf8_with_or_without_bom(queued: list[int], bom: bytes) -> None:
    data = bom + "email,interests\nzoe@example.org,réseaux de neurones\n".encode()
    report = csv_io.import_rows(io.BytesIO(data), consented=False)
    assert report.errors == [] and Subscriber.objects.get().interests == "réseaux de neurones"


def test_import_accepts_windows_line_endings_and_blank_lines(queued: list[int]) -> None:
    data = b"Email\r\na@example.org\r\n\r\nb@example.org\r\n,\r\n"
    report = csv_io.import_rows(io.BytesIO(data), consented=False)
    assert len(report.created) == 2 and report.errors == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"PK\x03\x04\x14\x00\x06\x00binary", "not a CSV text file"),
        ("email\nlatin1@example.org,caf\xe9\n".encode("latin-1"), "not UTF-8"),
        (b"", "file is empty"),
        (b"address,name\nx@example.org,X\n", "must be a header with an “email” column"),
        (b"email,status\nx@example.org,confirmed\n", "Unknown columns: status"),
        (b"email,Email\nx@example.org,y@example.org\n", "appears twice"),
    ],
)
def test_import_rejects_unusable_files_clearly(
    admin_client: Client, data: bytes, message: str
) -> None:
    body = import_csv(admin_client, data).content.decode()
    assert message in body
    assert Subscriber.objects.count() == 0


def test_import_rejects_files_over_the_size_limit(admin_client: Client) -> None:
    big = b"email\n" + b"a@example.org\n" * (csv_io.MAX_IMPORT_BYTES // 14 + 1)
    body = import_csv(admin_client, big).content.decode()
    assert "larger than 2 MB" in body and Subscriber.objects.count() == 0
    with pytest.raises(csv_io.CsvImportError, match="larger than 2 MB"):
        csv_io.import_rows(io.BytesIO(big), consented=False)


def test_import_is_all_or_nothing_on_a_database_error(
    queued: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import IntegrityError

    def clash(*args: Any, **kwargs: Any) -> None:
        Subscriber.objects.create(email="first@example.org")
        raise IntegrityError("duplicate key")

    monkeypatch.setattr(Subscriber.objects, "bulk_create", clash)
    with pytest.raises(csv_io.CsvImportError, match="Nothing was imported"):
        csv_io.import_rows(io.BytesIO(b"email\nfirst@example.org\n"), consented=False)
    assert Subscriber.objects.count() == 0 and queued == []


# --- permissions ----------------------------------------------------------------------------


def staff_with(*codenames: str) -> Client:
    user = User.objects.create_user("clerk", "clerk@example.org", "pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def test_staff_without_add_permission_cannot_import(queued: list[int]) -> None:
    client = staff_with("view_subscriber", "change_subscriber")
    assert client.get(IMPORT).status_code == 403
    assert import_csv(client, "email\nx@example.org\n").status_code == 403
    assert Subscriber.objects.count() == 0
    assert (
        'href="/admin/subscriptions/subscriber/import/"'
        not in client.get(CHANGELIST).content.decode()
    )


def test_export_needs_view_permission() -> None:
    SubscriberFactory()
    assert staff_with().get(EXPORT).status_code == 403
    User.objects.all().delete()
    assert staff_with("view_subscriber").get(EXPORT).status_code == 200


def test_anonymous_users_are_sent_to_login(client: Client) -> None:
    for url in (IMPORT, EXPORT):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


# --- escaping -------------------------------------------------------------------------------


def test_imported_script_is_escaped_in_change_list_and_report(
    admin_client: Client, queued: list[int]
) -> None:
    text = (
        f'email,interests\nxss@example.org,"{XSS}"\n"{XSS}@x",mamba\nbad@example.org,"{XSS}, the"\n'
    )
    report_page = import_csv(admin_client, text).content.decode()
    assert Subscriber.objects.get(email="xss@example.org").interests == XSS
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report_page
    assert XSS not in report_page
    change_list = admin_client.get(CHANGELIST).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in change_list and XSS not in change_list


# --- change form ----------------------------------------------------------------------------


def test_adding_by_hand_validates_like_signup_and_queues_confirmation(
    admin_client: Client, queued: list[int], commit: Callable[[], Any]
) -> None:
    form = {
        "email": "hand@example.org",
        "interests": "the, of",
        "frequency": "daily",
        "weekday": 0,
        "delivery_hour": 8,
        "timezone": "UTC",
        "max_papers": 10,
    }
    rejected = admin_client.post(CHANGELIST + "add/", form)
    assert rejected.status_code == 200 and Subscriber.objects.count() == 0
    with commit():
        admin_client.post(CHANGELIST + "add/", {**form, "interests": "mamba"})
    person = Subscriber.objects.get()
    assert (person.status, person.source) == ("pending", "admin") and queued == [person.pk]


def test_changing_an_address_by_hand_asks_the_new_one_to_confirm(
    admin_client: Client, queued: list[int], commit: Callable[[], Any]
) -> None:
    """The new address gave no consent: it is pending (no digest) until it confirms; other
    edits leave a confirmed subscriber confirmed."""
    person = SubscriberFactory(email="old@example.org", interests="mamba")
    form = {
        "email": "old@example.org",
        "interests": "mamba, state space models",
        "frequency": "daily",
        "weekday": 0,
        "delivery_hour": 8,
        "timezone": "UTC",
        "max_papers": 10,
    }
    with commit():
        admin_client.post(f"{CHANGELIST}{person.pk}/change/", form)
    person.refresh_from_db()
    assert person.status == "confirmed" and person.interests == "mamba, state space models"
    assert queued == []
    with commit():
        page = admin_client.post(
            f"{CHANGELIST}{person.pk}/change/", {**form, "email": "new@example.org"}, follow=True
        )
    person.refresh_from_db()
    assert (person.email, person.status) == ("new@example.org", "pending")
    assert person.confirmed_at is None
    assert queued == [person.pk] and b"gets a confirmation mail" in page.content


def test_adding_an_address_that_exists_in_another_case_says_so(
    admin_client: Client, queued: list[int]
) -> None:
    SubscriberFactory(email="ada@example.org")
    form = {
        "email": "ADA@example.org",
        "interests": "mamba",
        "frequency": "daily",
        "weekday": 0,
        "delivery_hour": 8,
        "timezone": "UTC",
        "max_papers": 10,
    }
    page = admin_client.post(CHANGELIST + "add/", form)
    assert page.status_code == 200 and "exists already" in page.content.decode()
    assert Subscriber.objects.count() == 1 and queued == []
