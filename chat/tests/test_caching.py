"""chat/caching.py against the real Redis of the test run."""

import threading

from django.core.cache import caches

from chat.caching import RedisCache, shared_cache


def test_the_configured_cache_is_ours_and_reuses_one_client_per_pool():
    cache = caches.create_connection("default")
    assert isinstance(cache, RedisCache)
    client = cache._cache.get_client(write=True)
    assert cache._cache.get_client(write=False) is client  # one server: one pool, one client
    cache.set("caching-one-client", "kept", timeout=30)
    assert cache.get("caching-one-client") == "kept"
    assert cache._cache.get_client(write=True) is client


def test_one_shared_client_serves_many_threads_at_once():
    cache = shared_cache()
    start = threading.Barrier(8)
    seen, errors = {}, []

    def worker(number):
        try:
            start.wait(timeout=10)
            for round_ in range(50):
                key = f"caching-thread-{number}-{round_}"
                cache.set(key, (number, round_), timeout=30)
                seen[key] = cache.get(key)
            cache.add(f"caching-counter-{number}", 0, timeout=30)
            for _ in range(25):
                cache.incr(f"caching-counter-{number}")
        except Exception as error:  # reported below, with the thread it came from
            errors.append((number, error))

    threads = [threading.Thread(target=worker, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert seen == {
        f"caching-thread-{number}-{round_}": (number, round_)
        for number in range(8)
        for round_ in range(50)
    }
    assert cache.get_many([f"caching-counter-{number}" for number in range(8)]) == {
        f"caching-counter-{number}": 25 for number in range(8)
    }
