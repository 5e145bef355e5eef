"""Papers, ingest and digests. Importing the Celery app here makes ``shared_task`` use it."""

from digest.celery import app as celery_app

__all__ = ["celery_app"]
