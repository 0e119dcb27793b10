"""Fan-out: one channel-layer subscription per room per process, delivered locally.

The Channels tutorial puts every socket in the room's group, so one message costs the
channel layer one write and one read per socket. Here each server process joins a
room's group once, with one channel of its own, and hands each arriving fragment to its
own open sockets of that room. A message still travels through the Redis group of the
room (`room-<pk>`), so every process sees it; the per-socket cost is one `send`.

The database stays the source of truth. Sockets ask `fragments_after` for whatever they
lack (a gap after a reordered or dropped group message, a reconnect), and a reconcile
loop compares each room's `last_seq` with what this process has seen, so messages
posted while Redis was down reach every page once it is reachable again (or straight
from the database in the meantime).
"""

import asyncio
import contextlib
import logging
import weakref
from collections import OrderedDict

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from chat import selectors, services
from chat.models import Room

logger = logging.getLogger(__name__)

EVENT_TYPE = "chat.message"
RECENT_PER_ROOM = 1024  # rendered fragments kept per room for catch-up without a query
CATCH_UP_LIMIT = 500  # at most this many messages per catch-up batch
# Pacing under load. A pass over hundreds of sockets keeps the event loop busy; passes
# back to back would leave it no time to take in and save new messages, and each would
# carry one message. So a pass longer than BUSY_PASS_SECONDS is followed by a pause as
# long as the pass (at most MAX_PAUSE_SECONDS): fan-out gets at most about half of the
# loop, and what arrives meanwhile goes out together, one frame per socket. The bench's
# knee doubled with this (bench/README.md, "Pacing").
BUSY_PASS_SECONDS = 0.01
MAX_PAUSE_SECONDS = 0.05
YIELD_EVERY = 50  # sockets per slice of a pass: receiving and posting go on in between


