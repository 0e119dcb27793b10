"""chat/selectors/unread.py: unread messages and mentions per room, derived from each
member's read position when asked; nothing written per member when someone posts."""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.actions.memberships import (
    direct_open,
    member_add,
    member_remove,
    notify_set,
    room_archive,
    room_join,
    room_open_or_create,
)
from chat.actions.messages import message_delete, message_edit, message_post
from chat.actions.reads import read_mark
from chat.models import Membership, Mention, MissedEmail, Room
from chat.selectors.unread import (
    NOTHING,
    Unread,
    first_unread_seq,
    my_rooms,
    total_unread,
    unread_by_room,
)
from chat.tests.factories import make_author, make_history

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def unlimited(settings):
    settings.CHAT_RATE_LIMIT = None


@pytest.fixture
def carol():
    return make_author(username="carol")


@pytest.fixture
def private(alice, bob):
    """A private room of alice's with bob in it; bob has read everything so far."""
    room, _ = room_open_or_create(user=alice, name="Secret", private=True)
    member_add(room=room, by=alice, username="bob")
    return fresh(room)


def fresh(room):
    return Room.objects.get(pk=room.pk)


def post(room, author, text="hello"):
    return message_post(room=fresh(room), author=author, text=text).message


def read_all(room, user):
    read_mark(user=user, room=room, seq=fresh(room).last_seq)


class UnreadByRoomTests:
    def test_messages_after_the_read_position_are_unread(self, private, alice, bob):
        assert unread_by_room(bob) == {}
        for n in range(3):
            post(private, alice, f"m{n}")
        assert unread_by_room(bob) == {private.pk: Unread(messages=3, mentions=0)}
        assert unread_by_room(bob)[private.pk].label == "3 unread"

    def test_reading_clears_them_and_later_ones_count_again(self, private, alice, bob):
        post(private, alice)
        post(private, alice)
        read_all(private, bob)
        assert unread_by_room(bob) == {}
        post(private, alice)
        assert unread_by_room(bob) == {private.pk: Unread(1, 0)}

    def test_reading_part_of_the_room(self, private, alice, bob):
        first = post(private, alice, "one")
        post(private, alice, "two")
        read_mark(user=bob, room=private, seq=first.seq)
        assert unread_by_room(bob) == {private.pk: Unread(1, 0)}

    def test_ones_own_messages_are_never_unread(self, private, alice, bob):
        post(private, bob, "mine")
        post(private, bob, "mine too")
        assert unread_by_room(bob) == {}
        assert unread_by_room(alice) == {private.pk: Unread(2, 0)}

    def test_room_lines_are_never_unread(self, private, alice, bob, carol):
        member_add(room=fresh(private), by=alice, username="carol")
        member_remove(room=fresh(private), by=alice, user_id=carol.pk)
        public, _ = room_open_or_create(user=alice, name="Open")
        room_join(room=public, user=bob)
        room_join(room=public, user=carol)
        assert fresh(private).last_seq > 1 and fresh(public).last_seq > 1
        assert unread_by_room(bob) == {}
        assert unread_by_room(alice) == {}

    def test_deleted_messages_are_not_unread(self, private, alice, bob):
        post(private, alice, "kept")
        gone = post(private, alice, "gone @bob")
        message_delete(room=fresh(private), user=alice, message_id=gone.pk)
        assert unread_by_room(bob) == {private.pk: Unread(1, 0)}

    def test_mentions_count_separately(self, private, alice, bob):
        post(private, alice, "hello")
        post(private, alice, "@bob look")
        post(private, alice, "and @bob again")
        unread = unread_by_room(bob)
        assert unread == {private.pk: Unread(messages=3, mentions=2)}
        assert unread[private.pk].label == "3 unread, 2 mentions"
        post(private, alice, "@alice talks to herself")
        assert unread_by_room(alice) == {}  # own message, own mention

    def test_one_mention_is_singular(self, private, alice, bob):
        post(private, alice, "@bob")
        assert unread_by_room(bob)[private.pk].label == "1 unread, 1 mention"

    def test_a_mention_edited_away_no_longer_counts(self, private, alice, bob):
        message = post(private, alice, "@bob look")
        message_edit(room=fresh(private), user=alice, message_id=message.pk, text="look")
        assert unread_by_room(bob) == {private.pk: Unread(1, 0)}

    def test_a_muted_room_counts_nothing(self, private, alice, bob):
        notify_set(room=private, user=bob, notify=Membership.NOTIFY_NONE)
        post(private, alice, "hello")
        post(private, alice, "@bob hello")
        assert unread_by_room(bob) == {}
        assert unread_by_room(alice) == {}

    def test_a_mentions_only_room_counts_mentions_only(self, private, alice, bob):
        notify_set(room=private, user=bob, notify=Membership.NOTIFY_MENTIONS)
        post(private, alice, "hello")
        post(private, alice, "hello again")
        assert unread_by_room(bob) == {}
        post(private, alice, "@bob now")
        assert unread_by_room(bob) == {private.pk: Unread(messages=0, mentions=1)}
        assert unread_by_room(bob)[private.pk].label == "1 mention"

    def test_a_room_one_was_removed_from_counts_nothing(self, private, alice, bob):
        post(private, alice, "@bob hello")
        member_remove(room=fresh(private), by=alice, user_id=bob.pk)
        post(private, alice, "after")
        assert unread_by_room(bob) == {}

    def test_a_mention_in_a_public_room_one_is_not_in_counts_nothing(self, alice, bob):
        public, _ = room_open_or_create(user=alice, name="Open")
        post(public, alice, "@bob come here")
        assert unread_by_room(bob) == {}

    def test_what_was_said_before_one_was_added_is_not_unread(self, private, alice, carol):
        post(private, alice, "before carol")
        post(private, alice, "@carol before carol")  # not a member yet: plain text
        member_add(room=fresh(private), by=alice, username="carol")
        assert unread_by_room(carol) == {}
        post(private, alice, "after carol")
        assert unread_by_room(carol) == {private.pk: Unread(1, 0)}

    def test_someone_outside_a_private_room_is_not_mentioned(self, private, alice, carol):
        message = post(private, alice, "@carol you cannot see this")
        assert message.mentions == []
        assert not Mention.objects.filter(user=carol).exists()
        assert not MissedEmail.objects.filter(user=carol).exists()
        assert unread_by_room(carol) == {}

    def test_counts_per_room(self, private, alice, bob, carol):
        public, _ = room_open_or_create(user=alice, name="Open")
        room_join(room=public, user=bob)
        direct, _ = direct_open(user=carol, usernames=["bob"])
        post(private, alice, "one")
        post(public, alice, "two")
        post(public, alice, "@bob three")
        post(direct, carol, "four")
        assert unread_by_room(bob) == {
            private.pk: Unread(1, 0),
            public.pk: Unread(2, 1),
            direct.pk: Unread(1, 0),
        }


