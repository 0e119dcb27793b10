"""Floods against real `web:` processes, started as the Procfile starts them.

One user floods the room through sockets on two processes at once; the rate limit is
one budget per user in Redis, so only that budget gets through, the excess is refused in
the flooder's composer, and two other users (one per process) keep chatting with every
message delivered to every page. Also: floods of bytes (huge, binary and non-UTF-8
frames) and the refusals as a real client sees them.
"""

import asyncio
import contextlib
import json
import time
import uuid

import pytest
import websockets

from chat.tests.test_security import Composer, is_composer, message_texts, parse_html
from tests.support.accounts import HttpSession

pytestmark = pytest.mark.system

LIMIT, SECONDS = 5, 10
FLOOD = 20
TALK = 4  # each talker stays within its own budget


class Socket:
    """A room socket that records every frame; `until` awaits a condition on them."""

    def __init__(self, name, connection):
        self.name = name
        self.connection = connection
        self.frames = []
        self.changed = asyncio.Event()
        self.closed = False
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, name, process, session, slug):
        connection = await websockets.connect(
            f"{process.ws_url}/ws/chat/{slug}/",
            origin=process.url,
            additional_headers=session.socket_headers(),
            open_timeout=60,
        )
        socket = cls(name, connection)
        await connection.send(json.dumps({"last_seq": "0"}))
        return socket

    async def _read(self):
        try:
            async for frame in self.connection:
                self.frames.append(frame)
                self.changed.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed = True
            self.changed.set()  # a close is news too

    async def until(self, condition, timeout=90):
        async with asyncio.timeout(timeout):
            while not condition():
                self.changed.clear()
                await self.changed.wait()

    async def until_composers(self, count):
        """Until `count` composer answers have arrived."""
        await self.until(lambda: sum(is_composer(frame) for frame in self.frames) >= count)

    async def post(self, text):
        await self.connection.send(
            json.dumps({"message": text, "client_key": str(uuid.uuid4()), "HEADERS": {}})
        )

    def composers(self):
        return [Composer(frame) for frame in self.frames if is_composer(frame)]

    def shown(self):
        return [text for frame in self.frames for text in message_texts(frame)]

    async def close(self):
        await self.connection.close()
        self.reader.cancel()


async def test_huge_and_malformed_frames_do_not_hurt_a_real_server(start_web):
    """Through daphne: a flood of bytes is refused, and the room keeps working."""
    web = start_web()
    tag = uuid.uuid4().hex[:6]
    mallory = HttpSession(web.url).sign_up(f"mallory-{tag}")
    bob = HttpSession(web.url).sign_up(f"bob-{tag}")
    slug = mallory.open_room(f"bytes {tag}")
    reader = await Socket.open("bob", web, bob, slug)
    try:
        # Over the app's frame cap (64 KiB by default): refused with a clear error in the
        # composer, before it is parsed, and the socket stays usable.
        attacker = await Socket.open("mallory", web, mallory, slug)
        await attacker.connection.send(json.dumps({"message": "x" * 200_000}))
        await attacker.until(lambda: len(attacker.composers()) >= 1)
        assert "too large" in attacker.composers()[0].error.lower()
        assert len(attacker.frames[-1]) < 10_000  # nothing huge echoed back
        await attacker.post(f"usable after {tag}")
        await attacker.until(lambda: f"usable after {tag}" in attacker.shown())

        # Far over it: the server may drop the connection before reading it all (daphne's
        # own 1 MiB cap), or refuse it as above; it must not crash.
        with contextlib.suppress(websockets.ConnectionClosed):
            await attacker.connection.send(json.dumps({"message": "x" * (8 * 1024 * 1024)}))
        await attacker.until(lambda: len(attacker.composers()) >= 3 or attacker.closed)
        if not attacker.closed:
            assert "too large" in attacker.composers()[-1].error.lower()
        else:
            assert attacker.connection.close_code in (None, 1006, 1009)
        await attacker.close()

        # Binary frames and a text frame that is not UTF-8 (sent raw, as a buggy or
        # hostile client could).
        attacker = await Socket.open("mallory", web, mallory, slug)
        await attacker.connection.send(b"\x00\xff binary")
        await attacker.until(lambda: len(attacker.composers()) >= 1)
        assert "binary" in attacker.composers()[0].error.lower()
        await attacker.connection.send(f"still fine {tag}", text=True)
        await attacker.until(lambda: len(attacker.composers()) >= 2)
        await attacker.close()

        attacker = await Socket.open("mallory", web, mallory, slug)
        await attacker.connection.send(b'{"message": "\xff\xfe"}', text=True)
        await attacker.until(lambda: attacker.closed)
        # Invalid frame payload data: autobahn drops the connection (1006) or says 1007.
        assert attacker.connection.close_code in (1006, 1007)
        await attacker.close()

        # The server still serves the room: a fresh socket posts, Bob's page shows it.
        after = await Socket.open("mallory", web, mallory, slug)
        await after.post(f"after the junk {tag}")
        await reader.until(lambda: f"after the junk {tag}" in reader.shown())
        await after.close()
        assert not [f for f in reader.frames if is_composer(f)]
        assert "Traceback" not in web.log_text()
    finally:
        await reader.close()


