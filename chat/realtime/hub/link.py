"""The process's one link to the channel layer: its channel, its group memberships, and
publishing with a retry. Each process joins a room's group once (`room-<pk>`), however
many of its sockets show the room; a person's group once (`person-<pk>`), however many
of their pages are open here; and the activity group (chat/realtime/hub/people.py).

Groups are named by a room id (an int) or by their full name (a str)."""

import asyncio
import logging

from django.conf import settings

from chat import metrics

logger = logging.getLogger(__name__)

EVENT_TYPE = "chat.event"
# Ephemeral notices (chat/realtime/hub/presence.py, typing.py): small, carrying no HTML,
# never stored.
PRESENCE_TYPE = "chat.presence"
TYPING_TYPE = "chat.typing"


PERSON_TYPE = "chat.person"
ACTIVITY_TYPE = "chat.activity"
ACTIVITY_GROUP = "chat-activity"


def group_name(target):
    """`room-<id>` for a room id; a str is a group's name already."""
    return target if isinstance(target, str) else f"room-{target}"


def person_group(user_id):
    return f"person-{user_id}"


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

    async def subscribe(self, target):
        try:
            await self.layer.group_add(group_name(target), self.channel)
            self.subscribed.add(target)
        except Exception:
            metrics.layer_error("subscribe")
            # The reader and the renew loop retry; meanwhile reconcile delivers.
            logger.warning("could not join group %s; will retry", group_name(target), exc_info=True)

    async def subscribe_all(self, targets):
        """(Re-)join every group: renewal before expiry, or after Redis restarted empty."""
        for target in targets:
            await self.layer.group_add(group_name(target), self.channel)
            self.subscribed.add(target)

    async def unsubscribe(self, target):
        self.subscribed.discard(target)
        if self.channel is None:
            return  # closed meanwhile: the channel and its memberships are going anyway
        try:
            await self.layer.group_discard(group_name(target), self.channel)
        except Exception:
            logger.warning(
                "could not leave group %s; it expires", group_name(target), exc_info=True
            )

    async def publish(self, room_id, seq, html, *, revokes=()):
        """Send one rendered event to every process serving the room; False if it failed.
        `revokes`: people whose sockets for the room close before any later event."""
        event = {"type": EVENT_TYPE, "room": room_id, "seq": seq, "html": html}
        metrics.stamp(event)
        if revokes:
            event["revokes"] = list(revokes)
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
                metrics.layer_error("publish")
                logger.warning(
                    "channel layer publish failed for room %s seq %s (%s in a row); "
                    "other processes get it from the database",
                    room_id,
                    seq,
                    self.publish_failures,
                    exc_info=self.publish_failures == 1,
                )
        return False

    async def notify_person(self, user_id, fields):
        """A notice to every page of one person, on every process (people.py)."""
        event = {"type": PERSON_TYPE, "user": user_id, **fields}
        return await self.notify(person_group(user_id), event)

    async def notify_activity(self, room_id, author_id):
        """Something counted as unread happened in a room: every process hears it."""
        event = {"type": ACTIVITY_TYPE, "room": room_id, "author": author_id}
        return await self.notify(ACTIVITY_GROUP, event)

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
                metrics.layer_error("notify")
                logger.warning(
                    "channel layer notice %s failed for %s (%s in a row)",
                    event.get("type"),
                    group_name(room_id),
                    self.notify_failures,
                    exc_info=self.notify_failures == 1,
                )
        return False

    async def wake(self, channel):
        """Make a reader blocked on `channel` return (cancelling it is not safe)."""
        await self.layer.send(channel, {"type": "chat.hub.stop"})

    async def read(self, channel, groups, handle, recovered=None):
        """Hand every event arriving on `channel` to `handle`, until the channel closes.

        `groups()` lists the groups to re-join after a failure: Redis may have restarted
        empty, and memberships are gone until re-added; then `recovered()` is called.
        """
        failures = 0
        while self.channel == channel:  # until closed, even if the layer swallows a cancel
            try:
                if failures:
                    await self.subscribe_all(groups())
                    if recovered is not None:
                        recovered()
                event = await self.layer.receive(channel)
                failures = 0
                if self.channel != channel:
                    return
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                metrics.layer_error("receive")
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

    async def renew(self, channel, groups):
        """Re-join every group well before the channel layer's group expiry drops us."""
        while True:
            await asyncio.sleep(max(1.0, settings.CHAT_GROUP_EXPIRY / 3))
            if self.channel != channel:
                return
            try:
                await self.subscribe_all(groups())
            except asyncio.CancelledError:
                raise
            except Exception:
                metrics.layer_error("subscribe")
                logger.warning("could not renew group memberships; retrying", exc_info=True)
