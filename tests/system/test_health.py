"""Probes and metrics of real `web:` processes, started as the Procfile starts them.

Outages are real: a redis-server of the test's own that it stops, a database file that
cannot be opened. The session's shared Redis is never touched.
"""

import asyncio
import json
import re
import time
import urllib.error
import urllib.request
import uuid

import pytest
import websockets

from tests.support.accounts import HttpSession
from tests.support.redis import free_port

pytestmark = pytest.mark.system

TOKEN = "system-test-token-" + uuid.uuid4().hex
WAIT = 30


def get(url, **headers):
    """(status, body) of a GET, whatever the status."""
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def metric(web, name):
    """The value of the series `name` (labels included) on `web`'s /metrics."""
    status, body = get(f"{web.url}/metrics", Authorization=f"Bearer {TOKEN}")
    assert status == 200, body
    found = re.search(rf"^{re.escape(name)} (\S+)$", body, re.MULTILINE)
    assert found, f"{name} not in /metrics"
    return float(found[1])


def eventually(check, what):
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {WAIT} s")
        time.sleep(0.1)


def test_readyz_follows_redis_while_healthz_stays_up(start_web, private_redis):
    web = start_web(REDIS_URL=private_redis.url)
    assert get(f"{web.url}/healthz") == (200, "ok\n")
    assert get(f"{web.url}/readyz") == (200, "database: ok\nredis: ok\n")

    private_redis.stop()
    status, body = get(f"{web.url}/readyz")
    assert status == 503
    assert body.splitlines() == ["database: ok", "redis: failed (ConnectionError)"]
    assert get(f"{web.url}/healthz") == (200, "ok\n")  # alive: restarting it would not help

    private_redis.start()  # same port, empty
    assert get(f"{web.url}/readyz") == (200, "database: ok\nredis: ok\n")


def test_readyz_names_the_database_when_it_does_not_answer(
    start_web, system_database_url, tmp_path
):
    if system_database_url.startswith("sqlite"):
        unreachable = f"sqlite:///{tmp_path}/no-such-folder/db.sqlite3"
    else:  # the same server kind, on a port where nothing listens
        unreachable = f"postgres://postgres@127.0.0.1:{free_port()}/chat"
    web = start_web(DATABASE_URL=unreachable)
    status, body = get(f"{web.url}/readyz")
    assert status == 503
    assert body.splitlines() == ["database: failed (OperationalError)", "redis: ok"]
    assert get(f"{web.url}/healthz") == (200, "ok\n")


def test_probes_answer_an_internal_host_that_the_site_refuses(start_web):
    web = start_web(CHAT_METRICS=TOKEN)
    internal = {"Host": f"10.0.3.7:{web.port}"}  # a platform's probe: not in ALLOWED_HOSTS
    assert get(f"{web.url}/accounts/login/", **internal)[0] == 400
    assert get(f"{web.url}/healthz", **internal) == (200, "ok\n")
    assert get(f"{web.url}/readyz", **internal)[0] == 200
    assert get(f"{web.url}/metrics", **internal)[0] == 401  # the token still applies
    status, _ = get(f"{web.url}/metrics", Authorization=f"Bearer {TOKEN}", **internal)
    assert status == 200


def test_metrics_are_off_unless_configured_in_production(start_web):
    web = start_web()  # DEBUG off, CHAT_METRICS unset
    assert get(f"{web.url}/metrics")[0] == 404


async def test_metrics_count_the_open_sockets_of_the_process(start_web):
    web = start_web(CHAT_METRICS=TOKEN)
    alice = HttpSession(web.url).sign_up(f"alice-{uuid.uuid4().hex[:6]}")
    slug = alice.open_room(f"metrics {uuid.uuid4().hex[:6]}")
    assert metric(web, "chat_open_sockets") == 0
    async with websockets.connect(
        f"{web.ws_url}/ws/chat/{slug}/", origin=web.url, additional_headers=alice.socket_headers()
    ) as socket:
        await socket.send(json.dumps({"last_seq": "0"}))
        # The socket joined its room before the handshake completed.
        assert await asyncio.to_thread(metric, web, "chat_open_sockets") == 1
        assert await asyncio.to_thread(metric, web, "chat_rooms_served") == 1
    await asyncio.to_thread(
        eventually, lambda: metric(web, "chat_open_sockets") == 0, "the closed socket left"
    )


async def test_a_posted_message_is_counted_and_logged_as_one_json_line(start_web):
    """HOOK chat/events.py `_publish`: metrics.event_published(kind.name, room_id, seq)."""
    web = start_web(CHAT_METRICS=TOKEN, CHAT_LOG_FORMAT="json")
    started = len(web.log_text())  # the log file is appended to: only this run's lines
    alice = HttpSession(web.url).sign_up(f"alice-{uuid.uuid4().hex[:6]}")
    slug = alice.open_room(f"logged {uuid.uuid4().hex[:6]}")
    async with websockets.connect(
        f"{web.ws_url}/ws/chat/{slug}/", origin=web.url, additional_headers=alice.socket_headers()
    ) as socket:
        await socket.send(json.dumps({"last_seq": "0"}))
        await socket.send(json.dumps({"message": "counted and logged"}))
        async with asyncio.timeout(WAIT):
            while "counted and logged" not in (frame := await socket.recv()):
                pass
    seq = max(map(int, re.findall(r'data-seq="(\d+)"', frame)))  # the newest event: ours

    def posted():
        log = web.log_text()[started:]
        lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        return [
            line
            for line in lines
            if line.get("logger") == "chat.events.published" and line["kind"] == "message.posted"
        ]

    await asyncio.to_thread(eventually, posted, "the event's log line")
    (line,) = posted()
    assert (line["seq"], line["level"]) == (seq, "INFO")
    assert line["message"] == f"event published room={line['room']} seq={seq} kind=message.posted"
    assert metric(web, 'chat_events_published_total{kind="message.posted"}') == 1
