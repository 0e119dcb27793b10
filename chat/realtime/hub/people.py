"""Each person's own stream: their list of rooms with unread and mention counts, the
tab title's total, and revocations, kept live on every page they have open.

Not numbered or replayed like a room's events: what a person's pages show is a snapshot,
recomputed from the database (chat/selectors/unread.py, a fixed number of queries)
whenever it may have changed, and whenever a page (re)connects. A lost notice therefore
costs at most staleness until the next one or the next reconnect, never a wrong state:
- kill -9 of a process: its pages reconnect elsewhere and get a fresh snapshot;
- Redis restarted empty: the reader re-joins its groups and redraws every person here;
- two tabs: each has its socket; a notice reaches all of them, on every process.

Three notices reach a process:
- person (`person-<id>` group): "your rooms changed" (joined, added, removed, read, a
  direct conversation started), or, with a reason, "close every socket" (account
  deactivated, password changed);
- activity (one group every process joins): a message was posted or deleted in a room.
  Only people here who are in that room without having it open are redrawn; people
  reading it have it read (their positions are saved every READ_SAVE_SECONDS).
Redraws are batched: what arrives within REDRAW_DELAY_SECONDS costs one snapshot per person.
"""

import asyncio
import logging

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.template.loader import render_to_string
from django.utils.html import escape

from chat.actions import reads
from chat.realtime.hub.link import person_group
from chat.selectors import presence as presence_selectors
from chat.selectors import rooms as room_selectors
from chat.selectors import unread as unread_selectors

logger = logging.getLogger(__name__)

REDRAW_DELAY_SECONDS = 0.2
READ_SAVE_SECONDS = 2.0