class RoomHub:
    def __init__(self, layer):
        self.layer = layer
        self.channel = None  # this process's own channel, in the group of every room it serves
        self.listeners = {}  # room id -> set of sockets (objects with `async catch_up(seq)`)
        self.seen = {}  # room id -> highest sequence number fanned out here
        self.recent = {}  # room id -> OrderedDict(seq -> rendered fragment)
        self.fill_locks = {}  # room id -> lock, so one gap is read from the database once
        self.pending = {}  # room id -> newest sequence number arrived but not yet fanned out
        self.flushers = {}  # room id -> the task fanning out its pending messages
        self.frames = {}
        self.tasks = []
        self.stopping = set()
        self.publish_failures = 0
        self.starting = asyncio.Lock()
        self.subscribed = set()

    # --- sockets come and go ---

    async def join(self, room_id, listener, *, last_seq):
        await self._start()
        members = self.listeners.setdefault(room_id, set())
        members.add(listener)
        self.seen[room_id] = max(self.seen.get(room_id, 0), last_seq)
        if room_id not in self.subscribed:
            await self._subscribe(room_id)

    async def leave(self, room_id, listener):
        members = self.listeners.get(room_id)
        if members is None:
            return
        members.discard(listener)
        if not members:
            del self.listeners[room_id]
            self.recent.pop(room_id, None)
            self.seen.pop(room_id, None)
            self.fill_locks.pop(room_id, None)
            self.subscribed.discard(room_id)
            try:
                await self.layer.group_discard(_group(room_id), self.channel)
            except Exception:
                logger.warning(
                    "could not leave group of room %s; it expires", room_id, exc_info=True
                )
            if not self.listeners:
                self._stop()

    # --- messages go out and come in ---

    async def publish(self, room_id, seq, html):
        """Send one rendered message to every process serving the room.

        This process's own sockets get it as soon as it is published (or publishing has
        failed), without waiting for the echo through Redis (under load, a busy event
        loop's reader lagged behind by a second and more); the echo is then dropped as
        already seen. Not before publishing: the poster's socket would get its message
        before its `receive` is done.
        """
        self._remember(room_id, seq, html)
        try:
            await self._send_to_group(room_id, seq, html)
        finally:
            self._schedule(room_id, seq)

    async def _send_to_group(self, room_id, seq, html):
        event = {"type": EVENT_TYPE, "room": room_id, "seq": seq, "html": html}
        for attempt in (1, 2):
            try:
                await self.layer.group_send(_group(room_id), event)
                self.publish_failures = 0
                return
            except Exception:
                if attempt == 1:
                    # A connection pooled before a Redis restart fails once, then reconnects.
                    await asyncio.sleep(0.05)
                    continue
                # Stored but not broadcast: our own sockets get it now; other processes get
                # it from the database on their next reconcile pass. One traceback per
                # streak of failures: an overloaded process should not spend CPU on them.
                self.publish_failures += 1
                logger.warning(
                    "channel layer publish failed for room %s seq %s (%s in a row); "
                    "other processes get it from the database",
                    room_id,
                    seq,
                    self.publish_failures,
                    exc_info=self.publish_failures == 1,
                )

    async def deliver(self, room_id, seq):
        """Bring every local socket of the room up to `seq`."""
        if seq > self.seen.get(room_id, 0):
            self.seen[room_id] = seq
        self.frames = {}  # sockets at the same position share one joined frame per pass
        for index, listener in enumerate(list(self.listeners.get(room_id, ())), 1):
            await listener.catch_up(seq)
            if index % YIELD_EVERY == 0:
                await asyncio.sleep(0)

    def frame(self, room_id, after_seq, upto_seq):
        """The `websocket.send` event with every message after `after_seq` up to `upto_seq`,
        if all are in memory (the common case); None sends the socket to the slow path.

        One event object per pass and position, shared by all sockets there: the server
        only reads it."""
        key = (room_id, after_seq, upto_seq)
        frame = self.frames.get(key)
        if frame is None and upto_seq - after_seq <= CATCH_UP_LIMIT:
            found = self._from_memory(room_id, after_seq, upto_seq)
            if found is not None:
                text = "".join(html for _, html in found)
                frame = self.frames[key] = {"type": "websocket.send", "text": text}
        return frame

    async def fragments_after(self, room_id, after_seq, upto_seq=None):
        """[(seq, fragment)] for messages after `after_seq`, in order, gapless.

        From the fragments kept in memory when they cover the range, else from the
        database (one query, rendered with the same template, then kept).
        """
        if upto_seq is not None:
            upto_seq = min(upto_seq, after_seq + CATCH_UP_LIMIT)
            found = self._from_memory(room_id, after_seq, upto_seq)
            if found is not None:
                return found
        lock = self.fill_locks.setdefault(room_id, asyncio.Lock())
        async with lock:  # concurrent sockets with the same gap: one query
            if upto_seq is not None:
                found = self._from_memory(room_id, after_seq, upto_seq)
                if found is not None:
                    return found
            rendered = await _render_from_database(room_id, after_seq, upto_seq)
        for seq, html in rendered:
            self._remember(room_id, seq, html)
        return rendered

    # --- inside ---

    def _from_memory(self, room_id, after_seq, upto_seq):
        recent = self.recent.get(room_id, {})
        found = []
        for seq in range(after_seq + 1, upto_seq + 1):
            html = recent.get(seq)
            if html is None:
                return None
            found.append((seq, html))
        return found

    def _remember(self, room_id, seq, html):
        if room_id not in self.listeners:
            return
        recent = self.recent.setdefault(room_id, OrderedDict())
        recent[seq] = html
        while len(recent) > RECENT_PER_ROOM:
            recent.popitem(last=False)

    async def _start(self):
        async with self.starting:
            if self.channel is not None:
                return
            self.channel = channel = await self.layer.new_channel(prefix="chat-process.")
            self.tasks = [
                asyncio.create_task(self._read(channel), name="chat-hub-read"),
                asyncio.create_task(self._reconcile(channel), name="chat-hub-reconcile"),
                asyncio.create_task(self._renew(channel), name="chat-hub-renew"),
            ]

    def _stop(self):
        """No sockets left: stop reading, so an idle process holds no subscription."""
        channel, self.channel = self.channel, None
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
            await self.layer.send(channel, {"type": "chat.hub.stop"})
        pending = set(loops)
        while pending:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.5)
        await asyncio.wait([reader])

    async def _subscribe(self, room_id):
        try:
            await self.layer.group_add(_group(room_id), self.channel)
            self.subscribed.add(room_id)
        except Exception:
            # The reader and the renew loop retry; meanwhile reconcile delivers.
            logger.warning("could not join group of room %s; will retry", room_id, exc_info=True)

    async def _subscribe_all(self):
        for room_id in list(self.listeners):
            await self.layer.group_add(_group(room_id), self.channel)
            self.subscribed.add(room_id)

    async def _read(self, channel):
        failures = 0
        while self.channel == channel:  # until _stop, even if the layer swallows a cancel
            try:
                if failures:
                    # Redis may have restarted empty: memberships are gone until re-added.
                    await self._subscribe_all()
                event = await self.layer.receive(channel)
                failures = 0
                if self.channel != channel:
                    return
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                logger.warning(
                    "channel layer receive failed (%s in a row); retrying", failures, exc_info=True
                )
                await asyncio.sleep(min(0.1 * 2**failures, 5))
                continue
            try:
                await self._handle(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception(
                    "could not fan out event %r", {k: event.get(k) for k in ("room", "seq")}
                )

    async def _handle(self, event):
        if event.get("type") != EVENT_TYPE:
            logger.warning("ignoring unexpected channel-layer event of type %r", event.get("type"))
            return
        room_id, seq, html = event["room"], event["seq"], event["html"]
        if room_id not in self.listeners or seq <= self.seen.get(room_id, 0):
            return  # not served here, or already fanned out (our own publish, a reconcile)
        self._remember(room_id, seq, html)
        self._schedule(room_id, seq)

    def _schedule(self, room_id, seq):
        """Have the room's sockets brought up to `seq` by its flusher task."""
        if room_id not in self.listeners:
            return
        self.pending[room_id] = max(seq, self.pending.get(room_id, 0))
        if room_id not in self.flushers:
            self.flushers[room_id] = asyncio.create_task(self._flush(room_id))

    async def _flush(self, room_id):
        """Fan out what has arrived for a room: under load, several messages per frame.

        Writing a frame to hundreds of sockets takes a while; messages that arrive
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

    async def _reconcile(self, channel):
        """Deliver what the channel layer did not bring (outage, drop at capacity).

        Only numbers the database already had at the previous pass count as missing:
        under load some message is always committed with its broadcast still in flight.
        """
        committed_before = {}  # room id -> the room's last_seq at the previous pass
        while True:
            await asyncio.sleep(settings.CHAT_RECONCILE_SECONDS)
            if self.channel != channel:
                return  # this hub was stopped (a cancel may have been swallowed)
            if not self.listeners:
                committed_before = {}
                continue
            try:
                rooms = list(self.listeners)
                latest = await database_sync_to_async(selectors.room_last_seqs)(rooms)
                for room_id, overdue in committed_before.items():
                    seen = self.seen.get(room_id, 0)
                    if room_id in self.listeners and overdue > seen:
                        logger.warning(
                            "room %s: seq %s..%s did not come through the channel layer; "
                            "delivering from the database",
                            room_id,
                            seen + 1,
                            overdue,
                        )
                        await self.deliver(room_id, overdue)
                committed_before = latest
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("reconcile pass failed; retrying", exc_info=True)

    async def _renew(self, channel):
        """Re-join every group well before the channel layer's group expiry drops us."""
        while True:
            await asyncio.sleep(max(1.0, settings.CHAT_GROUP_EXPIRY / 3))
            if self.channel != channel:
                return
            try:
                await self._subscribe_all()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("could not renew group memberships; retrying", exc_info=True)


def _group(room_id):
    return f"room-{room_id}"


@database_sync_to_async
def _render_from_database(room_id, after_seq, upto_seq):
    room = Room(pk=room_id)
    messages = selectors.messages_after(
        room, after_seq=after_seq, upto_seq=upto_seq, limit=CATCH_UP_LIMIT
    )
    return list(
        zip(
            [message.seq for message in messages],
            services.messages_render_each(messages),
            strict=True,
        )
    )


_hubs = weakref.WeakKeyDictionary()


def get_hub():
    """The hub of the running event loop (one per server process)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = RoomHub(get_channel_layer())
    return hub
