"""Presence (chat/realtime/hub/presence.py, chat/selectors/presence.py): who has a room
open, on real Redis (a server of the test's own, for the channel layer and the records)
and a real database.

Each `RoomHub` gets a channel layer of its own, so two hubs behave as two server
processes sharing one Redis. A `Tab` is a socket as the hub sees it: it applies every
frame it is sent to a page holding `#people` and `#typing`, as the htmx ws extension does,
and says what the page shows.
"""

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer
from channels_redis.core import RedisChannelLayer

from chat.models import Profile
from chat.realtime.hub import presence as presence_module
from chat.realtime.hub.hub import RoomHub
from chat.realtime.hub.presence import RedisRecords
from chat.selectors import presence as presence_selectors
from chat.tests.factories import make_room, make_user
from project.settings import channel_layers_and_caches
from tests.support import htmx
from tests.support.redis import RedisServer

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 30  # seconds: generous, the machine is shared
PAGE = '<section><ul id="people"></ul><p id="typing"></p></section>'


class Tab:
    """One open page of a person, as the hub serves it."""

    def __init__(self, user, name=None):
        self.user = user
        self.name = name or user.username
        self.document = htmx.Document(PAGE)
        self.frames = []

    async def base_send(self, event):
        self.frames.append(event["text"])
        self.document.apply(event["text"])

    async def catch_up(self, seq):
        """The hub announces room events; these tests post none."""

    @property
    def people(self):
        """The names in #people, in order (empty when it says nobody is here)."""
        listed = self.document.by_id("people")
        return [
            " ".join(item.text().split())
            for item in listed.select_all("li")
            if "empty" not in item.classes
        ]

    @property
    def typing(self):
        return " ".join(self.document.by_id("typing").text().split())


class Cluster:
    """Hubs as server processes of one deployment, and the tabs they serve."""

    def __init__(self, layer_config=None):
        self.layer_config = layer_config
        self.hubs = []
        self.tabs = {}  # tab -> (hub, room id)

    def hub(self):
        if self.layer_config is None:
            layer = InMemoryChannelLayer()
        else:
            layer = RedisChannelLayer(**self.layer_config)
        hub = RoomHub(layer)
        self.hubs.append(hub)
        return hub

    async def open(self, hub, room, user):
        """What the consumer does when a page's socket opens."""
        tab = Tab(user)
        await hub.join(room.pk, tab, last_seq=room.last_seq)
        await hub.presence.arrive(room.pk, user.pk, tab)
        self.tabs[tab] = (hub, room.pk)
        return tab

    async def close(self, tab):
        """... and when it closes."""
        hub, room_id = self.tabs.pop(tab)
        hub.presence.depart(room_id, tab.user.pk, tab)
        await hub.leave(room_id, tab)

    async def end(self):
        for tab in list(self.tabs):
            await self.close(tab)
        for hub in self.hubs:
            if hub.tasks:
                await asyncio.wait(hub.tasks, timeout=WAIT)
            saver = hub.presence.saver
            if saver is not None:
                await asyncio.wait([saver], timeout=WAIT)
            if isinstance(hub.presence._records, RedisRecords):
                await hub.presence._records.client.aclose()
            if isinstance(hub.layer, RedisChannelLayer):
                async with asyncio.timeout(WAIT):
                    await hub.layer.close_pools()


