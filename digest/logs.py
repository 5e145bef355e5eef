"""Request ids and JSON log lines.

Every web request gets an id (the proxy's ``X-Request-ID`` when it is a sane token, else a new
one), echoed in the response and attached to every log record made while the request runs, so
one request's lines can be found together. ``LOG_FORMAT=json`` writes each record as one JSON
object per line.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest, HttpResponse
from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
# Ids from the proxy are copied into logs and headers: accept only short, plain tokens.
_SANE_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
access_log = logging.getLogger("digest.request")


NO_REQUEST = "-"


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` ("-" outside a web request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get() or NO_REQUEST
        return True


class JsonFormatter(_BaseJsonFormatter):
    """python-json-logger with this service's field names and an ISO 8601 UTC time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault(
            "rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"}
        )
        super().__init__(*args, **kwargs)

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        if log_data.get("request_id") in (None, NO_REQUEST):
            log_data.pop("request_id", None)  # "where applicable": only inside a request

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created, tz=UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _route(request: HttpRequest) -> str:
    """The URL pattern, not the path: paths carry signed tokens that must not reach logs."""
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return "/" + match.route  # the home page's route is "" (logged as "/")
    return "(unmatched)"


class RequestIdMiddleware:
    """Sets the request id for the request's log records and logs one line per request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.headers.get("X-Request-ID", "")
        rid = given if _SANE_ID.match(given) else uuid.uuid4().hex
        token = request_id.set(rid)
        started = time.monotonic()
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = rid
            access_log.info(
                "%s %s %s %.0fms",
                request.method,
                _route(request),
                response.status_code,
                (time.monotonic() - started) * 1000,
                extra={"status": response.status_code, "method": request.method},
            )
            return response
        finally:
            request_id.reset(token)
