"""chat/selectors/messages.py: positions of pages, whole messages, and what actions read."""

import uuid

import pytest

from chat.actions.messages import message_delete, message_edit, message_post
from chat.models import Message
from chat.selectors.messages import (
    message_before,
    message_in_room,
    message_positions_after,
    message_positions_before,
    message_positions_latest,
    message_with_key,
    messages_after,
    messages_by_pk,
    reaction_summary,
)
from chat.tests.factories import make_author, make_history, make_message, make_reaction, make_room

pytestmark = pytest.mark.django_db

PAGE = 50


def seqs(rows):
    return [row.seq for row in rows]


@pytest.fixture
def authors():
    return [make_author(username=f"author{number}") for number in range(5)]


def filled(count, authors):
    return make_history(room=make_room(), count=count, authors=authors)


class MessagePositionsLatestTests:
    def test_newest_page_oldest_first(self, authors):
        room = filled(120, authors)
        assert seqs(message_positions_latest(room, limit=PAGE)) == list(range(71, 121))

    def test_short_history_is_all_of_it(self, authors):
        room = filled(3, authors)
        assert seqs(message_positions_latest(room, limit=PAGE)) == [1, 2, 3]

    def test_empty_room(self):
        assert message_positions_latest(make_room(), limit=PAGE) == []

    def test_upto_leaves_out_later_ones(self, authors):
        room = filled(10, authors)
        assert seqs(message_positions_latest(room, limit=PAGE, upto_seq=6)) == list(range(1, 7))

    def test_only_this_room(self, authors):
        room, other = make_room(), make_room()
        make_history(room=other, count=10, authors=authors)
        make_history(room=room, count=4, authors=authors)
        make_history(room=other, count=10, authors=authors)
        latest = message_positions_latest(room, limit=PAGE)
        assert seqs(latest) == [1, 2, 3, 4]
        rooms = Message.objects.filter(pk__in=[row.pk for row in latest]).values_list("room_id")
        assert set(rooms) == {(room.pk,)}

    def test_positions_carry_each_messages_current_version(self):
        room, author = make_room(), make_author()
        kept = make_message(room=room, author=author, text="a")
        make_reaction(message=kept)
        message_edit(room=room, user=author, message_id=kept.pk, text="b")
        [row] = message_positions_latest(room, limit=PAGE)
        assert (row.pk, row.seq, row.version) == (kept.pk, 1, 3)

    def test_deleted_messages_are_not_shown(self):
        room, author = make_room(), make_author()
        first, gone, last = (make_message(room=room, author=author, text=t) for t in "abc")
        message_delete(room=room, user=author, message_id=gone.pk)
        assert [row.pk for row in message_positions_latest(room, limit=PAGE)] == [first.pk, last.pk]
        assert [row.pk for row in message_positions_before(room, before_seq=4, limit=PAGE)] == [
            first.pk,
            last.pk,
        ]
        assert [row.pk for row in message_positions_after(room, after_seq=0, limit=PAGE)] == [
            first.pk,
            last.pk,
        ]


class MessagePositionsBeforeTests:
    def test_page_just_before_oldest_first(self, authors):
        room = filled(300, authors)
        assert seqs(message_positions_before(room, before_seq=151, limit=PAGE)) == list(
            range(101, 151)
        )

    def test_near_the_start_is_shorter(self, authors):
        room = filled(300, authors)
        assert seqs(message_positions_before(room, before_seq=11, limit=PAGE)) == list(range(1, 11))
        assert message_positions_before(room, before_seq=1, limit=PAGE) == []

    def test_pages_walk_back_without_gaps_or_repeats(self, authors):
        room = filled(237, authors)
        seen = message_positions_latest(room, limit=PAGE)
        while older := message_positions_before(room, before_seq=seen[0].seq, limit=PAGE):
            assert len(older) <= PAGE
            seen = older + seen
        assert seqs(seen) == list(range(1, 238))

    def test_only_this_room(self, authors):
        room, other = make_room(), make_room()
        make_history(room=other, count=80, authors=authors)
        make_history(room=room, count=30, authors=authors)
        assert seqs(message_positions_before(room, before_seq=20, limit=PAGE)) == list(range(1, 20))


class MessagePositionsAfterTests:
    def test_page_just_after_oldest_first(self, authors):
        room = filled(300, authors)
        assert seqs(message_positions_after(room, after_seq=100, limit=PAGE)) == list(
            range(101, 151)
        )

    def test_near_the_end_is_shorter_and_upto_stops_it(self, authors):
        room = filled(120, authors)
        assert seqs(message_positions_after(room, after_seq=110, limit=PAGE)) == list(
            range(111, 121)
        )
        assert seqs(message_positions_after(room, after_seq=10, limit=PAGE, upto_seq=15)) == list(
            range(11, 16)
        )
        assert message_positions_after(room, after_seq=120, limit=PAGE) == []

    def test_pages_walk_forward_without_gaps_or_repeats(self, authors):
        room = filled(237, authors)
        seen = message_positions_after(room, after_seq=0, limit=PAGE)
        while newer := message_positions_after(room, after_seq=seen[-1].seq, limit=PAGE):
            seen = seen + newer
        assert seqs(seen) == list(range(1, 238))


