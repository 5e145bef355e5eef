"""Running in production: static files through WhiteNoise, the health endpoint, JSON logs and
the admin login's brute-force lockout."""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from digest.logs import JsonFormatter, RequestIdFilter
from tests.conftest import ROOT

pytestmark = pytest.mark.django_db


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    (tmp_path / "data").mkdir(exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DJANGO_DEBUG"}
    }
    env.update(
        {
            "PRODUCTION": "true",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(60),
            "DJANGO_ALLOWED_HOSTS": "digest.example.org",
            "DATA_DIR": str(tmp_path / "data"),
            "STATIC_ROOT": str(tmp_path / "static"),
            "DJANGO_SETTINGS_MODULE": "digest.settings",
            **extra,
        }
    )
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


# A WSGI request made by hand: what gunicorn hands the app, minus the server.
WSGI_PROBE = """
import io, json, sys
from digest.wsgi import application
path, host = sys.argv[1], sys.argv[2]
environ = {
    "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": host,
    "SERVER_PORT": "443", "HTTP_HOST": host, "wsgi.url_scheme": "https",
    "HTTP_X_FORWARDED_PROTO": "https", "HTTP_ACCEPT_ENCODING": "gzip",
    "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr, "wsgi.version": (1, 0),
    "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
    "SERVER_PROTOCOL": "HTTP/1.1",
}
answer = {}
def start_response(status, headers, exc_info=None):
    answer["status"] = int(status.split()[0])
    answer["headers"] = {k.lower(): v for k, v in headers}
body = b"".join(application(environ, start_response))
answer["length"] = len(body)
answer["body"] = body.decode("utf-8", "replace") if sys.argv[3] == "body" else ""
print(json.dumps(answer))
"""


