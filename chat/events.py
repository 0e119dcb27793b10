"""The catalogue of event kinds, and the one way an action announces a change.

Durable kinds take the room's next sequence number in the transaction that makes the
change, are stored as `RoomEvent` rows, and are replayed to a page that was away, in
order. Ephemeral kinds (typing, presence) are never stored, numbered or replayed.

Each kind has one envelope template (templates/chat/events/) that turns the changed
message into the out-of-band swaps a page applies. The same template serves the live
path (rendered once, right after commit) and the catch-up path (rendered from the
database for a page that missed it), so both leave a page in the same state.

Only actions call `record`, and a change reaches pages only after its transaction
commits (`transaction.on_commit`): a rolled-back write is never shown.
"""

import logging
from dataclasses import dataclass

from django.db import connection, transaction
from django.template.loader import render_to_string

from chat import metrics
from chat.localtime import operator_clock
from chat.models import Room, RoomEvent
from chat.rendering import with_fragments
from chat.selectors import messages as message_selectors

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EventKind:
    name: str
    durable: bool  # numbered in the room's sequence, stored, replayed on catch-up
    stream: str  # "room": every page of the room
    template: str  # the envelope: out-of-band swaps a page applies


MESSAGE_POSTED = EventKind("message.posted", True, "room", "chat/events/message_posted.html")
MESSAGE_EDITED = EventKind("message.edited", True, "room", "chat/events/message_edited.html")
MESSAGE_DELETED = EventKind("message.deleted", True, "room", "chat/events/message_deleted.html")
REACTIONS_CHANGED = EventKind(
    "reactions.changed", True, "room", "chat/events/reactions_changed.html"
)

# The room's own lines about itself: who joined, left, was added or removed, a rename,
# archiving. Stored as messages of their kind (chat/actions/memberships.py), appended
# like a posted message; a rename also retitles open pages.
MEMBER_JOINED = EventKind("member.joined", True, "room", "chat/events/room_line.html")
MEMBER_LEFT = EventKind("member.left", True, "room", "chat/events/room_line.html")
MEMBER_ADDED = EventKind("member.added", True, "room", "chat/events/room_line.html")
MEMBER_REMOVED = EventKind("member.removed", True, "room", "chat/events/room_line.html")
ROOM_RENAMED = EventKind("room.renamed", True, "room", "chat/events/room_line.html")
ROOM_ARCHIVED = EventKind("room.archived", True, "room", "chat/events/room_line.html")
ROOM_UNARCHIVED = EventKind("room.unarchived", True, "room", "chat/events/room_line.html")

CATALOGUE = {
    kind.name: kind
    for kind in (
        MESSAGE_POSTED,
        MESSAGE_EDITED,
        MESSAGE_DELETED,
        REACTIONS_CHANGED,
        MEMBER_JOINED,
        MEMBER_LEFT,
        MEMBER_ADDED,
        MEMBER_REMOVED,
        ROOM_RENAMED,
        ROOM_ARCHIVED,
        ROOM_UNARCHIVED,
    )
}

# Message.kind of a room's line -> its event kind.
LINE_KINDS = {
    "joined": MEMBER_JOINED,
    "left": MEMBER_LEFT,
    "added": MEMBER_ADDED,
    "removed": MEMBER_REMOVED,
    "renamed": ROOM_RENAMED,
    "archived": ROOM_ARCHIVED,
    "unarchived": ROOM_UNARCHIVED,
}

# What counts toward unread: every process hears of these through the activity notice,
# so sidebars of people in the room move (chat/realtime/hub/people.py).
COUNTED = {MESSAGE_POSTED, MESSAGE_DELETED}

# Ephemeral kinds: the state of a room right now, never stored, numbered or replayed. A
# page that was away gets the current state when its socket opens, not what it missed.
# Each process renders them for its own sockets (chat/realtime/hub/presence.py, typing.py):
# the channel layer carries only a small notice, no HTML.
PRESENCE_CHANGED = EventKind("presence.changed", False, "room", "chat/events/people.html")
TYPING_CHANGED = EventKind("typing.changed", False, "room", "chat/events/typing.html")

EPHEMERAL = {kind.name: kind for kind in (PRESENCE_CHANGED, TYPING_CHANGED)}


class RoomClosed(Exception):
    """The room is archived: `take_next_seq(..., open_only=True)` took no number."""


