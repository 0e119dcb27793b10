"""Who is typing in a room ("alice is typing…"), kept by each process for its sockets.

A page sends `{"typing": "1"}` at most every 2 s while its composer gets input (htmx's
`throttle:2s` on the hidden #typing-signal form; no draft text), and nothing when the
person stops. The consumer drops a socket's frames that come faster than
TYPING_EVERY_SECONDS, then calls `started`, which sends a notice,
`{"type": "chat.typing", "room", "user", "name", "typing": true}`, through the room's
channel-layer group. Every process keeps the typists of its rooms with an expiry
(CHAT_TYPING_SECONDS after their last notice) and one timer for the earliest; a post
(`stopped`, from the consumer's on_post) or the last tab closing removes a typist at once.

Nobody sees themselves typing, without rendering per reader: when the set of typists
changes, a process renders one text for everyone who is not typing, and for each typist
the text without them: (typists + 1) renderings per change, whatever the number of
readers, each sent only to the sockets whose text changed. A typist who keeps typing
changes nothing, so continuous typing costs one small notice per typist every 2 s.

Never stored, never numbered, never replayed: a socket that opens gets the current text.

The expiry is 5 s by default, not 6: the last frame comes at or before the last keystroke,
so the name goes within 5 s of it plus a timer's delay, inside the 6 s promised, and a
person typing on (a frame every 2 s) never flickers off. The hidden form listens on the
composer forms, not on #message: the fields are replaced after every send, the forms stay.
People who hide their presence still show when they type, as they do when they post.
"""

import asyncio
import logging
from dataclasses import dataclass, field

from django.conf import settings

from chat import events
from chat.realtime.hub.link import TYPING_TYPE

logger = logging.getLogger(__name__)

TYPING_EVERY_SECONDS = 1.5  # a socket's typing frames closer together than this are dropped
MAX_NAME_LENGTH = 150


@dataclass
class Typist:
    name: str
    expires_at: float  # loop time


@dataclass(frozen=True)
class Texts:
    """What a room's sockets show: names for those not typing, and per typist."""

    readers: tuple = ()
    typists: dict = field(default_factory=dict)  # user id -> names (without them)

    def of(self, user_id):
        return self.typists.get(user_id, self.readers)


class Typing:
    def __init__(self, hub):
        self.hub = hub
        self.typists = {}  # room id -> {user id: Typist}
        self.texts = {}  # room id -> Texts: what its sockets show now
        self.showing = {}  # room id -> the task sending its new texts
        self.dirty = set()  # rooms whose typists changed since their texts were sent
        self.timer = None  # fires at the earliest expiry
        self.notices = set()

    # --- from this process's sockets ---

    def started(self, room_id, user_id, name):
        self._apply(room_id, user_id, name, typing=True)
        self._notify(room_id, user_id, name, typing=True)

    def stopped(self, room_id, user_id):
        """They sent their message, or closed their last tab here: gone everywhere."""
        if user_id not in self.typists.get(room_id, {}):
            return
        self._apply(room_id, user_id, None, typing=False)
        self._notify(room_id, user_id, None, typing=False)

    async def greet(self, room_id, user_id, socket):
        """A socket just opened: the current text, if anyone is typing."""
        names = self.texts.get(room_id, Texts()).of(user_id)
        if names:
            await _send(socket, _frame(names))

    def forget(self, room_id):
        """No socket of the room is left here."""
        self.typists.pop(room_id, None)
        self.texts.pop(room_id, None)
        self.dirty.discard(room_id)

    # --- from other processes ---

    def received(self, event):
        room_id, user_id, name, typing = (
            event.get(key) for key in ("room", "user", "name", "typing")
        )
        if event.get("from") == self.hub.presence.process_id:
            return  # our own notice: applied already
        if (
            type(room_id) is not int
            or type(user_id) is not int
            or type(typing) is not bool
            or (typing and (not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_LENGTH))
        ):
            logger.warning("ignoring a malformed typing notice %r", event)
            return
        self._apply(room_id, user_id, name, typing=typing)

    # --- inside ---

    def _notify(self, room_id, user_id, name, *, typing):
        event = {
            "type": TYPING_TYPE,
            "room": room_id,
            "user": user_id,
            "name": name,
            "typing": typing,
            "from": self.hub.presence.process_id,
        }
        task = asyncio.create_task(self.hub.link.notify(room_id, event))
        self.notices.add(task)
        task.add_done_callback(self.notices.discard)

    def _apply(self, room_id, user_id, name, *, typing):
        if room_id not in self.hub.presence.people:
            return  # no socket of the room here
        typists = self.typists.setdefault(room_id, {})
        known = typists.get(user_id)
        if typing:
            expires_at = asyncio.get_running_loop().time() + settings.CHAT_TYPING_SECONDS
            typists[user_id] = Typist(name, expires_at)
            self._arm(expires_at)
            if known is None or known.name != name:
                self._show_soon(room_id)
        else:
            if known is not None:
                del typists[user_id]
                self._show_soon(room_id)
            if not typists:
                del self.typists[room_id]

    def _arm(self, expires_at):
        if self.timer is None or self.timer.when() > expires_at:
            if self.timer is not None:
                self.timer.cancel()
            self.timer = asyncio.get_running_loop().call_at(expires_at, self._expire)

    def _expire(self):
        self.timer = None
        now = asyncio.get_running_loop().time()
        earliest = None
        for room_id, typists in list(self.typists.items()):
            for user_id, typist in list(typists.items()):
                if typist.expires_at <= now:
                    del typists[user_id]
                    self._show_soon(room_id)
                elif earliest is None or typist.expires_at < earliest:
                    earliest = typist.expires_at
            if not typists:
                del self.typists[room_id]
        if earliest is not None:
            self._arm(earliest)

    def _show_soon(self, room_id):
        """Changes made in the same turn of the loop, or while a room's sockets are being
        sent the previous texts, go out together."""
        self.dirty.add(room_id)
        if room_id not in self.showing:
            self.showing[room_id] = asyncio.create_task(self._show(room_id))

    async def _show(self, room_id):
        try:
            await asyncio.sleep(0)
            while room_id in self.dirty:
                self.dirty.discard(room_id)
                if room_id not in self.hub.presence.people:
                    return
                await self._send_texts(room_id)
        finally:
            del self.showing[room_id]

    async def _send_texts(self, room_id):
        names = {user_id: typist.name for user_id, typist in self.typists.get(room_id, {}).items()}
        new = Texts(
            readers=_ordered(names.values()),
            typists={
                user_id: _ordered(name for other, name in names.items() if other != user_id)
                for user_id in names
            },
        )
        old = self.texts.get(room_id, Texts())
        self.texts[room_id] = new
        frames = {}  # names -> frame: (typists + 1) renderings at most
        for user_id, sockets in list(self.hub.presence.people.get(room_id, {}).items()):
            shown = new.of(user_id)
            if shown == old.of(user_id):
                continue
            frame = frames.get(shown)
            if frame is None:
                frame = frames[shown] = _frame(shown)
            for socket in list(sockets):
                await _send(socket, frame)


def _ordered(names):
    return tuple(sorted(names, key=str.casefold))


def _frame(names):
    html = events.render_ephemeral(events.TYPING_CHANGED, typists=names)
    return {"type": "websocket.send", "text": html}


async def _send(socket, frame):
    try:
        await socket.base_send(frame)
    except Exception:  # a closing socket; its disconnect cleans up
        logger.debug("typing frame to a closing socket failed", exc_info=True)
