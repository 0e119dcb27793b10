"""The process's one link to the channel layer: its channel, its group memberships, and
publishing with a retry. Each process joins a room's group once (`room-<pk>`), however
many of its sockets show the room."""

import asyncio
import logging

logger = logging.getLogger(__name__)

EVENT_TYPE = "chat.event"


def group_name(room_id):
    return f"room-{room_id}"


class ChannelLink:
    def __init__(self, layer):
        self.layer = layer
        self.channel = None  # this process's own channel, in the group of every room it serves
        self.subscribed = set()
        self.publish_failures = 0

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

    async def wake(self, channel):
        """Make a reader blocked on `channel` return (cancelling it is not safe)."""
        await self.layer.send(channel, {"type": "chat.hub.stop"})
