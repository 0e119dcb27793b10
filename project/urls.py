from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("chat.accounts.urls")),
    path("", include("chat.urls")),
]

handler404 = "chat.views.errors.not_found"
