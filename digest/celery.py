"""The service's one Celery app. Beat's schedule is built in code from settings."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "digest.settings")

app = Celery("digest")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def _setup_schedule(sender: Celery, **_: object) -> None:
    from digest.schedule import beat_schedule

    sender.conf.beat_schedule = beat_schedule()
