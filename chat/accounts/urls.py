from django.contrib.auth import views as auth_views
from django.urls import path

from chat.accounts import views
from chat.accounts.forms import ThrottledAuthenticationForm

urlpatterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(
            authentication_form=ThrottledAuthenticationForm, redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("signup/", views.signup, name="signup"),
    path("settings/", views.settings_page, name="settings"),
]
