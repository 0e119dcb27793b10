"""REDIS_URL: one Redis server, several (shards of the channel layer), or Sentinel.

What each server carries (chat/caching.py): the channel layer shards across all of them;
the cache (rate limits, login lockout, fragments) and the presence records stay on the
first. Parsing is checked as a function and once through a fresh process; then against
real redis-servers: two shards, and a master behind a real Sentinel.
"""

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from types import SimpleNamespace

import pytest
import redis
import redis.asyncio.retry
from channels_redis.core import RedisChannelLayer as StockRedisChannelLayer
from channels_redis.utils import _consistent_hash
from django.core.exceptions import ImproperlyConfigured

from chat.actions.limits import RateLimited, rate_limit_check
from chat.caching import RedisCache, RedisChannelLayer, redis_servers, shared_cache
from chat.realtime.hub.presence import RedisRecords
from chat.selectors import presence as presence_selectors
from chat.tests.test_settings import manage, read_settings
from project.settings import channel_layers_and_caches
from tests.support.redis import RedisServer, answers, free_port

WAIT = 10


def hosts(url):
    layers, _ = channel_layers_and_caches(url)
    return layers["default"]["CONFIG"]["hosts"]


def cache_location(url):
    _, caches = channel_layers_and_caches(url)
    return caches["default"]["LOCATION"]


# --- parsing ---


def test_unset_means_the_in_memory_layer_and_cache():
    for value in ("", "   "):
        layers, caches = channel_layers_and_caches(value)
        assert layers["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer"
        assert caches["default"]["BACKEND"].endswith("LocMemCache")


def test_one_server_carries_everything():
    layers, caches = channel_layers_and_caches("redis://redis.example.com:6379/0")
    assert layers["default"]["BACKEND"] == "chat.caching.RedisChannelLayer"
    assert [host["address"] for host in layers["default"]["CONFIG"]["hosts"]] == [
        "redis://redis.example.com:6379/0"
    ]
    assert layers["default"]["CONFIG"]["hosts"][0]["socket_timeout"] == 15
    assert caches["default"] == {
        "BACKEND": "chat.caching.RedisCache",
        "LOCATION": "redis://redis.example.com:6379/0",
        "KEY_PREFIX": "chat",
    }


def test_several_servers_shard_the_layer_and_the_first_keeps_the_cache():
    url = " redis://a.example.com:6379/0 , rediss://:pw@b.example.com:6380/1?ssl_cert_reqs=none,"
    assert [host["address"] for host in hosts(url)] == [
        "redis://a.example.com:6379/0",
        "rediss://:pw@b.example.com:6380/1?ssl_cert_reqs=none",
    ]
    assert cache_location(url) == "redis://a.example.com:6379/0"


def test_a_unix_socket_is_a_server_too():
    assert [server.where for server in redis_servers("unix:///run/redis.sock?db=2")] == [
        "unix:///run/redis.sock"
    ]


def test_sentinel_url_names_the_daemons_the_master_and_its_database():
    (server,) = redis_servers(
        "redis+sentinel://app:s%40cret@s1.example.com,[fd00::2]:26380,s3:5000/mymaster/2"
        "?sentinel_password=daemons"
    )
    assert server.sentinels == (("s1.example.com", 26379), ("fd00::2", 26380), ("s3", 5000))
    assert server.master_name == "mymaster"
    assert server.master == {"db": 2, "username": "app", "password": "s@cret", "ssl": False}
    host = server.layer_host(socket_timeout=15, socket_connect_timeout=5, max_connections=9)
    # A daemon that is down is not retried: the next one is asked at once.
    retry = host["sentinel_kwargs"].pop("retry")
    assert isinstance(retry, redis.asyncio.retry.Retry) and retry.get_retries() == 0
    assert host == {
        "sentinels": [("s1.example.com", 26379), ("fd00::2", 26380), ("s3", 5000)],
        "master_name": "mymaster",
        # The daemons answer quickly: the connect timeout, not the blocking read's 15 s.
        "sentinel_kwargs": {
            "socket_timeout": 5,
            "socket_connect_timeout": 5,
            "password": "daemons",
        },
        "db": 2,
        "username": "app",
        "password": "s@cret",
        "ssl": False,
        "socket_timeout": 15,
        "socket_connect_timeout": 5,
        "max_connections": 9,
    }


def test_tls_sentinel_and_sentinel_shards():
    url = "rediss+sentinel://s1,s2/one,redis+sentinel://s1,s2/two/3,redis://c:6379/0"
    one, two, plain = redis_servers(url)
    assert (one.master_name, one.master["ssl"], one.sentinel_kwargs({})["ssl"]) == (
        "one",
        True,
        True,
    )
    assert (two.master_name, two.master["db"], two.master["ssl"]) == ("two", 3, False)
    assert two.sentinels == (("s1", 26379), ("s2", 26379))
    assert plain.url == "redis://c:6379/0"
    assert cache_location(url) == "rediss+sentinel://s1,s2/one"
    assert len(hosts(url)) == 3


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("http://localhost:6379", "must start with redis://"),
        ("localhost:6379", "is not a URL"),
        # The old half-read: a second host without a scheme of its own.
        ("redis://a:6379/0,b:6380/0", "'b:6380/0': is not a URL"),
        ("redis://:secret@a:99999/0", "port must be a number"),
        ("redis://a:port/0", "port must be a number"),
        ("redis://a:0/0", "port must be a number"),
        ("redis:///0", "names no host"),
        ("redis://a:6379/zero", "database after the host must be a number"),
        ("redis://a:6379/0?bogus=1", "redis-py cannot use it"),
        ("redis://a:6379/0?socket_timeout=soon", "redis-py cannot use it"),
        ("unix://", "names no socket file"),
        ("redis://a/0,redis://a:6379/0", "names redis://a:6379/0 twice"),
        ("redis+sentinel://:secret@s1:26379", "names no master"),
        ("redis+sentinel://s1:26379,:26380/m", "names no host"),
        ("redis+sentinel://s1:0/m", "Sentinel port '0'"),
        ("redis+sentinel://s1/m/x", "database after the master's name must be a number"),
        ("redis+sentinel://s1/m?master_password=secret", "unknown option 'master_password'"),
        ("redis+sentinel://s1/m?sentinel_password", "name=value"),
    ],
)
def test_bad_values_are_refused_naming_redis_url_and_never_a_password(value, says):
    with pytest.raises(ImproperlyConfigured) as refused:
        redis_servers(value)
    message = str(refused.value)
    assert message.startswith("REDIS_URL"), message
    assert says in message, message
    assert "secret" not in message, message