class People:
    def __init__(self, hub):
        self.hub = hub
        self.sockets = {}  # user id -> set of sockets (room pages and lobbies)
        self.rooms = {}  # user id -> ids of the rooms they are in (from their last snapshot)
        self.away = {}  # room id -> users here who are in it without having it open
        self.dirty = set()
        self.redrawer = None
        self.read_upto = {}  # (room id, user id) -> newest seq shown to them, not saved yet
        self.saver = None

    # --- sockets ---

    async def arrive(self, socket, *, redraw):
        """A page of `socket.user_id` opened. `redraw`: it was drawn a while ago (a
        reconnect): its rooms are redrawn from the database soon."""
        user_id = socket.user_id
        first = user_id not in self.sockets
        self.sockets.setdefault(user_id, set()).add(socket)
        if first:
            await self.hub.link.subscribe(person_group(user_id))
            if user_id not in self.rooms and not redraw:
                rooms = await database_sync_to_async(room_selectors.room_ids_of)(user_id)
                if user_id in self.sockets:
                    self.rooms.setdefault(user_id, rooms)
        self._reindex(user_id)
        if redraw:
            self.mark(user_id)

    def depart(self, socket):
        user_id = socket.user_id
        sockets = self.sockets.get(user_id)
        if sockets is None:
            return
        sockets.discard(socket)
        if not sockets:
            del self.sockets[user_id]
            self.dirty.discard(user_id)
            self._unindex(user_id)
            self.rooms.pop(user_id, None)
            self._spawn(self.hub.link.unsubscribe(person_group(user_id)))
        else:
            self._reindex(user_id)

    def lobby_sockets(self):
        return [s for sockets in list(self.sockets.values()) for s in sockets if s.room_id is None]

    def groups(self):
        return [person_group(user_id) for user_id in self.sockets]

    # --- notices ---

    def notice(self, event):
        user_id, reason = event.get("user"), event.get("reason")
        if user_id not in self.sockets:
            return
        if reason:  # the account's access ended: every page of theirs here, at once
            for socket in list(self.sockets[user_id]):
                if socket.room_id is not None:
                    self.hub.revoke(socket.room_id, {user_id}, reason)
                else:
                    socket.cut_off()
                    self._spawn(socket.revoke(reason))
            return
        read_room = event.get("read")
        if read_room is not None and all(s.room_id == read_room for s in self.sockets[user_id]):
            return  # read where it is open: nothing else here shows a change
        self.mark(user_id)

    def activity(self, event):
        room_id = event.get("room")
        for user_id in self.away.get(room_id, ()):
            if user_id != event.get("author"):
                self.mark(user_id)

    def seen(self, room_id, user_id, seq):
        """A page of a member has been sent the room's events up to `seq`: read."""
        key = (room_id, user_id)
        if seq > self.read_upto.get(key, 0):
            self.read_upto[key] = seq
            if self.saver is None or self.saver.done():
                self.saver = asyncio.create_task(self._save_reads())

    def mark(self, user_id):
        self.dirty.add(user_id)
        if self.redrawer is None or self.redrawer.done():
            self.redrawer = asyncio.create_task(self._redraw())

    def redraw_everyone(self):
        """After the layer failed (notices may be lost): redraw every person here."""
        for user_id in list(self.sockets):
            self.mark(user_id)

    # --- inside ---

    def _reindex(self, user_id):
        self._unindex(user_id)
        open_here = {s.room_id for s in self.sockets.get(user_id, ())}
        for room_id in self.rooms.get(user_id, ()):
            if room_id not in open_here:
                self.away.setdefault(room_id, set()).add(user_id)

    def _unindex(self, user_id):
        for room_id in self.rooms.get(user_id, ()):
            users = self.away.get(room_id)
            if users is not None:
                users.discard(user_id)
                if not users:
                    del self.away[room_id]

    async def _redraw(self):
        """Redraw every dirty person, one snapshot each; a pass over many people is
        followed by a pause as long as itself, so a busy room's activity takes at most
        about half of the loop (fan-out comes first) and changes meanwhile coalesce."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(REDRAW_DELAY_SECONDS)
        while self.dirty:
            started = loop.time()
            batch, self.dirty = self.dirty, set()
            for user_id in batch:
                await self._redraw_one(user_id)
            await asyncio.sleep(max(REDRAW_DELAY_SECONDS, loop.time() - started))

    async def _redraw_one(self, user_id):
        if user_id not in self.sockets:
            return
        lobby = any(socket.room_id is None for socket in self.sockets[user_id])
        try:
            snapshot = await database_sync_to_async(_snapshot)(user_id, lobby)
        except Exception:
            logger.exception("could not redraw the rooms of user %s", user_id)
            return
        if user_id not in self.sockets:
            return
        self._unindex(user_id)
        self.rooms[user_id] = {room.pk for room in snapshot.rooms}
        self._reindex(user_id)
        lists = {}  # one rendering per room the person's pages show (aria-current)
        for socket in list(self.sockets.get(user_id, ())):
            if not getattr(
                socket, "ready", True
            ):  # still connecting: drawn again once it is accepted
                self.mark(user_id)
                continue
            if socket.room_id not in lists:
                lists[socket.room_id] = snapshot.render(socket.room_id)
            try:
                await socket.send(text_data=lists[socket.room_id] + _title(snapshot, socket))
            except Exception:  # closing under us; its disconnect cleans up
                logger.debug("redraw to a closing socket failed", exc_info=True)

    async def _save_reads(self):
        while self.read_upto:  # positions shown while a save ran: saved by the next pass
            await asyncio.sleep(READ_SAVE_SECONDS)
            upto, self.read_upto = self.read_upto, {}
            try:
                moved = await database_sync_to_async(reads.read_positions_save)(upto)
            except Exception:
                logger.warning("could not save read positions; the next pass tries", exc_info=True)
                for key, seq in upto.items():
                    self.read_upto[key] = max(seq, self.read_upto.get(key, 0))
                continue
            if not settings.CHAT_PERSON_STREAM:
                continue
            for room_id, user_id in moved:
                await self.hub.link.notify_person(user_id, {"read": room_id})

    def _spawn(self, coroutine):
        task = asyncio.create_task(coroutine)
        self.hub.background.add(task)
        task.add_done_callback(self.hub.background.discard)


class Snapshot:
    """A person's rooms and counts now, read in one go (a fixed number of queries)."""

    def __init__(self, context):
        self.context = context
        self.rooms = context["my_rooms"]
        self.total = context["unread_total"]
        self.names = {room.pk: room.title for room in self.rooms}

    def render(self, current):
        context = {**self.context, "current": current, "lobby": current is None, "oob": True}
        return render_to_string("chat/rooms/_my_rooms.html", context)


def _snapshot(user_id, lobby):
    """A person's rooms and counts now; `lobby`: one of their pages is the lobby, which
    also shows how many people are in each room (room pages do not)."""
    user = get_user_model().objects.filter(pk=user_id).select_related("profile").first()
    if user is None:
        return Snapshot({"my_rooms": [], "unread_total": 0})
    context = unread_selectors.my_rooms(user)
    if lobby:
        here = presence_selectors.people_counts([room.pk for room in context["my_rooms"]])
        for room in context["my_rooms"]:
            room.people_here = here.get(room.pk, 0)
    return Snapshot(context)


def _title(snapshot, socket):
    """The tab title with the total unread in front, like "(3) Rooms · Chat"."""
    base = snapshot.names.get(socket.room_id) or socket.page_title
    prefix = f"({snapshot.total}) " if snapshot.total else ""
    return f'<span hx-swap-oob="innerHTML:#page-title">{escape(prefix + base)} · Chat</span>'
