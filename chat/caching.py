"""The process's one cache client, for code that runs on socket paths.

`django.core.cache.cache` is one client per async context: every socket's consumer
would open (and keep, since sockets send no request_finished) a Redis connection of its
own. One client with redis-py's thread-safe pool serves them all.

`RedisCache` is Django's, with one `redis.Redis` object per connection pool instead of
a new one for every call: building one sets up a few hundred response callbacks, which
cost a post about a tenth of its CPU (py-spy, bench/posting.py). redis-py clients are
safe to share between threads.
"""

import functools

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


@functools.cache
def shared_cache():
    return caches.create_connection("default")


class ReusingRedisCacheClient(RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}  # pool index -> redis.Redis

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            pool = self._get_connection_pool(write)
            client = self._clients.setdefault(index, self._client(connection_pool=pool))
        return client


class RedisCache(DjangoRedisCache):
    """`django.core.cache.backends.redis.RedisCache`, reusing its redis-py clients."""

    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = ReusingRedisCacheClient
