"""The room socket: authorise, parse frames, call services, forward fragments in order."""

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

from chat import selectors, services
from chat.fanout import CATCH_UP_LIMIT, get_hub
from chat.protocol import CatchUpFrame, CloseCode, FrameError, parse_frame

logger = logging.getLogger(__name__)
timing_logger = logging.getLogger("chat.timing")

# A page says which message it shows last right after connecting (the hidden catch-up
# form). A client that never does gets messages after the one its URL names.
CATCH_UP_WAIT_SECONDS = 5


class ChatConsumer(AsyncWebsocketConsumer):
    # No channel of its own: the process's RoomHub is the only reader of the channel layer,
    # so a socket costs no layer receive and a broker outage cannot close it.
    channel_layer_alias = None
    room = None

    async def connect(self):
        user = self.scope["user"]
        if not user.is_authenticated:
            return await self.refuse(CloseCode.NOT_LOGGED_IN)
        self.room = await database_sync_to_async(selectors.room_by_slug)(
            self.scope["url_route"]["kwargs"]["slug"]
        )
        if self.room is None:
            return await self.refuse(CloseCode.NO_SUCH_ROOM)
        self.hub = get_hub()
        self.last_seq = None  # the page's newest sequence number; unknown until it says
        self.wanted_seq = 0  # the newest sequence number this page should show
        self.sending = asyncio.Lock()
        self.filler = None
        self.read_database = False
        self.url_after = _after_from_query(self.scope, default=self.room.last_seq)
        await self.hub.join(self.room.pk, self, last_seq=self.room.last_seq)
        self.fallback = asyncio.get_running_loop().call_later(
            CATCH_UP_WAIT_SECONDS, self.page_position_known, self.url_after
        )
        await self.accept()

    async def disconnect(self, code):
        if self.room is not None:
            if self.fallback:
                self.fallback.cancel()
            await self.hub.leave(self.room.pk, self)
            if self.filler:
                self.filler.cancel()

    async def refuse(self, code):
        # Accept, then close with a 4xxx code: a refused handshake reaches the browser
        # as 1006, which the htmx ws extension retries for ever.
        await self.accept()
        await self.send(text_data=render_to_string("chat/_refused.html", {"code": code}))
        await self.close(code=int(code))  # autobahn accepts a plain int only

    # --- from the page ---

    async def receive(self, text_data=None, bytes_data=None):
        received = time.perf_counter()
        if text_data is None:
            return await self.send_composer(error="Binary frames are not accepted.")
        try:
            frame = parse_frame(text_data)
        except FrameError as error:
            return await self.send_composer(error=str(error), text=error.text)
        if isinstance(frame, CatchUpFrame):
            return self.page_position_known(frame.last_seq)
        try:
            posted = await services.amessage_post(
                room=self.room,
                author=self.scope["user"],
                text=frame.text,
                client_key=frame.client_key,
            )
        except ValidationError as error:
            error = " ".join(error.messages)
            return await self.send_composer(
                error=error, text=frame.text, client_key=frame.client_key
            )
        except services.RateLimited as error:
            return await self.send_composer(
                error=str(error), text=frame.text, client_key=frame.client_key
            )
        except DatabaseError:
            # Nothing was stored (the transaction rolled back); the same key makes a retry safe.
            logger.warning("could not save a message in room %s", self.room.pk, exc_info=True)
            return await self.send_composer(
                error="That could not be sent just now. Try again.",
                text=frame.text,
                client_key=frame.client_key,
            )
        if settings.CHAT_TIMING_LOG:
            timing_logger.info(
                "post timing room=%s seq=%s received_to_published_ms=%.2f",
                self.room.pk,
                posted.message.seq,
                (time.perf_counter() - received) * 1000,
            )
        await self.send_composer()
        # The sender's own page shows its message even before the broadcast comes back.
        await self.catch_up(posted.message.seq)

    async def send_composer(self, *, error=None, text="", client_key=None):
        """Replace the sender's composer: empty with a fresh key, or with the error."""
        context = {
            "room": self.room,
            "oob": True,
            "client_key": uuid.uuid4() if error is None else client_key,
            "error": error,
            "text": text,
        }
        await self.send(text_data=render_to_string("chat/_composer_fields.html", context))

    # --- to the page: each message once, in order, without gaps ---

    def page_position_known(self, last_seq):
        """The page shows everything up to `last_seq`: send it what follows, from the database."""
        if self.fallback:
            self.fallback.cancel()
            self.fallback = None
        # Never move back: frames already in flight may be newer than what the page reported.
        self.last_seq = last_seq if self.last_seq is None else max(self.last_seq, last_seq)
        self.read_database = True
        self._start_filler()

    async def catch_up(self, seq):
        """Called by the hub for each message of the room: send what this page lacks."""
        self.wanted_seq = max(self.wanted_seq, seq)
        if self.last_seq is None or seq <= self.last_seq:
            return  # position not known yet, or already shown
        frame = None if self.sending.locked() else self.hub.frame(self.room.pk, self.last_seq, seq)
        if frame is not None:
            self.last_seq = seq  # the common case: what follows, rendered once, in memory
            # The hub's ready-made event, shared by every socket at this position; what
            # `self.send(text_data=...)` would build, without a copy per socket.
            await self.base_send(frame)
        else:
            self._start_filler()

    def _start_filler(self):
        if self.filler is None or self.filler.done():
            self.filler = asyncio.create_task(self._fill())

    async def _fill(self):
        """Send every missing message in order, from memory or the database, in batches."""
        try:
            async with self.sending:
                while True:
                    if self.read_database:
                        self.read_database, upto = False, None
                    elif self.wanted_seq > self.last_seq:
                        upto = self.wanted_seq
                    else:
                        return
                    batch = await self.hub.fragments_after(self.room.pk, self.last_seq, upto)
                    if batch:
                        await self.send(text_data="".join(html for _, html in batch))
                        self.last_seq = batch[-1][0]
                    elif upto is not None:  # numbers with no message: deleted in the admin
                        self.last_seq = min(upto, self.last_seq + CATCH_UP_LIMIT)
                    if upto is None and len(batch) == CATCH_UP_LIMIT:
                        self.read_database = True  # a long absence: keep reading
        except asyncio.CancelledError:
            raise
        except Exception:
            # The page keeps what it has; the next message or reconcile pass tries again.
            logger.exception(
                "catch-up failed for room %s after seq %s", self.room.pk, self.last_seq
            )


def _after_from_query(scope, *, default):
    values = parse_qs(scope.get("query_string", b"").decode("latin1")).get("after", [])
    if values and values[0].isdigit() and len(values[0]) < 19:
        return min(int(values[0]), default)
    return default
