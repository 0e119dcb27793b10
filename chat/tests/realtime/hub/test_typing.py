"""Typing (chat/realtime/hub/typing.py, and its frame in the consumer): "alice is typing…"
on every other page, on real Redis and a real database.

Hubs act as server processes (see test_presence.py for `Cluster` and `Tab`); the last
tests go through the real consumer with `WebsocketCommunicator`, on the test Redis.
"""

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from channels_redis.core import RedisChannelLayer
from django.contrib.auth import get_user_model

from chat import events
from chat.models import Profile
from chat.realtime.hub import get_hub
from chat.realtime.hub.link import TYPING_TYPE, group_name
from chat.realtime.routing import websocket_urlpatterns
from chat.tests.realtime.hub.test_presence import (
    PAGE,
    WAIT,
    Cluster,
    a_room,
    people,
    private_redis,  # noqa: F401 - a fixture
    until,
)
from project.settings import channel_layers_and_caches
from tests.support import htmx

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def cluster(private_redis):  # noqa: F811 - the fixture imported above
    layers, _ = channel_layers_and_caches(private_redis.url)
    made = Cluster(layers["default"]["CONFIG"])
    yield made
    await made.end()


async def typing_shows(tabs, text, *, timeout=WAIT):
    await until(
        lambda: all(tab.typing == text for tab in tabs),
        timeout=timeout,
        what=f"{[tab.name for tab in tabs]} showing {text!r} (they show "
        f"{[tab.typing for tab in tabs]})",
    )


def said_typing(tab, name):
    """Whether any frame the tab got said that `name` is typing."""
    return any(
        f"{name} is typing" in frame or f"{name} and" in frame or f"and {name} are" in frame
        for frame in tab.frames
    )


def typing_frames(tab):
    return sum('id="typing"' in frame for frame in tab.frames)


async def settled(*hubs):
    """No typing change is still being sent, and every notice has gone out."""
    await until(
        lambda: all(not hub.typing.showing and not hub.typing.notices for hub in hubs),
        what="typing changes sent",
    )


# --- what pages show ---


async def test_a_typist_shows_on_every_other_page_on_both_processes_and_never_to_themselves(
    cluster,
):
    alice, bob, carol = await people("alice", "bob", "carol")
    room = await a_room()
    first, second = cluster.hub(), cluster.hub()
    alice_here = await cluster.open(first, room, alice)
    alice_there = await cluster.open(second, room, alice)
    bob_tab = await cluster.open(second, room, bob)
    carol_tab = await cluster.open(first, room, carol)

    first.typing.started(room.pk, alice.pk, "alice")
    await typing_shows([bob_tab, carol_tab], "alice is typing…")
    await settled(first, second)
    for tab in (alice_here, alice_there):
        assert tab.typing == ""
        assert not said_typing(tab, "alice")

    # She sends her message: gone everywhere.
    first.typing.stopped(room.pk, alice.pk)
    await typing_shows([bob_tab, carol_tab, alice_here, alice_there], "")
    assert not said_typing(alice_here, "alice") and not said_typing(alice_there, "alice")


async def test_two_typists_are_named_three_are_several_and_none_sees_themselves(cluster):
    alice, bob, dave, carol = await people("alice", "bob", "dave", "carol")
    room = await a_room()
    first, second = cluster.hub(), cluster.hub()
    tabs = {
        "alice": await cluster.open(first, room, alice),
        "bob": await cluster.open(second, room, bob),
        "dave": await cluster.open(second, room, dave),
        "carol": await cluster.open(first, room, carol),
    }

    second.typing.started(room.pk, bob.pk, "bob")
    first.typing.started(room.pk, alice.pk, "alice")
    await typing_shows([tabs["carol"], tabs["dave"]], "alice and bob are typing…")
    await typing_shows([tabs["alice"]], "bob is typing…")
    await typing_shows([tabs["bob"]], "alice is typing…")

    second.typing.started(room.pk, dave.pk, "dave")
    await typing_shows([tabs["carol"]], "several people are typing…")
    await typing_shows([tabs["alice"]], "bob and dave are typing…")
    await typing_shows([tabs["bob"]], "alice and dave are typing…")
    await typing_shows([tabs["dave"]], "alice and bob are typing…")
    await settled(first, second)
    for name, tab in tabs.items():
        assert not said_typing(tab, name), (name, tab.frames)


