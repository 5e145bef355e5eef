"""The dashboard under /admin/dashboard/: every view goes through ``admin_view`` (staff only,
login redirect, CSRF, no caching)."""

from django.contrib import admin
from django.urls import path

from digest.dashboard import views

app_name = "dashboard"

staff = admin.site.admin_view

urlpatterns = [
    path("", staff(views.dashboard), name="index"),
    path("schedules/", staff(views.schedules), name="schedules"),
    path("ingest/upload/", staff(views.ingest_upload), name="ingest_upload"),
    path("ingest/source/", staff(views.ingest_source), name="ingest_source"),
    path("digests/run/", staff(views.run_due_digests), name="run_due_digests"),
    path("digests/preview/", staff(views.preview), name="preview"),
    path("digests/test/", staff(views.test_digest), name="test_digest"),
    path("sending/", staff(views.sending), name="sending"),
]