class TotalTests:
    def test_the_tab_titles_number(self):
        unread = {1: Unread(3, 1), 2: Unread(0, 2), 3: Unread(1, 0)}
        assert total_unread(unread) == 3 + 2 + 1
        assert total_unread({}) == 0

    def test_labels(self):
        assert NOTHING.label == ""
        assert Unread(2, 0).label == "2 unread"
        assert Unread(0, 3).label == "3 mentions"


class FirstUnreadSeqTests:
    def test_the_first_message_by_someone_else_after_the_position(self, private, alice, bob):
        make_author(username="carol")
        position = fresh(private).last_seq
        post(private, bob, "mine")
        member_add(room=fresh(private), by=alice, username="carol")  # a line
        deleted = post(private, alice, "gone")
        message_delete(room=fresh(private), user=alice, message_id=deleted.pk)
        first = post(private, alice, "this one")
        post(private, alice, "and this")
        assert first_unread_seq(bob, private, position) == first.seq

    def test_nothing_new(self, private, bob):
        post(private, bob, "mine")
        assert first_unread_seq(bob, private, 0) is None


class MyRoomsTests:
    def test_rooms_with_their_counts_and_the_total(self, private, alice, bob, carol):
        direct, _ = direct_open(user=carol, usernames=["bob"])
        post(private, alice, "@bob hi")
        post(direct, carol, "hi")
        mine = my_rooms(bob)
        by_pk = {room.pk: room for room in mine["my_rooms"]}
        assert set(by_pk) == {private.pk, direct.pk}
        assert by_pk[private.pk].unread == Unread(1, 1)
        assert by_pk[direct.pk].unread == Unread(1, 0)
        assert by_pk[direct.pk].title == "carol"  # named after the others
        assert mine["unread_total"] == 2

    def test_archived_rooms_are_off_the_list(self, private, alice, bob):
        room_archive(room=fresh(private), by=alice)
        assert my_rooms(bob)["my_rooms"] == []


