from django.contrib import admin
from django.urls import include, path

from chat.views import health

urlpatterns = [
    # Answered ahead of every middleware by chat.views.health.probe_middleware; routed
    # here too, so reverse() knows them and they work should it be taken out.
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include("chat.accounts.urls")),
    path("", include("chat.urls")),
]

handler404 = "chat.views.errors.not_found"
