"""``/healthz`` for load balancers and ``docker compose``: is the database there, is the broker?

Answered by the first middleware, before host validation (load balancers probe by IP address),
the HTTPS redirect, sessions and CSP, so a probe costs one query and one broker connection.
The answer names what failed and never how it is configured (no URLs, hosts or passwords).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from kombu import Connection

log = logging.getLogger(__name__)

PATH = "/healthz"


def check_database() -> None:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_broker() -> None:
    """Raises unless the Celery broker accepts a connection (the embedded broker: its queue
    folder can be written)."""
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        folder = str(settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("data_folder_in", ""))
        if not (os.path.isdir(folder) and os.access(folder, os.W_OK)):
            raise OSError("the embedded broker's queue folder is missing or not writable")
        return
    timeout = settings.HEALTH_CHECK_TIMEOUT_SECONDS
    with Connection(settings.CELERY_BROKER_URL, connect_timeout=timeout) as connection:
        connection.ensure_connection(max_retries=0, timeout=timeout)


CHECKS: dict[str, Callable[[], None]] = {"database": check_database, "broker": check_broker}


def health() -> tuple[bool, dict[str, str]]:
    results: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check()
        except Exception as error:
            # The reason goes to the log (for the operator), not to the anonymous answer.
            log.warning("health check: %s failed: %s", name, type(error).__name__)
            results[name] = "failed"
        else:
            results[name] = "ok"
    return all(value == "ok" for value in results.values()), results


def healthz(request: HttpRequest) -> HttpResponse:
    started = time.monotonic()
    ok, checks = health()
    body = {
        "status": "ok" if ok else "failed",
        "checks": checks,
        "ms": round((time.monotonic() - started) * 1000),
    }
    response = JsonResponse(body, status=200 if ok else 503)
    response["Cache-Control"] = "no-store"
    return response


class HealthCheckMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.rstrip("/") == PATH and request.method in ("GET", "HEAD"):
            return healthz(request)
        return self.get_response(request)