async def test_typing_goes_by_itself_when_the_typist_stops(cluster, settings):
    settings.CHAT_TYPING_SECONDS = 1.0
    alice, bob = await people("alice", "bob")
    room = await a_room()
    first, second = cluster.hub(), cluster.hub()
    await cluster.open(first, room, alice)
    bob_tab = await cluster.open(second, room, bob)

    first.typing.started(room.pk, alice.pk, "alice")
    await typing_shows([bob_tab], "alice is typing…")
    # No "stopped" ever comes: every process expires her by itself.
    await typing_shows([bob_tab], "")
    assert not first.typing.typists and not second.typing.typists


async def test_someone_who_keeps_typing_stays_shown_and_costs_no_new_frame(cluster, settings):
    settings.CHAT_TYPING_SECONDS = 1.0
    alice, bob = await people("alice", "bob")
    room = await a_room()
    first, second = cluster.hub(), cluster.hub()
    await cluster.open(first, room, alice)
    bob_tab = await cluster.open(second, room, bob)
    first.typing.started(room.pk, alice.pk, "alice")
    await typing_shows([bob_tab], "alice is typing…")
    frames = typing_frames(bob_tab)

    # Frames come more often than the expiry: she never disappears, and the pages
    # are sent nothing new (the set of typists did not change).
    loop = asyncio.get_running_loop()
    until_time = loop.time() + 2.5
    while loop.time() < until_time:
        first.typing.started(room.pk, alice.pk, "alice")
        await asyncio.sleep(0.3)  # the pace of a page's frames, shortened
        assert bob_tab.typing == "alice is typing…"
    await settled(first, second)
    assert typing_frames(bob_tab) == frames == 1


async def test_a_page_that_opens_while_someone_types_shows_it_at_once(cluster):
    alice, bob = await people("alice", "bob")
    room = await a_room()
    first, second = cluster.hub(), cluster.hub()
    await cluster.open(first, room, alice)
    bob_tab = await cluster.open(second, room, bob)
    first.typing.started(room.pk, alice.pk, "alice")
    await typing_shows([bob_tab], "alice is typing…")
    later = await cluster.open(second, room, bob)
    assert later.typing == "alice is typing…"
    her_other_tab = await cluster.open(second, room, alice)
    assert her_other_tab.typing == ""


async def test_the_typists_last_tab_closing_removes_them(cluster):
    alice, bob = await people("alice", "bob")
    room = await a_room()
    first, second = cluster.hub(), cluster.hub()
    alice_tabs = [await cluster.open(first, room, alice), await cluster.open(first, room, alice)]
    bob_tab = await cluster.open(second, room, bob)
    first.typing.started(room.pk, alice.pk, "alice")
    await typing_shows([bob_tab], "alice is typing…")
    await cluster.close(alice_tabs[0])
    await settled(first, second)
    assert bob_tab.typing == "alice is typing…"  # another tab of hers is open
    await cluster.close(alice_tabs[1])
    await typing_shows([bob_tab], "")


