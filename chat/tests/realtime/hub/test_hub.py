"""RoomHub (chat/realtime/hub/hub.py) in-process, against real Redis channel layers and a
real database.

Each hub gets a channels_redis layer of its own, configured as project/settings.py configures
it, so two hubs behave like two server processes. `PageStandIn` is what the hub serves: it
keeps the last sequence number it shows and completes gaps through `hub.fragments_after`,
like a socket does.

Changes are made through the actions, as people make them; what an action publishes after
commit is captured here instead of reaching the process's own hub (`captured`), so each
test decides which hub publishes it, if any: an event that no hub publishes is one the
channel layer lost.
"""

import asyncio
import logging
import re
import threading
import time
from dataclasses import dataclass

import pytest
import redis.asyncio
from channels.db import database_sync_to_async
from channels_redis.core import RedisChannelLayer

from chat import events
from chat.actions import messages as message_actions
from chat.actions import reactions as reaction_actions
from chat.models import RoomEvent
from chat.realtime.hub import hub as hub_module
from chat.realtime.hub.hub import RoomHub
from chat.realtime.hub.link import EVENT_TYPE, group_name
from chat.selectors import events as event_selectors
from chat.tests.factories import make_room, make_user
from project.settings import channel_layers_and_caches
from tests.support.redis import RedisServer

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 30  # seconds: generous, the machine is shared


class PageStandIn:
    """An open page of a room: shows each message once, in order, gaps filled."""

    def __init__(self, hub, room_id, *, last_seq=0, name="page"):
        self.hub = hub
        self.room_id = room_id
        self.last_seq = last_seq
        self.name = name
        self.shown = []  # [(seq, html)] in the order the page received them
        self.asked = []  # every seq the hub announced
        self.lock = asyncio.Lock()

    async def catch_up(self, seq):
        self.asked.append(seq)
        async with self.lock:
            while self.last_seq < seq:
                batch = await self.hub.fragments_after(self.room_id, self.last_seq, seq)
                if not batch:
                    break
                self.shown.extend(batch)
                self.last_seq = batch[-1][0]

    @property
    def seqs(self):
        return [seq for seq, _ in self.shown]


