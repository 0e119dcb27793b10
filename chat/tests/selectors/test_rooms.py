"""chat/selectors/rooms.py: the lobby's order, rooms by slug, and their sequence numbers."""

from datetime import timedelta

import pytest
from django.utils import timezone

from chat.models import Room
from chat.selectors.rooms import room_by_slug, room_last_seqs, room_list
from chat.tests.factories import make_author, make_history, make_message, make_reaction, make_room

pytestmark = pytest.mark.django_db


class RoomListTests:
    def test_latest_activity_first_then_quiet_rooms_by_name(self):
        now = timezone.now()
        quiet_b, quiet_a = make_room(name="Bravo quiet"), make_room(name="Alpha quiet")
        old, new, middle = make_room(name="Old"), make_room(name="New"), make_room(name="Middle")
        for room, age in ((old, 3), (new, 1), (middle, 2)):
            Room.objects.filter(pk=room.pk).update(last_message_at=now - timedelta(hours=age))
        assert list(room_list()) == [new, middle, old, quiet_a, quiet_b]

    def test_posting_moves_a_room_to_the_top(self):
        author = make_author()
        first, second = make_room(name="First"), make_room(name="Second")
        make_message(room=first, author=author)
        make_message(room=second, author=author)
        assert list(room_list())[:2] == [second, first]
        make_message(room=first, author=author)
        assert list(room_list())[:2] == [first, second]

    def test_reacting_does_not_move_a_room(self):
        first, second = make_room(name="First"), make_room(name="Second")
        older = make_message(room=first)
        make_message(room=second)
        make_reaction(message=older)
        assert list(room_list())[:2] == [second, first]

    def test_same_activity_time_sorts_by_name(self):
        now = timezone.now()
        rooms = [make_room(name=name) for name in ("Zulu", "Echo", "Kilo")]
        Room.objects.filter(pk__in=[room.pk for room in rooms]).update(last_message_at=now)
        assert [room.name for room in room_list()] == ["Echo", "Kilo", "Zulu"]


def test_room_last_seqs_count_every_event():
    authors = [make_author()]
    room, other, empty = make_room(), make_room(), make_room()
    make_history(room=room, count=7, authors=authors)
    make_history(room=other, count=3, authors=authors)
    make_reaction(message=make_message(room=other))  # a post and a reaction: two more
    assert room_last_seqs([room.pk, other.pk, empty.pk]) == {room.pk: 7, other.pk: 5, empty.pk: 0}


def test_room_by_slug():
    room = make_room(name="Find Me")
    assert room_by_slug("find-me") == room
    assert room_by_slug("nope") is None
