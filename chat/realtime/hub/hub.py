"""The process's hub: which sockets show which room, and bringing them up to date.

The Channels tutorial puts every socket in the room's group, so one event costs the
channel layer one write and one read per socket. Here each server process joins a room's
group once (`ChannelLink`) and hands each arriving event to its own open sockets of that
room. The database stays the source of truth: sockets ask `fragments_after` for whatever
they lack (a gap after a reordered or dropped group message, a reconnect), and the
`Reconciler` delivers from the database what the layer did not bring.

An event is (seq, html): the hub does not know kinds; chat/events.py renders them.
Ephemeral state (who is here, who is typing) travels the same link as small notices and
is kept by `Presence` and `Typing`, which render it for this process's sockets.
"""

import asyncio
import contextlib
import logging

from channels.db import database_sync_to_async
from django.conf import settings

from chat import events
from chat.localtime import localise
from chat.realtime.hub.heartbeat import Heartbeat
from chat.realtime.hub.link import EVENT_TYPE, PRESENCE_TYPE, TYPING_TYPE, ChannelLink
from chat.realtime.hub.memory import EventMemory
from chat.realtime.hub.presence import Presence
from chat.realtime.hub.reconcile import Reconciler
from chat.realtime.hub.typing import Typing
from chat.selectors import events as event_selectors

logger = logging.getLogger(__name__)

CATCH_UP_LIMIT = 500  # at most this many events per catch-up batch
# Pacing under load. A pass over hundreds of sockets keeps the event loop busy; passes
# back to back would leave it no time to take in and save new messages, and each would
# carry one event. So a pass longer than BUSY_PASS_SECONDS is followed by a pause as
# long as the pass (at most MAX_PAUSE_SECONDS): fan-out gets at most about half of the
# loop, and what arrives meanwhile goes out together, one frame per socket. The bench's
# knee doubled with this (bench/README.md, "Pacing").
BUSY_PASS_SECONDS = 0.01
MAX_PAUSE_SECONDS = 0.05
YIELD_EVERY = 50  # sockets per slice of a pass: receiving and posting go on in between


