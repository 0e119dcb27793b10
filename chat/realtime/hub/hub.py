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

from chat import events, metrics
from chat.localtime import localise
from chat.realtime.hub.heartbeat import Heartbeat
from chat.realtime.hub.link import (
    ACTIVITY_GROUP,
    ACTIVITY_TYPE,
    EVENT_TYPE,
    PERSON_TYPE,
    PRESENCE_TYPE,
    TYPING_TYPE,
    ChannelLink,
)
from chat.realtime.hub.memory import EventMemory
from chat.realtime.hub.people import People
from chat.realtime.hub.presence import Presence
from chat.realtime.hub.reconcile import Reconciler
from chat.realtime.hub.typing import Typing
from chat.selectors import events as event_selectors
from chat.selectors import rooms as room_selectors

logger = logging.getLogger(__name__)

CATCH_UP_LIMIT = 500  # at most this many events per catch-up batch
# At most this many characters per frame sent to a page: daphne (autobahn) refuses to send
# a message over 1 MiB, and a character is at most 4 bytes. A batch larger than this goes
# out in several frames (chat/realtime/feed.py), each ending with its last event's number.
MAX_FRAME_CHARS = 200_000
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
        self.people = People(self)
        self.listeners = {}  # room id -> set of sockets (objects with `async catch_up(seq)`)
        self.seen = {}  # room id -> highest sequence number fanned out here
        self.fill_locks = {}  # room id -> lock, so one gap is read from the database once
        self.pending = {}  # room id -> newest number arrived but not yet fanned out
        self.flushers = {}  # room id -> the task fanning out its pending events
        self.frames = {}
        self.tasks = []
        self.publishing = set()
        self.background = set()
        self.stopping = set()
        self.starting = asyncio.Lock()

    @property
    def layer(self):
        return self.link.layer

    @property
    def channel(self):
        return self.link.channel

    def all_sockets(self):
        rooms = [socket for sockets in list(self.listeners.values()) for socket in list(sockets)]
        return rooms + self.people.lobby_sockets()

    # --- sockets come and go ---

    async def open_lobby(self, socket, *, redraw):
        """A page with no room (the lobby): only its person's stream."""
        await self._start()
        await self.people.arrive(socket, redraw=redraw)

    async def close_lobby(self, socket):
        self.people.depart(socket)
        self._stop_if_idle()

    async def join(self, room_id, listener, *, last_seq):
        await self._start()
        self.listeners.setdefault(room_id, set()).add(listener)
        self.seen[room_id] = max(self.seen.get(room_id, 0), last_seq)
        if room_id not in self.link.subscribed:
            await self.link.subscribe(room_id)

    async def leave(self, room_id, listener):
        if self._detach(room_id, listener):
            await self.link.unsubscribe(room_id)
        self._stop_if_idle()

    def _detach(self, room_id, listener):
        """Stop sending the room's events to `listener`; True if it was the room's last."""
        members = self.listeners.get(room_id)
        if members is None or listener not in members:
            return False
        members.discard(listener)
        if members:
            return False
        del self.listeners[room_id]
        self.memory.forget(room_id)
        self.seen.pop(room_id, None)
        self.fill_locks.pop(room_id, None)
        return True

    def _stop_if_idle(self):
        if not self.listeners and not self.people.sockets and self.channel is not None:
            self._stop()

    def revoke(self, room_id, user_ids, reason="You are no longer a member of this room."):
        """These people may not read the room any more: their sockets for it stop getting
        its events now (before any later event is fanned out) and close, saying why."""
        user_ids = set(user_ids)
        for listener in list(self.listeners.get(room_id, ())):
            if listener.user_id in user_ids:
                if self._detach(room_id, listener):
                    self._spawn(self.link.unsubscribe(room_id))
                listener.cut_off()  # now: the page gets nothing more, not even in flight
                self._spawn(listener.revoke(reason))

    def _spawn(self, coroutine):
        task = asyncio.create_task(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    # --- events go out and come in ---

    def publish_soon(self, room_id, seq, html, *, revokes=(), counted=False, author=None):
        """Send a committed event to every process serving the room (called on the loop).

        This process's own sockets get it as soon as it is published (or publishing has
        failed), without waiting for the echo through Redis (under load, a busy event
        loop's reader lagged behind by a second and more); the echo is then dropped as
        already seen.
        """
        if revokes:
            self.revoke(room_id, revokes)
        if room_id in self.listeners:
            self.memory.remember(room_id, seq, html)
        task = asyncio.create_task(
            self.publish(
                room_id, seq, html, remembered=True, revokes=revokes, counted=counted, author=author
            )
        )
        self.publishing.add(task)
        task.add_done_callback(self.publishing.discard)

    async def publish(
        self, room_id, seq, html, *, remembered=False, revokes=(), counted=False, author=None
    ):
        if revokes and not remembered:
            self.revoke(room_id, revokes)
        if not remembered and room_id in self.listeners:
            self.memory.remember(room_id, seq, html)
        try:
            await self.link.publish(room_id, seq, html, revokes=revokes)
        finally:
            self._schedule(room_id, seq)
        if counted and settings.CHAT_PERSON_STREAM:
            # Sidebars elsewhere: every process redraws its people in the room (people.py).
            await self.link.notify_activity(room_id, author)

    async def tell_people(self, user_ids, reason=None):
        """Person notices (chat.events.person_changed / person_revoked) to every process."""
        for user_id in user_ids:
            await self.link.notify_person(user_id, {"reason": reason} if reason else {})

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
                # Too large for one frame: False, so sockets here take the slow path,
                # which splits it.
                frame = self.frames[key] = (
                    {"type": "websocket.send", "text": text}
                    if len(text) <= MAX_FRAME_CHARS
                    else False
                )
        return frame or None

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
            rendered, revoked = await _render_from_database(room_id, after_seq, upto_seq)
        if revoked:  # before anything after the removal is sent to them
            self.revoke(room_id, revoked)
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
            await self.link.subscribe(ACTIVITY_GROUP)
            self.tasks = [
                asyncio.create_task(
                    self.link.read(channel, self._groups, self._handle, self._recovered),
                    name="chat-hub-read",
                ),
                asyncio.create_task(Reconciler(self).run(channel), name="chat-hub-reconcile"),
                asyncio.create_task(self.link.renew(channel, self._groups), name="chat-hub-renew"),
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

    def _groups(self):
        return [*self.listeners, *self.people.groups(), ACTIVITY_GROUP]

    def _recovered(self):
        """The layer failed and came back: person notices may have been lost."""
        self.people.redraw_everyone()

    def _handle(self, event):
        kind = event.get("type")
        if kind == ACTIVITY_TYPE:
            self.people.activity(event)
            return
        if kind == PERSON_TYPE:
            self.people.notice(event)
            return
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
        metrics.event_arrived(event)
        if event.get("revokes"):
            self.revoke(room_id, event["revokes"])
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
                metrics.fanout_pass(took)
                if took > BUSY_PASS_SECONDS:
                    await asyncio.sleep(min(took, MAX_PAUSE_SECONDS))
        finally:
            del self.flushers[room_id]


@database_sync_to_async
def _render_from_database(room_id, after_seq, upto_seq):
    """([(seq, html)], people to revoke): those removed in these events who are still
    out of the room (someone removed and added back again keeps their new socket)."""
    stored = event_selectors.events_after(
        room_id, after_seq=after_seq, upto_seq=upto_seq, limit=CATCH_UP_LIMIT
    )
    metrics.catch_up_read(len(stored))
    revoked = events.revoked_in(stored)
    if revoked:
        revoked -= room_selectors.member_ids(room_id)
    return events.render_stored(stored), revoked
