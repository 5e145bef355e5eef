"""The service's one Celery app. Beat's schedule is built in code from settings."""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "digest.settings")

app = Celery("digest")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_configure.connect
def _create_broker_folders(sender: Celery, **_: object) -> None:
    """kombu's filesystem transport (the embedded broker) expects its folders to exist."""
    options = sender.conf.broker_transport_options or {}
    if not str(sender.conf.broker_url or "").startswith("filesystem://"):
        return
    for key in ("data_folder_in", "data_folder_out", "control_folder"):
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)


@app.on_after_finalize.connect
def _setup_schedule(sender: Celery, **_: object) -> None:
    from digest.schedule import beat_schedule

    sender.conf.beat_schedule = beat_schedule()
