"""The process's one link to the channel layer: its channel, its group memberships, and
publishing with a retry. Each process joins a room's group once (`room-<pk>`), however
many of its sockets show the room."""

import asyncio
import logging

from django.conf import settings

logger = logging.getLogger(__name__)

EVENT_TYPE = "chat.event"
# Ephemeral notices (chat/realtime/hub/presence.py, typing.py): small, carrying no HTML,
# never stored.
PRESENCE_TYPE = "chat.presence"
TYPING_TYPE = "chat.typing"


def group_name(room_id):
    return f"room-{room_id}"


class ChannelLink:
    def __init__(self, layer):
        self.layer = layer
        self.channel = None  # this process's own channel, in the group of every room it serves
        self.subscribed = set()
        self.publish_failures = 0
        self.notify_failures = 0

    async def open(self):
        self.channel = await self.layer.new_channel(prefix="chat-process.")
        return self.channel

    def close(self):
        channel, self.channel = self.channel, None
        self.subscribed = set()
        return channel

    async def subscribe(self, room_id):
        try:
            await self.layer.group_add(group_name(room_id), self.channel)
            self.subscribed.add(room_id)
        except Exception:
            # The reader and the renew loop retry; meanwhile reconcile delivers.
            logger.warning("could not join group of room %s; will retry", room_id, exc_info=True)

    async def subscribe_all(self, room_ids):
        """(Re-)join every group: renewal before expiry, or after Redis restarted empty."""
        for room_id in room_ids:
            await self.layer.group_add(group_name(room_id), self.channel)
            self.subscribed.add(room_id)

    async def unsubscribe(self, room_id):
        self.subscribed.discard(room_id)
        try:
            await self.layer.group_discard(group_name(room_id), self.channel)
        except Exception:
            logger.warning("could not leave group of room %s; it expires", room_id, exc_info=True)

    async def publish(self, room_id, seq, html):
        """Send one rendered event to every process serving the room; False if it failed."""
        event = {"type": EVENT_TYPE, "room": room_id, "seq": seq, "html": html}
        for attempt in (1, 2):
            try:
                await self.layer.group_send(group_name(room_id), event)
                self.publish_failures = 0
                return True
            except Exception:
                if attempt == 1:
                    # A connection pooled before a Redis restart fails once, then reconnects.
                    await asyncio.sleep(0.05)
                    continue
                # Stored but not broadcast: other processes get it from the database on
                # their next reconcile pass. One traceback per streak of failures: an
                # overloaded process should not spend CPU on them.
                self.publish_failures += 1
                logger.warning(
                    "channel layer publish failed for room %s seq %s (%s in a row); "
                    "other processes get it from the database",
                    room_id,
                    seq,
                    self.publish_failures,
                    exc_info=self.publish_failures == 1,
                )
        return False

    async def notify(self, room_id, event):
        """Send an ephemeral notice to every process serving the room; False if it failed.

        Retried once, as `publish` is (a connection pooled before a Redis restart fails
        once); a notice lost even so heals by itself: presence is re-read every third of
        its TTL, and a typist expires."""
        for attempt in (1, 2):
            try:
                await self.layer.group_send(group_name(room_id), event)
                self.notify_failures = 0
                return True
            except Exception:
                if attempt == 1:
                    await asyncio.sleep(0.05)
                    continue
                self.notify_failures += 1
                logger.warning(
                    "channel layer notice %s failed for room %s (%s in a row)",
                    event.get("type"),
                    room_id,
                    self.notify_failures,
                    exc_info=self.notify_failures == 1,
                )
        return False

    async def wake(self, channel):
        """Make a reader blocked on `channel` return (cancelling it is not safe)."""
        await self.layer.send(channel, {"type": "chat.hub.stop"})

    async def read(self, channel, rooms, handle):
        """Hand every event arriving on `channel` to `handle`, until the channel closes.

        `rooms()` lists the rooms to re-join after a failure: Redis may have restarted
        empty, and memberships are gone until re-added.
        """
        failures = 0
        while self.channel == channel:  # until closed, even if the layer swallows a cancel
            try:
                if failures:
                    await self.subscribe_all(rooms())
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
                handle(event)
            except Exception:
                logger.exception(
                    "could not fan out event %r", {k: event.get(k) for k in ("room", "seq")}
                )

    async def renew(self, channel, rooms):
        """Re-join every group well before the channel layer's group expiry drops us."""
        while True:
            await asyncio.sleep(max(1.0, settings.CHAT_GROUP_EXPIRY / 3))
            if self.channel != channel:
                return
            try:
                await self.subscribe_all(rooms())
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("could not renew group memberships; retrying", exc_info=True)