async def test_a_change_costs_one_rendering_per_typist_and_one_for_readers(cluster, monkeypatch):
    names = [f"typist{number}" for number in range(3)] + [f"reader{n}" for n in range(12)]
    users = await people(*names)
    room = await a_room()
    first, second = cluster.hub(), cluster.hub()
    tabs = [await cluster.open((first, second)[n % 2], room, user) for n, user in enumerate(users)]
    typists = users[:3]
    for typist in typists[:2]:
        first.typing.started(room.pk, typist.pk, typist.username)
    await typing_shows(tabs[3:], "typist0 and typist1 are typing…")
    await settled(first, second)

    renders = []
    real_render = events.render_ephemeral

    def counting_render(kind, **context):
        renders.append(context)
        return real_render(kind, **context)

    monkeypatch.setattr(events, "render_ephemeral", counting_render)
    first.typing.started(room.pk, typists[2].pk, typists[2].username)
    await typing_shows(tabs[3:], "several people are typing…")
    await typing_shows([tabs[0]], "typist1 and typist2 are typing…")
    await settled(first, second)
    # Each process: one text for its readers, one per typist, whatever the readers.
    assert len(renders) <= 2 * (len(typists) + 1), renders


async def test_a_malformed_notice_from_the_channel_layer_changes_nothing(cluster):
    (bob,) = await people("bob")
    room = await a_room()
    hub = cluster.hub()
    bob_tab = await cluster.open(hub, room, bob)
    for event in (
        {"type": TYPING_TYPE, "room": str(room.pk), "user": 1, "name": "x", "typing": True},
        {"type": TYPING_TYPE, "room": room.pk, "user": True, "name": "x", "typing": True},
        {"type": TYPING_TYPE, "room": room.pk, "user": 1, "name": 5, "typing": True},
        {"type": TYPING_TYPE, "room": room.pk, "user": 1, "name": "", "typing": True},
        {"type": TYPING_TYPE, "room": room.pk, "user": 1, "name": "x" * 500, "typing": True},
        {"type": TYPING_TYPE, "room": room.pk, "user": 1, "name": "x", "typing": "yes"},
        {"type": "chat.presence", "room": "1; DROP"},
    ):
        hub._handle(event)
    await settled(hub)
    assert bob_tab.typing == "" and not hub.typing.typists


# --- through the real socket ---

application = URLRouter(websocket_urlpatterns)


class Socket:
    """A page's socket through the real consumer, applying what it receives."""

    def __init__(self, user, room):
        self.room = room
        self.document = htmx.Document(PAGE + '<div id="notice"></div><ol id="messages"></ol>')
        self.frames = []
        self.communicator = WebsocketCommunicator(application, f"/ws/chat/{room.slug}/")
        self.communicator.scope["user"] = user
        self.reader = None

    async def open(self):
        # As the session backend loads a person: with their profile.
        self.communicator.scope["user"] = await database_sync_to_async(
            get_user_model().objects.select_related("profile").get
        )(pk=self.communicator.scope["user"].pk)
        connected, _ = await self.communicator.connect()
        assert connected
        await self.send({"last_seq": str(self.room.last_seq)})
        self.reader = asyncio.create_task(self._read())
        return self

    async def _read(self):
        while True:
            frame = await self.communicator.receive_from(timeout=3600)
            self.frames.append(frame)
            self.document.apply(frame)

    async def send(self, fields):
        await self.communicator.send_to(text_data=json.dumps(fields))

    async def close(self):
        self.reader.cancel()
        await asyncio.gather(self.reader, return_exceptions=True)
        await self.communicator.disconnect()

    @property
    def typing(self):
        return " ".join(self.document.by_id("typing").text().split())

    @property
    def notice(self):
        return " ".join(self.document.by_id("notice").text().split())

    def shows_message(self, text):
        return any(text in item.text() for item in self.document.by_id("messages").select_all("li"))


TYPING_FRAME = {"typing": "1", "HEADERS": {"HX-Request": "true", "HX-Trigger": "typing-signal"}}


def post_frame(text):
    return {"message": text, "HEADERS": {"HX-Request": "true", "HX-Trigger": "composer"}}


@pytest.fixture
def no_rate_limit(settings):
    settings.CHAT_RATE_LIMIT = None