class MessagesAfterTests:
    def test_everything_after_oldest_first(self, authors):
        room = filled(40, authors)
        assert seqs(messages_after(room, after_seq=32)) == list(range(33, 41))

    def test_upto_and_limit(self, authors):
        room = filled(40, authors)
        assert seqs(messages_after(room, after_seq=10, upto_seq=15)) == list(range(11, 16))
        assert seqs(messages_after(room, after_seq=10, limit=3)) == [11, 12, 13]
        assert seqs(messages_after(room, after_seq=10, upto_seq=30, limit=5)) == list(range(11, 16))
        assert messages_after(room, after_seq=40) == []

    def test_only_this_room_and_deleted_ones_too(self, authors):
        room, other = make_room(), make_room()
        make_history(room=room, count=5, authors=authors)
        make_history(room=other, count=9, authors=authors)
        gone = Message.objects.get(room=room, seq=3)
        message_delete(room=room, user=gone.author, message_id=gone.pk)
        assert seqs(messages_after(room, after_seq=0)) == [1, 2, 3, 4, 5]


class MessagesByPkTests:
    def test_whole_messages_come_with_their_authors_and_quotes_in_one_query(
        self, authors, django_assert_num_queries
    ):
        room = filled(20, authors)
        original = Message.objects.get(room=room, seq=1)
        reply = message_post(room=room, author=authors[1], text="re", reply_to_id=original.pk)
        pks = [row.pk for row in message_positions_latest(room, limit=PAGE)]
        with django_assert_num_queries(1):
            messages = messages_by_pk(pks)
            names = [message.author.get_username() for message in messages]
            quoted = [m.reply_to.author.get_username() for m in messages if m.reply_to_id]
        assert sorted(message.pk for message in messages) == sorted(pks)
        assert set(names) == {author.get_username() for author in authors}
        assert quoted == [original.author.get_username()] and reply.message.pk in pks


class MessageInRoomTests:
    def test_finds_a_message_of_the_room_deleted_or_not(self):
        room, author = make_room(), make_author()
        message = make_message(room=room, author=author)
        assert message_in_room(room, message.pk) == message
        message_delete(room=room, user=author, message_id=message.pk)
        assert message_in_room(room, message.pk).is_deleted

    def test_not_in_another_room_nor_unknown(self):
        message = make_message(room=make_room())
        assert message_in_room(make_room(), message.pk) is None
        assert message_in_room(message.room, 999999) is None

    def test_comes_with_author_and_quote_in_one_query(self, django_assert_num_queries):
        room = make_room()
        original = make_message(room=room, text="original")
        reply = make_message(room=room, text="re", reply_to=original)
        with django_assert_num_queries(1):
            found = message_in_room(room, reply.pk)
            found.author.get_username(), found.reply_to.author.get_username()


class MessageBeforeTests:
    def test_the_newest_shown_message_before_a_number(self):
        room, author = make_room(), make_author()
        first = make_message(room=room, author=author, text="1")
        second = make_message(room=room, author=author, text="2")
        make_message(room=make_room(), author=author)  # another room: never
        assert message_before(room, seq=3).pk == second.pk
        assert message_before(room, seq=2).pk == first.pk
        assert message_before(room, seq=1) is None
        message_delete(room=room, user=author, message_id=second.pk)
        assert message_before(room, seq=10).pk == first.pk


class MessageWithKeyTests:
    def test_finds_the_message_a_form_stored(self):
        room, author = make_room(), make_author()
        key = uuid.uuid4()
        done = message_post(room=room, author=author, text="once", client_key=key)
        found = message_with_key(author, done.message.client_key)
        assert found.pk == done.message.pk and found.author is author
        assert message_with_key(make_author(), done.message.client_key) is None
        assert message_with_key(author, uuid.uuid4()) is None


class ReactionSummaryTests:
    def test_who_reacted_with_what_in_reaction_order(self, django_assert_num_queries):
        room = make_room()
        message = make_message(room=room)
        ann, ben = make_author(username="ann"), make_author(username="ben")
        make_reaction(message=message, user=ben, emoji="🎉")
        make_reaction(message=message, user=ann, emoji="👍")
        make_reaction(message=message, user=ann, emoji="🎉")
        with django_assert_num_queries(1):
            summary = reaction_summary(message)
        assert summary == {"🎉": [[ben.pk, "ben"], [ann.pk, "ann"]], "👍": [[ann.pk, "ann"]]}
        assert list(summary) == ["🎉", "👍"]

    def test_no_reactions(self):
        assert reaction_summary(make_message(room=make_room())) == {}
