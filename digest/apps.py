from django.apps import AppConfig


class DigestConfig(AppConfig):
    name = "digest"
    verbose_name = "Papers and digests"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from digest import lookups

        lookups.register()
        # Connects the Celery signal handlers that record job runs and heartbeats.
        from digest import jobs  # noqa: F401
