"""Two `web:` processes, started as the Procfile starts them, on two real redis-server
shards: REDIS_URL names both (issue 13 item 6).

The channel layer shards across both (each room's group lives on the shard its name
hashes to), while the cache (rate limits, login lockout) and the presence records stay
on the first. The reconcile loop is off (CHAT_RECONCILE_SECONDS=3600), so what a page on
the other process shows came through the shards, not from the database.
"""

import asyncio
import uuid

import pytest
import redis

from tests.support.accounts import HttpSession
from tests.support.redis import RedisServer
from tests.system.test_presence import Person, lists, visit

pytestmark = [pytest.mark.system, pytest.mark.timeout(180)]

SLOW = 60  # seconds: generous, the machine is shared
# Rooms opened until both shards hold a room's group: consecutive room ids hash to one
# shard of two in runs of up to 10 (CRC32 of `room-<pk>`).
MAX_ROOMS = 12


@pytest.fixture
def shards():
    servers = [RedisServer().start(), RedisServer().start()]
    yield servers
    for server in servers:
        server.stop()


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def keys(server, pattern="*"):
    return {key.decode() for key in redis.Redis(port=server.port).scan_iter(pattern, count=1000)}


def command_calls(server, command):
    """How many times the shard ran `command` (INFO commandstats), 0 if never."""
    stats = redis.Redis(port=server.port).info("commandstats")
    return stats.get(f"cmdstat_{command}", {}).get("calls", 0)


async def sign_up(web, name):
    session = await asyncio.to_thread(HttpSession(web.url).sign_up, name)
    return Person(name, session)


async def log_in(web, username, password):
    """(status, body) of the login form posted on `web`."""
    status, _, body = await asyncio.to_thread(
        HttpSession(web.url).post_form,
        "/accounts/login/",
        {"username": username, "password": password},
    )
    return status, body


async def test_two_processes_on_two_shards(start_web, shards):
    alice, bob, carol = unique("alice"), unique("bob"), unique("carol")
    env = {
        "REDIS_URL": ",".join(server.url for server in shards),
        "CHAT_RECONCILE_SECONDS": 3600,
        "CHAT_RATE_LIMIT": "3/10",
        "CHAT_RATE_LIMIT_EXEMPT": f"{alice},{bob}",  # they talk a lot; carol floods
        "CHAT_LOGIN_FAILURE_LIMIT": 2,
    }
    first, second = start_web(**env), start_web(**env)
    alice, bob, carol = [await sign_up(first, name) for name in (alice, bob, carol)]
    pages = []

    try:
        # --- delivery and presence, in rooms until both shards hold a room's group ---
        rooms = {}  # slug -> index of the shard holding its group
        while set(rooms.values()) != {0, 1}:
            assert len(rooms) < MAX_ROOMS, f"every room's group hashed to one shard: {rooms}"
            before = [keys(server, "chat:group:room-*") for server in shards]
            slug = await asyncio.to_thread(alice.session.open_room, unique("room"))
            here = await visit(first, alice, slug)
            there = await visit(second, bob, slug)
            pages += [here, there]
            # Each process's presence notice crossed to the other one.
            await lists([here, there], [alice, bob], timeout=SLOW)
            hello, reply = unique("hello"), unique("reply")
            await here.post(hello)
            await there.until_shows(hello, timeout=SLOW)
            await there.post(reply)
            await here.until_shows(reply, timeout=SLOW)
            (shard,) = [
                index
                for index, server in enumerate(shards)
                if keys(server, "chat:group:room-*") - before[index]
            ]
            rooms[slug] = shard

        # --- catch-up after a reconnect, and presence following it ---
        slug = next(iter(rooms))
        here, there = pages[0], pages[1]
        await there.close()  # bob's tab on the second process
        await lists([here], [alice], timeout=SLOW)
        missed = [unique("missed") for _ in range(3)]
        for text in missed:
            await here.post(text)
        await here.until_shows(missed[-1], timeout=SLOW)
        await there.connect(first)  # back, on the other process this time
        await there.until_seq(here.last_seq, timeout=SLOW)
        assert there.seqs == list(range(1, here.last_seq + 1)), there.seqs
        assert there.texts == here.texts
        await lists([here, there], [alice, bob], timeout=SLOW)

        # --- one rate-limit budget for carol, across both processes ---
        carol_here = await visit(first, carol, slug)
        carol_there = await visit(second, carol, slug)
        pages += [carol_here, carol_there]
        sent = []
        for number, page in enumerate([carol_here, carol_there, carol_here, carol_there]):
            answers = len(page.composers)
            text = f"carol {number} {uuid.uuid4().hex[:6]}"
            await page.post(text)
            await page.until(lambda page=page, answers=answers: len(page.composers) > answers)
            sent.append((text, page.composer["error"]))
        assert [error for _, error in sent[:3]] == [None, None, None], sent
        assert "Slow down" in (sent[3][1] or ""), sent
        settle = unique("settle")
        await here.post(settle)
        for page in (here, there, carol_here, carol_there):
            await page.until_shows(settle, timeout=SLOW)
            assert [text for text, _ in sent[:3]] == [
                text for text in page.texts if text.startswith("carol ")
            ], page.name

        # --- one login lockout, across both processes ---
        assert (await log_in(first, carol.name, "wrong password"))[0] == 200
        assert (await log_in(second, carol.name, "wrong password"))[0] == 200
        _, body = await log_in(second, carol.name, "a-long-test-password-1")
        assert "Too many failed attempts" in body, body[-2000:]

        # --- what each shard carries ---
        first_keys, second_keys = keys(shards[0]), keys(shards[1])
        # The cache (rate limits, lockout) and presence records: the first shard only.
        assert any(":rate:" in key for key in first_keys), sorted(first_keys)
        assert any(":login-failures:" in key for key in first_keys), sorted(first_keys)
        assert any(key.startswith("chat:presence:") for key in first_keys), sorted(first_keys)
        # The second holds only the layer's keys: groups (and, for a moment, queued events).
        assert not [key for key in second_keys if key.startswith(("chat:1:", "chat:presence:"))]
        assert any(key.startswith("chat:group:") for key in second_keys), sorted(second_keys)
        # The channel layer: both. Each room's group sits on one shard; a group_send reads
        # its members there (ZRANGE) and queues the event on each member's shard (EVAL).
        for index, server in enumerate(shards):
            held = {slug for slug, shard in rooms.items() if shard == index}
            assert held, f"no room's group on shard {index}"
            assert command_calls(server, "zrange") > 0, index
            assert command_calls(server, "zadd") > 0, index
        assert command_calls(shards[0], "eval") + command_calls(shards[1], "eval") > 0
    finally:
        await asyncio.gather(*(page.close() for page in pages))
