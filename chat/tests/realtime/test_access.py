"""The room socket (chat/realtime/consumer.py) and private rooms: a socket to a room its
person may not read is refused exactly as one to a room that does not exist (the same
frames, then 4404); a member's socket works."""

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from chat.actions.memberships import (
    direct_open,
    member_add,
    member_remove,
    room_leave,
    room_open_or_create,
)
from chat.actions.messages import message_post
from chat.models import Room
from chat.realtime.frames import CloseCode
from chat.realtime.routing import websocket_urlpatterns
from chat.tests.factories import make_author
from chat.tests.test_security import (
    _as_signed_in,
    finish_background_tasks,  # noqa: F401 - an autouse fixture, in force here too
    no_logged_errors,  # noqa: F401 - an autouse fixture, in force here too
    open_socket,
    project_socket,
)

pytestmark = pytest.mark.django_db(transaction=True)

application = URLRouter(websocket_urlpatterns)
SECRET_NAME = "Zebra Conspiracy"
NO_SUCH_SLUG = "zebra-conspiracy-0a1b2c"


@pytest.fixture(autouse=True)
def unlimited(settings):
    settings.CHAT_RATE_LIMIT = None


def _private_room():
    """alice's private room with bob in it, and carol outside; a message in it."""
    alice, bob, carol = (make_author(username=name) for name in ("alice", "bob", "carol"))
    room, _ = room_open_or_create(user=alice, name=SECRET_NAME, private=True)
    member_add(room=room, by=alice, username="bob")
    message_post(room=Room.objects.get(pk=room.pk), author=alice, text="for members only")
    return Room.objects.get(pk=room.pk), alice, bob, carol


@pytest.fixture
async def private():
    return await database_sync_to_async(_private_room)()


async def refusal(slug, user):
    """Everything the socket sends (after the handshake) until it closes, and the code:
    [("websocket.send", frame)..., ("websocket.close", code)]."""
    communicator = WebsocketCommunicator(application, f"/ws/chat/{slug}/")
    if user is None:
        communicator.scope["user"] = AnonymousUser()
    else:
        communicator.scope["user"] = await database_sync_to_async(_as_signed_in)(user)
    connected, _ = await communicator.connect(timeout=10)
    assert connected  # accepted, so the browser gets our close code rather than 1006
    outputs = await until_closed(communicator)
    return [(kind, text if kind == "websocket.send" else code) for kind, text, code in outputs]


async def until_closed(communicator):
    """[(type, text, code)] of what the socket sends until it closes (a socket still open
    after 10 s is disconnected and fails the test)."""
    outputs = []
    try:
        async with asyncio.timeout(10):
            while not outputs or outputs[-1][0] != "websocket.close":
                output = await communicator.receive_output(timeout=10)
                outputs.append((output["type"], output.get("text"), output.get("code")))
    finally:
        await communicator.disconnect()  # as the browser does once closed: the consumer ends
    return outputs


async def assert_refused_as_no_room(slug, user):
    hidden = await refusal(slug, user)
    absent = await refusal(NO_SUCH_SLUG, user)
    assert hidden == absent
    assert hidden[-1] == ("websocket.close", int(CloseCode.NO_SUCH_ROOM))
    assert SECRET_NAME not in str(hidden)
    assert "for members only" not in str(hidden)


async def test_a_non_members_socket_is_refused_as_for_no_room(private):
    room, _, _, carol = private
    await assert_refused_as_no_room(room.slug, carol)


async def test_a_removed_members_socket_is_refused_as_for_no_room(private):
    room, alice, bob, _ = private
    await database_sync_to_async(member_remove)(room=room, by=alice, user_id=bob.pk)
    await assert_refused_as_no_room(room.slug, bob)


async def test_staff_not_in_the_room_are_refused_too(private):
    room, *_ = private

    def make_staff():
        staff = make_author(username="staffer")
        staff.is_staff = True
        staff.save(update_fields=["is_staff"])
        return staff

    await assert_refused_as_no_room(room.slug, await database_sync_to_async(make_staff)())


