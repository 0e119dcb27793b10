from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm, BaseUserCreationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError

from chat.actions import profiles


class SignUpForm(BaseUserCreationForm):
    """Django's sign-up rules, in words written for people."""

    class Meta:
        model = get_user_model()
        fields = ["username"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["username"].help_text = (
            "How people mention you: letters, digits and @ . + - _ only. You can pick a "
            "display name with spaces later."
        )
        self.fields["password1"].help_text = (
            "At least 8 characters, not only digits, not a common password, and not too "
            "close to your username."
        )
        self.fields["password2"].label = "Password again"
        self.fields["password2"].help_text = ""


class ThrottledAuthenticationForm(AuthenticationForm):
    """Login that refuses a username after repeated failures from the same address."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "locked": "Too many failed attempts. Try again in %(minutes)s minutes.",
    }

    def clean(self):
        key = self._failure_key()
        limit = settings.CHAT_LOGIN_FAILURE_LIMIT
        if cache.get(key, 0) >= limit:
            raise ValidationError(
                self.error_messages["locked"],
                code="locked",
                params={"minutes": max(1, settings.CHAT_LOGIN_LOCKOUT_SECONDS // 60)},
            )
        try:
            return super().clean()
        except ValidationError:
            cache.add(key, 0, timeout=settings.CHAT_LOGIN_LOCKOUT_SECONDS)
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.set(key, 1, timeout=settings.CHAT_LOGIN_LOCKOUT_SECONDS)
            raise

    def _failure_key(self):
        username = (self.data.get("username") or "").strip().lower()[:150]
        address = self.request.META.get("REMOTE_ADDR", "") if self.request else ""
        return f"login-failures:{address}:{username}"


class ProfileForm(forms.Form):
    """The settings page's first form; the rules live in chat/actions/profiles.py."""

    display_name = forms.CharField(required=False, strip=False, label="Display name")
    time_zone = forms.CharField(required=False, label="Time zone")
    show_presence = forms.BooleanField(required=False, label="Show me under “People here”")
    email = forms.CharField(required=False, max_length=254, label="Email")
    email_missed = forms.BooleanField(required=False, label="Email me what I miss")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_display_name(self):
        return profiles.clean_display_name(self.user, self.cleaned_data.get("display_name"))

    def clean_time_zone(self):
        return profiles.clean_time_zone(self.cleaned_data.get("time_zone"))

    def clean_email(self):
        return profiles.clean_email(self.cleaned_data.get("email"))
