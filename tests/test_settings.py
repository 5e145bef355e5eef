"""Settings from the environment: embedded defaults, URL forms, loud failures on bad values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from digest.env import ConfigError, env_bool, env_int, env_list
from tests.conftest import ROOT

PROBE = """
import json, django
from django.conf import settings
django.setup()
db = settings.DATABASES["default"]
print(json.dumps({"engine": db["ENGINE"], "name": str(db["NAME"]), "host": db.get("HOST", ""),
                  "port": db.get("PORT", ""), "user": db.get("USER", ""),
                  "broker": settings.CELERY_BROKER_URL,
                  "cache": settings.CACHES["default"]["BACKEND"],
                  "email": settings.EMAIL_BACKEND, "inbox": str(settings.INBOX_DIR),
                  "sources": settings.SOURCE_URLS}))
"""


def settings_with(tmp_path: Path, prelude: str = "", **env: str) -> dict[str, object]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "DATABASE_URL",
            "REDIS_URL",
            "CELERY_BROKER_URL",
            "EMAIL_HOST",
            "SOURCES_ENABLED",
            "SOURCE_URLS",
            "INBOX_DIR",
        }
    }
    clean.update({"DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "digest.settings", **env})
    result = subprocess.run(
        [sys.executable, "-c", prelude + PROBE],
        env=clean,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode:
        return {"error": result.stderr}
    return json.loads(result.stdout)


def test_embedded_defaults_need_no_server(tmp_path: Path) -> None:
    found = settings_with(tmp_path)
    assert found["engine"] == "django.db.backends.sqlite3"
    assert found["name"] == str(tmp_path / "db.sqlite3")
    assert found["broker"] == "filesystem://"
    assert found["cache"].endswith("LocMemCache")
    assert found["email"] == "digest.mail.OutboxBackend"
    assert found["inbox"] == str(tmp_path / "inbox")
    assert found["sources"] == []


def test_an_smtp_host_selects_the_pipelining_smtp_backend(tmp_path: Path) -> None:
    assert settings_with(tmp_path, EMAIL_HOST="mail.example.org")["email"] == (
        "digest.smtp.EmailBackend"
    )
    chosen = settings_with(tmp_path, EMAIL_HOST="mail.example.org", EMAIL_BACKEND="x.Backend")
    assert chosen["email"] == "x.Backend"


@pytest.mark.parametrize(
    ("url", "engine", "name"),
    [
        ("sqlite:////tmp/other.sqlite3", "django.db.backends.sqlite3", "/tmp/other.sqlite3"),
        ("postgres://u:p@db.example:5433/papers", "django.db.backends.postgresql", "papers"),
        ("postgresql://u@localhost/papers", "django.db.backends.postgresql", "papers"),
    ],
)
def test_database_url_forms(tmp_path: Path, url: str, engine: str, name: str) -> None:
    found = settings_with(tmp_path, DATABASE_URL=url)
    assert (found["engine"], found["name"]) == (engine, name)


def test_relative_sqlite_url(tmp_path: Path) -> None:
    found = settings_with(tmp_path, DATABASE_URL="sqlite:///var/rel.sqlite3")
    assert found["engine"] == "django.db.backends.sqlite3"
    assert found["name"].endswith("var/rel.sqlite3")


def test_redis_url_switches_broker_and_cache(tmp_path: Path) -> None:
    found = settings_with(tmp_path, REDIS_URL="redis://127.0.0.1:6379/3")
    assert found["broker"] == "redis://127.0.0.1:6379/3"
    assert found["cache"].endswith("RedisCache")


def test_real_sources_are_enabled_by_a_setting(tmp_path: Path) -> None:
    found = settings_with(tmp_path, SOURCES_ENABLED="true")
    assert any("huggingface.co/api/daily_papers" in u for u in found["sources"])
    assert any("arxiv.org" in u for u in found["sources"])


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATABASE_URL": "nonsense://x"}, "DATABASE_URL"),
        ({"INBOX_SCAN_SECONDS": "soon"}, "INBOX_SCAN_SECONDS"),
        ({"DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG"),
        ({"PRODUCTION": "true", "DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY"),
    ],
)
def test_bad_values_fail_loudly(tmp_path: Path, env: dict[str, str], message: str) -> None:
    found = settings_with(tmp_path, **env)
    assert "ConfigError" in str(found.get("error")) and message in str(found["error"])


def test_an_sqlite_too_old_for_the_planner_fails_loudly(tmp_path: Path) -> None:
    old = (
        "import sqlite3\n"
        "sqlite3.sqlite_version_info, sqlite3.sqlite_version = (3, 31, 1), '3.31.1'\n"
    )
    found = settings_with(tmp_path, prelude=old)
    assert "ConfigError" in str(found.get("error")) and "3.35 or newer" in str(found["error"])
    assert settings_with(tmp_path)["engine"] == "django.db.backends.sqlite3"  # this one is new


def test_env_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_BOOL", "Yes")
    monkeypatch.setenv("X_INT", "0")
    monkeypatch.setenv("X_LIST", "a, b  c")
    assert env_bool("X_BOOL") is True
    assert env_list("X_LIST") == ["a", "b", "c"]
    with pytest.raises(ConfigError, match="minimum"):
        env_int("X_INT", 5, minimum=1)
    assert env_int("X_MISSING", 5) == 5
