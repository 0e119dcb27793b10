"""chat/realtime/feed.py: a page far behind gets everything it missed, in order, in frames
small enough to send (daphne refuses a message over 1 MiB)."""

import asyncio
import json
import re

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from chat.models import Message, RoomEvent
from chat.realtime.feed import frames_of
from chat.realtime.hub import CATCH_UP_LIMIT
from chat.tests.factories import make_author, make_history, make_room
from chat.tests.realtime.hub.test_typing import hub_stopped
from chat.tests.test_security import (  # noqa: F401 - autouse fixtures, in force here too
    _as_signed_in,
    finish_background_tasks,
    no_logged_errors,
    router,
)

DAPHNE_MESSAGE_LIMIT = 1024 * 1024  # bytes: autobahn's maxMessagePayloadSize under daphne
LAST_SEQ = re.compile(r'id="last-seq" name="last_seq" value="(\d+)"')


def test_frames_of_splits_a_batch_in_order_each_under_the_limit():
    batch = [(seq, f"<li>{seq}</li>" + "x" * 40) for seq in range(1, 11)]
    frames = frames_of(batch, limit=120)
    assert [last for last, _ in frames] == [2, 4, 6, 8, 10]
    assert "".join(text for _, text in frames) == "".join(html for _, html in batch)
    assert all(len(text) <= 120 for _, text in frames)


def test_an_event_larger_than_the_limit_goes_alone():
    frames = frames_of([(1, "a" * 10), (2, "b" * 500), (3, "c" * 10)], limit=100)
    assert frames == [(1, "a" * 10), (2, "b" * 500), (3, "c" * 10)]


@pytest.mark.django_db(transaction=True)
async def test_a_page_hundreds_of_long_messages_behind_gets_them_all_in_sendable_frames():
    def history():
        author = make_author()
        room = make_room()
        # Long messages: a whole batch of them is several MiB of HTML.
        make_history(
            room=room, count=CATCH_UP_LIMIT + 100, authors=[author], text="é" * 3900 + " {}"
        )
        messages = Message.objects.filter(room=room)
        RoomEvent.objects.bulk_create(
            RoomEvent(room=room, seq=message.seq, kind="message.posted", message=message)
            for message in messages
        )
        return author, room

    author, room = await database_sync_to_async(history)()
    communicator = WebsocketCommunicator(router, f"/ws/chat/{room.slug}/?after=0")
    communicator.scope["user"] = await database_sync_to_async(_as_signed_in)(author)
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    try:
        await communicator.send_to(text_data=json.dumps({"last_seq": "0"}))
        shown, sizes = [], []
        async with asyncio.timeout(60):
            while not shown or shown[-1] < room.last_seq:
                message = await communicator.receive_output(timeout=60)
                assert message["type"] == "websocket.send", message
                text = message["text"]
                numbers = [int(seq) for seq in re.findall(r'data-seq="(\d+)"', text)]
                if numbers:
                    sizes.append(len(text.encode()))
                    shown.extend(numbers)
        assert shown == list(range(1, room.last_seq + 1))  # all, once, in order
        assert len(sizes) > 2 and max(sizes) <= DAPHNE_MESSAGE_LIMIT, sizes
    finally:
        await communicator.disconnect()
        await hub_stopped()
