"""/healthz, /readyz and /metrics (chat/views/health.py) as a platform and a scraper see them.

Probes come over plain HTTP with a Host of their own and no cookies; they must not be
refused, redirected, or cost a session or a query. Redis failures are real: a URL whose
port nothing listens on.
"""

import pytest
from django.test import Client
from django.urls import reverse

from tests.support.redis import free_port

PROBE_HOST = "10.42.0.17:8000"  # a pod's address: not in ALLOWED_HOSTS
TOKEN = "scrape-token-0123456789abcdef"


@pytest.fixture
def probe():
    return Client(HTTP_HOST=PROBE_HOST)


@pytest.fixture
def metrics_on(settings):
    settings.CHAT_METRICS_ENABLED, settings.CHAT_METRICS_TOKEN = True, None
    return settings


def closed_redis_url():
    return f"redis://127.0.0.1:{free_port()}/0"


# --- /healthz: the process answers ---


@pytest.mark.django_db
def test_healthz_answers_ok_without_a_query_or_a_session(client_alice, django_assert_num_queries):
    # client_alice carries a session cookie: even so, no session is read or saved.
    with django_assert_num_queries(0):
        response = client_alice.get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok\n"
    assert response["Content-Type"].startswith("text/plain")
    assert "no-store" in response["Cache-Control"]
    assert not response.cookies


def test_healthz_answers_a_platform_probe_host_and_plain_http(probe, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert Client(HTTP_HOST=PROBE_HOST).get("/accounts/login/").status_code == 400  # the rest
    assert Client().get("/accounts/login/").status_code == 301  # of the site: to HTTPS
    response = probe.get("/healthz")
    assert response.status_code == 200
    assert probe.head("/healthz").status_code == 200
    assert probe.get("/healthz/").status_code == 200


def test_healthz_refuses_writes_without_a_csrf_check(probe):
    response = Client(enforce_csrf_checks=True).post("/healthz")
    assert response.status_code == 405  # not 403: CSRF does not apply, the method does
    assert response["Allow"] == "GET, HEAD"


def test_probe_paths_are_named_routes_that_work_without_the_middleware(settings, db):
    assert (reverse("healthz"), reverse("readyz"), reverse("metrics")) == (
        "/healthz",
        "/readyz",
        "/metrics",
    )
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if not m.endswith("probe_middleware")]
    assert Client().get("/healthz").content == b"ok\n"
    assert Client().get("/readyz").status_code == 200


@pytest.mark.django_db
async def test_probes_answer_through_the_asynchronous_stack(async_client, metrics_on):
    # Under daphne the middleware runs async: /healthz and /metrics on the loop, /readyz
    # in a worker thread.
    assert (await async_client.get("/healthz")).content == b"ok\n"
    assert (await async_client.get("/readyz")).status_code == 200
    assert b"chat_open_sockets" in (await async_client.get("/metrics")).content


# --- /readyz: the database and Redis answer ---


@pytest.mark.django_db
def test_readyz_checks_the_database_and_redis(probe, settings):
    assert settings.REDIS_URL  # the tests' real Redis
    response = probe.get("/readyz")
    assert response.status_code == 200
    assert response.content == b"database: ok\nredis: ok\n"


@pytest.mark.django_db
def test_readyz_checks_only_the_database_without_redis(probe, settings):
    settings.REDIS_URL = ""  # the in-memory channel layer: nothing else to ask
    response = probe.get("/readyz")
    assert response.status_code == 200
    assert response.content == b"database: ok\n"


@pytest.mark.django_db
def test_readyz_names_redis_when_it_does_not_answer(probe, settings, caplog):
    settings.REDIS_URL = closed_redis_url()
    response = probe.get("/readyz")
    assert response.status_code == 503
    assert response.content.decode().splitlines() == [
        "database: ok",
        "redis: failed (ConnectionError)",
    ]
    assert any("redis does not answer" in r.getMessage() for r in caplog.records)
    assert probe.get("/healthz").status_code == 200  # alive: a restart would not help


# --- /metrics ---


def test_metrics_are_off_by_default_without_debug(probe, settings):
    settings.CHAT_METRICS_ENABLED, settings.CHAT_METRICS_TOKEN = False, None
    response = probe.get("/metrics")
    assert response.status_code == 404
    assert b"chat_" not in response.content


def test_metrics_on_are_open_to_a_scraper(probe, metrics_on):
    response = probe.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    body = response.content.decode()
    for name in (
        "chat_open_sockets",
        "chat_rooms_served",
        'chat_events_published_total{kind="message.posted"}',
        "chat_fanout_lag_seconds_bucket",
        "chat_fanout_pass_seconds_bucket",
        "chat_catch_up_reads_total",
        "chat_reconciled_events_total",
        'chat_channel_layer_errors_total{op="publish"}',
        'chat_channel_layer_failing{op="publish"}',
        "chat_rate_limited_total",
        "process_resident_memory_bytes",
    ):
        assert name in body, name


def test_metrics_speak_openmetrics_when_asked(probe, metrics_on):
    response = probe.get("/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.endswith(b"# EOF\n")


def test_metrics_with_a_token_need_it_as_a_bearer(probe, settings):
    settings.CHAT_METRICS_ENABLED, settings.CHAT_METRICS_TOKEN = True, TOKEN
    refused = probe.get("/metrics")
    assert refused.status_code == 401
    assert refused["WWW-Authenticate"].startswith("Bearer")
    assert b"chat_" not in refused.content
    assert probe.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}x").status_code == 401
    assert probe.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    allowed = probe.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert allowed.status_code == 200
    assert b"chat_open_sockets" in allowed.content
