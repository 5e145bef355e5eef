"""Beat's schedule, built from settings: the one source of truth for periodic jobs."""

from __future__ import annotations

from typing import Any

from django.conf import settings


def beat_schedule() -> dict[str, dict[str, Any]]:
    schedule: dict[str, dict[str, Any]] = {
        "scan-inbox": {
            "task": "digest.tasks.scan_inbox",
            "schedule": float(settings.INBOX_SCAN_SECONDS),
            "options": {"expires": float(settings.INBOX_SCAN_SECONDS)},
        },
    }
    schedule["plan-digests"] = {
        "task": "digest.tasks.plan_digests",
        "schedule": 60.0 * settings.DIGEST_PLAN_MINUTES,
        "options": {"expires": 60.0 * settings.DIGEST_PLAN_MINUTES},
    }
    schedule["purge-stale-pending"] = {
        "task": "subscriptions.tasks.purge_stale_pending",
        "schedule": 3600.0 * settings.PURGE_PENDING_HOURS,
    }
    if settings.SOURCE_URLS:
        schedule["fetch-sources"] = {
            "task": "digest.tasks.fetch_sources",
            "schedule": 60.0 * settings.SOURCE_FETCH_MINUTES,
            "options": {"expires": 60.0 * settings.SOURCE_FETCH_MINUTES},
        }
    if settings.DIGEST_RETENTION_DAYS > 0:
        schedule["prune-old-digests"] = {
            "task": "digest.tasks.prune_old_digests",
            "schedule": 3600.0 * settings.RETENTION_HOURS,
            "options": {"expires": 3600.0 * settings.RETENTION_HOURS},
        }
    return schedule