async def until(predicate, *, timeout=WAIT, what="condition"):
    """Await a condition (re-checked every 20 ms) or fail saying `what`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        await asyncio.sleep(0.02)


def layer_config(url, **overrides):
    """The channel layer CONFIG of project/settings.py for `url`, with overrides."""
    layers, _ = channel_layers_and_caches(url)
    return {**layers["default"]["CONFIG"], **overrides}


@pytest.fixture
def private_redis():
    """A redis-server of this test's own, which the test may stop and start.

    Not the shared test Redis: other test runs on the machine flush it and use the same
    room numbers, so group memberships would not be this test's alone.
    """
    server = RedisServer().start()
    yield server
    server.stop()


def awaiting(task):
    """Where a suspended task waits: its chain of awaited coroutines, innermost last."""
    where, coroutine = [], task.get_coro()
    while coroutine is not None:
        frame = getattr(coroutine, "cr_frame", None)
        if frame is not None:
            where.append(f"{frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno}")
        coroutine = getattr(coroutine, "cr_await", None)
    return " > ".join(where)


@pytest.fixture
async def make_hub(private_redis):
    """make_hub(**layer config overrides) -> RoomHub on a layer of its own (the test's Redis)."""
    made = []

    def make(**overrides):
        layer = RedisChannelLayer(**layer_config(private_redis.url, **overrides))
        hub = RoomHub(layer)
        made.append(hub)
        return hub

    yield make
    stuck = []
    for hub in made:
        tasks = list(hub.tasks)
        for room_id, pages in list(hub.listeners.items()):
            for page in list(pages):
                await hub.leave(room_id, page)  # the last one leaving stops the hub
        _, pending = await asyncio.wait(tasks, timeout=WAIT) if tasks else (set(), set())
        stuck += [f"{task.get_name()} at {awaiting(task)}" for task in pending]
        try:
            async with asyncio.timeout(WAIT):
                await hub.layer.close_pools()
        except TimeoutError:
            stuck.append(f"close_pools of {hub.layer}")
    assert not stuck, f"hub tasks that did not stop: {stuck}"


@pytest.fixture
def quiet_reconcile(settings):
    settings.CHAT_RECONCILE_SECONDS = 3600  # only the channel layer delivers


COMMITTED = {}  # (room id, seq) -> html of each event the actions committed in this test


@pytest.fixture(autouse=True)
def captured(monkeypatch, settings):
    """What the actions publish after commit is kept here instead of reaching a hub."""
    settings.CHAT_RATE_LIMIT = None
    COMMITTED.clear()
    monkeypatch.setattr(events, "_publisher", _keep)
    yield COMMITTED
    COMMITTED.clear()


def _keep(room_id, seq, html, **_):
    COMMITTED[room_id, seq] = html


@dataclass(frozen=True)
class Change:
    """An event an action committed: its room, number, message and rendered HTML."""

    room_id: int
    seq: int
    message: object
    html: str


@database_sync_to_async
def a_room_and_author():
    return make_room(), make_user()


def _change(room, done):
    assert done.changed, done
    return Change(room.pk, done.seq, done.message, COMMITTED[room.pk, done.seq])


async def save(room, author, text, **options):
    """Post a message (stored, not published): what a process does before it publishes."""
    done = await database_sync_to_async(message_actions.message_post)(
        room=room, author=author, text=text, **options
    )
    return _change(room, done)


async def edit(room, user, message, text):
    done = await database_sync_to_async(message_actions.message_edit)(
        room=room, user=user, message_id=message.pk, text=text
    )
    return _change(room, done)


async def delete(room, user, message):
    done = await database_sync_to_async(message_actions.message_delete)(
        room=room, user=user, message_id=message.pk
    )
    return _change(room, done)


async def react(room, user, message, emoji, *, on=True):
    done = await database_sync_to_async(reaction_actions.reaction_set)(
        room=room, user=user, message_id=message.pk, emoji=emoji, on=on
    )
    return _change(room, done)


async def publish(hub, change):
    await hub.publish(change.room_id, change.seq, change.html)
    return change


async def post(hub, room, author, text):
    """Store and publish through `hub`, as the poster's process does after commit."""
    return await publish(hub, await save(room, author, text))


@database_sync_to_async
def stored_html(room_id, *, after_seq=0, upto_seq=None):
    """[(seq, html)] of the room's stored events as the database renders them now."""
    stored = event_selectors.events_after(
        room_id, after_seq=after_seq, upto_seq=upto_seq, limit=10_000
    )
    return events.render_stored(stored)


async def members(layer, room_id):
    """The channel names in the room's group, as Redis holds them."""
    group = group_name(room_id)
    connection = layer.connection(layer.consistent_hash(group))
    return {name.decode() for name in await connection.zrange(layer._group_key(group), 0, -1)}


async def waiting_in_channel(hub):
    """How many messages wait in Redis for the hub's channel (its reader has not taken)."""
    layer = hub.layer
    key = layer.prefix + layer.non_local_name(hub.channel)
    return await layer.connection(layer.consistent_hash(hub.channel)).zcard(key)


def mentions_room(record, room_id):
    return re.search(rf"\broom[- ]{room_id}\b", record.getMessage()) is not None


# --- delivery between hubs ---


async def test_a_published_message_reaches_every_hub_of_the_room_once(make_hub, quiet_reconcile):
    here, there = make_hub(), make_hub()
    room, author = await a_room_and_author()
    elsewhere, _ = await a_room_and_author()
    local, remote = PageStandIn(here, room.pk), PageStandIn(there, room.pk)
    outsider = PageStandIn(there, elsewhere.pk)
    await here.join(room.pk, local, last_seq=0)
    await there.join(room.pk, remote, last_seq=0)
    await there.join(elsewhere.pk, outsider, last_seq=0)

    first = await post(here, room, author, "hello")
    await until(lambda: remote.seqs == [1] and local.seqs == [1])
    second = await post(there, room, author, "and back")
    await until(lambda: remote.seqs == [1, 2] and local.seqs == [1, 2])

    # The fragment rendered once by the poster is what every page gets.
    assert local.shown == remote.shown == [(1, first.html), (2, second.html)]
    assert outsider.shown == [] and outsider.asked == []


async def test_a_gap_is_filled_from_the_database_in_order(make_hub, quiet_reconcile):
    here, there = make_hub(), make_hub()
    room, author = await a_room_and_author()
    page = PageStandIn(there, room.pk)
    await there.join(room.pk, page, last_seq=0)

    # Messages 1 and 2 never travel through the layer (a lost group message); 3 does.
    lost = [await save(room, author, f"lost {n}") for n in (1, 2)]
    third = await post(here, room, author, "arrives")
    await until(lambda: page.seqs == [1, 2, 3])

    # Rendered from the database as the poster rendered them (chat.events.render_stored).
    assert page.shown == [(1, lost[0].html), (2, lost[1].html), (3, third.html)]
    assert page.shown == await stored_html(room.pk)
    # A page that is already up to date is not sent the same message again.
    again = PageStandIn(there, room.pk, last_seq=3)
    await there.join(room.pk, again, last_seq=3)
    await there.deliver(room.pk, 3)
    assert again.shown == []


async def test_fragments_after_reads_batches_in_order_and_keeps_them(
    make_hub, quiet_reconcile, monkeypatch
):
    monkeypatch.setattr(hub_module, "CATCH_UP_LIMIT", 4)
    hub = make_hub()
    room, author = await a_room_and_author()
    page = PageStandIn(hub, room.pk)
    await hub.join(room.pk, page, last_seq=0)
    saved = [await save(room, author, f"m{n}") for n in range(1, 11)]

    batch = await hub.fragments_after(room.pk, 0, 10)
    assert [seq for seq, _ in batch] == [1, 2, 3, 4]  # at most CATCH_UP_LIMIT at a time
    batch = await hub.fragments_after(room.pk, 4)  # to the newest, from the database
    assert [seq for seq, _ in batch] == [5, 6, 7, 8]
    assert [html for _, html in batch] == [change.html for change in saved[4:8]]
    # What was read is kept: the same range again needs no database row.
    await database_sync_to_async(lambda: RoomEvent.objects.filter(room=room, seq__lte=8).delete())()
    assert [seq for seq, _ in await hub.fragments_after(room.pk, 2, 6)] == [3, 4, 5, 6]


async def test_every_kind_of_change_travels_between_hubs_in_order(make_hub, quiet_reconcile):
    here, there = make_hub(), make_hub()
    room, alice = await a_room_and_author()
    _, bob = await a_room_and_author()
    local, remote = PageStandIn(here, room.pk), PageStandIn(there, room.pk)
    await here.join(room.pk, local, last_seq=0)
    await there.join(room.pk, remote, last_seq=0)

    first = await post(here, room, alice, "first")
    reply = await publish(there, await save(room, bob, "a reply", reply_to_id=first.message.pk))
    changes = [
        first,
        reply,
        await publish(here, await edit(room, alice, first.message, "first, edited")),
        await publish(there, await react(room, bob, first.message, "🎉")),
        await publish(here, await react(room, bob, first.message, "🎉", on=False)),
        await publish(there, await delete(room, alice, first.message)),
    ]
    expected = [(change.seq, change.html) for change in changes]
    await until(lambda: local.seqs == remote.seqs == [1, 2, 3, 4, 5, 6])
    assert local.shown == remote.shown == expected
    # Each kind's envelope: the edit replaces the message and the quote of it in the reply;
    # the reactions replace only the reactions; the delete removes it.
    pk = first.message.pk
    assert f'<li class="message" id="message-{pk}"' in expected[2][1]
    assert f"quote-of-{pk}" in expected[2][1] and "first, edited" in expected[2][1]
    assert f'<div class="reactions" id="message-{pk}-reactions">' in expected[3][1]
    assert 'class="message"' not in expected[3][1]
    assert f'<li id="message-{pk}" hx-swap-oob="delete">' in expected[5][1]
    assert "Original message deleted" in expected[5][1]


async def test_a_gap_of_every_kind_is_filled_from_the_database_as_it_is_now(
    make_hub, quiet_reconcile
):
    hub, poster = make_hub(), make_hub()
    room, alice = await a_room_and_author()
    _, bob = await a_room_and_author()
    page = PageStandIn(hub, room.pk)
    await hub.join(room.pk, page, last_seq=0)
    first = await post(poster, room, alice, "first")
    await until(lambda: page.seqs == [1])

    # Lost on the way (no hub publishes them): an edit, a reaction, a reply, a delete.
    lost = [
        await edit(room, alice, first.message, "edited once"),
        await react(room, bob, first.message, "👍"),
        second := await save(room, bob, "second"),
        await edit(room, bob, second.message, "second, edited"),
        await save(room, alice, "third, a reply", reply_to_id=second.message.pk),
        await react(room, alice, second.message, "❤️"),
        await delete(room, alice, first.message),
    ]
    last = await post(poster, room, bob, "the last")
    await until(lambda: page.seqs == list(range(1, last.seq + 1)))

    assert [seq for seq, _ in page.shown] == [1, *(change.seq for change in lost), last.seq]
    # Each missed event is rendered from the message's state now (later changes included),
    # so replaying any suffix leaves a page as a fresh load would.
    assert page.shown[1:-1] == (await stored_html(room.pk, after_seq=1, upto_seq=last.seq - 1))
    replay = dict(page.shown)
    # The first message is deleted by now: every event of it removes it.
    for change in lost[:2]:
        assert f'<li id="message-{first.message.pk}" hx-swap-oob="delete">' in replay[change.seq]
        assert "edited once" not in replay[change.seq]
    # The second's posting already shows its edit and its reaction.
    assert "second, edited" in replay[second.seq] and "❤️ <span" in replay[second.seq]


async def test_frame_joins_what_memory_holds_once_per_pass_and_position(make_hub, quiet_reconcile):
    hub = make_hub()
    room, author = await a_room_and_author()
    page = PageStandIn(hub, room.pk)
    await hub.join(room.pk, page, last_seq=0)
    changes = [await post(hub, room, author, f"m{n}") for n in range(1, 4)]
    await until(lambda: page.seqs == [1, 2, 3])

    hub.frames = {}  # a new pass
    frame = hub.frame(room.pk, 0, 3)
    assert frame == {"type": "websocket.send", "text": "".join(c.html for c in changes)}
    assert hub.frame(room.pk, 0, 3) is frame  # sockets at one position share one frame
    assert hub.frame(room.pk, 2, 3)["text"] == changes[2].html
    assert hub.frame(room.pk, 3, 4) is None  # not in memory: the socket reads the database
    hub.memory.forget(room.pk)
    assert hub.frame(room.pk, 1, 3) is None


# --- the reconcile loop ---


async def test_reconcile_delivers_what_the_channel_layer_never_brought(make_hub, settings):
    settings.CHAT_RECONCILE_SECONDS = 0.1
    hub = make_hub()
    room, author = await a_room_and_author()
    page = PageStandIn(hub, room.pk)
    await hub.join(room.pk, page, last_seq=0)

    # Saved by "another process" that could not publish at all.
    for n in range(1, 6):
        await save(room, author, f"unpublished {n}")
    await until(lambda: page.seqs == [1, 2, 3, 4, 5])
    await save(room, author, "one more")
    await until(lambda: page.seqs == [1, 2, 3, 4, 5, 6])


# --- group membership: renewal, leave, stop ---


async def test_membership_is_renewed_beyond_the_group_expiry(make_hub, settings, quiet_reconcile):
    expiry = 3
    settings.CHAT_GROUP_EXPIRY = expiry
    here, there = make_hub(group_expiry=expiry), make_hub(group_expiry=expiry)
    room, author = await a_room_and_author()
    page = PageStandIn(here, room.pk)
    await here.join(room.pk, page, last_seq=0)
    # A control: a channel added once and never renewed, as the Channels tutorial does.
    control = await there.layer.new_channel()
    await there.layer.group_add(group_name(room.pk), control)

    await asyncio.sleep(expiry * 2 + 1)  # the point of the test: time passes

    await post(there, room, author, "after the expiry")
    await until(lambda: page.seqs == [1])
    # The expiry was real: the channel nobody renewed has left the group; the hub's has not.
    assert await members(there.layer, room.pk) == {here.channel}


async def test_leaving_keeps_the_others_and_the_last_leave_stops_the_hub(make_hub, quiet_reconcile):
    hub, poster = make_hub(), make_hub()
    room, author = await a_room_and_author()
    other_room, _ = await a_room_and_author()
    first, second = PageStandIn(hub, room.pk), PageStandIn(hub, room.pk)
    elsewhere = PageStandIn(hub, other_room.pk)
    for page, where in ((first, room), (second, room), (elsewhere, other_room)):
        await hub.join(where.pk, page, last_seq=0)
    channel = hub.channel

    await hub.leave(room.pk, first)
    await post(poster, room, author, "to the one still here")
    await until(lambda: second.seqs == [1])
    assert first.shown == []

    await hub.leave(room.pk, second)  # the room's last page: the hub leaves its group
    assert await members(hub.layer, room.pk) == set()
    assert await members(hub.layer, other_room.pk) == {channel}
    await post(poster, other_room, author, "the other room still works")
    await until(lambda: elsewhere.seqs == [1])

    tasks = list(hub.tasks)
    await hub.leave(other_room.pk, elsewhere)  # no page left: nothing keeps running
    assert hub.channel is None and hub.tasks == []
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), WAIT)
    assert all(task.done() for task in tasks)
    assert await members(hub.layer, other_room.pk) == set()

    # A page that comes later starts it again.
    later = PageStandIn(hub, room.pk, last_seq=1)
    await hub.join(room.pk, later, last_seq=1)
    assert hub.channel not in (None, channel)
    await post(poster, room, author, "welcome back")
    await until(lambda: later.seqs == [2])


