"""A Content-Security-Policy that allows only our own scripts and styles."""

import secrets

from django.utils import timezone

from chat.selectors.people import time_zone_of


def csp_nonce(request):
    """Template context: the nonce of this response's one inline <style> block."""
    return {"csp_nonce": getattr(request, "csp_nonce", "")}


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.csp_nonce = secrets.token_urlsafe(16)
        response = self.get_response(request)
        if request.path.startswith("/admin/"):
            return response  # the admin ships inline scripts of its own
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; "
            "script-src 'self'; "
            f"style-src 'self' 'nonce-{request.csp_nonce}'; "
            "img-src 'self' data:; "
            "connect-src 'self'; "
            "object-src 'none'; "
            "base-uri 'none'; "
            "form-action 'self'; "
            "frame-ancestors 'none'",
        )
        return response


class ReaderTimeZoneMiddleware:
    """Pages on the reader's own clock: their profile's time zone, else TIME_ZONE."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            timezone.activate(time_zone_of(user))
        else:
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
