from django.contrib import admin
from django.urls import include, path

from digest import archive, views

urlpatterns = [
    path("", views.home, name="home"),
    path("listing/<str:day>/", views.listing, name="listing"),
    path("papers/<int:pk>/", views.paper_detail, name="paper"),
    path("digests/<str:token>/", archive.digest_archive, name="digest_archive"),
    path("", include("subscriptions.urls")),
    path("admin/dashboard/", include("digest.dashboard.urls")),
    path("admin/", admin.site.urls),
]
