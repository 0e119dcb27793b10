"""HTTP goes to Django; WebSockets go through origin and session checks to the chat.

Like the Channels tutorial's stack, with `SessionUserStack` in place of
`AuthMiddlewareStack` (the same user lookup, without wrapping every send).
"""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django_http = get_asgi_application()  # before importing anything that touches models

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from chat.realtime import shutdown  # noqa: E402
from chat.realtime.routing import websocket_urlpatterns  # noqa: E402
from chat.realtime.socket_auth import ClosingAllowedHostsOriginValidator, SessionUserStack  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_http,
        "websocket": ClosingAllowedHostsOriginValidator(
            SessionUserStack(URLRouter(websocket_urlpatterns))
        ),
    }
)

# Under daphne, SIGTERM drains: no new connections, every socket closed with 1012 (which
# the htmx ws extension retries), consumers finish, exit (chat/realtime/shutdown.py).
shutdown.install()

# A server with hundreds of open sockets holds a large, long-lived heap. With CPython's
# default thresholds a busy fan-out promotes enough short-lived objects that full
# collections (80-180 ms at 500 sockets) stall every page every few seconds. Freeze what
# startup built (never garbage), and let the young generation grow larger before it is
# collected: in the bench, collections during fan-out then stay under ~5 ms and p99 at
# 5,000 deliveries/s halves (bench/README.md, "Garbage collector").
gc.collect()
gc.freeze()
gc.set_threshold(5_000, 10, 10)
