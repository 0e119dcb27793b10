"""HTTP goes to Django; WebSockets go through origin and session checks to the chat.

Like the Channels tutorial's stack, with `SessionUserStack` in place of
`AuthMiddlewareStack` (the same user lookup, without wrapping every send).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django_http = get_asgi_application()  # before importing anything that touches models

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from chat.routing import websocket_urlpatterns  # noqa: E402
from chat.security import ClosingAllowedHostsOriginValidator, SessionUserStack  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_http,
        "websocket": ClosingAllowedHostsOriginValidator(
            SessionUserStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
