"""ChannelLink (chat/realtime/hub/link.py): a process's one link to the channel layer, on a
Redis of the test's own."""

import asyncio
import logging
from unittest.mock import ANY

import pytest
from channels_redis.core import RedisChannelLayer

from chat.realtime.hub.link import EVENT_TYPE, ChannelLink, group_name
from project.settings import channel_layers_and_caches
from tests.support.redis import RedisServer

WAIT = 30


@pytest.fixture
def private_redis():
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
async def make_link(private_redis):
    """make_link() -> ChannelLink on a layer of its own, like one server process."""
    links = []

    def make():
        layers, _ = channel_layers_and_caches(private_redis.url)
        link = ChannelLink(RedisChannelLayer(**layers["default"]["CONFIG"]))
        links.append(link)
        return link

    yield make
    for link in links:
        async with asyncio.timeout(WAIT):
            await link.layer.close_pools()


class Reader:
    """`link.read` running as a task, keeping what it hands over."""

    def __init__(self, link, channel, rooms=()):
        self.link, self.channel, self.events = link, channel, []
        self.arrived = asyncio.Event()
        self.task = asyncio.create_task(link.read(channel, lambda: list(rooms), self._handle))

    def _handle(self, event):
        self.events.append(event)
        self.arrived.set()

    async def until(self, count):
        async with asyncio.timeout(WAIT):
            while len(self.events) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.events

    async def stop(self):
        """As the hub stops it: close the link, then wake the reader (never cancel it)."""
        self.link.close()
        await self.link.wake(self.channel)
        async with asyncio.timeout(WAIT):
            await self.task


async def members(layer, room_id):
    group = group_name(room_id)
    connection = layer.connection(layer.consistent_hash(group))
    return {name.decode() for name in await connection.zrange(layer._group_key(group), 0, -1)}


def test_group_names_use_the_rooms_primary_key():
    assert group_name(42) == "room-42"


async def test_a_published_event_reaches_each_subscribed_process_once(make_link):
    here, there, elsewhere = make_link(), make_link(), make_link()
    channels = [await link.open() for link in (here, there, elsewhere)]
    await here.subscribe(1)
    await there.subscribe(1)
    await elsewhere.subscribe(2)
    assert here.subscribed == {1} and elsewhere.subscribed == {2}
    readers = [
        Reader(link, channel)
        for link, channel in zip((here, there, elsewhere), channels, strict=True)
    ]
    try:
        assert await here.publish(1, 7, "<p>seven</p>") is True
        # sent_at: the publisher's clock, for the fan-out lag metric (chat/metrics.py).
        event = {"type": EVENT_TYPE, "room": 1, "seq": 7, "html": "<p>seven</p>", "sent_at": ANY}
        assert await readers[0].until(1) == [event]
        assert await readers[1].until(1) == [event]
        assert await there.publish(2, 1, "<p>other room</p>")
        assert (await readers[2].until(1))[0]["room"] == 2
        assert len(readers[0].events) == len(readers[1].events) == 1
    finally:
        for reader in readers:
            await reader.stop()


async def test_unsubscribing_leaves_the_group_and_closing_ends_the_reader(make_link):
    link, poster = make_link(), make_link()
    channel = await link.open()
    await link.subscribe(1)
    await link.subscribe(2)
    assert await members(link.layer, 1) == {channel}
    await link.unsubscribe(1)
    assert link.subscribed == {2}
    assert await members(link.layer, 1) == set()
    reader = Reader(link, channel)
    await poster.publish(1, 1, "<p>nobody here</p>")
    await poster.publish(2, 1, "<p>still here</p>")
    assert [event["room"] for event in await reader.until(1)] == [2]
    await reader.stop()  # returns by itself once woken
    assert link.channel is None and link.subscribed == set()
    assert reader.events == [
        {"type": EVENT_TYPE, "room": 2, "seq": 1, "html": "<p>still here</p>", "sent_at": ANY}
    ]


async def test_publishing_without_a_broker_fails_softly_and_recovers(
    make_link, private_redis, caplog
):
    caplog.set_level(logging.WARNING)
    link = make_link()
    await link.open()
    await asyncio.to_thread(private_redis.stop)
    assert await link.publish(5, 1, "<p>lost</p>") is False
    assert await link.publish(5, 2, "<p>lost too</p>") is False
    assert link.publish_failures == 2
    warnings = [r for r in caplog.records if "room 5 seq" in r.getMessage()]
    assert len(warnings) == 2
    # One traceback per streak of failures, not one per event.
    assert [bool(record.exc_info) for record in warnings] == [True, False]

    await asyncio.to_thread(private_redis.start)
    assert await link.publish(5, 3, "<p>back</p>") is True
    assert link.publish_failures == 0