async def test_an_outsiders_socket_to_a_direct_conversation_is_refused(private):
    _, alice, _, carol = private
    direct, _ = await database_sync_to_async(direct_open)(user=alice, usernames=["bob"])
    await assert_refused_as_no_room(direct.slug, carol)


async def test_an_anonymous_socket_is_refused_as_for_no_room(private):
    room, *_ = private
    hidden = await refusal(room.slug, None)
    assert hidden == await refusal(NO_SUCH_SLUG, None)
    assert hidden[-1] == ("websocket.close", int(CloseCode.NOT_LOGGED_IN))


async def test_through_the_whole_project_app_too(private):
    """Session cookie, origin check and router: the refusal is the same there."""
    room, _, _, carol = private
    answers = []
    for slug in (room.slug, NO_SUCH_SLUG):
        communicator = await project_socket(f"/ws/chat/{slug}/", user=carol)
        connected, _ = await communicator.connect(timeout=10)
        assert connected
        answers.append(await until_closed(communicator))
    assert answers[0] == answers[1]
    assert answers[0][-1] == ("websocket.close", None, int(CloseCode.NO_SUCH_ROOM))


async def test_a_members_socket_works_and_gets_the_rooms_messages(private):
    room, alice, bob, _ = private
    page = await open_socket(bob, room, last_seq=room.last_seq)
    try:
        await database_sync_to_async(message_post)(room=room, author=alice, text="welcome, members")
        await page.expect_message("welcome, members", timeout=10)
    finally:
        await page.disconnect()


async def test_a_non_member_never_gets_what_members_are_sent(private):
    room, alice, bob, carol = private
    public, _ = await database_sync_to_async(room_open_or_create)(user=carol, name="Lobby chat")
    member = await open_socket(bob, room, last_seq=room.last_seq)
    outsider = await open_socket(carol, public, last_seq=0)
    try:
        await database_sync_to_async(message_post)(room=room, author=alice, text="members only")
        await member.expect_message("members only", timeout=10)
        await outsider.settle(quiet=0.5)
        assert not any("members only" in frame for frame in outsider.received)
        assert not any(SECRET_NAME in frame for frame in outsider.received + outsider.ephemeral)
    finally:
        await member.disconnect()
        await outsider.disconnect()


# --- revocation: access ends for open sockets too ---


async def closed_for(page):
    """What an open page gets once it may no longer read its room: [text frames], code."""
    frames = []
    async with asyncio.timeout(10):
        while True:
            output = await page.communicator.receive_output(timeout=10)
            if output["type"] == "websocket.close":
                return frames, output.get("code")
            frames.append(output.get("text"))


async def test_removal_closes_the_removed_members_socket_and_nothing_more_reaches_it(private):
    room, alice, bob, _ = private
    removed = await open_socket(bob, room, last_seq=room.last_seq)
    staying = await open_socket(alice, room, last_seq=room.last_seq)
    try:
        await database_sync_to_async(member_remove)(room=room, by=alice, user_id=bob.pk)
        await database_sync_to_async(message_post)(
            room=await database_sync_to_async(Room.objects.get)(pk=room.pk),
            author=alice,
            text="said after bob left",
        )
        frames, code = await closed_for(removed)
        assert code == int(CloseCode.REVOKED)
        assert any('id="connection-status"' in frame for frame in frames), frames
        assert not any("said after bob left" in frame for frame in frames + removed.received)
        await staying.expect_message("said after bob left", timeout=10)
    finally:
        await removed.disconnect()
        await staying.disconnect()


async def test_leaving_a_private_room_closes_ones_socket(private):
    room, _, bob, _ = private
    page = await open_socket(bob, room, last_seq=room.last_seq)
    try:
        await database_sync_to_async(room_leave)(room=room, user=bob)
        _, code = await closed_for(page)
        assert code == int(CloseCode.REVOKED)
    finally:
        await page.disconnect()