class RoomHub:
    def __init__(self, layer):
        self.link = ChannelLink(layer)
        self.memory = EventMemory()
        self.presence = Presence(self)
        self.typing = Typing(self)
        self.listeners = {}  # room id -> set of sockets (objects with `async catch_up(seq)`)
        self.seen = {}  # room id -> highest sequence number fanned out here
        self.fill_locks = {}  # room id -> lock, so one gap is read from the database once
        self.pending = {}  # room id -> newest number arrived but not yet fanned out
        self.flushers = {}  # room id -> the task fanning out its pending events
        self.frames = {}
        self.tasks = []
        self.publishing = set()
        self.stopping = set()
        self.starting = asyncio.Lock()

    @property
    def layer(self):
        return self.link.layer

    @property
    def channel(self):
        return self.link.channel

    def all_sockets(self):
        return [socket for sockets in list(self.listeners.values()) for socket in list(sockets)]

    # --- sockets come and go ---

    async def join(self, room_id, listener, *, last_seq):
        await self._start()
        self.listeners.setdefault(room_id, set()).add(listener)
        self.seen[room_id] = max(self.seen.get(room_id, 0), last_seq)
        if room_id not in self.link.subscribed:
            await self.link.subscribe(room_id)

    async def leave(self, room_id, listener):
        members = self.listeners.get(room_id)
        if members is None:
            return
        members.discard(listener)
        if not members:
            del self.listeners[room_id]
            self.memory.forget(room_id)
            self.seen.pop(room_id, None)
            self.fill_locks.pop(room_id, None)
            await self.link.unsubscribe(room_id)
            if not self.listeners:
                self._stop()

    # --- events go out and come in ---

    def publish_soon(self, room_id, seq, html):
        """Send a committed event to every process serving the room (called on the loop).

        This process's own sockets get it as soon as it is published (or publishing has
        failed), without waiting for the echo through Redis (under load, a busy event
        loop's reader lagged behind by a second and more); the echo is then dropped as
        already seen.
        """
        if room_id in self.listeners:
            self.memory.remember(room_id, seq, html)
        task = asyncio.create_task(self.publish(room_id, seq, html, remembered=True))
        self.publishing.add(task)
        task.add_done_callback(self.publishing.discard)

    async def publish(self, room_id, seq, html, *, remembered=False):
        if not remembered and room_id in self.listeners:
            self.memory.remember(room_id, seq, html)
        try:
            await self.link.publish(room_id, seq, html)
        finally:
            self._schedule(room_id, seq)

    async def deliver(self, room_id, seq):
        """Bring every local socket of the room up to `seq`."""
        if seq > self.seen.get(room_id, 0):
            self.seen[room_id] = seq
        self.frames = {}  # sockets at the same position share one joined frame per pass
        for index, listener in enumerate(list(self.listeners.get(room_id, ())), 1):
            await listener.catch_up(seq)
            if index % YIELD_EVERY == 0:
                await asyncio.sleep(0)

    def frame(self, room_id, after_seq, upto_seq, zone=None):
        """The `websocket.send` event with every event after `after_seq` up to `upto_seq`,
        on the clock of `zone` (None: the operator's), if all are in memory (the common
        case); None sends the socket to the slow path.

        One event object per pass, position and time zone, shared by all sockets there:
        the server only reads it."""
        key = (room_id, after_seq, upto_seq, zone)
        frame = self.frames.get(key)
        if frame is None and upto_seq - after_seq <= CATCH_UP_LIMIT:
            found = self.memory.range(room_id, after_seq, upto_seq)
            if found is not None:
                text = localise("".join(html for _, html in found), zone or settings.TIME_ZONE)
                frame = self.frames[key] = {"type": "websocket.send", "text": text}
        return frame

    async def fragments_after(self, room_id, after_seq, upto_seq=None):
        """[(seq, html)] for events after `after_seq`, in order, gapless.

        From memory when it covers the range, else from the database (one query,
        rendered with the same templates, then kept).
        """
        if upto_seq is not None:
            upto_seq = min(upto_seq, after_seq + CATCH_UP_LIMIT)
            found = self.memory.range(room_id, after_seq, upto_seq)
            if found is not None:
                return found
        lock = self.fill_locks.setdefault(room_id, asyncio.Lock())
        async with lock:  # concurrent sockets with the same gap: one query
            if upto_seq is not None:
                found = self.memory.range(room_id, after_seq, upto_seq)
                if found is not None:
                    return found
            rendered = await _render_from_database(room_id, after_seq, upto_seq)
        if room_id in self.listeners:
            for seq, html in rendered:
                self.memory.remember(room_id, seq, html)
        return rendered

    # --- inside ---

    async def _start(self):
        async with self.starting:
            if self.channel is not None:
                return
            channel = await self.link.open()
            self.tasks = [
                asyncio.create_task(
                    self.link.read(channel, self._rooms, self._handle), name="chat-hub-read"
                ),
                asyncio.create_task(Reconciler(self).run(channel), name="chat-hub-reconcile"),
                asyncio.create_task(self.link.renew(channel, self._rooms), name="chat-hub-renew"),
                asyncio.create_task(Heartbeat(self).run(channel), name="chat-hub-heartbeat"),
                asyncio.create_task(self.presence.run(channel), name="chat-hub-presence"),
            ]

    def _stop(self):
        """No sockets left: stop reading, so an idle process holds no subscription."""
        channel = self.link.close()
        reader, *loops = self.tasks
        self.tasks = []
        stopping = asyncio.create_task(self._end(reader, loops, channel), name="chat-hub-end")
        self.stopping.add(stopping)
        stopping.add_done_callback(self.stopping.discard)

    async def _end(self, reader, loops, channel):
        """End a stopped generation's tasks.

        The reader is not cancelled: a cancel inside channels_redis's receive can leave
        the layer's shared receive lock held, and then no channel of this process gets
        anything. A message on its old channel wakes it, and it returns by itself. The
        other loops are cancelled until they end: on Python 3.11, redis-py's
        `asyncio.wait_for` can swallow a cancel (CPython gh-86296).
        """
        with contextlib.suppress(Exception):
            await self.link.wake(channel)
        pending = set(loops)
        while pending:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.5)
        await asyncio.wait([reader])

    def _rooms(self):
        return list(self.listeners)

    def _handle(self, event):
        kind = event.get("type")
        if kind == PRESENCE_TYPE:
            self.presence.notice(event)
            return
        if kind == TYPING_TYPE:
            self.typing.received(event)
            return
        if kind != EVENT_TYPE:
            logger.warning("ignoring unexpected channel-layer event of type %r", kind)
            return
        room_id, seq, html = event["room"], event["seq"], event["html"]
        if room_id not in self.listeners or seq <= self.seen.get(room_id, 0):
            return  # not served here, or already fanned out (our own publish, a reconcile)
        self.memory.remember(room_id, seq, html)
        self._schedule(room_id, seq)

    def _schedule(self, room_id, seq):
        """Have the room's sockets brought up to `seq` by its flusher task."""
        if room_id not in self.listeners:
            return
        self.pending[room_id] = max(seq, self.pending.get(room_id, 0))
        if room_id not in self.flushers:
            self.flushers[room_id] = asyncio.create_task(self._flush(room_id))

    async def _flush(self, room_id):
        """Fan out what has arrived for a room: under load, several events per frame.

        Writing a frame to hundreds of sockets takes a while; events that arrive
        meanwhile, or during the pause after a long pass, go out together on the next
        pass, one frame per socket, instead of one pass (and one frame per socket) each.
        """
        loop = asyncio.get_running_loop()
        try:
            while (upto := self.pending.pop(room_id, None)) is not None:
                started = loop.time()
                await self.deliver(room_id, upto)
                took = loop.time() - started
                if took > BUSY_PASS_SECONDS:
                    await asyncio.sleep(min(took, MAX_PAUSE_SECONDS))
        finally:
            del self.flushers[room_id]


@database_sync_to_async
def _render_from_database(room_id, after_seq, upto_seq):
    stored = event_selectors.events_after(
        room_id, after_seq=after_seq, upto_seq=upto_seq, limit=CATCH_UP_LIMIT
    )
    return events.render_stored(stored)
