"""Unread messages and mentions per room, derived from each member's read position.

Nothing is written per member when someone posts: a count is the number of messages
after the member's `last_read_seq`, asked for when a sidebar is drawn. Two queries for
all of a person's rooms, however many rooms and messages there are.
"""

from dataclasses import dataclass

from django.db.models import Count, F

from chat.models import Membership, Mention, Message
from chat.selectors.rooms import rooms_of


@dataclass(frozen=True)
class Unread:
    messages: int = 0
    mentions: int = 0

    @property
    def label(self):
        """What a room's link adds to its accessible name: "3 unread, 1 mention"."""
        parts = []
        if self.messages:
            parts.append(f"{self.messages} unread")
        if self.mentions:
            parts.append(f"{self.mentions} mention{'s' if self.mentions != 1 else ''}")
        return ", ".join(parts)


NOTHING = Unread()


def unread_by_room(user):
    """{room id: Unread} for the rooms `user` is in with something unread.

    Muted rooms count nothing; "mentions only" rooms count mentions, not messages. A
    person's own messages and the rooms' own lines (joins, renames) are never unread.
    """
    messages = dict(
        Message.objects.filter(
            room__memberships__user=user,
            room__memberships__notify=Membership.NOTIFY_ALL,
            seq__gt=F("room__memberships__last_read_seq"),
            kind=Message.TEXT,
            deleted_at__isnull=True,
        )
        .exclude(author=user)
        .values("room_id")
        .annotate(count=Count("pk"))
        .values_list("room_id", "count")
    )
    mentions = dict(
        Mention.objects.filter(
            user=user,
            room__memberships__user=user,
            room__memberships__notify__in=[Membership.NOTIFY_ALL, Membership.NOTIFY_MENTIONS],
            seq__gt=F("room__memberships__last_read_seq"),
            message__deleted_at__isnull=True,
        )
        .values("room_id")
        .annotate(count=Count("pk"))
        .values_list("room_id", "count")
    )
    return {
        room_id: Unread(messages.get(room_id, 0), mentions.get(room_id, 0))
        for room_id in messages.keys() | mentions.keys()
    }


def total_unread(unread):
    """The number in the tab title: unread messages, plus mentions in rooms that count
    mentions only."""
    return sum(max(counts.messages, counts.mentions) for counts in unread.values())


def first_unread_seq(user, room, last_read_seq):
    """Where the "New messages" line goes when the room opens: the first message by
    someone else after the person's read position (None: nothing new)."""
    return (
        Message.objects.filter(room=room, seq__gt=last_read_seq, kind=Message.TEXT)
        .exclude(author=user)
        .filter(deleted_at__isnull=True)
        .order_by("seq")
        .values_list("seq", flat=True)
        .first()
    )


def my_rooms(user):
    """What chat/rooms/_my_rooms.html needs (the page's render and every redraw of the
    person's stream): their rooms, each with `.unread`, and the total for the tab title."""
    rooms = rooms_of(user)
    unread = unread_by_room(user)
    for room in rooms:
        room.unread = unread.get(room.pk, NOTHING)
    return {"my_rooms": rooms, "unread_total": total_unread(unread)}
