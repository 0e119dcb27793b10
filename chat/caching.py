"""The process's one cache client, for code that runs on socket paths.

`django.core.cache.cache` is one client per async context: every socket's consumer
would open (and keep, since sockets send no request_finished) a Redis connection of its
own. One client with redis-py's thread-safe pool serves them all.
"""

import functools

from django.core.cache import caches


@functools.cache
def shared_cache():
    return caches.create_connection("default")
