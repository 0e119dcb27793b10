"""Each person's stream (chat/realtime/hub/people.py) through real sockets and the real
channel layer: "Your rooms" and the tab title redrawn live; revocation closes sockets
before anything later reaches them."""

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from chat.actions import memberships, reads
from chat.actions.messages import message_post
from chat.realtime.frames import CloseCode
from chat.tests.factories import make_author
from chat.tests.realtime.hub.test_typing import hub_stopped
from chat.tests.test_security import (  # noqa: F401 - autouse fixtures, in force here too
    _as_signed_in,
    finish_background_tasks,
    no_logged_errors,
    router,
)

pytestmark = pytest.mark.django_db(transaction=True)
WAIT = 10


@pytest.fixture(autouse=True)
def unlimited(settings):
    settings.CHAT_RATE_LIMIT = None


class Socket:
    """A page's socket, keeping every frame it gets and how it closed."""

    def __init__(self, communicator):
        self.communicator = communicator
        self.frames = []
        self.closed_with = None

    @classmethod
    async def open(cls, user, path):
        communicator = WebsocketCommunicator(router, path)
        communicator.scope["user"] = await database_sync_to_async(_as_signed_in)(user)
        connected, _ = await communicator.connect(timeout=WAIT)
        assert connected
        return cls(communicator)

    async def until(self, predicate, what):
        """Read frames until one satisfies `predicate`; return it."""
        try:
            return await self._until(predicate, what)
        except TimeoutError:
            raise AssertionError(f"no {what} in {self.frames!r}") from None

    async def _until(self, predicate, what):
        async with asyncio.timeout(WAIT):
            while True:
                for frame in self.frames:
                    if predicate(frame):
                        return frame
                message = await self.communicator.receive_output(timeout=WAIT)
                if message["type"] == "websocket.close":
                    self.closed_with = message.get("code")
                    if predicate is CLOSED:
                        return message
                    raise AssertionError(f"closed ({self.closed_with}) waiting for {what}")
                self.frames.append(message.get("text", ""))

    async def quiet(self, seconds=0.6):
        """Every frame that arrives within `seconds` (none expected after a close)."""
        got = []
        while not await self.communicator.receive_nothing(timeout=seconds):
            got.append(await self.communicator.receive_output())
        return got

    async def close(self):
        await self.communicator.disconnect()


def CLOSED(frame):
    return False


def redraw_saying(text):
    return lambda frame: 'id="my-rooms"' in frame and text in frame


async def act(function, **arguments):
    return await database_sync_to_async(function)(**arguments)


async def test_a_lobby_page_shows_unread_and_mentions_live_and_clears_when_read():
    alice, bob = (
        await database_sync_to_async(make_author)(),
        await database_sync_to_async(make_author)(),
    )
    room, _ = await act(memberships.room_open_or_create, user=alice, name="General")
    await act(memberships.room_open_or_create, user=bob, name="General")
    lobby = await Socket.open(alice, "/ws/lobby/")
    try:
        await act(message_post, room=room, author=bob, text="hello")
        await lobby.until(redraw_saying('aria-label="General, 1 unread"'), "1 unread")
        await lobby.until(lambda frame: "(1) Rooms · Chat" in frame, "the title's total")
        await act(message_post, room=room, author=bob, text=f"@{alice.username} look")
        await lobby.until(redraw_saying("General, 2 unread, 1 mention"), "a mention")
        last = await database_sync_to_async(lambda: type(room).objects.get(pk=room.pk).last_seq)()
        # Read in another tab (the room page marks it read): this page redraws, clear.
        await act(reads.read_mark, user=alice, room=room, seq=last)
        await lobby.until(redraw_saying('aria-label="General"'), "no count once read")
    finally:
        await lobby.close()
        await hub_stopped()


async def test_a_removed_member_is_closed_before_anything_later_reaches_them():
    alice, bob = (
        await database_sync_to_async(make_author)(),
        await database_sync_to_async(make_author)(),
    )
    room, _ = await act(memberships.room_open_or_create, user=alice, name="Plans", private=True)
    await act(memberships.member_add, room=room, by=alice, username=bob.username)
    page = await Socket.open(bob, f"/ws/chat/{room.slug}/")
    watcher = await Socket.open(alice, f"/ws/chat/{room.slug}/")
    try:
        for socket in (page, watcher):
            await socket.communicator.send_to(text_data=json.dumps({"last_seq": "0"}))
        await act(message_post, room=room, author=alice, text="before")
        await page.until(lambda frame: "before" in frame, "the message before the removal")
        await act(memberships.member_remove, room=room, by=alice, user_id=bob.pk)
        await act(message_post, room=room, author=alice, text="after the removal")
        await page.until(CLOSED, "the close")
        assert page.closed_with == CloseCode.REVOKED
        assert any("no longer a member" in frame for frame in page.frames)
        assert not any("after the removal" in frame for frame in page.frames)
        assert await page.quiet() == []
        # The owner's page goes on: the removal line, then the next message.
        await watcher.until(lambda frame: "after the removal" in frame, "the later message")
        # Replaying a frame after the removal: refused at the door, nothing stored.
        again = WebsocketCommunicator(router, f"/ws/chat/{room.slug}/")
        again.scope["user"] = await database_sync_to_async(_as_signed_in)(bob)
        await again.connect(timeout=WAIT)
        closed = None
        while closed is None:
            message = await again.receive_output(timeout=WAIT)
            if message["type"] == "websocket.close":
                closed = message["code"]
        assert closed == CloseCode.NO_SUCH_ROOM
    finally:
        await watcher.close()
        await page.close()
        await hub_stopped()


async def test_a_deactivated_account_loses_every_socket():
    alice = await database_sync_to_async(make_author)()
    room, _ = await act(memberships.room_open_or_create, user=alice, name="Lounge")
    lobby = await Socket.open(alice, "/ws/lobby/")
    page = await Socket.open(alice, f"/ws/chat/{room.slug}/")
    try:

        def deactivate():
            alice.is_active = False
            alice.save()

        await database_sync_to_async(deactivate)()
        for socket in (lobby, page):
            await socket.until(CLOSED, "the close")
            assert socket.closed_with == CloseCode.REVOKED
            assert any("deactivated" in frame for frame in socket.frames)
    finally:
        await lobby.close()
        await page.close()
        await hub_stopped()