async def until(predicate, *, timeout=WAIT, what="condition"):
    """Await a condition (re-checked every 20 ms) or fail saying `what`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        await asyncio.sleep(0.02)


async def shows(tabs, names, *, timeout=WAIT):
    """Every tab lists exactly `names` (in the list's order)."""
    names = list(names)
    await until(
        lambda: all(tab.people == names for tab in tabs),
        timeout=timeout,
        what=f"every tab listing {names} (they list {[tab.people for tab in tabs]})",
    )


@database_sync_to_async
def people(*names):
    return [make_user(username=name) for name in names]


@database_sync_to_async
def a_room():
    return make_room()


@database_sync_to_async
def hide_presence(user):
    Profile.objects.update_or_create(user=user, defaults={"show_presence": False})


@pytest.fixture
def private_redis(settings):
    """A redis-server of this test's own: the channel layer and the presence records."""
    server = RedisServer().start()
    settings.REDIS_URL = server.url
    yield server
    server.stop()


@pytest.fixture
async def cluster(private_redis):
    layers, _ = channel_layers_and_caches(private_redis.url)
    made = Cluster(layers["default"]["CONFIG"])
    yield made
    await made.end()


@pytest.fixture
def short_ttl(settings):
    """Records expire after 1.5 s and are renewed (and rooms re-read) every 0.5 s."""
    settings.CHAT_PRESENCE_TTL_SECONDS = 1.5


# --- who is here ---


async def test_people_on_two_processes_show_on_every_page_with_their_own_name(cluster):
    alice, bob = await people("alice", "bob")
    room = await a_room()
    first, second = cluster.hub(), cluster.hub()
    alice_tab = await cluster.open(first, room, alice)
    await shows([alice_tab], ["alice"])  # her own name too
    bob_tab = await cluster.open(second, room, bob)
    await shows([alice_tab, bob_tab], ["alice", "bob"])


async def test_two_tabs_count_once_closing_one_keeps_the_person_closing_both_removes_them(
    cluster,
):
    alice, bob = await people("alice", "bob")
    room = await a_room()
    first, second = cluster.hub(), cluster.hub()
    bob_tab = await cluster.open(second, room, bob)
    tabs = [await cluster.open(first, room, alice), await cluster.open(first, room, alice)]
    tabs.append(await cluster.open(second, room, alice))  # a third, on the other process
    await shows([bob_tab, *tabs], ["alice", "bob"])  # once, however many tabs

    await cluster.close(tabs[0])
    await cluster.close(tabs[2])
    # One tab left: she stays. A pass over the room happens after each change; wait
    # for one that would have dropped her, then check that it did not.
    await until(lambda: not second.presence.passes and not first.presence.passes)
    await shows([bob_tab, tabs[1]], ["alice", "bob"])

    await cluster.close(tabs[1])
    await shows([bob_tab], ["bob"])


async def test_a_page_that_opens_gets_the_list_at_once(cluster):
    alice, bob = await people("alice", "bob")
    room = await a_room()
    hub = cluster.hub()
    await shows([await cluster.open(hub, room, alice)], ["alice"])
    bob_tab = await cluster.open(hub, room, bob)
    await shows([bob_tab], ["alice", "bob"])
    # His page was rendered with him in the list: no frame ever took him off it.
    assert all("bob" in frame for frame in bob_tab.frames if 'id="people"' in frame)
    # A second tab of a person already here changes nobody's presence: it is sent the
    # list as the hub shows it, as soon as it opens.
    later = await cluster.open(hub, room, bob)
    assert later.people == ["alice", "bob"]


async def test_a_person_who_hides_their_presence_is_not_listed(cluster):
    alice, bob, carol = await people("alice", "bob", "carol")
    await hide_presence(carol)
    room = await a_room()
    first, second = cluster.hub(), cluster.hub()
    alice_tab = await cluster.open(first, room, alice)
    carol_tab = await cluster.open(second, room, carol)
    bob_tab = await cluster.open(second, room, bob)
    await shows([alice_tab, bob_tab, carol_tab], ["alice", "bob"])
    # The page and the lobby leave her out too.
    page = await database_sync_to_async(presence_selectors.people_here)(room.pk, viewer=carol)
    assert [person.username for person in page] == ["alice", "bob"]
    counts = await database_sync_to_async(presence_selectors.people_counts)([room.pk])
    assert counts == {room.pk: 2}


async def test_display_names_show_sorted_and_a_change_of_name_shows_at_the_next_renewal(
    cluster, short_ttl
):
    zed, amy = await people("zed", "amy")
    await database_sync_to_async(Profile.objects.create)(user=zed, display_name="Aaron")
    room = await a_room()
    hub = cluster.hub()
    tabs = [await cluster.open(hub, room, zed), await cluster.open(hub, room, amy)]
    await shows(tabs, ["Aaron", "amy"])
    await database_sync_to_async(Profile.objects.filter(user=zed).update)(display_name="Zoe")
    await shows(tabs, ["amy", "Zoe"])


async def test_a_process_that_stops_renewing_loses_its_people_and_the_others_stay(
    cluster, short_ttl
):
    alice, bob = await people("alice", "bob")
    room = await a_room()
    doomed, survivor = cluster.hub(), cluster.hub()
    await cluster.open(doomed, room, alice)
    bob_tab = await cluster.open(survivor, room, bob)
    await shows([bob_tab], ["alice", "bob"])

    # As if killed: its records are no longer renewed, and nobody says it left.
    renewal = next(task for task in doomed.tasks if task.get_name() == "chat-hub-presence")
    renewal.cancel()
    await shows([bob_tab], ["bob"])
    # Its record is gone from the store, and its id from the room's set of processes.
    assert await database_sync_to_async(presence_selectors.present_user_ids)([room.pk]) == {
        room.pk: {bob.pk}
    }


async def test_after_redis_restarts_empty_every_page_is_whole_again(
    cluster, private_redis, short_ttl
):
    alice, bob = await people("alice", "bob")
    room = await a_room()
    first, second = cluster.hub(), cluster.hub()
    tabs = [await cluster.open(first, room, alice), await cluster.open(second, room, bob)]
    await shows(tabs, ["alice", "bob"])

    private_redis.stop()
    private_redis.start()  # same port, nothing in it
    # The next renewal writes every record again; the next re-read shows everyone.
    await until(
        lambda: presence_selectors.present_user_ids([room.pk]) == {room.pk: {alice.pk, bob.pk}},
        what="both records written again",
    )
    await shows(tabs, ["alice", "bob"])
    # And live changes flow again, through the channel layer's groups joined anew.
    (carol,) = await people("carol")
    carol_tab = await cluster.open(first, room, carol)
    await shows([*tabs, carol_tab], ["alice", "bob", "carol"])


async def test_a_change_of_presence_writes_once_a_second_tab_writes_nothing(cluster):
    (alice,) = await people("alice")
    room = await a_room()
    hub = cluster.hub()
    saved = []
    records = hub.presence.records
    real_save = records.save

    async def counting_save(rooms, process_id, ttl):
        saved.append({room_id: set(users) for room_id, users in rooms.items()})
        await real_save(rooms, process_id, ttl)

    records.save = counting_save
    first = await cluster.open(hub, room, alice)
    await until(lambda: hub.presence.saver is None and saved)
    assert saved == [{room.pk: {alice.pk}}]
    second = await cluster.open(hub, room, alice)
    await cluster.close(second)
    await until(lambda: hub.presence.saver is None)
    assert saved == [{room.pk: {alice.pk}}]  # nobody arrived or left
    await cluster.close(first)
    await until(lambda: hub.presence.saver is None and len(saved) == 2)
    assert saved[1] == {room.pk: set()}
    assert await database_sync_to_async(presence_selectors.present_user_ids)([room.pk]) == {
        room.pk: set()
    }


# --- the pages' reads ---


async def test_the_room_page_lists_its_reader_and_the_lobby_counts_every_room_at_once(cluster):
    alice, bob, carol = await people("alice", "bob", "carol")
    rooms = [await a_room() for _ in range(3)]
    first, second = cluster.hub(), cluster.hub()
    await cluster.open(first, rooms[0], alice)
    await cluster.open(second, rooms[0], bob)
    last = await cluster.open(second, rooms[1], bob)
    await shows([last], ["bob"])
    await until(lambda: first.presence.saver is None and second.presence.saver is None)

    here = await database_sync_to_async(presence_selectors.people_here)(rooms[0].pk, viewer=carol)
    assert [person.username for person in here] == ["alice", "bob", "carol"]
    # Without a viewer (a page into the past): only who has it open.
    here = await database_sync_to_async(presence_selectors.people_here)(rooms[0].pk)
    assert [person.username for person in here] == ["alice", "bob"]

    counts = await database_sync_to_async(presence_selectors.people_counts)(
        [room.pk for room in rooms]
    )
    assert counts == {rooms[0].pk: 2, rooms[1].pk: 1, rooms[2].pk: 0}


def test_pages_still_render_when_the_store_cannot_be_read(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    alice = make_user(username="alice")
    room = make_room()
    assert [
        person.username for person in presence_selectors.people_here(room.pk, viewer=alice)
    ] == ["alice"]
    assert presence_selectors.people_counts([room.pk]) == {}


# --- without Redis: one process, the in-memory default ---


@pytest.fixture
async def in_memory(settings):
    settings.REDIS_URL = ""
    presence_selectors.MEMORY.clear()
    made = Cluster(layer_config=None)
    yield made
    await made.end()
    presence_selectors.MEMORY.clear()


async def test_the_in_memory_default_keeps_presence_in_the_process(in_memory):
    alice, bob = await people("alice", "bob")
    room = await a_room()
    hub = in_memory.hub()
    alice_tabs = [await in_memory.open(hub, room, alice), await in_memory.open(hub, room, alice)]
    bob_tab = await in_memory.open(hub, room, bob)
    await shows([*alice_tabs, bob_tab], ["alice", "bob"])
    assert isinstance(hub.presence.records, presence_module.MemoryRecords)
    counts = await database_sync_to_async(presence_selectors.people_counts)([room.pk])
    assert counts == {room.pk: 2}

    await in_memory.close(alice_tabs[0])
    await in_memory.close(bob_tab)
    await shows([alice_tabs[1]], ["alice"])
    await in_memory.close(alice_tabs[1])
    await until(lambda: presence_selectors.present_user_ids([room.pk]) == {room.pk: set()})


async def test_in_memory_records_expire_when_not_renewed(in_memory, short_ttl):
    presence_selectors.MEMORY.save(7, "gone", {1, 2}, 0.2)
    presence_selectors.MEMORY.save(7, "here", {3}, 30)
    assert presence_selectors.present_user_ids([7]) == {7: {1, 2, 3}}
    await until(lambda: presence_selectors.present_user_ids([7]) == {7: {3}})
