from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm, BaseUserCreationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError


class SignUpForm(BaseUserCreationForm):
    class Meta:
        model = get_user_model()
        fields = ["username"]


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
