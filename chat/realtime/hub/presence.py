"""Who has a room open now ("People here"), kept by each process for its own sockets.

Each process counts its sockets per room and person. Only when a person's count in a room
goes 0 -> 1 or 1 -> 0 does it write its record of the room (chat/selectors/presence.py
has the layout: one expiring record per room and process, in Redis) and then send a small
notice, `{"type": "chat.presence", "room": id}`, through the room's channel-layer group,
which every process serving the room has joined once (ChannelLink). A notice carries no
names and no HTML. Every process that gets one re-reads the room's records (debounced:
notices that arrive together cost one read), and if the list changed renders `#people`
once (chat/events/people.html) and sends that one frame to all its sockets of the room.

It stays right through failures without any process cleaning up after another:
- a killed process's records expire (CHAT_PRESENCE_TTL_SECONDS); every process renews
  its own records every third of that and re-reads its rooms as often, so the people of a
  killed process leave every list within about 1.3 x the TTL;
- Redis restarted empty: the next renewal (a third of the TTL) writes every record again,
  and the next re-read shows everyone;
- several tabs of one person count once; closing the last one is a 1 -> 0 change, shown
  everywhere within a few hundred milliseconds.

Costs: a connect or disconnect that changes nobody's presence (a second tab, a reload
of one of several) touches no store. A change costs one write, one group message, and
on each process one read, one query and one rendering per room and pass, not per socket.
Under churn a room has at most one pass at a time, followed by a pause as long as the
pass (at least DEBOUNCE_SECONDS): what changes meanwhile goes out in the next one.

Without REDIS_URL (the in-memory default, one process) the records live in this process
(`chat.selectors.presence.MEMORY`), with the same expiry.
"""

import asyncio
import logging
import uuid
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.conf import settings

from chat import events
from chat.caching import first_server
from chat.realtime.hub.link import PRESENCE_TYPE
from chat.selectors import presence as layout

logger = logging.getLogger(__name__)

DEBOUNCE_SECONDS = 0.1  # notices arriving within this go out as one re-read
MAX_PAUSE_SECONDS = 1.0
YIELD_EVERY = 50  # sockets per slice of a send


class RedisRecords:
    """The records in Redis, for one event loop (redis.asyncio clients belong to one)."""

    def __init__(self, url):
        # On REDIS_URL's first server, where the pages' reads look (chat/caching.py).
        self.client = first_server(url).async_client(socket_timeout=5, socket_connect_timeout=2)

    async def save(self, records, process_id, ttl):
        """Write this process's record of each room: {room id: set of user ids}."""
        milliseconds = max(1, int(ttl * 1000))
        async with self.client.pipeline(transaction=False) as pipe:
            for room_id, user_ids in records.items():
                record, processes = (
                    layout.record_key(room_id, process_id),
                    layout.processes_key(room_id),
                )
                if user_ids:
                    pipe.set(record, layout.encode_users(user_ids), px=milliseconds)
                    pipe.sadd(processes, process_id)
                    # The set outlives each record in it; a reader drops expired ones.
                    pipe.pexpire(processes, 2 * milliseconds)
                else:
                    pipe.delete(record)
                    pipe.srem(processes, process_id)
            await pipe.execute()

    async def users(self, room_ids):
        """{room id: set of user ids} from every live record, in two round trips."""
        room_ids = list(room_ids)
        async with self.client.pipeline(transaction=False) as pipe:
            for room_id in room_ids:
                pipe.smembers(layout.processes_key(room_id))
            processes = [layout.decode_ids(members) for members in await pipe.execute()]
        keys = layout.record_keys(room_ids, processes)
        found, gone = layout.users_in_records(
            room_ids, processes, await self.client.mget(keys) if keys else ()
        )
        if gone:
            async with self.client.pipeline(transaction=False) as pipe:
                for room_id, process_id in gone:
                    pipe.srem(layout.processes_key(room_id), process_id)
                await pipe.execute()
        return found