async def test_an_unexpected_event_is_logged_and_the_hub_keeps_reading(
    make_hub, quiet_reconcile, caplog
):
    hub, poster = make_hub(), make_hub()
    room, author = await a_room_and_author()
    page = PageStandIn(hub, room.pk)
    await hub.join(room.pk, page, last_seq=0)
    group = group_name(room.pk)
    await poster.layer.group_send(group, {"type": "something.else", "room": room.pk})
    await poster.layer.group_send(group, {"type": EVENT_TYPE, "room": room.pk})  # no seq
    await post(poster, room, author, "still served")
    await until(lambda: page.seqs == [1])
    assert any("something.else" in r.getMessage() for r in caplog.records)
    assert all(task.done() is False for task in hub.tasks)


# --- channel-layer errors ---


async def test_messages_dropped_at_channel_capacity_reach_the_page_and_are_logged(
    make_hub, settings, private_redis, caplog
):
    settings.CHAT_RECONCILE_SECONDS = 0.2
    hub = make_hub(capacity=1)
    room, author = await a_room_and_author()
    page = PageStandIn(hub, room.pk)
    await hub.join(room.pk, page, last_seq=0)
    burst = [await save(room, author, f"burst {n}") for n in range(1, 5)]

    def another_process_publishes():
        async def publish():
            elsewhere = RoomHub(RedisChannelLayer(**layer_config(private_redis.url, capacity=1)))
            for posted in burst:
                await elsewhere.publish(room.pk, posted.message.seq, posted.html)
            await elsewhere.layer.close_pools()

        asyncio.run(publish())

    # This process is busy (a long synchronous stretch): its reader takes nothing meanwhile,
    # so of the 4 group messages at most one waits in its channel and one in a pending read.
    worker = threading.Thread(target=another_process_publishes)
    worker.start()
    worker.join(WAIT)
    assert await waiting_in_channel(hub) <= 1, "the scenario needs messages dropped at capacity"

    await until(lambda: page.seqs == [1, 2, 3, 4])
    expected = [(p.message.seq, p.html) for p in burst]
    assert page.shown == expected
    posted = await post(make_hub(), room, author, "five")  # the hub keeps running
    await until(lambda: page.seqs == [1, 2, 3, 4, 5])
    assert page.shown[-1] == (5, posted.html)
    # The drop is logged, with the room, at a level the deployed logging configuration shows.
    assert any(mentions_room(record, room.pk) for record in caplog.records), [
        (r.name, r.levelname, r.getMessage()) for r in caplog.records
    ]


