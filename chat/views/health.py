"""Probes for the platform and the scraper: /healthz, /readyz, /metrics.

`probe_middleware` answers them ahead of every other middleware (it is first in
MIDDLEWARE): a platform probes over plain HTTP with a Host of its own (a pod's address,
an internal name), which ALLOWED_HOSTS would refuse with a 400 and SECURE_SSL_REDIRECT
would redirect, and a probe needs no session, CSRF check, user or time zone. The routes
in project/urls.py serve the same views should the middleware be taken out.
"""

import hmac
import logging

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.db import connections
from django.http import HttpResponse
from django.utils.decorators import sync_and_async_middleware
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from chat import events
from chat import metrics as chat_metrics
from chat.caching import redis_servers

logger = logging.getLogger(__name__)

# A probe that waits longer than the platform's own timeout tells it nothing.
REDIS_TIMEOUT_SECONDS = 2


@never_cache
@require_safe
def healthz(request):
    """The process answers: no database, no Redis (a restart would not fix them)."""
    return _text("ok\n")


@never_cache
@require_safe
def readyz(request):
    """The database and Redis answer (only the database when REDIS_URL is unset)."""
    checks = {"database": _database_answers}
    if settings.REDIS_URL:
        checks["redis"] = _redis_answers
    lines, failed = [], False
    for name, check in checks.items():
        try:
            check()
        except Exception as error:
            # No traceback: a platform probes every few seconds through an outage.
            logger.warning("readyz: %s does not answer: %r", name, error)
            lines.append(f"{name}: failed ({type(error).__name__})")
            failed = True
        else:
            lines.append(f"{name}: ok")
    return _text("\n".join(lines) + "\n", status=503 if failed else 200)


@never_cache
@require_safe
def metrics(request):
    """Prometheus text format; CHAT_METRICS decides who may read it (404 when off)."""
    if not settings.CHAT_METRICS_ENABLED:
        return _text("Not found\n", status=404)
    token = settings.CHAT_METRICS_TOKEN
    if token and not _bearer_is(request, token):
        response = _text("Unauthorized\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body, content_type = chat_metrics.exposition(
        request.headers.get("Accept", ""), kinds=events.CATALOGUE
    )
    return HttpResponse(body, content_type=content_type)


PROBES = {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics}
# Neither does I/O: answered on the event loop itself, without waiting for a worker
# thread; /metrics then reads the hub from the loop that owns it.
ON_THE_LOOP = {healthz, metrics}


@sync_and_async_middleware
def probe_middleware(get_response):
    if iscoroutinefunction(get_response):

        async def middleware(request):
            view = _probe(request)
            if view is None:
                return await get_response(request)
            if view in ON_THE_LOOP:
                return view(request)
            return await sync_to_async(view)(request)

    else:

        def middleware(request):
            view = _probe(request)
            return get_response(request) if view is None else view(request)

    return middleware


def _probe(request):
    path = request.path_info
    return PROBES.get(path[:-1] if path.endswith("/") else path)


def _text(body, *, status=200):
    return HttpResponse(body, status=status, content_type="text/plain; charset=utf-8")


def _database_answers():
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _redis_answers():
    # Every server: a shard that is down stops the rooms whose groups hash to it. A client
    # of its own with short timeouts: the channel layer's blocks for 15 s, and a failing
    # probe must not disturb the pools that sockets use.
    for server in redis_servers(settings.REDIS_URL):
        with server.client(
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=REDIS_TIMEOUT_SECONDS
        ) as client:
            client.ping()


def _bearer_is(request, token):
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # compare_digest: how long the comparison takes says nothing about the token.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )
