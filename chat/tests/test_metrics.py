"""What a process counts (chat/metrics.py), observed where it happens: real sockets, the
real Redis channel layer (or a URL where no Redis listens), the real database.

Metrics live in the process's registry for the whole test run, so each test compares a
value before and after what it does.

Tests marked HOOK need a one-line call of chat.metrics in a module the metrics do not
own (the line is named in each docstring); the others need nothing outside chat/metrics.py,
chat/actions/limits.py and chat/views/health.py.
"""

import asyncio
import json
import logging

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer
from prometheus_client import REGISTRY

from chat import events, metrics
from chat.actions.limits import RateLimited, rate_limit_check
from chat.logs import JsonFormatter
from chat.realtime.hub import get_hub
from chat.realtime.hub.hub import RoomHub
from chat.realtime.hub.link import ChannelLink
from chat.tests.factories import make_author, make_message, make_room
from chat.tests.test_security import open_socket
from project.settings import channel_layers_and_caches
from tests.support.redis import free_port

WAIT = 30  # seconds before a test gives up waiting: the machine is shared


def value(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def until(predicate, what):
    """Wait for `predicate()` (re-checked every 20 ms) or fail saying `what`."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        if predicate():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not within {WAIT} s")
        await asyncio.sleep(0.02)


@pytest.fixture
async def settle():
    """Let the tasks a test leaves behind (a hub's) end in its own loop."""
    yield
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    if others:
        await asyncio.wait(others, timeout=3)


def unreachable_layer():
    """A channel layer configured as in production, on a port where nothing listens."""
    layers, _ = channel_layers_and_caches(f"redis://127.0.0.1:{free_port()}/0")
    return RedisChannelLayer(**layers["default"]["CONFIG"])


class SocketStandIn:
    """What the hub serves: keeps the numbers it was brought up to."""

    def __init__(self):
        self.reached = []

    async def catch_up(self, seq):
        self.reached.append(seq)

    async def base_send(self, event):  # the heartbeat's
        pass


async def stop_hub(hub, room_id, listener):
    await hub.leave(room_id, listener)  # the last one leaving stops the hub
    if hub.stopping:
        await asyncio.wait(list(hub.stopping), timeout=WAIT)
    await hub.layer.close_pools()


# --- read when scraped ---


@pytest.mark.django_db(transaction=True)
async def test_open_sockets_and_rooms_are_read_from_the_hub_when_scraped(settle):
    alice, bob = [await database_sync_to_async(make_author)() for _ in range(2)]
    room, other = [await database_sync_to_async(make_room)() for _ in range(2)]
    sockets, rooms = value("chat_open_sockets"), value("chat_rooms_served")
    pages = [await open_socket(alice, room), await open_socket(bob, room)]
    pages.append(await open_socket(bob, other))
    assert value("chat_open_sockets") == sockets + 3
    assert value("chat_rooms_served") == rooms + 2
    for page in pages:
        await page.communicator.disconnect()
    assert value("chat_open_sockets") == sockets
    assert value("chat_rooms_served") == rooms


async def test_a_failing_publish_streak_shows_until_a_publish_succeeds(settings, settle):
    settings.CHANNEL_LAYERS, _ = channel_layers_and_caches(f"redis://127.0.0.1:{free_port()}/0")
    hub = get_hub()  # the process's hub, on a broker that does not answer
    try:
        for seq in (1, 2):
            await hub.publish(1, seq, "<p>lost</p>")
        assert value("chat_channel_layer_failing", op="publish") == 2
    finally:
        hub.link.publish_failures = 0  # the hub outlives the test with its loop
        await hub.layer.close_pools()
    assert value("chat_channel_layer_failing", op="publish") == 0


@pytest.mark.django_db
def test_the_scrape_lists_every_event_kind_before_its_first_event():
    body, content_type = metrics.exposition("", kinds=events.CATALOGUE)
    assert content_type.startswith("text/plain")
    for kind in events.CATALOGUE:
        assert f'chat_events_published_total{{kind="{kind}"}}'.encode() in body


# --- counted where it happens: chat/actions/limits.py ---


@pytest.mark.django_db
def test_rate_limit_refusals_are_counted(settings):
    settings.CHAT_RATE_LIMIT = (2, 60)
    author = make_author()
    refused = value("chat_rate_limited_total")
    rate_limit_check(author)
    rate_limit_check(author)
    assert value("chat_rate_limited_total") == refused
    for _ in range(3):
        with pytest.raises(RateLimited):
            rate_limit_check(author)
    assert value("chat_rate_limited_total") == refused + 3


# --- HOOK: counted where it happens, in modules the metrics do not own ---


@pytest.mark.django_db(transaction=True)
def test_each_published_event_is_counted_and_logged_once(settings, caplog):
    """HOOK chat/events.py `_publish`: metrics.event_published(kind.name, room_id, seq)."""
    settings.CHAT_RATE_LIMIT = None
    caplog.set_level(logging.INFO, logger="chat.events.published")
    room = make_room()
    posted = value("chat_events_published_total", kind="message.posted")
    message = make_message(room=room, text="counted")
    make_message(room=room, text="counted too")
    assert value("chat_events_published_total", kind="message.posted") == posted + 2

    lines = [r for r in caplog.records if r.name == "chat.events.published"]
    assert [(r.room, r.seq, r.kind) for r in lines] == [
        (room.pk, message.seq, "message.posted"),
        (room.pk, message.seq + 1, "message.posted"),
    ]
    assert (
        lines[0].getMessage()
        == f"event published room={room.pk} seq={message.seq} kind=message.posted"
    )
    # With CHAT_LOG_FORMAT=json the same line carries them as fields.
    fields = json.loads(JsonFormatter().format(lines[0]))
    assert (fields["room"], fields["seq"], fields["kind"]) == (
        room.pk,
        message.seq,
        "message.posted",
    )


@pytest.mark.django_db(transaction=True)
async def test_catch_up_reads_from_the_database_are_counted(settings, settle):
    """HOOK chat/realtime/hub/hub.py `_render_from_database`: metrics.catch_up_read(len(stored))."""
    settings.CHAT_RATE_LIMIT = None
    room = await database_sync_to_async(make_room)()
    seqs = [
        (await database_sync_to_async(make_message)(room=room, text=text)).seq
        for text in ("one", "two", "three")
    ]
    reads, read_events = value("chat_catch_up_reads_total"), value("chat_catch_up_events_total")
    hub = RoomHub(get_channel_layer())  # serving no socket of the room: memory holds nothing
    after = seqs[0] - 1
    assert [seq for seq, _ in await hub.fragments_after(room.pk, after)] == seqs
    assert [seq for seq, _ in await hub.fragments_after(room.pk, seqs[1])] == seqs[2:]
    assert value("chat_catch_up_reads_total") == reads + 2
    assert value("chat_catch_up_events_total") == read_events + 4


@pytest.mark.django_db(transaction=True)
async def test_fanout_lag_and_passes_are_observed(settings, settle):
    """HOOK chat/realtime/hub/link.py `publish`: metrics.stamp(event);
    hub.py `_handle`: metrics.event_arrived(event); hub.py `_flush`: metrics.fanout_pass(took)."""
    settings.CHAT_RECONCILE_SECONDS = 3600  # only the channel layer delivers
    room = await database_sync_to_async(make_room)()
    hub, page = RoomHub(get_channel_layer()), SocketStandIn()
    lags, passes = value("chat_fanout_lag_seconds_count"), value("chat_fanout_pass_seconds_count")
    await hub.join(room.pk, page, last_seq=0)
    try:
        await hub.publish(room.pk, 1, "<p>one</p>")
        await until(lambda: page.reached == [1], "the event fanned out")
        # The publisher's own process hears its echo through Redis: one lag each.
        await until(
            lambda: value("chat_fanout_lag_seconds_count") == lags + 1, "the echo's lag observed"
        )
        assert value("chat_fanout_pass_seconds_count") == passes + 1
        assert value("chat_fanout_lag_seconds_sum") >= 0
    finally:
        await stop_hub(hub, room.pk, page)


@pytest.mark.django_db(transaction=True)
async def test_events_the_channel_layer_never_brought_are_counted_when_reconciled(
    settings, monkeypatch, settle
):
    """HOOK chat/realtime/hub/reconcile.py `run`: metrics.reconciled(overdue - seen)."""
    settings.CHAT_RECONCILE_SECONDS = 0.1
    settings.CHAT_RATE_LIMIT = None
    # Committed, never published: what the channel layer lost.
    monkeypatch.setattr(events, "_publisher", lambda *args, **kwargs: None)
    room = await database_sync_to_async(make_room)()
    await database_sync_to_async(room.refresh_from_db)()
    hub, page = RoomHub(get_channel_layer()), SocketStandIn()
    reconciled = value("chat_reconciled_events_total")
    await hub.join(room.pk, page, last_seq=room.last_seq)
    try:
        for text in ("lost", "lost too"):
            last = await database_sync_to_async(make_message)(room=room, text=text)
        await until(lambda: page.reached[-1:] == [last.seq], "the reconcile pass delivered both")
        assert value("chat_reconciled_events_total") == reconciled + 2
    finally:
        await stop_hub(hub, room.pk, page)


async def test_channel_layer_errors_are_counted_by_operation(settle):
    """HOOK chat/realtime/hub/link.py: metrics.layer_error("publish" | "notify" | "receive" |
    "subscribe") where each failure is counted or logged."""
    link = ChannelLink(unreachable_layer())
    before = {
        op: value("chat_channel_layer_errors_total", op=op) for op in metrics.LAYER_OPERATIONS
    }

    def errors(op):
        return value("chat_channel_layer_errors_total", op=op) - before[op]

    try:
        assert await link.publish(1, 1, "<p>lost</p>") is False
        assert await link.notify(1, {"type": "chat.typing", "room": 1}) is False
        channel = await link.open()
        await link.subscribe(1)  # logged and swallowed: the reader retries
        reader = asyncio.create_task(link.read(channel, list, lambda event: None))
        await until(lambda: errors("receive") >= 1, "a failed receive counted")
        link.close()
        await asyncio.wait_for(reader, WAIT)
        assert (errors("publish"), errors("notify"), errors("subscribe")) == (1, 1, 1)
    finally:
        await link.layer.close_pools()