def test_a_fresh_process_reads_shards_and_refuses_a_bad_value():
    values = read_settings(
        ["REDIS_URL", "CHANNEL_LAYERS", "CACHES"],
        REDIS_URL="redis://a.example.com:6379/0,redis://b.example.com:6379/0",
    )
    assert [host["address"] for host in values["CHANNEL_LAYERS"]["default"]["CONFIG"]["hosts"]] == [
        "redis://a.example.com:6379/0",
        "redis://b.example.com:6379/0",
    ]
    assert values["CACHES"]["default"]["LOCATION"] == "redis://a.example.com:6379/0"

    result = manage("check", REDIS_URL="redis://a.example.com:6379/0,b.example.com:6379")
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured"), last_line
    assert "REDIS_URL 'b.example.com:6379'" in last_line, last_line


# --- two real shards ---


@pytest.fixture(scope="module")
def shards():
    servers = [RedisServer().start(), RedisServer().start()]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
def sharded_url(shards):
    for server in shards:
        redis.Redis(port=server.port).flushall()
    return ",".join(server.url for server in shards)


def keys_on(server):
    return sorted(key.decode() for key in redis.Redis(port=server.port).keys("*"))


def make_cache(url):
    _, caches = channel_layers_and_caches(url)
    config = caches["default"]
    return RedisCache(config["LOCATION"], {"KEY_PREFIX": config["KEY_PREFIX"]})


def test_counts_are_read_back_where_they_were_written(shards, sharded_url):
    """Django's RedisCache would read from the second server, as a replica: empty."""
    cache = make_cache(sharded_url)
    for expected in range(1, 6):
        cache.add("login-failures:1.2.3.4:alice", 0, timeout=60)
        assert cache.incr("login-failures:1.2.3.4:alice") == expected
        assert cache.get("login-failures:1.2.3.4:alice") == expected
    assert keys_on(shards[0]) == ["chat:1:login-failures:1.2.3.4:alice"]
    assert keys_on(shards[1]) == []


def test_the_rate_limit_is_one_budget_on_the_first_server(settings, shards, sharded_url):
    _, settings.CACHES = channel_layers_and_caches(sharded_url)
    settings.CHAT_RATE_LIMIT = (3, 10)
    shared_cache.cache_clear()
    person = SimpleNamespace(pk=4242, get_username=lambda: "carol")
    try:
        for _ in range(3):
            rate_limit_check(person)
        with pytest.raises(RateLimited):
            rate_limit_check(person)
    finally:
        shared_cache.cache_clear()
    assert [key for key in keys_on(shards[0]) if ":rate:4242:" in key]
    assert keys_on(shards[1]) == []


