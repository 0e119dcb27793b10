"""chat/selectors/events.py: the stored events a page that was away needs, in one query."""

import pytest

from chat.actions.messages import message_delete, message_edit
from chat.selectors.events import events_after
from chat.tests.factories import make_author, make_message, make_reaction, make_room

pytestmark = pytest.mark.django_db


def stream(room, alice, bob):
    """Six events: two posts (one a reply), an edit, a reaction, a delete, a third post."""
    first = make_message(room=room, author=alice, text="first")
    reply = make_message(room=room, author=bob, text="reply", reply_to=first)
    message_edit(room=room, user=alice, message_id=first.pk, text="first, edited")
    make_reaction(message=reply, user=alice)
    message_delete(room=room, user=bob, message_id=reply.pk)
    make_message(room=room, author=bob, text="third")
    return first, reply


def seqs_and_kinds(events):
    return [(event.seq, event.kind) for event in events]


class EventsAfterTests:
    def test_every_kind_oldest_first(self, alice):
        room, bob = make_room(), make_author()
        stream(room, alice, bob)
        assert seqs_and_kinds(events_after(room.pk, after_seq=0, limit=100)) == [
            (1, "message.posted"),
            (2, "message.posted"),
            (3, "message.edited"),
            (4, "reactions.changed"),
            (5, "message.deleted"),
            (6, "message.posted"),
        ]

    def test_after_upto_and_limit(self, alice):
        room, bob = make_room(), make_author()
        stream(room, alice, bob)
        assert [e.seq for e in events_after(room.pk, after_seq=3, limit=100)] == [4, 5, 6]
        assert [e.seq for e in events_after(room.pk, after_seq=1, upto_seq=4, limit=100)] == [
            2,
            3,
            4,
        ]
        assert [e.seq for e in events_after(room.pk, after_seq=1, limit=2)] == [2, 3]
        assert events_after(room.pk, after_seq=6, limit=100) == []

    def test_only_this_room(self, alice):
        room, other, bob = make_room(), make_room(), make_author()
        make_message(room=other, author=alice)
        stream(room, alice, bob)
        make_message(room=other, author=bob)
        events = events_after(room.pk, after_seq=0, limit=100)
        assert len(events) == 6 and {event.room_id for event in events} == {room.pk}
        assert [e.seq for e in events_after(other.pk, after_seq=0, limit=100)] == [1, 2]

    def test_each_event_carries_its_message_as_it_is_now_in_one_query(
        self, alice, django_assert_num_queries
    ):
        room, bob = make_room(), make_author(username="bob")
        _, reply = stream(room, alice, bob)
        with django_assert_num_queries(1):
            events = events_after(room.pk, after_seq=0, limit=100)
            seen = [
                (
                    event.message.text,
                    event.message.author.get_username(),
                    event.message.reply_to.author.get_username()
                    if event.message.reply_to
                    else None,
                )
                for event in events
            ]
        # The first post's event shows the edited text; the reply's events show it deleted.
        assert seen[0] == ("first, edited", "alice", None)
        assert seen[1] == ("", "bob", "alice")
        assert all(event.message.is_deleted for event in events if event.message_id == reply.pk)
        assert seen[5] == ("third", "bob", None)

    def test_the_query_count_does_not_grow_with_the_number_of_events(
        self, alice, settings, django_assert_num_queries
    ):
        settings.CHAT_RATE_LIMIT = None
        room, bob = make_room(), make_author()
        for _ in range(3):
            stream(room, alice, bob)
        with django_assert_num_queries(1):
            events = events_after(room.pk, after_seq=0, limit=500)
            [
                (e.message.author_id, e.message.reply_to and e.message.reply_to.author.pk)
                for e in events
            ]
        assert len(events) == 18
