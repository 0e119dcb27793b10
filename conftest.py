"""Test-wide setup: every test talks to a real Redis (channel layer and cache).

The machine's Redis may serve other test runs at the same time, so this run keeps its
keys under a prefix of its own and clears only those between tests.
"""

import os
import tempfile
import uuid

import pytest

from tests.support.redis import redis_url_for_tests

_throwaway_redis = None
RUN_PREFIX = f"test-{uuid.uuid4().hex[:8]}"


def pytest_configure(config):
    global _throwaway_redis
    from django.conf import settings

    from project.settings import channel_layers_and_caches

    try:
        url, _throwaway_redis = redis_url_for_tests()
    except RuntimeError as error:
        pytest.exit(str(error), returncode=3)
    os.environ["TEST_REDIS_URL"] = url
    settings.REDIS_URL = url
    settings.CHANNEL_LAYERS, settings.CACHES = channel_layers_and_caches(url, prefix=RUN_PREFIX)
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        # A file, not Django's shared-cache in-memory test database: there, two sockets
        # saving at once fail with "table is locked" instead of waiting their turn.
        folder = tempfile.mkdtemp(prefix="chat-test-db-")
        test_name = f"{folder}/test.sqlite3"
    else:
        test_name = f"test_{RUN_PREFIX.replace('-', '_')}"  # runs side by side do not collide
    database["TEST"] = {**database.get("TEST", {}), "NAME": test_name}


def pytest_unconfigure(config):
    if _throwaway_redis is not None:
        _throwaway_redis.stop()


def _clear_run_keys():
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = list(client.scan_iter(match=f"{RUN_PREFIX}*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture(autouse=True)
def _fresh_channel_layer_and_cache():
    """Each test starts with no Redis state and no layer bound to an old event loop."""
    from channels.layers import channel_layers

    _clear_run_keys()
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture(scope="session", autouse=True)
def _end_worker_connections(django_db_setup, django_db_blocker):
    """Let the test database be dropped at the end: sockets saved messages from executor
    threads, whose PostgreSQL connections would otherwise keep it open."""
    yield
    from django.db import connection

    if connection.vendor == "postgresql":
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