async def test_presence_records_are_written_and_read_on_the_first_server(
    settings, shards, sharded_url
):
    settings.REDIS_URL = sharded_url
    records = RedisRecords(sharded_url)
    await records.save({7: {1, 2}, 8: {3}}, "proc-a", ttl=30)
    await records.save({7: {4}}, "proc-b", ttl=30)
    assert await records.users([7, 8]) == {7: {1, 2, 4}, 8: {3}}
    assert presence_selectors.present_user_ids([7, 8, 9]) == {7: {1, 2, 4}, 8: {3}, 9: set()}
    await records.client.aclose()
    assert all(":presence:" in key for key in keys_on(shards[0]))
    assert keys_on(shards[1]) == []


async def test_groups_spread_over_the_shards_and_reach_their_members(shards, sharded_url):
    layers, _ = channel_layers_and_caches(sharded_url)
    layer = RedisChannelLayer(**layers["default"]["CONFIG"])
    channel = await layer.new_channel(prefix="chat-process.")
    groups = [f"room-{pk}" for pk in range(1, 9)]
    try:
        for group in groups:
            await layer.group_add(group, channel)
        for group in groups:
            await layer.group_send(group, {"type": "chat.event", "group": group})
            async with asyncio.timeout(WAIT):
                assert (await layer.receive(channel))["group"] == group
    finally:
        await layer.close_pools()
    on_shard = [{key for key in keys_on(server) if ":group:" in key} for server in shards]
    for group in groups:
        home = _consistent_hash(group, 2)
        assert f"chat:group:{group}" in on_shard[home]
        assert f"chat:group:{group}" not in on_shard[1 - home]
    assert on_shard[0] and on_shard[1]  # rooms 1-8 hash to both


async def test_a_message_to_a_process_channel_goes_to_the_shard_it_reads(shards, sharded_url):
    """channels_redis#221: stock send() picks the shard by the channel's full name."""
    layers, _ = channel_layers_and_caches(sharded_url)
    config = layers["default"]["CONFIG"]
    ours, stock = RedisChannelLayer(**config), StockRedisChannelLayer(**config)
    try:
        # A channel whose full name and "...!" part hash to different shards.
        while True:
            channel = await ours.new_channel(prefix="chat-process.")
            read_from = _consistent_hash(ours.non_local_name(channel), 2)
            if _consistent_hash(channel, 2) != read_from:
                break
        queue = f"chat{ours.non_local_name(channel)}"

        await stock.send(channel, {"type": "chat.hub.stop"})
        assert queue in keys_on(shards[1 - read_from])  # where nobody reads
        redis.Redis(port=shards[1 - read_from].port).delete(queue)

        await ours.send(channel, {"type": "chat.hub.stop"})
        assert queue in keys_on(shards[read_from])
        async with asyncio.timeout(WAIT):
            assert await ours.receive(channel) == {"type": "chat.hub.stop"}
    finally:
        await ours.close_pools()
        await stock.close_pools()


# --- Sentinel ---


class Sentinel:
    """A redis-server in Sentinel mode watching `master` as `mymaster`."""

    def __init__(self, master):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="chat-sentinel-")
        config = os.path.join(self.dir, "sentinel.conf")
        with open(config, "w") as file:
            file.write(
                f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
                f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n"
            )
        self.process = subprocess.Popen(
            [shutil.which("redis-server"), config, "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not answers(self.port):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"redis-server --sentinel did not start on {self.port}")
            time.sleep(0.05)

    def stop(self):
        self.process.terminate()
        self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def sentinel_setup():
    master = RedisServer().start()
    sentinel = Sentinel(master)
    yield master, f"redis+sentinel://127.0.0.1:{free_port()},127.0.0.1:{sentinel.port}/mymaster/3"
    sentinel.stop()
    master.stop()


async def test_everything_works_through_sentinel(settings, sentinel_setup):
    """One daemon of the two listed is down: the other names the master (at once)."""
    master, url = sentinel_setup
    on_master = redis.Redis(port=master.port, db=3)

    cache = make_cache(url)
    cache.set("fragment", "kept", timeout=60)
    assert cache.get("fragment") == "kept"
    assert on_master.exists("chat:1:fragment")

    settings.REDIS_URL = url
    records = RedisRecords(url)
    await records.save({5: {1}}, "proc-a", ttl=30)
    assert await asyncio.to_thread(presence_selectors.present_user_ids, [5]) == {5: {1}}
    await records.client.aclose()

    layers, _ = channel_layers_and_caches(url)
    layer = RedisChannelLayer(**layers["default"]["CONFIG"])
    try:
        channel = await layer.new_channel(prefix="chat-process.")
        await layer.group_add("room-5", channel)
        await layer.group_send("room-5", {"type": "chat.event", "seq": 1})
        async with asyncio.timeout(WAIT):
            assert await layer.receive(channel) == {"type": "chat.event", "seq": 1}
    finally:
        await layer.close_pools()
    assert on_master.exists("chat:group:room-5")
