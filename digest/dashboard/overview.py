"""Everything the dashboard page shows, gathered in one place, and what needs attention."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django.utils.timesince import timesince

from digest.dashboard import charts, figures, health
from digest.models import DeliveryControl, SourceState

CHART_DAYS = 30
TOPICS_CACHE_SECONDS = 300


@dataclass(frozen=True)
class Alert:
    text: str
    level: str = "error"  # error or warning


def _ago(when: datetime | None, now: datetime) -> str:
    return f"{timesince(when, now)} ago" if when else "never"


def job_warnings(jobs: list[health.Job], now: datetime) -> list[Alert]:
    found = []
    for job in jobs:
        status = job.status
        if job.state == "failing" and status is not None:
            found.append(
                Alert(f"{job.name} is failing: {status.last_error[:300] or 'no reason given'}")
            )
        elif job.state == "overdue" and status is not None:
            found.append(
                Alert(
                    f"{job.name} is overdue: it runs {job.every}, last success "
                    f"{_ago(status.last_success_at, now)}."
                )
            )
    return found


def heartbeat_warnings(beats: dict[str, list[health.Beat]], now: datetime) -> list[Alert]:
    found = []
    for role in ("worker", "beat"):
        seen = beats.get(role, [])
        if not seen:
            found.append(Alert(f"No {role} has reported yet: is it running?"))
        elif all(b.stale for b in seen):
            latest = max(b.last_seen_at for b in seen)
            found.append(Alert(f"No {role} has reported for {timesince(latest, now)}."))
    return found


def source_warnings(sources: list[SourceState], now: datetime) -> list[Alert]:
    if not settings.SOURCE_URLS:
        return []
    slack = settings.JOB_OVERDUE_FACTOR * timedelta(minutes=settings.SOURCE_FETCH_MINUTES)
    known = {s.url: s for s in sources}
    found = []
    for url in settings.SOURCE_URLS:
        state = known.get(url)
        if state is None or state.last_fetched_at is None or now - state.last_fetched_at > slack:
            when = _ago(state.last_fetched_at if state else None, now)
            found.append(Alert(f"Ingest from {url} is overdue: last fetched {when}."))
        elif state.consecutive_failures:
            found.append(
                Alert(
                    f"Fetching {url} failed {state.consecutive_failures} time(s) in a row: "
                    f"{state.last_status}",
                    "warning",
                )
            )
    return found


def delivery_warnings(deliveries: dict[str, Any], control: DeliveryControl) -> list[Alert]:
    found = []
    if not settings.SENDING_ENABLED:
        found.append(Alert("Sending is switched off by SENDING_ENABLED=false.", "warning"))
    if control.paused:
        found.append(Alert(f"Sending is paused ({control.note or 'no note'}).", "warning"))
    failed = deliveries["day"]["failed"]
    if failed:
        found.append(Alert(f"{failed} digest(s) failed in the last 24 hours: see below."))
    return found


def chart_list(now: datetime) -> list[charts.Chart]:
    days = figures.days_until(timezone.localdate(now), CHART_DAYS)
    labels = [f"{d:%b} {d.day}" for d in days]
    sent, failed = figures.digests_per_day(days)
    sizes = figures.size_distribution(now - timedelta(days=CHART_DAYS))
    # Parsing every confirmed subscriber's interests is the one costly figure: keep it a while.
    topics: list[tuple[str, int]] = (
        cache.get_or_set("dashboard:top-topics", figures.top_topics, TOPICS_CACHE_SECONDS) or []
    )
    return [
        charts.column_chart(
            "papers-per-day",
            "Papers ingested per day",
            labels,
            [("new papers", figures.papers_per_day(days))],
        ),
        charts.line_chart(
            "subscribers",
            "Confirmed subscribers",
            labels,
            "confirmed",
            figures.confirmed_over_time(days),
        ),
        charts.column_chart(
            "digests-per-day",
            "Digests sent and failed per day",
            labels,
            [("sent", sent), ("failed", failed)],
        ),
        charts.column_chart(
            "digest-sizes",
            f"Papers per digest (sent in the last {CHART_DAYS} days)",
            [label for label, _ in sizes],
            [("digests", [n for _, n in sizes])],
            label_head="papers",
        ),
        charts.row_chart(
            "topics",
            "Most common interest topics",
            [t for t, _ in topics],
            "subscribers",
            [n for _, n in topics],
            "topic",
        ),
    ]


def overview(now: datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    jobs = health.jobs(now)
    beats = health.heartbeats(health.heartbeat_slack(jobs), now)
    ingest = figures.ingest_figures()
    deliveries = figures.delivery_figures(now)
    control = DeliveryControl.current()
    warnings = (
        heartbeat_warnings(beats, now)
        + job_warnings(jobs, now)
        + source_warnings(ingest["sources"], now)
        + delivery_warnings(deliveries, control)
    )
    return {
        "now": now,
        "warnings": warnings,
        "papers": figures.paper_figures(),
        "subscribers": figures.subscriber_figures(),
        "deliveries": deliveries,
        "ingest": ingest,
        "jobs": jobs,
        "heartbeats": beats,
        "queues": health.queue_lengths(),
        "control": control,
        "sending_enabled": settings.SENDING_ENABLED,
        "charts": chart_list(now),
        "runs": figures.recent_runs(),
        "failures": figures.recent_failures(),
    }
