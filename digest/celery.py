"""The service's one Celery app. Beat's schedule is built in code from settings."""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery

from digest import broker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "digest.settings")
broker.install()

app = Celery("digest")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_configure.connect
def _create_broker_folders(sender: Celery, **_: object) -> None:
    """kombu's filesystem transport (the embedded broker) expects its folders to exist."""
    from django.conf import settings

    # Read Django's settings, not sender.conf: touching the app's config while it is being
    # configured would recurse.
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    if not settings.CELERY_BROKER_URL.startswith("filesystem://"):
        return
    for key in ("data_folder_in", "data_folder_out", "control_folder"):
        if options.get(key):
            Path(str(options[key])).mkdir(parents=True, exist_ok=True)


@app.on_after_finalize.connect
def _setup_schedule(sender: Celery, **_: object) -> None:
    from digest.schedule import beat_schedule

    sender.conf.beat_schedule = beat_schedule()