@pytest.mark.parametrize(
    ("case", "code"),
    [("foreign origin", 4403), ("no session", 4401), ("no such room", 4404)],
)
async def test_refusals_reach_a_real_client_as_final_close_codes(start_web, case, code):
    web = start_web()
    session = HttpSession(web.url).sign_up(f"eve-{uuid.uuid4().hex[:6]}")
    slug = session.open_room(f"closed {uuid.uuid4().hex[:6]}")
    origin, headers = web.url, session.socket_headers()
    if case == "foreign origin":
        origin = "https://evil.example"
    elif case == "no session":
        headers = {}
    elif case == "no such room":
        slug = "no-such-room"
    async with websockets.connect(
        f"{web.ws_url}/ws/chat/{slug}/", origin=origin, additional_headers=headers
    ) as connection:
        frames = []
        try:
            async with asyncio.timeout(60):
                while True:
                    frames.append(await connection.recv())
        except websockets.ConnectionClosed:
            pass
    assert connection.close_code == code
    assert not any('class="message"' in frame for frame in frames)


async def test_one_users_flood_is_cut_to_one_shared_budget_while_others_chat(start_web):
    first = start_web(CHAT_RATE_LIMIT=f"{LIMIT}/{SECONDS}")
    second = start_web(CHAT_RATE_LIMIT=f"{LIMIT}/{SECONDS}")
    tag = uuid.uuid4().hex[:6]
    mallory = HttpSession(first.url).sign_up(f"mallory-{tag}")
    bob = HttpSession(second.url).sign_up(f"bob-{tag}")
    carol = HttpSession(first.url).sign_up(f"carol-{tag}")
    slug = mallory.open_room(f"flood {tag}")

    flood_first = await Socket.open("mallory@first", first, mallory, slug)
    flood_second = await Socket.open("mallory@second", second, mallory, slug)
    bob_socket = await Socket.open("bob@second", second, bob, slug)
    carol_socket = await Socket.open("carol@first", first, carol, slug)
    sockets = [flood_first, flood_second, bob_socket, carol_socket]
    try:
        # Every page is live before the flood starts.
        await carol_socket.post(f"hello from carol {tag}")
        for socket in sockets:
            await socket.until(lambda s=socket: f"hello from carol {tag}" in s.shown())

        flood = {flood_first: [], flood_second: []}
        talk = {bob_socket: [], carol_socket: []}
        started = time.monotonic()
        for number in range(FLOOD):
            target = flood_first if number % 2 == 0 else flood_second
            text = f"flood {number} {tag}"
            flood[target].append(text)
            await target.post(text)
            if number % (FLOOD // TALK) == 0:
                for talker, name in ((bob_socket, "bob"), (carol_socket, "carol")):
                    text = f"{name} says {len(talk[talker])} {tag}"
                    talk[talker].append(text)
                    await talker.post(text)

        # Every post gets exactly one answer in its sender's composer.
        for socket, texts in flood.items():
            await socket.until_composers(len(texts))
        ended = time.monotonic()
        for talker, texts in talk.items():
            # Carol's first composer answered her "hello" before the flood.
            extra = 1 if talker is carol_socket else 0
            await talker.until_composers(len(texts) + extra)
            assert [c.error for c in talker.composers()] == [None] * (len(texts) + extra)

        accepted, refused = [], []
        for socket, texts in flood.items():
            composers = socket.composers()
            assert len(composers) == len(texts), socket.name
            for text, composer in zip(texts, composers, strict=True):
                if composer.error is None:
                    accepted.append(text)
                else:
                    assert "slow down" in composer.error.lower(), composer.error
                    assert composer.text == text  # kept for a later retry
                    refused.append(text)

        # One budget for both processes: N, plus what a limiter may refill during the
        # flood itself (N/S per second), never N per process.
        allowance = LIMIT + int(LIMIT * (ended - started) / SECONDS)
        assert LIMIT <= len(accepted) <= allowance, (len(accepted), allowance, ended - started)
        assert refused, "nothing of the flood was refused"
        assert {text for texts in flood.values() for text in texts} == {*accepted, *refused}
        assert any(text in refused for text in flood[flood_first])
        assert any(text in refused for text in flood[flood_second])

        # Every page shows every accepted message once, and none of the refused ones.
        everything = [*accepted, *(text for texts in talk.values() for text in texts)]
        for socket in sockets:
            await socket.until(
                lambda s=socket: all(text in s.shown() for text in everything), timeout=90
            )
            shown = socket.shown()
            for text in everything:
                assert shown.count(text) == 1, (socket.name, text)
            assert not [text for text in refused if text in shown], socket.name

        # The database agrees: the room page lists exactly what was accepted.
        _, page = mallory.get(f"/chat/{slug}/")
        tree = parse_html(page)
        stored = [
            node.text() for node in tree.find_all(lambda node: "message-text" in node.classes)
        ]
        assert sorted(text for text in stored if text.startswith("flood ")) == sorted(accepted)
        for texts in talk.values():
            assert all(text in stored for text in texts)
    finally:
        for socket in sockets:
            await socket.close()
