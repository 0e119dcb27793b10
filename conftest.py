"""Test-wide setup: every test talks to a real Redis (channel layer and cache)."""

import os

import pytest

from tests.support.redis import redis_url_for_tests

_throwaway_redis = None


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
    settings.CHANNEL_LAYERS, settings.CACHES = channel_layers_and_caches(url)
    import redis

    redis.Redis.from_url(url).flushdb()


def pytest_unconfigure(config):
    if _throwaway_redis is not None:
        _throwaway_redis.stop()


@pytest.fixture(autouse=True)
def _fresh_channel_layer_and_cache():
    """Each test starts with empty Redis state and no layer bound to an old event loop."""
    import redis
    from channels.layers import channel_layers
    from django.conf import settings

    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()
