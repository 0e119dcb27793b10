"""Keyword-only factories for tests.

`make_room`, `make_message` and `make_reaction` go through the actions, as people do;
`make_history` writes a long history in one query for tests that only read it.
"""

import contextlib
import itertools

from django.contrib.auth import get_user_model
from django.utils import timezone

from chat import events
from chat.actions.messages import message_post
from chat.actions.reactions import reaction_set
from chat.actions.rooms import room_get_or_create
from chat.models import Message, Room

_numbers = itertools.count(1)


def make_user(*, username=None, password="a-long-test-password", is_staff=False):
    username = username or f"user{next(_numbers)}"
    user = get_user_model().objects.create_user(username=username, password=password)
    if is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    return user


def make_author(*, username=None):
    """A user who posts but never logs in: no password, so no second of hashing."""
    return get_user_model().objects.create_user(
        username=username or f"author{next(_numbers)}", password=None
    )


def make_room(*, name=None):
    room, _ = room_get_or_create(name=name or f"Room {next(_numbers)}")
    return room


def make_message(*, room, author=None, text="hello", reply_to=None):
    """A message posted through the action (rate limit included: use a fresh author, the
    default, or turn the limit off for many by one author)."""
    return message_post(
        room=room,
        author=author or make_author(),
        text=text,
        reply_to_id=reply_to.pk if reply_to is not None else None,
    ).message


def make_reaction(*, message, user=None, emoji="👍", on=True):
    """`user` sets (or with on=False unsets) `emoji` on `message`; returns the action's Done."""
    return reaction_set(
        room=message.room,
        user=user or make_author(),
        message_id=message.pk,
        emoji=emoji,
        on=on,
    )


def make_history(*, room, count, authors, text="message {}"):
    """`count` messages numbered on from the room's last_seq, by turns of `authors`, in
    one query (no events, no rate limit): for tests that read long histories."""
    start = room.last_seq
    now = timezone.now()
    Message.objects.bulk_create(
        Message(
            room=room,
            author=authors[number % len(authors)],
            seq=start + number + 1,
            text=text.format(start + number + 1),
        )
        for number in range(count)
    )
    Room.objects.filter(pk=room.pk).update(last_seq=start + count, last_message_at=now)
    room.refresh_from_db()
    return room


@contextlib.contextmanager
def recorded_events():
    """[(room_id, seq, html)] of every event published inside the block, in order.

    chat/events.py hands committed events to one publisher (ChatConfig.ready connects the
    hub's); this swaps in a recorder for the block and puts the previous one back. Events
    are published on commit: in a test inside a transaction, run the callbacks with
    `django_capture_on_commit_callbacks(execute=True)` inside this block.
    """
    sent = []
    previous = events._publisher
    events.connect_publisher(lambda room_id, seq, html, **_: sent.append((room_id, seq, html)))
    try:
        yield sent
    finally:
        events.connect_publisher(previous)
