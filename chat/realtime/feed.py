"""Bringing one page up to date with its room's events: in order, exactly once, no gap."""

import asyncio
import logging

from django.conf import settings

from chat.localtime import localise
from chat.realtime.cursor import PageCursor
from chat.realtime.hub import CATCH_UP_LIMIT, MAX_FRAME_CHARS

logger = logging.getLogger(__name__)

# A page says which event it shows last right after connecting (the hidden catch-up
# form). A client that never does gets events after the one its URL names.
CATCH_UP_WAIT_SECONDS = 5


class PageFeed:
    """What one socket's page lacks, and sending it: the hub's shared frame in the
    common case, batches from memory or the database after a gap or a reconnect."""

    def __init__(self, *, hub, room_id, zone, send, base_send, shown=None):
        self.hub = hub
        # Told the newest number sent, after every frame, by either path: a member's page
        # has read what it was sent (chat/realtime/hub/people.py saves it).
        self.shown = shown
        self.room_id = room_id
        self.zone = zone  # the reader's clock; None: the operator's
        self.send = send  # text frames of our own
        self.base_send = base_send  # the hub's ready-made events
        self.cursor = PageCursor()
        self.sending = asyncio.Lock()
        self.filler = None
        self.fallback = None
        self.closed = False  # revoked: nothing more is sent, whatever is in flight

    def wait_for_page(self, url_after):
        """Until the page says where it is, assume what its URL said."""
        self.fallback = asyncio.get_running_loop().call_later(
            CATCH_UP_WAIT_SECONDS, self.page_says, url_after
        )

    def stop(self):
        if self.fallback:
            self.fallback.cancel()
        if self.filler:
            self.filler.cancel()

    def page_says(self, last_seq):
        """The page shows everything up to `last_seq`: send it what follows, from the database."""
        if self.fallback:
            self.fallback.cancel()
            self.fallback = None
        self.cursor.page_says(last_seq)
        self._start_filler()

    async def catch_up(self, seq):
        """The room has events up to `seq`: send what this page lacks."""
        cursor = self.cursor
        if self.closed or not cursor.room_reached(seq):
            return  # revoked, position not known yet, or already shown
        frame = (
            None
            if self.sending.locked()
            else self.hub.frame(self.room_id, cursor.shown, seq, self.zone)
        )
        if frame is not None:
            cursor.sent(seq)  # the common case: what follows, rendered once, in memory
            # The hub's ready-made event, shared by every socket at this position; what
            # `send(text_data=...)` would build, without a copy per socket.
            await self.base_send(frame)
            if self.shown is not None:
                self.shown(cursor.shown)
        else:
            self._start_filler()

    def _start_filler(self):
        if self.filler is None or self.filler.done():
            self.filler = asyncio.create_task(self._fill())

    async def _fill(self):
        """Send every missing event in order, from memory or the database, in batches."""
        cursor = self.cursor
        try:
            async with self.sending:
                while True:
                    more, upto = cursor.next_read()
                    if not more:
                        return
                    batch = await self.hub.fragments_after(self.room_id, cursor.shown, upto)
                    if self.closed:
                        return  # this batch revoked the reader (a removal in it)
                    for last_seq, text in frames_of(batch):
                        await self.send(text_data=localise(text, self.zone or settings.TIME_ZONE))
                        cursor.sent(last_seq)
                        if self.closed:
                            return
                        if self.shown is not None:
                            self.shown(cursor.shown)
                    if not batch and upto is not None:  # numbers with no stored event
                        cursor.sent(min(upto, cursor.shown + CATCH_UP_LIMIT))
                    if upto is None and len(batch) == CATCH_UP_LIMIT:
                        cursor.reread = True  # a long absence: keep reading
        except asyncio.CancelledError:
            raise
        except Exception:
            # The page keeps what it has; the next event or reconcile pass tries again.
            logger.exception("catch-up failed for room %s after seq %s", self.room_id, cursor.shown)


def frames_of(batch, limit=MAX_FRAME_CHARS):
    """[(seq of its last event, text)]: the batch's events joined into frames of at most
    `limit` characters (one event each at least). Every event ends with its number, so a
    page that got some frames of a batch is consistent, and the rest follows in order."""
    frames, pieces, size, last = [], [], 0, None
    for seq, html in batch:
        if pieces and size + len(html) > limit:
            frames.append((last, "".join(pieces)))
            pieces, size = [], 0
        pieces.append(html)
        size += len(html)
        last = seq
    if pieces:
        frames.append((last, "".join(pieces)))
    return frames
