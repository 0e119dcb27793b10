"""The room socket, kept thin: authorise, parse a frame, call its action, answer the
sender, and forward the room's events to the page in order, exactly once."""

import asyncio
import logging
import time
import uuid
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError
from django.template.loader import render_to_string

from chat.actions import reads
from chat.actions.limits import RateLimited
from chat.realtime.feed import PageFeed
from chat.realtime.frames import (
    CatchUpFrame,
    CloseCode,
    DeleteFrame,
    EditFrame,
    FrameError,
    PostFrame,
    ReactFrame,
    TypingFrame,
    parse_frame,
)
from chat.realtime.hub import get_hub
from chat.realtime.hub.heartbeat import status_frame
from chat.realtime.hub.typing import TYPING_EVERY_SECONDS
from chat.selectors import rooms as room_selectors
from chat.selectors.people import display_name, time_zone_of

logger = logging.getLogger(__name__)
timing_logger = logging.getLogger("chat.timing")

REDRAW_AFTER_SECONDS = 3
NOT_SAVED = "That could not be saved just now. Try again."
SERVER_ERROR = "Something went wrong on the server. If the page looks wrong, reload it."


class ChatConsumer(AsyncWebsocketConsumer):
    # No channel of its own: the process's RoomHub is the only reader of the channel layer,
    # so a socket costs no layer receive and a broker outage cannot close it.
    channel_layer_alias = None
    room = None
    room_id = None
    here = False  # counted in the room's presence (chat/realtime/hub/presence.py)
    listed = False  # in the hub's people: gets its person's stream (chat/realtime/hub/people.py)
    member = False  # in the room's members: what it is sent counts as read
    ready = False  # accepted: joined to the hub before that, so nothing is missed
    revoked = False  # cut off: nothing more is sent or acted on
    closing = False
    name = None  # the display name typing notices carry, read once
    typed_at = None  # loop time of the last typing frame acted on

    async def connect(self):
        user = self.scope["user"]
        if not user.is_authenticated:
            return await self.refuse(CloseCode.NOT_LOGGED_IN)
        # A room the person may not read is refused exactly as one that does not exist.
        self.room, self.member = await database_sync_to_async(
            room_selectors.readable_room_and_membership
        )(user, self.scope["url_route"]["kwargs"]["slug"])
        if self.room is None:
            return await self.refuse(CloseCode.NO_SUCH_ROOM)
        self.room_id, self.user_id, self.page_title = self.room.pk, user.pk, self.room.name
        self.hub = get_hub()
        # The reader's clock: events are rendered once, then localised once per zone.
        zone = time_zone_of(user)
        self.feed = PageFeed(
            hub=self.hub,
            room_id=self.room.pk,
            zone=None if zone == settings.TIME_ZONE else zone,
            send=self.send,
            base_send=self.base_send,
            shown=self.read_up_to if self.member else None,
        )
        await self.hub.join(self.room.pk, self, last_seq=self.room.last_seq)
        if settings.CHAT_PERSON_STREAM:  # listed first: no change after accept is missed
            self.listed = True
            await self.hub.people.arrive(self, redraw=drawn_long_ago(self.scope))
        self.feed.wait_for_page(_after_from_query(self.scope, default=self.room.last_seq))
        await self.accept()
        self.ready = True  # from now on the hub may send to it (heartbeats, redraws)
        await self.base_send(status_frame())  # "Reconnecting…" goes as soon as we are back
        self.here = True
        await self.hub.presence.arrive(self.room.pk, user.pk, self)  # the list, at once

    async def disconnect(self, code):
        if self.room is not None:
            if self.here:
                self.hub.presence.depart(self.room.pk, self.scope["user"].pk, self)
            if self.listed:
                self.hub.people.depart(self)
            await self.hub.leave(self.room.pk, self)
            self.feed.stop()
            shown = self.feed.cursor.shown
            if self.member and not self.revoked and shown:
                # Read up to what this page showed: the person's other pages redraw.
                await database_sync_to_async(reads.read_mark)(
                    user=self.scope["user"], room=self.room, seq=shown
                )

    def cut_off(self):
        """No longer allowed here: from this instant nothing more is sent to the page or
        acted on from it (called by the hub before it fans out anything later)."""
        self.revoked = True
        self.feed.stop()
        self.feed.closed = True
        # Off every list now, so not even "who is here" reaches it while it closes.
        if self.here:
            self.here = False
            self.hub.presence.depart(self.room.pk, self.scope["user"].pk, self)
        if self.listed:
            self.listed = False
            self.hub.people.depart(self)

    async def revoke(self, reason):
        """Removed, left, deactivated, password changed: say why, and close with a code
        the page does not retry."""
        if self.closing:
            return
        self.closing = True
        self.cut_off()
        await self.send(text_data=render_to_string("chat/rooms/_refused.html", {"reason": reason}))
        await self.close(code=int(CloseCode.REVOKED))

    async def refuse(self, code):
        # Accept, then close with a 4xxx code: a refused handshake reaches the browser
        # as 1006, which the htmx ws extension retries for ever.
        await self.accept()
        await self.send(text_data=render_to_string("chat/rooms/_refused.html", {"code": code}))
        await self.close(code=int(code))  # autobahn accepts a plain int only

    # --- from the page: one handler per kind of frame ---

    async def receive(self, text_data=None, bytes_data=None):
        if self.revoked:
            return  # a removed member's frames in flight: nothing of theirs is acted on
        if text_data is None:
            return await self.send_composer(error="Binary frames are not accepted.")
        try:
            frame = parse_frame(text_data)
        except FrameError as error:
            if not error.composer:
                return await self.send_notice(str(error))
            return await self.send_composer(error=str(error), text=error.text)
        try:
            await getattr(self, HANDLERS[type(frame)])(frame)
        except Exception:
            # A bug must not take the socket down: frames the page sends meanwhile would
            # be lost. Logged, and the person told.
            logger.exception("could not handle a %s in room %s", type(frame).__name__, self.room.pk)
            await self.send_notice(SERVER_ERROR)

    async def on_catch_up(self, frame):
        self.feed.page_says(frame.last_seq)

    async def on_post(self, frame):
        received = time.perf_counter()
        done, error = await self.perform(frame)
        if error:
            return await self.send_composer(
                error=error,
                text=frame.text,
                client_key=frame.client_key,
                reply_to=frame.reply_to,
                form=frame.form,
            )
        if settings.CHAT_TIMING_LOG:
            timing_logger.info(
                "post timing room=%s seq=%s received_to_published_ms=%.2f",
                self.room.pk,
                done.message.seq,
                (time.perf_counter() - received) * 1000,
            )
        await self.send_composer(form=frame.form)
        self.hub.typing.stopped(self.room.pk, self.scope["user"].pk)  # "is typing…" goes
        # The sender's own page shows its message even before the broadcast comes back.
        await self.feed.catch_up(done.message.seq)

    async def on_edit(self, frame):
        done, error = await self.perform(frame)
        if error:
            context = {
                "room": self.room,
                "message_id": frame.message_id,
                "text": frame.text,
                "error": error,
            }
            return await self.send_html("chat/messages/_edit_form.html", {**context, "oob": True})
        if done.changed:
            await self.feed.catch_up(
                done.seq
            )  # the new version replaces the message, editor and all
        else:  # nothing to change: just close the editor
            await self.send_html("chat/messages/_editor.html", {"message": done.message})

    async def on_change(self, frame):
        done, error = await self.perform(frame)
        if error:
            return await self.send_notice(error)
        if done.changed:
            await self.feed.catch_up(done.seq)

    async def on_typing(self, frame):
        """Someone is typing: told to every page of the room. A socket's frames closer
        together than TYPING_EVERY_SECONDS are dropped (a page sends one per 2 s)."""
        now = asyncio.get_running_loop().time()
        if self.typed_at is not None and now - self.typed_at < TYPING_EVERY_SECONDS:
            return
        self.typed_at = now
        if self.name is None:
            self.name = await database_sync_to_async(display_name)(self.scope["user"])
        self.hub.typing.started(self.room.pk, self.scope["user"].pk, self.name)

    async def perform(self, frame):
        """Run the frame's action: (Done, None), or (None, what to tell the sender)."""
        try:
            # Not thread-sensitive: saves from different sockets run side by side in the
            # loop's executor (each thread has its own connection) instead of queueing.
            done = await database_sync_to_async(frame.perform, thread_sensitive=False)(
                room=self.room, user=self.scope["user"]
            )
        except ValidationError as error:
            return None, " ".join(error.messages)
        except RateLimited as error:
            return None, str(error)
        except DatabaseError:
            # Nothing was stored (the transaction rolled back); a retry is safe.
            logger.warning("could not save a change in room %s", self.room.pk, exc_info=True)
            return None, NOT_SAVED
        return done, None

    # --- answers to the sender alone ---

    async def send_composer(
        self, *, error=None, text="", client_key=None, reply_to=None, form="composer"
    ):
        """Replace the sender's composer: empty with a fresh key, or with the error."""
        context = {
            "room": self.room,
            "oob": True,
            "client_key": uuid.uuid4() if error is None else client_key,
            "error": error,
            "text": text,
            "reply_to_id": reply_to if error else None,
            "long": form == "composer-long",
        }
        # Only the form that sent: the other keeps its draft (and its own key).
        await self.send_html("chat/rooms/_composer_fields.html", context)

    async def send_notice(self, notice):
        await self.send_html("chat/rooms/_notice.html", {"notice": notice, "oob": True})

    async def send_html(self, template, context):
        await self.send(text_data=render_to_string(template, context))

    # --- to the page: each event once, in order, without gaps (chat/realtime/feed.py) ---

    async def catch_up(self, seq):
        """Called by the hub for each event of the room."""
        await self.feed.catch_up(seq)

    def read_up_to(self, seq):
        """The page was sent the room's events up to `seq`: its member has read them."""
        self.hub.people.seen(self.room_id, self.user_id, seq)


HANDLERS = {
    CatchUpFrame: "on_catch_up",
    PostFrame: "on_post",
    EditFrame: "on_edit",
    DeleteFrame: "on_change",
    ReactFrame: "on_change",
    TypingFrame: "on_typing",
}


def drawn_long_ago(scope):
    """Whether the page was drawn long enough ago that its list of rooms may be stale:
    a reconnect (the extension reuses the first URL, `drawn` and all). A page that has
    just been drawn opens its socket within a moment and needs no redraw."""
    values = parse_qs(scope.get("query_string", b"").decode("latin1")).get("drawn", [])
    if not values or not values[0].isdigit() or len(values[0]) > 12:
        return False
    return time.time() - int(values[0]) > REDRAW_AFTER_SECONDS


def _after_from_query(scope, *, default):
    values = parse_qs(scope.get("query_string", b"").decode("latin1")).get("after", [])
    if values and values[0].isdigit() and len(values[0]) < 19:
        return min(int(values[0]), default)
    return default