@pytest.fixture
async def sockets():
    opened = []

    async def open_socket(user, room):
        socket = await Socket(user, room).open()
        opened.append(socket)
        return socket

    yield open_socket
    for socket in opened:
        await socket.close()
    await hub_stopped()


async def hub_stopped(timeout=10):
    """Wait for the hub to end its tasks after its last socket left: a loop closed with a
    reader still in channels_redis's receive can hang on a swallowed cancel."""
    hub = get_hub()
    async with asyncio.timeout(timeout):
        while hub.tasks or hub.stopping:
            if hub.stopping:
                await asyncio.wait(list(hub.stopping))
            else:
                await asyncio.sleep(0.02)


async def notices_of(layer, channel, *, quiet=0.5):
    """Every typing notice the room's group carried to `channel` until `quiet` s of none."""
    found = []
    while True:
        try:
            async with asyncio.timeout(quiet):
                event = await layer.receive(channel)
        except TimeoutError:
            return found
        if event.get("type") == TYPING_TYPE:
            found.append(event)


async def test_typing_then_sending_over_the_socket(sockets, no_rate_limit):
    alice, bob = await people("alice", "bob")
    await database_sync_to_async(Profile.objects.create)(user=alice, display_name="Alice A.")
    room = await a_room()
    alice_page = await sockets(alice, room)
    bob_page = await sockets(bob, room)

    await alice_page.send(TYPING_FRAME)
    await until(lambda: bob_page.typing == "Alice A. is typing…", what="bob sees her typing")
    await alice_page.send(post_frame("hello bob"))
    await until(lambda: bob_page.shows_message("hello bob"), what="bob gets her message")
    await until(lambda: bob_page.typing == "", what="her typing gone once she sent")
    assert not any("Alice A. is typing" in frame for frame in alice_page.frames)


async def test_a_flood_of_typing_frames_is_throttled_and_others_chat_on(
    sockets, no_rate_limit, settings
):
    alice, bob, carol = await people("alice", "bob", "carol")
    room = await a_room()
    # Another process in the room's group, counting what the channel layer carries.
    layer = RedisChannelLayer(**settings.CHANNEL_LAYERS["default"]["CONFIG"])
    listener = await layer.new_channel(prefix="test-listener.")
    await layer.group_add(group_name(room.pk), listener)
    flooder = await sockets(alice, room)
    bob_page = await sockets(bob, room)
    carol_page = await sockets(carol, room)

    await asyncio.gather(*(flooder.send(TYPING_FRAME) for _ in range(300)))
    await bob_page.send(post_frame("still here"))
    for page in (bob_page, carol_page, flooder):
        await until(lambda page=page: page.shows_message("still here"), what="the post arrives")
    await until(lambda: carol_page.typing == "alice is typing…", what="carol sees alice typing")
    # 300 frames at once became one notice through the channel layer (a second only if
    # the flood outlasted the throttle), and no error for anyone.
    try:
        notices = await notices_of(layer, listener)
    finally:
        await layer.close_pools()
    assert 1 <= len(notices) <= 2, notices
    assert bob_page.notice == "" and carol_page.notice == "" and flooder.notice == ""


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"typing": "2"}, "'typing' must be '1'."),
        ({"typing": 1}, "'typing' must be '1'."),
        ({"typing": "1", "draft": "what I was writing"}, "Unexpected field: 'draft'."),
        ({"typing": "1", "message": "hi"}, "Unexpected field: 'message'."),
    ],
)
async def test_typing_frames_are_validated_like_every_frame(sockets, fields, error):
    alice, bob = await people("alice", "bob")
    room = await a_room()
    alice_page = await sockets(alice, room)
    bob_page = await sockets(bob, room)
    await alice_page.send(fields)
    await until(lambda: alice_page.notice == error, what=f"the notice {error!r}")
    await alice_page.send(TYPING_FRAME)  # a good one still works afterwards
    await until(lambda: bob_page.typing == "alice is typing…", what="bob sees her typing")
    assert bob_page.notice == ""
