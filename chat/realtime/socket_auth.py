"""Who may open a socket: origin check, session user, and refusals the page understands."""

from importlib import import_module

from channels.auth import get_user
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.security.websocket import OriginValidator
from channels.sessions import CookieMiddleware
from django.conf import settings

from chat.realtime.frames import CloseCode


class ClosingAllowedHostsOriginValidator(OriginValidator):
    """`AllowedHostsOriginValidator` that closes with 4403 instead of refusing the handshake.

    A refused handshake reaches the page as close code 1006, which the extension retries
    for ever; a 4xxx code stops it.
    """

    def __init__(self, application):
        super().__init__(application, settings.ALLOWED_HOSTS)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not self._origin_allowed(scope):
            return await ForbiddenOrigin()(scope, receive, send)
        return await self.application(scope, receive, send)

    def _origin_allowed(self, scope):
        from urllib.parse import urlparse

        for name, value in scope.get("headers", []):
            if name == b"origin":
                try:
                    return self.valid_origin(urlparse(value.decode("latin1")))
                except (UnicodeDecodeError, ValueError):
                    return False
        return self.valid_origin(None)


class ForbiddenOrigin(AsyncWebsocketConsumer):
    async def connect(self):
        await self.accept()
        await self.close(code=int(CloseCode.FORBIDDEN))  # autobahn accepts a plain int only


class SessionUserMiddleware:
    """`scope["user"]` from the session cookie, looked up once when the socket opens.

    Channels' `AuthMiddlewareStack` does the same but also wraps every `send` to save a
    modified session; the chat socket never changes the session, and that check cost
    about a tenth of the fan-out's CPU (bench/README.md, profile).
    """

    def __init__(self, inner):
        self.inner = inner
        self.session_store = import_module(settings.SESSION_ENGINE).SessionStore

    async def __call__(self, scope, receive, send):
        session_key = scope["cookies"].get(settings.SESSION_COOKIE_NAME)
        scope = dict(scope, session=self.session_store(session_key))
        scope["user"] = await get_user(scope)
        # Kept for the socket's whole life otherwise, and nothing reads them again.
        del scope["session"], scope["cookies"]
        return await self.inner(scope, receive, send)


def SessionUserStack(inner):  # named like channels' AuthMiddlewareStack
    return CookieMiddleware(SessionUserMiddleware(inner))