async def test_a_message_too_large_for_the_broker_is_logged_and_still_delivered(
    make_hub, settings, private_redis, caplog
):
    settings.CHAT_RECONCILE_SECONDS = 0.2
    settings.CHAT_MAX_MESSAGE_LENGTH = 2_000_000
    broker = redis.asyncio.Redis.from_url(private_redis.url)
    await broker.config_set("proto-max-bulk-len", "1mb")  # the smallest Redis accepts
    await broker.aclose()
    here, there = make_hub(), make_hub()
    room, author = await a_room_and_author()
    local, remote = PageStandIn(here, room.pk), PageStandIn(there, room.pk)
    await here.join(room.pk, local, last_seq=0)
    await there.join(room.pk, remote, last_seq=0)

    huge = await post(here, room, author, "word " * 240_000)  # > 1 MB through the layer
    await until(lambda: local.seqs == [1])  # the poster's process delivers it at once
    await until(lambda: remote.seqs == [1])  # the other from the database
    assert local.shown == remote.shown == [(1, huge.html)]
    warnings = [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and mentions_room(r, room.pk) and "seq 1" in r.getMessage()
    ]
    assert warnings, [(r.name, r.getMessage()) for r in caplog.records]

    # Both hubs keep working through the layer afterwards.
    settings.CHAT_RECONCILE_SECONDS = 3600
    await post(there, room, author, "small again")
    await until(lambda: local.seqs == [1, 2] and remote.seqs == [1, 2])


