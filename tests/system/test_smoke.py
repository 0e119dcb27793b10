"""Two `web:` processes from the Procfile share one Redis: a message crosses between them."""

import asyncio
import json
import uuid

import pytest
import websockets

from tests.support.accounts import HttpSession

pytestmark = pytest.mark.system


async def test_message_posted_on_one_process_reaches_a_page_on_the_other(start_web):
    first, second = start_web(), start_web()
    alice = HttpSession(first.url).sign_up(f"alice-{uuid.uuid4().hex[:6]}")
    bob = HttpSession(second.url).sign_up(f"bob-{uuid.uuid4().hex[:6]}")
    slug = alice.open_room(f"smoke {uuid.uuid4().hex[:6]}")
    async with (
        websockets.connect(
            f"{first.ws_url}/ws/chat/{slug}/",
            origin=first.url,
            additional_headers=alice.socket_headers(),
        ) as sender,
        websockets.connect(
            f"{second.ws_url}/ws/chat/{slug}/",
            origin=second.url,
            additional_headers=bob.socket_headers(),
        ) as reader,
    ):
        for socket in (sender, reader):
            await socket.send(json.dumps({"last_seq": "0"}))
        await sender.send(json.dumps({"message": "across processes"}))
        async with asyncio.timeout(10):
            while "across processes" not in (frame := await reader.recv()):
                pass
        assert 'data-seq="1"' in frame
