"""The room socket against the real Redis channel layer."""

import asyncio
import json
import uuid

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from chat.models import Message
from chat.protocol import CloseCode
from chat.routing import websocket_urlpatterns
from chat.tests.factories import make_message, make_room, make_user

pytestmark = pytest.mark.django_db(transaction=True)

application = URLRouter(websocket_urlpatterns)


async def open_socket(user, room, *, last_seq=None):
    """Connect as `user` and report the page's position, as the page's catch-up form does."""
    communicator = WebsocketCommunicator(application, f"/ws/chat/{room.slug}/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    if last_seq is not None:
        await communicator.send_to(text_data=json.dumps({"last_seq": str(last_seq)}))
    return communicator


async def receive_until(communicator, predicate, timeout=5):
    """Frames until one satisfies `predicate`; returns them all."""
    frames = []
    async with asyncio.timeout(timeout):
        while True:
            frames.append(await communicator.receive_from(timeout=timeout))
            if predicate(frames[-1]):
                return frames


def post(text, key=None):
    frame = {"message": text, "HEADERS": {"HX-Request": "true", "HX-Trigger": "composer"}}
    if key:
        frame["client_key"] = str(key)
    return json.dumps(frame)


async def test_message_reaches_every_socket_of_the_room_once():
    alice, bob = (
        await database_sync_to_async(make_user)(),
        await database_sync_to_async(make_user)(),
    )
    room = await database_sync_to_async(make_room)()
    sender = await open_socket(alice, room, last_seq=0)
    reader = await open_socket(bob, room, last_seq=0)
    try:
        await sender.send_to(text_data=post("hello <b>world</b>"))
        for communicator in (sender, reader):
            frames = await receive_until(communicator, lambda frame: 'class="message"' in frame)
            assert "hello &lt;b&gt;world&lt;/b&gt;" in frames[-1]
        message = await database_sync_to_async(Message.objects.get)(room=room)
        assert f'id="message-{message.pk}"' in frames[-1]
        # Nothing else arrives for the reader: not a second copy.
        assert await reader.receive_nothing(timeout=0.3)
    finally:
        await sender.disconnect()
        await reader.disconnect()


async def test_other_room_is_not_reached():
    alice = await database_sync_to_async(make_user)()
    here, elsewhere = [await database_sync_to_async(make_room)() for _ in range(2)]
    sender = await open_socket(alice, here, last_seq=0)
    outsider = await open_socket(alice, elsewhere, last_seq=0)
    try:
        await sender.send_to(text_data=post("only here"))
        await receive_until(sender, lambda frame: "only here" in frame)
        assert await outsider.receive_nothing(timeout=0.5)
    finally:
        await sender.disconnect()
        await outsider.disconnect()


async def test_anonymous_socket_is_closed_with_a_final_code():
    from django.contrib.auth.models import AnonymousUser

    room = await database_sync_to_async(make_room)()
    communicator = WebsocketCommunicator(application, f"/ws/chat/{room.slug}/")
    communicator.scope["user"] = AnonymousUser()
    connected, _ = await communicator.connect()
    assert connected  # accepted only to close with a code the extension does not retry
    frame = await communicator.receive_from()
    assert "signed out" in frame
    closed = await communicator.receive_output()
    assert closed == {"type": "websocket.close", "code": CloseCode.NOT_LOGGED_IN}
    await communicator.wait()


async def test_unknown_room_is_closed_with_a_final_code():
    alice = await database_sync_to_async(make_user)()
    communicator = WebsocketCommunicator(application, "/ws/chat/no-such-room/")
    communicator.scope["user"] = alice
    await communicator.connect()
    await communicator.receive_from()
    assert (await communicator.receive_output())["code"] == CloseCode.NO_SUCH_ROOM
    await communicator.wait()


async def test_catch_up_sends_what_the_page_missed_in_order():
    alice = await database_sync_to_async(make_user)()
    room = await database_sync_to_async(make_room)()
    for number in range(1, 6):
        await database_sync_to_async(make_message)(room=room, author=alice, text=f"m{number}")
    communicator = await open_socket(alice, room, last_seq=2)
    try:
        frames = await receive_until(communicator, lambda frame: "m5" in frame)
        text = "".join(frames)
        assert "m1" not in text and "m2" not in text
        assert text.index("m3") < text.index("m4") < text.index("m5")
        assert 'id="last-seq" name="last_seq" value="5"' in text
    finally:
        await communicator.disconnect()


async def test_blank_message_is_refused_in_the_composer_and_the_socket_stays_usable():
    alice = await database_sync_to_async(make_user)()
    room = await database_sync_to_async(make_room)()
    communicator = await open_socket(alice, room, last_seq=0)
    try:
        await communicator.send_to(text_data=post("   "))
        frame = await communicator.receive_from()
        assert 'id="composer-fields"' in frame and "Write something first." in frame
        await communicator.send_to(text_data=post("now with words"))
        await receive_until(
            communicator, lambda frame: "now with words" in frame and "message-" in frame
        )
        assert await database_sync_to_async(Message.objects.count)() == 1
    finally:
        await communicator.disconnect()


async def test_same_composer_form_twice_stores_one_message():
    alice = await database_sync_to_async(make_user)()
    room = await database_sync_to_async(make_room)()
    communicator = await open_socket(alice, room, last_seq=0)
    key = uuid.uuid4()
    try:
        await communicator.send_to(text_data=post("once", key))
        await communicator.send_to(text_data=post("once", key))
        frames = await receive_until(communicator, lambda frame: "message-" in frame)
        frames += await _drain(communicator)
        assert sum(frame.count('class="message"') for frame in frames) == 1
        assert await database_sync_to_async(Message.objects.count)() == 1
    finally:
        await communicator.disconnect()


async def _drain(communicator, quiet=0.5):
    frames = []
    while not await communicator.receive_nothing(timeout=quiet):
        frames.append(await communicator.receive_from())
    return frames