class MemoryRecords:
    """The same records in this process (no REDIS_URL): one process, one event loop."""

    async def save(self, records, process_id, ttl):
        for room_id, user_ids in records.items():
            layout.MEMORY.save(room_id, process_id, user_ids, ttl)

    async def users(self, room_ids):
        return layout.MEMORY.users(room_ids)


@dataclass(frozen=True)
class Shown:
    """What this process's sockets of a room show: who, the HTML and its shared frame."""

    user_ids: frozenset
    html: str
    frame: dict


class Presence:
    def __init__(self, hub):
        self.hub = hub
        # Names this process's records; new for each hub, so records never mix.
        self.process_id = uuid.uuid4().hex[:16]
        self.people = {}  # room id -> {user id: set of sockets}
        self.shown = {}  # room id -> Shown
        self.stale = {}  # room id -> whether the next pass re-renders even if nobody moved
        self.waiting = {}  # room id -> sockets that opened and wait for the next list
        self.passes = {}  # room id -> the task re-reading it
        self.unsaved = set()  # rooms whose record is to be written
        self.moved = set()  # ... of which someone arrived or left (others are told)
        self.saver = None
        self.save_failures = 0
        self._records = None

    @property
    def records(self):
        if self._records is None:
            self._records = (
                RedisRecords(settings.REDIS_URL) if settings.REDIS_URL else MemoryRecords()
            )
        return self._records

    def sockets(self, room_id):
        return [socket for sockets in self.people.get(room_id, {}).values() for socket in sockets]

    # --- this process's sockets come and go ---

    async def arrive(self, room_id, user_id, socket):
        """A socket of `user_id` opened in the room: it gets the list and typing at once."""
        people = self.people.setdefault(room_id, {})
        sockets = people.setdefault(user_id, set())
        sockets.add(socket)
        arrived = len(sockets) == 1
        if arrived:
            self._save_soon(room_id, moved=True)
        shown = self.shown.get(room_id)
        if shown is not None and (not arrived or user_id in shown.user_ids):
            await _send(socket, shown.frame)
        else:
            # The list shown here lacks them, and their page (rendered with them in it)
            # would lose their name for a moment: the next pass sends it the new list.
            self.waiting.setdefault(room_id, set()).add(socket)
            self.changed(room_id)
        await self.hub.typing.greet(room_id, user_id, socket)

    def depart(self, room_id, user_id, socket):
        people = self.people.get(room_id)
        sockets = people.get(user_id) if people else None
        if sockets is None or socket not in sockets:
            return
        sockets.discard(socket)
        self.waiting.get(room_id, set()).discard(socket)
        if sockets:
            return  # another tab of theirs is still open here
        del people[user_id]
        self.hub.typing.stopped(room_id, user_id)  # the last tab closed while typing
        if not people:
            del self.people[room_id]
            self.shown.pop(room_id, None)
            self.stale.pop(room_id, None)
            self.waiting.pop(room_id, None)
            self.hub.typing.forget(room_id)
        self._save_soon(room_id, moved=True)

    # --- records ---

    def _save_soon(self, room_id, *, moved):
        self.unsaved.add(room_id)
        if moved:
            self.moved.add(room_id)
        if self.saver is None:
            self.saver = asyncio.create_task(self._save(), name="chat-presence-save")

    async def _save(self):
        """Write what changed, then tell the other processes. One writer per process, so
        records are written in the order of the changes; a burst becomes one write."""
        try:
            while self.unsaved:
                rooms, self.unsaved = self.unsaved, set()
                moved, self.moved = self.moved & rooms, self.moved - rooms
                records = {room_id: set(self.people.get(room_id, ())) for room_id in rooms}
                saved = await self._write(records)
                for room_id in moved:
                    self.changed(room_id)  # this process's own sockets
                if saved and moved:
                    event = {"type": PRESENCE_TYPE, "from": self.process_id}
                    await asyncio.gather(
                        *(
                            self.hub.link.notify(room_id, {**event, "room": room_id})
                            for room_id in moved
                        )
                    )
        finally:
            self.saver = None

    async def _write(self, records):
        try:
            await self.records.save(records, self.process_id, settings.CHAT_PRESENCE_TTL_SECONDS)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Written again at the next renewal; meanwhile this process shows its own.
            self.save_failures += 1
            logger.warning(
                "could not write presence (%s in a row); renewing later",
                self.save_failures,
                exc_info=self.save_failures == 1,
            )
            return False
        self.save_failures = 0
        return True

    async def run(self, channel):
        """Renew this process's records and re-read its rooms, every third of the TTL."""
        while True:
            await asyncio.sleep(settings.CHAT_PRESENCE_TTL_SECONDS / 3)
            if self.hub.channel != channel:
                return
            for room_id in list(self.people):
                self._save_soon(room_id, moved=False)
                self.changed(room_id, full=True)

    # --- notices: a room's list may have changed ---

    def notice(self, event):
        """A notice from another process (the channel layer)."""
        room_id = event.get("room")
        if type(room_id) is not int or event.get("from") == self.process_id:
            return  # malformed, or our own: shown already
        self.changed(room_id)

    def changed(self, room_id, *, full=False):
        """Re-read the room soon. `full`: render even if the same people are there (a
        display name or a choice to hide may have changed)."""
        if room_id not in self.people:
            return
        self.stale[room_id] = self.stale.get(room_id, False) or full
        if room_id not in self.passes:
            self.passes[room_id] = asyncio.create_task(
                self._passes(room_id), name=f"chat-presence-{room_id}"
            )

    async def _passes(self, room_id):
        loop = asyncio.get_running_loop()
        try:
            await asyncio.sleep(DEBOUNCE_SECONDS)
            while room_id in self.stale:
                full = self.stale.pop(room_id)
                started = loop.time()
                await self._show(room_id, full=full)
                took = loop.time() - started
                await asyncio.sleep(min(max(took, DEBOUNCE_SECONDS), MAX_PAUSE_SECONDS))
        finally:
            del self.passes[room_id]

    async def _show(self, room_id, *, full):
        try:
            stored = (await self.records.users([room_id]))[room_id]
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("could not read who is in room %s; keeping the list", room_id)
            return
        # This process's own people are here whatever the store says (a write in flight).
        user_ids = frozenset(stored | set(self.people.get(room_id, ())))
        shown = self.shown.get(room_id)
        if shown is None or shown.user_ids != user_ids or full:
            html = await database_sync_to_async(_render, thread_sensitive=False)(user_ids)
            if room_id not in self.people:
                return  # everyone here left meanwhile
            shown = self.shown.get(room_id)
            if shown is None or shown.html != html:
                frame = {"type": "websocket.send", "text": html}
                self.shown[room_id] = Shown(user_ids, html, frame)
                self.waiting.pop(room_id, None)
                await _send_all(self.sockets(room_id), frame)
                return
            self.shown[room_id] = Shown(user_ids, html, shown.frame)
        # The same list as before: only sockets that opened since need it.
        await _send_all(self.waiting.pop(room_id, ()), shown.frame)


def _render(user_ids):
    people = layout.shown_people(user_ids) if user_ids else []
    return events.render_ephemeral(events.PRESENCE_CHANGED, people_here=people)


async def _send_all(sockets, frame):
    for index, socket in enumerate(list(sockets), 1):
        await _send(socket, frame)
        if index % YIELD_EVERY == 0:
            await asyncio.sleep(0)


async def _send(socket, frame):
    """One shared `websocket.send` event to a socket; a closing one is skipped."""
    try:
        await socket.base_send(frame)
    except Exception:  # its disconnect cleans up
        logger.debug("presence frame to a closing socket failed", exc_info=True)
