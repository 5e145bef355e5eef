"""Celery tasks for subscriptions: thin callers of ``subscriptions.services``."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db import DatabaseError

from subscriptions import services

# Database and SMTP (OSError) trouble is transient: retry with backoff and jitter.
RETRY_ON = (DatabaseError, OSError)
retrying = shared_task(
    ignore_result=True,
    autoretry_for=RETRY_ON,
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=6,
)


@retrying
def process_signup(email: str, preferences: dict[str, Any]) -> str:
    return services.process_signup(email, preferences)


@retrying
def process_link_request(email: str) -> str:
    return services.process_link_request(email)


@retrying
def send_confirmation(subscriber_id: int) -> str:
    subscriber = services.Subscriber.objects.filter(pk=subscriber_id).first()
    return services.send_confirmation(subscriber) if subscriber else "gone"


@shared_task(ignore_result=True)
def purge_stale_pending() -> int:
    return services.purge_stale_pending()
