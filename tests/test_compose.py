"""docker-compose.yml and the Dockerfile, checked statically: this suite cannot run Docker, so it
parses the files and checks every service, health check, dependency, volume and command against
the project's real entry points (the gunicorn WSGI object, the Celery app, manage.py commands,
the packages the image installs)."""

from __future__ import annotations

import importlib
import re
import shlex
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from celery import Celery
from celery.app.utils import find_app
from django.core.management import get_commands

from tests.conftest import ROOT

APP_SERVICES = ("web", "worker", "beat")
LONG_RUNNING = (*APP_SERVICES, "redis", "postgres", "mailpit")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # resolves << merges
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def commands(service: dict[str, Any]) -> list[list[str]]:
    """The service's command as argument lists; ``sh -c "a && b"`` gives one list per step."""
    raw = service.get("command")
    if raw is None:
        return []
    argv = shlex.split(raw) if isinstance(raw, str) else list(raw)
    if argv[:2] == ["sh", "-c"]:
        return [shlex.split(step) for step in argv[2].split("&&")]
    return [argv]


def option(argv: list[str], *names: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg in names and i + 1 < len(argv):
            return argv[i + 1]
        for name in names:
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


# --- services, health checks, dependencies, volumes, configuration ----------------------------


def test_every_service_is_there(services: dict[str, Any]) -> None:
    assert set(LONG_RUNNING) <= set(services)
    assert set(services) - set(LONG_RUNNING) == {"init"}


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_every_long_running_service_has_a_health_check(services: dict[str, Any], name: str) -> None:
    check = services[name]["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL") and len(check["test"]) > 1
    assert check.get("interval") and check.get("retries")
    assert services[name].get("restart") == "unless-stopped"


@pytest.mark.parametrize("name", (*APP_SERVICES, "init"))
def test_app_services_wait_for_healthy_backing_services(
    services: dict[str, Any], name: str
) -> None:
    depends = services[name]["depends_on"]
    for backing in ("postgres", "redis", "mailpit"):
        assert depends[backing] == {"condition": "service_healthy"}
    if name != "init":
        assert depends["init"] == {"condition": "service_completed_successfully"}


@pytest.mark.parametrize("name", (*APP_SERVICES, "init"))
def test_app_services_are_configured_from_env_file_and_share_the_data_volume(
    services: dict[str, Any], compose: dict[str, Any], name: str
) -> None:
    service = services[name]
    env_files = [e["path"] if isinstance(e, dict) else e for e in service["env_file"]]
    assert ".env" in env_files
    env = service["environment"]
    assert (
        env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env["DATABASE_URL"]
    )
    assert env["REDIS_URL"].startswith("redis://redis:6379/")
    # Mailpit by default, a real server when .env names one (environment wins over env_file).
    assert (
        env["EMAIL_HOST"] == "${EMAIL_HOST:-mailpit}" and env["EMAIL_PORT"] == "${EMAIL_PORT:-1025}"
    )
    assert env["LOG_FORMAT"] == "json"
    mounts = dict(volume.split(":", 1)[::-1] for volume in service["volumes"])
    # The secret key, inbox and outbox must be the same files for web, worker and beat.
    assert mounts[env["DATA_DIR"]] in compose["volumes"]
    assert env["INBOX_DIR"].startswith(env["DATA_DIR"] + "/")


def test_the_database_and_the_mail_live_in_volumes(
    services: dict[str, Any], compose: dict[str, Any]
) -> None:
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert {"pgdata", "appdata", "mail"} <= set(compose["volumes"])
    mailpit = services["mailpit"]
    assert any(v.startswith("mail:") for v in mailpit["volumes"])
    assert mailpit["environment"]["MP_DATABASE"].startswith("/data/")
    assert mailpit["ports"] == ["127.0.0.1:8025:8025"]  # it shows every mail: never public


def test_every_variable_the_stack_sets_is_a_real_setting(services: dict[str, Any]) -> None:
    settings_source = (ROOT / "digest" / "settings.py").read_text()
    for name in (*APP_SERVICES, "init"):
        for variable in services[name]["environment"]:
            assert f'"{variable}"' in settings_source, variable


# --- commands against the project's entry points ------------------------------------------


def check_gunicorn(argv: list[str]) -> None:
    module, _, attribute = argv[1].partition(":")
    application = getattr(importlib.import_module(module), attribute or "application")
    assert callable(application)
    assert option(argv, "--bind", "-b") == "0.0.0.0:8000"
    # Access logs would carry the signed links in paths; the app logs requests itself.
    assert option(argv, "--access-logfile") is None


def check_celery(argv: list[str]) -> None:
    app = find_app(option(argv, "-A", "--app") or "")
    assert isinstance(app, Celery)
    from digest.celery import app as the_app

    assert app is the_app  # the one Celery app
    assert argv[3] in ("worker", "beat")


def check_manage(argv: list[str]) -> None:
    assert argv[0] == "python" and argv[1] == "manage.py"
    assert argv[2] in get_commands(), argv
    for arg in argv[3:]:
        if not arg.startswith("-"):
            assert (ROOT / arg).exists(), f"{arg} is not in the repository (and so the image)"


ENTRY_POINTS: dict[str, Callable[[list[str]], None]] = {
    "gunicorn": check_gunicorn,
    "celery": check_celery,
    "python": check_manage,
}


@pytest.mark.parametrize("name", (*APP_SERVICES, "init"))
def test_each_command_maps_to_a_real_entry_point(services: dict[str, Any], name: str) -> None:
    steps = commands(services[name])
    assert steps
    for argv in steps:
        ENTRY_POINTS[argv[0]](argv)


def test_init_migrates_and_ingests_the_example_dump(services: dict[str, Any]) -> None:
    steps = commands(services["init"])
    assert steps[0][:3] == ["python", "manage.py", "migrate"]
    assert steps[1][:3] == ["python", "manage.py", "ingest"]
    dumps = [p for arg in steps[1][3:] for p in (ROOT / arg).glob("*") if p.is_file()]
    assert dumps, "the ingest step has nothing to ingest"
    assert services["init"].get("restart") == "no"


def test_health_checks_use_the_real_commands(services: dict[str, Any]) -> None:
    web_check = " ".join(services["web"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/healthz" in web_check
    worker_check = services["worker"]["healthcheck"]["test"][1]
    argv = shlex.split(worker_check.replace("$$", "$"))
    check_celery([*argv[:3], "worker"])
    assert argv[3:5] == ["inspect", "ping"]
    beat = commands(services["beat"])[0]
    assert option(beat, "--schedule", "-s") == "/tmp/celerybeat-schedule"
    assert "/tmp/celerybeat-schedule" in services["beat"]["healthcheck"]["test"][-1]


# --- the image ----------------------------------------------------------------------------------


def test_the_image_installs_what_the_commands_need(dockerfile: str) -> None:
    installs = re.findall(r'pip install [^\n]*"\.\[([a-z,]+)\]"', dockerfile)
    assert installs, "the Dockerfile does not pip install the project"
    extras = set(installs[0].split(","))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [
        *project["dependencies"],
        *(d for e in extras for d in project["optional-dependencies"][e]),
    ]
    names = {re.split(r"[<>=\[ ]", requirement)[0].lower() for requirement in wanted}
    assert {"gunicorn", "celery", "django", "psycopg", "whitenoise", "django-axes"} <= names
    assert "python-json-logger" in names


def test_the_image_runs_the_code_next_to_its_templates(dockerfile: str) -> None:
    assert "WORKDIR /app" in dockerfile and "COPY . ." in dockerfile
    # celery's script does not put the working directory on sys.path: without this, worker
    # and beat would import the site-packages copy, which has no templates/.
    assert re.search(r"PYTHONPATH=/app\b", dockerfile)
    assert "collectstatic --noinput" in dockerfile
    assert re.search(r"^USER app$", dockerfile, re.M)
    assert "mkdir -p /data/inbox" in dockerfile


def test_the_build_context_keeps_what_the_commands_use() -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for needed in ("examples", "templates", "static", "manage.py", "digest", "subscriptions"):
        assert not any(Path(needed).match(pattern) for pattern in ignored), needed
    assert ".env" in ignored and ".git" in ignored


def test_every_example_variable_is_in_the_readme_configuration_table() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Configuration") :]
    names = re.findall(r"^# ([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M)
    assert names
    assert [name for name in names if f"`{name}`" not in table] == []
