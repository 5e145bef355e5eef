"""Fetching source URLs, against a real HTTP server on localhost."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from digest.fetch import FetchPolicy, fetch_source
from digest.models import IngestRun, Paper, SourceState
from tests.conftest import hf_item, hf_json

pytestmark = pytest.mark.django_db


@dataclass
class Route:
    """Responses served in order for one path; the last one repeats."""

    responses: list[tuple[int, dict[str, str], bytes]]
    requests: list[dict[str, str]] = field(default_factory=list)
    delay: float = 0.0


class Server:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = routes.get(self.path)
                if route is None:
                    self.send_error(404)
                    return
                route.requests.append(dict(self.headers))
                index = min(len(route.requests), len(route.responses)) - 1
                status, headers, body = route.responses[index]
                if route.delay:
                    threading.Event().wait(route.delay)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def route(
        self, path: str, *responses: tuple[int, dict[str, str], bytes], delay: float = 0.0
    ) -> Route:
        self.routes[path] = Route(list(responses), delay=delay)
        return self.routes[path]


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    thread = threading.Thread(target=srv.httpd.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def policy(**overrides: Any) -> FetchPolicy:
    sleeps: list[float] = []
    values: dict[str, Any] = {
        "timeout": 2.0,
        "retries": 3,
        "backoff": 0.01,
        "max_bytes": 1 << 20,
        "sleep": sleeps.append,
    }
    values.update(overrides)
    return FetchPolicy(**values)


BODY = hf_json([hf_item("2410.00001", "Fetched Paper")])


def test_conditional_request_turns_an_unchanged_source_into_a_304(server: Server) -> None:
    route = server.route(
        "/daily",
        (200, {"ETag": '"v1"', "Last-Modified": "Mon, 25 Nov 2024 10:00:00 GMT"}, BODY),
        (304, {"ETag": '"v1"'}, b""),
    )
    first = fetch_source(f"{server.url}/daily", policy())
    second = fetch_source(f"{server.url}/daily", policy())
    assert first.status == "success" and first.n_new == 1
    assert second.status == IngestRun.Status.NOT_MODIFIED
    assert route.requests[1]["If-None-Match"] == '"v1"'
    assert route.requests[1]["If-Modified-Since"] == "Mon, 25 Nov 2024 10:00:00 GMT"
    assert "User-Agent" in route.requests[0]
    assert Paper.objects.count() == 1


def test_transient_errors_are_retried_with_backoff(server: Server) -> None:
    server.route(
        "/flaky", (503, {}, b"busy"), (429, {"Retry-After": "1"}, b"slow down"), (200, {}, BODY)
    )
    sleeps: list[float] = []
    run = fetch_source(f"{server.url}/flaky", policy(sleep=sleeps.append))
    assert run.status == "success"
    assert len(sleeps) == 2 and sleeps[1] == 1.0
    assert SourceState.objects.get().consecutive_failures == 0


def test_retries_are_bounded_and_the_failure_is_recorded(server: Server) -> None:
    route = server.route("/down", (503, {}, b"busy"))
    run = fetch_source(f"{server.url}/down", policy(retries=2))
    assert run.status == "failed" and "503" in run.error
    assert len(route.requests) == 3
    state = SourceState.objects.get()
    assert state.consecutive_failures == 1 and "503" in state.last_status


def test_permanent_error_is_not_retried(server: Server) -> None:
    route = server.route("/gone", (404, {}, b"no"))
    run = fetch_source(f"{server.url}/gone", policy())
    assert run.status == "failed" and "404" in run.error
    assert len(route.requests) == 1


def test_timeout_is_a_transient_failure(server: Server) -> None:
    server.route("/slow", (200, {}, BODY), delay=1.0)
    run = fetch_source(f"{server.url}/slow", policy(timeout=0.2, retries=1))
    assert run.status == "failed" and "Timeout" in run.error


def test_connection_refused_is_reported(server: Server) -> None:
    port = server.httpd.server_address[1]
    server.httpd.shutdown()
    server.httpd.server_close()
    run = fetch_source(f"http://127.0.0.1:{port}/x", policy(retries=1))
    assert run.status == "failed" and "ConnectError" in run.error


def test_oversized_response_is_refused(server: Server) -> None:
    server.route("/huge", (200, {}, b"[" + b" " * 5000 + b"]"))
    run = fetch_source(f"{server.url}/huge", policy(max_bytes=1000))
    assert run.status == "failed" and "size limit" in run.error
    assert Paper.objects.count() == 0


def test_failed_ingest_does_not_remember_the_etag(server: Server) -> None:
    route = server.route("/broken", (200, {"ETag": '"bad"'}, b"{not json"), (200, {}, BODY))
    assert fetch_source(f"{server.url}/broken", policy()).status == "failed"
    assert SourceState.objects.get().etag == ""
    assert fetch_source(f"{server.url}/broken", policy()).status == "success"
    assert "If-None-Match" not in route.requests[1]