# --- the cost of the counts ---


def build(owner, others, *, rooms, messages):
    """`rooms` public, private and direct rooms each, with `messages` messages and one
    mention of `owner` in each; the public ones count mentions only."""
    authors = others[:3]
    for n in range(rooms):
        public, _ = room_open_or_create(user=authors[0], name=f"pub {n} {owner.username}")
        room_join(room=public, user=owner)
        private, _ = room_open_or_create(
            user=authors[0], name=f"priv {n} {owner.username}", private=True
        )
        member_add(room=private, by=authors[0], username=owner.username)
        other = others[n % len(others)]
        direct, _ = direct_open(user=owner, usernames=[other.username])
        for room, by in ((public, authors), (private, authors), (direct, [other])):
            make_history(room=fresh(room), count=messages, authors=by)
            message_post(room=fresh(room), author=by[0], text=f"@{owner.username} hey")
        notify_set(room=public, user=owner, notify=Membership.NOTIFY_MENTIONS)


def queries(function, *args):
    with CaptureQueriesContext(connection) as captured:
        function(*args)
    return len(captured)


class CountQueriesTests:
    @pytest.fixture
    def people(self):
        return [make_author(username=f"other{n}") for n in range(12)]

    def test_unread_by_room_is_two_queries_whatever_the_rooms(
        self, alice, bob, people, django_assert_num_queries
    ):
        build(alice, people, rooms=1, messages=2)
        build(bob, people, rooms=10, messages=40)
        with django_assert_num_queries(2):
            few = unread_by_room(alice)
        with django_assert_num_queries(2):
            many = unread_by_room(bob)
        assert len(few) == 3 and len(many) == 30
        assert all(counts.mentions == 1 for counts in many.values())

    def test_my_rooms_costs_the_same_for_few_and_many(self, alice, bob, people):
        build(alice, people, rooms=1, messages=2)
        build(bob, people, rooms=10, messages=40)
        few, many = queries(my_rooms, alice), queries(my_rooms, bob)
        assert few == many <= 6
        mine = my_rooms(bob)
        assert len(mine["my_rooms"]) == 30
        # Private and direct: 41 unread each; public (mentions only): 1 mention each.
        assert mine["unread_total"] == 10 * (41 + 41 + 1)


class PostCostTests:
    """A post costs the same number of queries in a room of 500 as in a room of 5:
    nothing is written per member."""

    @staticmethod
    def room_of(kind, size, owner):
        room, _ = room_open_or_create(
            user=owner, name=f"{kind} {size}", private=kind == Room.PRIVATE
        )
        User = get_user_model()
        prefix = f"{kind}-{size}-"
        User.objects.bulk_create(
            User(username=f"{prefix}{n}", password="!") for n in range(size - 1)
        )
        people = User.objects.filter(username__startswith=prefix)
        Membership.objects.bulk_create(Membership(room=room, user=person) for person in people)
        assert Membership.objects.filter(room=room).count() == size
        return fresh(room)

    @staticmethod
    def cost(room, author, text):
        with CaptureQueriesContext(connection) as captured:
            done = message_post(room=fresh(room), author=author, text=text)
        assert done.changed
        return len(captured), done.message

    @pytest.mark.parametrize("kind", [Room.PUBLIC, Room.PRIVATE])
    @pytest.mark.parametrize("mention", [False, True])
    def test_a_post_costs_the_same_in_a_room_of_500_as_of_5(self, alice, kind, mention):
        small, large = self.room_of(kind, 5, alice), self.room_of(kind, 500, alice)
        self.cost(small, alice, "first")  # each room's first post, alike
        self.cost(large, alice, "first")
        costs = []
        for room, size in ((small, 5), (large, 500)):
            text = f"hello @{kind}-{size}-1" if mention else "hello everyone"
            count, message = self.cost(room, alice, text)
            assert len(message.mentions) == (1 if mention else 0)
            costs.append(count)
        assert costs[0] == costs[1]
        # Nobody's read position was written.
        assert not Membership.objects.filter(room=large).exclude(last_read_seq=0).exists()
