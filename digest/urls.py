from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

urlpatterns = [
    path("admin/", admin.site.urls),
    # Until the public pages land, the front door is the operator's admin.
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