async def test_a_broker_outage_is_logged_bridged_from_the_database_and_recovered(
    make_hub, settings, private_redis, caplog
):
    settings.CHAT_RECONCILE_SECONDS = 0.2
    here, there = make_hub(), make_hub()
    room, author = await a_room_and_author()
    local, remote = PageStandIn(here, room.pk), PageStandIn(there, room.pk)
    await here.join(room.pk, local, last_seq=0)
    await there.join(room.pk, remote, last_seq=0)
    await post(here, room, author, "before")
    await until(lambda: remote.seqs == [1])

    await asyncio.to_thread(private_redis.stop)
    await post(here, room, author, "during")  # publishing fails: logged, not raised
    await until(lambda: local.seqs == [1, 2] and remote.seqs == [1, 2])
    assert any(
        r.levelno >= logging.WARNING and mentions_room(r, room.pk) for r in caplog.records
    ), [(r.name, r.getMessage()) for r in caplog.records]

    await asyncio.to_thread(private_redis.start)
    settings.CHAT_RECONCILE_SECONDS = 3600  # from here on only the layer can deliver

    # The hubs re-join their groups by themselves; a message then travels live again.
    async def rejoined():
        try:
            return await members(there.layer, room.pk) == {here.channel, there.channel}
        except redis.exceptions.ConnectionError:
            return False

    await until(rejoined, what="both hubs back in the room's group")
    await post(there, room, author, "after")
    await until(lambda: local.seqs == remote.seqs == [1, 2, 3])
    assert all(not task.done() for task in here.tasks + there.tasks)


# --- pacing ---


class SlowPage(PageStandIn):
    """A page whose socket takes a while to write to, as hundreds of sockets in one pass do."""

    async def catch_up(self, seq):
        time.sleep(0.06)  # noqa: ASYNC251 - blocks the loop, as a long fan-out pass does
        await super().catch_up(seq)


async def test_messages_arriving_during_a_long_pass_go_out_together_in_order(
    make_hub, quiet_reconcile
):
    hub = make_hub()
    room, author = await a_room_and_author()
    page = SlowPage(hub, room.pk)
    await hub.join(room.pk, page, last_seq=0)

    for n in range(1, 6):
        await post(hub, room, author, f"paced {n}")
    await until(lambda: page.seqs == [1, 2, 3, 4, 5], what="all five shown once, in order")
    # The first pass took long, so the hub paused: the others came in meanwhile and were
    # handed over together instead of one slow pass each.
    assert page.asked[0] == 1
    assert len(page.asked) < 5, page.asked
    assert page.asked == sorted(set(page.asked)), page.asked
