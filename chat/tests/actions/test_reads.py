"""chat/actions/reads.py: how far each member has read, the one thing unread counts come
from. A read position only ever moves forward."""

import pytest

from chat.actions.memberships import room_join, room_open_or_create
from chat.actions.reads import read_mark, read_positions_save
from chat.models import Membership
from chat.tests.factories import make_author

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def unlimited(settings):
    settings.CHAT_RATE_LIMIT = None


def position(room, user):
    return Membership.objects.get(room=room, user=user).last_read_seq


def set_position(room, user, seq):
    Membership.objects.filter(room=room, user=user).update(last_read_seq=seq)


@pytest.fixture
def two_rooms(alice, bob):
    """Two public rooms, alice and bob in both, every position at 0."""
    rooms = [room_open_or_create(user=alice, name=name)[0] for name in ("One", "Two")]
    for room in rooms:
        room_join(room=room, user=bob)
    Membership.objects.update(last_read_seq=0)
    return rooms


class ReadMarkTests:
    def test_moves_forward(self, two_rooms, alice, django_capture_on_commit_callbacks):
        room, other = two_rooms
        with django_capture_on_commit_callbacks() as published:
            assert read_mark(user=alice, room=room, seq=5) is True
        assert position(room, alice) == 5
        assert len(published) == 1  # the person's other pages redraw their counts
        assert position(other, alice) == 0

    @pytest.mark.parametrize("seq", [5, 4, 0])
    def test_never_moves_back(self, two_rooms, alice, django_capture_on_commit_callbacks, seq):
        room, _ = two_rooms
        read_mark(user=alice, room=room, seq=5)
        with django_capture_on_commit_callbacks() as published:
            assert read_mark(user=alice, room=room, seq=seq) is False
        assert position(room, alice) == 5
        assert published == []

    def test_moves_only_the_readers_position(self, two_rooms, alice, bob):
        room, _ = two_rooms
        read_mark(user=alice, room=room, seq=7)
        assert position(room, bob) == 0

    def test_a_non_member_moves_nothing(self, two_rooms, django_capture_on_commit_callbacks):
        room, _ = two_rooms
        stranger = make_author()
        before = list(Membership.objects.values_list("pk", "last_read_seq"))
        with django_capture_on_commit_callbacks() as published:
            assert read_mark(user=stranger, room=room, seq=9) is False
        assert list(Membership.objects.values_list("pk", "last_read_seq")) == before
        assert not Membership.objects.filter(user=stranger).exists()
        assert published == []


class ReadPositionsSaveTests:
    def test_returns_the_pairs_that_moved_only(self, two_rooms, alice, bob):
        one, two = two_rooms
        set_position(one, alice, 10)
        set_position(two, bob, 3)
        moved = read_positions_save(
            {
                (one.pk, alice.pk): 4,  # behind: stays at 10
                (one.pk, bob.pk): 4,  # moves
                (two.pk, alice.pk): 6,  # moves
                (two.pk, bob.pk): 3,  # already there
            }
        )
        assert sorted(moved) == sorted([(one.pk, bob.pk), (two.pk, alice.pk)])
        assert (position(one, alice), position(one, bob)) == (10, 4)
        assert (position(two, alice), position(two, bob)) == (6, 3)

    def test_never_moves_back(self, two_rooms, alice):
        one, _ = two_rooms
        set_position(one, alice, 8)
        assert read_positions_save({(one.pk, alice.pk): 2}) == []
        assert position(one, alice) == 8

    def test_pairs_of_people_not_in_the_room_are_ignored(self, two_rooms, alice):
        one, _ = two_rooms
        stranger = make_author()
        assert read_positions_save({(one.pk, stranger.pk): 5}) == []
        assert not Membership.objects.filter(user=stranger).exists()

    def test_nothing_to_save(self):
        assert read_positions_save({}) == []

    def test_one_statement_pair_per_room_and_position(
        self, two_rooms, alice, bob, django_assert_max_num_queries
    ):
        one, two = two_rooms
        many = {(one.pk, alice.pk): 3, (one.pk, bob.pk): 3, (two.pk, alice.pk): 3}
        many.update({(two.pk, bob.pk): 3})
        # Two rooms at one position each: a select and an update per room.
        with django_assert_max_num_queries(4):
            moved = read_positions_save(many)
        assert len(moved) == 4