def take_next_seq(room_id, *, posted_at=None, open_only=False):
    """Bump the room's last_seq and return it, in one statement (UPDATE ... RETURNING).

    Called first in an action's transaction: the UPDATE holds the room's row lock until
    commit, so every change to one room (from any process) is serialised and numbered
    in commit order. `posted_at` also moves the room's last activity. `open_only`: raise
    RoomClosed instead if the room is archived (checked under the same lock).
    """
    condition = " AND archived_at IS NULL" if open_only else ""
    table = connection.ops.quote_name(Room._meta.db_table)
    with connection.cursor() as cursor:
        if posted_at is None:
            cursor.execute(
                f"UPDATE {table} SET last_seq = last_seq + 1 WHERE id = %s{condition} "  # noqa: S608
                "RETURNING last_seq",
                [room_id],
            )
        else:
            cursor.execute(
                f"UPDATE {table} SET last_seq = last_seq + 1, last_message_at = %s "  # noqa: S608
                f"WHERE id = %s{condition} RETURNING last_seq",
                [connection.ops.adapt_datetimefield_value(posted_at), room_id],
            )
        row = cursor.fetchone()
    if row is None:
        if open_only and Room.objects.filter(pk=room_id).exists():
            raise RoomClosed(f"room {room_id} is archived")
        raise Room.DoesNotExist(f"room {room_id} does not exist")
    return row[0]


def record(kind, *, room_id, seq, message, quotes_changed=False):
    """Store the event numbered `seq` and publish it once the transaction commits."""
    RoomEvent.objects.create(room_id=room_id, seq=seq, kind=kind.name, message=message)
    transaction.on_commit(lambda: _publish(kind, room_id, seq, message, quotes_changed))


def revoked_by(kind_name, message, room_kind):
    """The people who may no longer read the room once this event is applied: whoever
    was removed, or left a room that is not public. Their sockets close before any
    later event of the room reaches them."""
    if message is None:
        return ()
    if kind_name == MEMBER_REMOVED.name and message.subject_id:
        return (message.subject_id,)
    if kind_name == MEMBER_LEFT.name and room_kind != "public":
        return (message.author_id,)
    return ()


def revoked_in(stored_events):
    """Everyone `revoked_by` any of these stored events (each with its room loaded)."""
    return {
        user_id
        for event in stored_events
        for user_id in revoked_by(event.kind, event.message, event.room.kind)
    }


def person_changed(user_ids):
    """Tell these people's pages that their rooms or counts changed (once committed):
    each page redraws its list of rooms from the database."""
    user_ids = sorted(set(user_ids))
    if user_ids:
        transaction.on_commit(lambda: _person_publisher(user_ids, None))


def person_revoked(user_id, reason):
    """Close every open socket of this person, on every process, saying `reason` (a
    deactivated account, a changed password)."""
    transaction.on_commit(lambda: _person_publisher([user_id], reason))


def render(kind, *, seq, message, quotes_changed=False):
    """The HTML of one event: its envelope around the message's current fragment."""
    context = {"message": message, "seq": seq, "quotes_changed": quotes_changed}
    with operator_clock():  # one rendering for every reader; pages localise (localtime.py)
        return render_to_string(kind.template, context)


def render_ephemeral(kind, **context):
    """The HTML of an ephemeral event: its template with `context` (the room's state now)."""
    return render_to_string(kind.template, context)


def render_stored(events):
    """[(seq, html)] for stored events, oldest first: what a page that missed them needs.

    Each renders the message as it is now (later events included), so replaying any
    suffix of the stream leaves a page as a fresh load would.
    """
    messages = [event.message for event in events if event.message is not None]
    with_fragments(messages)
    quoted = message_selectors.quoted_among(messages)  # one query for the whole batch
    rendered = []
    for event in events:
        kind = CATALOGUE.get(event.kind)
        if kind is None or event.message is None:
            rendered.append((event.seq, _position_only(event.seq)))
            continue
        quotes_changed = kind is not MESSAGE_POSTED and event.message.pk in quoted
        html = render(kind, seq=event.seq, message=event.message, quotes_changed=quotes_changed)
        rendered.append((event.seq, html))
    return rendered


def _position_only(seq):
    return render_to_string("chat/events/_position.html", {"seq": seq})


def _publish(kind, room_id, seq, message, quotes_changed):
    """After commit: render once (keeping the message's fragment), hand to the publisher."""
    with_fragments([message], new=True)
    html = render(kind, seq=seq, message=message, quotes_changed=quotes_changed)
    revokes = revoked_by(kind.name, message, message.room.kind)
    _publisher(
        room_id, seq, html, revokes=revokes, counted=kind in COUNTED, author=message.author_id
    )
    metrics.event_published(kind.name, room_id, seq)


def _no_publisher(*args, **kwargs):
    raise RuntimeError("chat.events has no publisher: ChatConfig.ready() connects the hub")


_publisher = _no_publisher
_person_publisher = _no_publisher


def connect_publisher(publisher, person_publisher=None):
    """Set where committed events go (the process's hub; ChatConfig.ready connects it).

    An inversion instead of an import: the hub renders missed events through this module.
    """
    global _publisher, _person_publisher
    _publisher = publisher
    if person_publisher is not None:
        _person_publisher = person_publisher