def wsgi_get(
    env: dict[str, str], path: str, host: str = "digest.example.org", body: bool = False
) -> dict[str, Any]:
    mode = "body" if body else "headers"
    result = run([sys.executable, "-c", WSGI_PROBE, path, host, mode], env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- static files -----------------------------------------------------------------------------


def test_production_serves_hashed_compressed_static_files_with_long_caching(
    tmp_path: Path,
) -> None:
    env = production_env(tmp_path)
    collected = run([sys.executable, "manage.py", "collectstatic", "--noinput"], env)
    assert collected.returncode == 0, collected.stderr
    manifest = json.loads((tmp_path / "static" / "staticfiles.json").read_text())
    hashed = manifest["paths"]["css/site.css"]
    assert hashed != "css/site.css"  # a content hash in the name
    assert (tmp_path / "static" / (hashed + ".gz")).exists()

    answer = wsgi_get(env, f"/static/{hashed}")
    assert answer["status"] == 200
    assert "max-age=315360000" in answer["headers"]["cache-control"]
    assert "immutable" in answer["headers"]["cache-control"]
    assert answer["headers"]["content-encoding"] == "gzip"
    assert answer["headers"]["content-type"].startswith("text/css")

    assert wsgi_get(env, "/static/css/no-such-file.css")["status"] == 404
    # Pages link the hashed name: the manifest storage is what templates use.
    migrated = run([sys.executable, "manage.py", "migrate", "--noinput"], env)
    assert migrated.returncode == 0, migrated.stderr
    home = wsgi_get(env, "/", body=True)
    assert home["status"] == 200, home["body"][:500]
    assert f"/static/{hashed}" in home["body"]


# --- health ---------------------------------------------------------------------------------


@pytest.fixture
def filesystem_broker(filesystem_broker_options: dict[str, str], settings: Any) -> Path:
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = filesystem_broker_options
    return Path(filesystem_broker_options["data_folder_in"])


def test_healthz_answers_ok_with_the_embedded_broker(
    client: Client, filesystem_broker: Path, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(1):  # SELECT 1, and no session or auth work
        response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "broker": "ok"}
    assert response["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response and "Content-Security-Policy" not in response


def test_healthz_reports_a_missing_embedded_broker_folder(
    client: Client, filesystem_broker: Path
) -> None:
    filesystem_broker.rmdir()
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "broker": "failed"}


def test_healthz_answers_ok_with_the_real_redis(
    client: Client, redis_url: str, settings: Any
) -> None:
    settings.CELERY_BROKER_URL = redis_url
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_healthz_names_a_broken_broker_without_revealing_its_url(
    client: Client, settings: Any
) -> None:
    settings.CELERY_BROKER_URL = "redis://:hunter2secret@127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "broker": "failed"}
    text = response.content.decode()
    assert "hunter2secret" not in text and "127.0.0.1" not in text and ":1/" not in text


def test_healthz_names_a_database_that_does_not_answer(tmp_path: Path) -> None:
    """A real process whose database is a PostgreSQL server that is not there."""
    env = production_env(
        tmp_path,
        DATABASE_URL="postgres://digest:pw-not-shown@127.0.0.1:1/digest",
        PRODUCTION="false",
    )
    (tmp_path / "data" / "broker" / "queue").mkdir(parents=True)
    answer = wsgi_get(env, "/healthz", host="10.1.2.3", body=True)
    assert answer["status"] == 503
    body = json.loads(answer["body"])
    assert body["checks"] == {"database": "failed", "broker": "ok"}
    assert "pw-not-shown" not in answer["body"]


def test_healthz_is_reachable_by_ip_and_over_http_in_production(tmp_path: Path) -> None:
    """Load balancers probe by IP address and plain HTTP: no 400 for the host, no redirect."""
    env = production_env(tmp_path)
    (tmp_path / "data" / "broker" / "queue").mkdir(parents=True)
    migrated = run([sys.executable, "manage.py", "migrate", "--noinput"], env)
    assert migrated.returncode == 0, migrated.stderr
    probe = WSGI_PROBE.replace('"https"', '"http"').replace('"443"', '"80"')
    result = run([sys.executable, "-c", probe, "/healthz", "10.1.2.3", "body"], env)
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["status"] == 200, answer
    assert json.loads(answer["body"])["status"] == "ok"
    # Any other page still gets the host check and the HTTPS redirect.
    other = run([sys.executable, "-c", probe, "/", "10.1.2.3", "headers"], env)
    assert json.loads(other.stdout.strip().splitlines()[-1])["status"] == 400
    redirect = run([sys.executable, "-c", probe, "/", "digest.example.org", "headers"], env)
    assert json.loads(redirect.stdout.strip().splitlines()[-1])["status"] == 301


# --- logs -----------------------------------------------------------------------------------


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The JSON formatter of settings.LOGGING on the request logger, captured."""
    from django.conf import settings

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(settings.LOGGING["formatters"]["json"]["fmt"]))
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("digest.request")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def test_each_request_logs_one_json_line_with_its_request_id(
    client: Client, json_log: io.StringIO
) -> None:
    response = client.get("/manage/not-a-real-token/", HTTP_X_REQUEST_ID="lb-request-0001")
    assert response["X-Request-ID"] == "lb-request-0001"
    record = json.loads(json_log.getvalue().strip().splitlines()[-1])
    assert record["request_id"] == "lb-request-0001"
    assert record["level"] == "INFO" and record["logger"] == "digest.request"
    assert record["time"].endswith("Z") and "T" in record["time"]
    # The URL pattern is logged, never the path: paths carry signed tokens.
    assert record["message"].startswith("GET /manage/<str:token>/ 400")
    assert "not-a-real-token" not in json_log.getvalue()


def test_a_made_up_request_id_is_replaced(client: Client, json_log: io.StringIO) -> None:
    response = client.get("/", HTTP_X_REQUEST_ID='evil"\n{"level": "ERROR"}')
    assert len(response["X-Request-ID"]) == 32 and '"' not in response["X-Request-ID"]
    record = json.loads(json_log.getvalue().strip().splitlines()[-1])
    assert record["request_id"] == response["X-Request-ID"]
    assert record["message"].startswith("GET / 200")  # the home page's route is the empty one
    client.get("/no/such/page/")
    record = json.loads(json_log.getvalue().strip().splitlines()[-1])
    assert record["message"].startswith("GET (unmatched) 404")


def test_log_format_json_makes_every_record_a_json_object(tmp_path: Path) -> None:
    env = production_env(tmp_path, LOG_FORMAT="json", PRODUCTION="false")
    code = (
        "import django, logging; django.setup(); "
        "logging.getLogger('digest.test').warning('quote \" and\\nnewline %s', 42)"
    )
    result = run([sys.executable, "-c", code], env)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line, not only ours
    ours = [r for r in records if r["logger"] == "digest.test"]
    assert ours == [
        {
            "time": ours[0]["time"],
            "level": "WARNING",
            "logger": "digest.test",
            "message": 'quote " and\nnewline 42',
        }
    ]


def test_log_format_text_is_the_default_and_a_bad_value_fails(tmp_path: Path) -> None:
    code = "import django, logging; django.setup(); logging.getLogger('x').warning('plain')"
    plain = run([sys.executable, "-c", code], production_env(tmp_path, PRODUCTION="false"))
    assert plain.returncode == 0 and "WARNING x [-] plain" in plain.stderr
    bad = run([sys.executable, "-c", code], production_env(tmp_path, LOG_FORMAT="xml"))
    assert bad.returncode != 0 and "LOG_FORMAT" in bad.stderr


# --- admin login brute force ------------------------------------------------------------------


@pytest.fixture
def staff(settings: Any) -> User:
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(minutes=30)
    return User.objects.create_superuser("ops", "ops@example.org", "right-password-123")


def login(username: str, password: str, ip: str = "198.51.100.7", **headers: str) -> int:
    """POST the admin login form; returns the status (302: logged in)."""
    client = Client(REMOTE_ADDR=ip, **headers)
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password, "next": "/admin/"},
    )
    return response.status_code


def test_admin_login_locks_out_after_repeated_failures_until_cool_off(staff: User) -> None:
    assert login("ops", "right-password-123") == 302
    for _ in range(2):
        assert login("ops", "wrong") == 200  # the form again, with an error
    assert login("ops", "wrong") == 429  # the third failure locks
    # Locked: even the right password is refused now, from that address.
    assert login("ops", "right-password-123") == 429
    assert login("ops", "wrong") == 429
    # Other people, and the same user from elsewhere, are not locked out.
    User.objects.create_user("editor", "e@example.org", "editor-password-123", is_staff=True)
    assert login("editor", "editor-password-123") == 302
    assert login("ops", "right-password-123", ip="203.0.113.9") == 302
    # After the cool-off the right password works again.
    with time_machine.travel(timezone.now() + timedelta(minutes=31)):
        assert login("ops", "right-password-123") == 302


def test_behind_a_proxy_each_client_has_its_own_count_and_cannot_forge_another(
    staff: User, settings: Any
) -> None:
    """Behind one reverse proxy every request comes from the proxy's address: the lockout must
    count the client's (the last X-Forwarded-For entry), or one attacker locks out everyone."""
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = "10.0.0.2"
    for _ in range(3):
        login("ops", "wrong", ip=proxy, HTTP_X_FORWARDED_FOR="198.51.100.66")
    assert login("ops", "right-password-123", ip=proxy, HTTP_X_FORWARDED_FOR="198.51.100.66") == 429
    # The operator, through the same proxy from their own address, is not locked out.
    assert login("ops", "right-password-123", ip=proxy, HTTP_X_FORWARDED_FOR="203.0.113.9") == 302
    # The attacker cannot escape the lock by prepending a made-up address.
    forged = "192.0.2.1, 198.51.100.66"
    assert login("ops", "right-password-123", ip=proxy, HTTP_X_FORWARDED_FOR=forged) == 429


def test_client_ip_trusts_only_as_many_forwarded_entries_as_there_are_proxies(
    settings: Any, rf: Any
) -> None:
    from digest.clientip import client_ip

    def ip(remote: str, forwarded: str | None = None) -> str:
        headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
        return client_ip(rf.get("/", REMOTE_ADDR=remote, **headers))

    settings.TRUSTED_PROXY_COUNT = 0  # exposed directly: the header is the client's to forge
    assert ip("198.51.100.7", "192.0.2.1") == "198.51.100.7"
    settings.TRUSTED_PROXY_COUNT = 1
    assert ip("10.0.0.2", "192.0.2.1, 198.51.100.7") == "198.51.100.7"
    assert ip("10.0.0.2", "198.51.100.7") == "198.51.100.7"
    assert ip("10.0.0.2") == "10.0.0.2"  # not through the proxy (a probe from inside)
    assert ip("10.0.0.2", "not-an-address") == "10.0.0.2"
    settings.TRUSTED_PROXY_COUNT = 2  # e.g. a CDN in front of nginx
    assert ip("10.0.0.2", "192.0.2.1, 198.51.100.7, 172.16.0.9") == "198.51.100.7"


def test_rate_limits_count_an_ipv6_client_by_its_64_network(rf: Any) -> None:
    from digest.clientip import client_network

    def network(remote: str) -> str:
        return client_network(rf.get("/", REMOTE_ADDR=remote))

    assert network("2001:db8:1:2:aaaa::1") == network("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert network("2001:db8:1:3::1") != network("2001:db8:1:2::1")
    assert network("198.51.100.7") == "198.51.100.7"
    assert network("::ffff:198.51.100.7") == "198.51.100.7"  # an IPv4 client on a v6 socket


def test_signups_from_one_ipv6_network_share_one_limit(
    client: Client, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("subscriptions.tasks.process_signup.delay", lambda *a: None)
    settings.SIGNUP_LIMIT_PER_IP = 2
    form = {
        "interests": "graphs",
        "frequency": "daily",
        "weekday": 0,
        "delivery_hour": 8,
        "timezone": "UTC",
        "max_papers": 10,
    }
    codes = [
        Client(REMOTE_ADDR=f"2001:db8:1:2::{i + 1}")
        .post("/subscribe/", {**form, "email": f"u{i}@example.org"})
        .status_code
        for i in range(3)
    ]
    assert codes == [302, 302, 429]


def test_a_successful_login_resets_the_failure_count(staff: User) -> None:
    for _ in range(2):
        assert login("ops", "wrong") == 200
    assert login("ops", "right-password-123") == 302
    for _ in range(2):
        assert login("ops", "wrong") == 200
    assert login("ops", "right-password-123") == 302


def test_lockout_settings_come_from_the_environment(tmp_path: Path) -> None:
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.AXES_FAILURE_LIMIT, int(s.AXES_COOLOFF_TIME.total_seconds()), "
        "s.AXES_LOCKOUT_PARAMETERS)"
    )
    env = production_env(tmp_path, ADMIN_LOGIN_FAILURE_LIMIT="7", ADMIN_LOGIN_COOLOFF_MINUTES="15")
    result = run([sys.executable, "-c", code], env)
    assert result.stdout.split("\n")[0] == "7 900 [['username', 'ip_address']]", result.stderr
