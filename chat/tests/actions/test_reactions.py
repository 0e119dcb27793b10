"""chat/actions/reactions.py: setting and unsetting an emoji, each change one room event.

The form says which state it wants (on or off), so the same form twice, or two tabs
pressing the same button at once, end in one state with one event.
"""

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from chat.actions.messages import message_delete
from chat.actions.reactions import REACTION_EMOJI, reaction_set
from chat.models import Message, Reaction, Room, RoomEvent
from chat.selectors.messages import reaction_summary
from chat.tests.factories import make_author, make_message, make_room, recorded_events

pytestmark = pytest.mark.django_db


def kinds(room):
    return list(RoomEvent.objects.filter(room=room).order_by("seq").values_list("seq", "kind"))


def last_seq(room):
    return Room.objects.get(pk=room.pk).last_seq


def fresh(message):
    return Message.objects.get(pk=message.pk)


@pytest.fixture
def message(room, alice):
    return make_message(room=room, author=alice, text="react to me")


def react(message, user, emoji="👍", on=True):
    return reaction_set(room=message.room, user=user, message_id=message.pk, emoji=emoji, on=on)


class ReactionSetTests:
    def test_on_adds_a_reaction_as_the_rooms_next_event(self, message, room, bob):
        done = react(message, bob)
        assert done.changed and done.seq == 2
        now = fresh(message)
        assert now.reactions == {"👍": [[bob.pk, "bob"]]}
        assert now.version == message.version + 1 == done.message.version
        assert list(Reaction.objects.values_list("user_id", "emoji")) == [(bob.pk, "👍")]
        assert kinds(room) == [(1, "message.posted"), (2, "reactions.changed")]
        assert RoomEvent.objects.get(seq=2).message_id == message.pk

    def test_off_removes_it_as_another_event(self, message, room, bob):
        react(message, bob)
        done = react(message, bob, on=False)
        assert done.seq == 3
        now = fresh(message)
        assert now.reactions == {} and now.version == message.version + 2
        assert not Reaction.objects.exists()
        assert kinds(room)[-1] == (3, "reactions.changed")

    @pytest.mark.parametrize("on", [True, False])
    def test_the_same_form_twice_changes_once(self, message, room, bob, on):
        if not on:
            react(message, bob)
        before, seq_before = fresh(message), last_seq(room)
        first = react(message, bob, on=on)
        second = react(message, bob, on=on)
        assert first.changed and not second.changed and second.seq is None
        assert fresh(message).version == before.version + 1
        assert last_seq(room) == seq_before + 1 == RoomEvent.objects.filter(room=room).count()
        assert Reaction.objects.count() == (1 if on else 0)

    def test_off_when_not_set_changes_nothing(self, message, room, bob):
        done = react(message, bob, on=False)
        assert not done.changed
        assert fresh(message).version == message.version and last_seq(room) == 1

    def test_the_summary_lists_who_reacted_in_order(self, message, room, alice, bob):
        carol = make_author(username="carol")
        react(message, bob, "👍")
        react(message, carol, "🎉")
        react(message, alice, "👍")
        react(message, carol, "👍")
        react(message, bob, "👍", on=False)
        expected = {"👍": [[alice.pk, "alice"], [carol.pk, "carol"]], "🎉": [[carol.pk, "carol"]]}
        now = fresh(message)
        assert now.reactions == expected
        assert reaction_summary(now) == expected  # the kept summary matches the rows
        assert list(now.reactions["👍"]) == expected["👍"]  # order kept, not sorted
        assert last_seq(room) == 6

    def test_everyone_may_react_to_anyones_message(self, message, alice, bob):
        assert react(message, alice, "😂").changed  # the author
        assert react(message, bob, "😂").changed  # anyone else

    @pytest.mark.parametrize("emoji", REACTION_EMOJI)
    def test_every_offered_emoji_works(self, message, bob, emoji):
        assert react(message, bob, emoji).changed
        assert fresh(message).reactions == {emoji: [[bob.pk, "bob"]]}

    @pytest.mark.parametrize(
        "emoji", ["🦄", "x", "", "👍👍", "👍🏽", "<script>", "❤", " 👍", "👍 "], ids=repr
    )
    def test_an_emoji_outside_the_set_is_refused(self, message, room, bob, emoji):
        with pytest.raises(ValidationError) as error:
            react(message, bob, emoji)
        assert error.value.code == "emoji"
        assert fresh(message).reactions == {} and fresh(message).version == message.version
        assert not Reaction.objects.exists() and last_seq(room) == 1

    def test_an_unknown_message_is_not_found(self, room, message, bob):
        with pytest.raises(ValidationError) as error:
            reaction_set(room=room, user=bob, message_id=999999, emoji="👍", on=True)
        assert error.value.code == "not_found"
        assert last_seq(room) == 1

    def test_a_message_of_another_room_is_not_found_here(self, message, bob):
        other = make_room()
        with pytest.raises(ValidationError) as error:
            reaction_set(room=other, user=bob, message_id=message.pk, emoji="👍", on=True)
        assert error.value.code == "not_found"
        assert not Reaction.objects.exists() and last_seq(other) == 0

    @pytest.mark.parametrize("on", [True, False])
    def test_a_deleted_message_takes_no_reactions(self, message, room, alice, bob, on):
        message_delete(room=room, user=alice, message_id=message.pk)
        with pytest.raises(ValidationError) as error:
            react(message, bob, on=on)
        assert error.value.code == "deleted"
        assert not Reaction.objects.exists() and fresh(message).reactions == {}
        assert last_seq(room) == 2

    def test_the_change_is_published_after_commit_with_the_reactions_only(
        self, message, room, bob, django_capture_on_commit_callbacks
    ):
        with recorded_events() as sent, django_capture_on_commit_callbacks(execute=True):
            react(message, bob, "🎉")
            react(message, bob, "🎉")  # nothing changes: nothing published
        [(room_id, seq, html)] = sent
        assert (room_id, seq) == (room.pk, 2)
        assert html.lstrip().startswith(
            f'<div class="reactions" id="message-{message.pk}-reactions"'
        )
        assert f'data-reactors=" u{bob.pk} "' in html
        assert 'aria-label="React with 🎉"' in html and 'aria-pressed="true"' in html
        assert "react to me" not in html  # not the whole message: an open edit form stays
        assert 'id="last-seq"' in html and 'value="2"' in html


@pytest.mark.django_db(transaction=True)
class ConcurrentReactionTests:
    """Two tabs (threads with their own database connections) pressing at the same time."""

    def race(self, *calls):
        start = threading.Barrier(len(calls))
        results, errors = [None] * len(calls), []

        def run(index, call):
            try:
                start.wait(timeout=10)
                results[index] = call()
            except Exception as error:  # reported below
                errors.append(error)
            finally:
                connection.close()

        threads = [threading.Thread(target=run, args=pair) for pair in enumerate(calls)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        return results

    def assert_consistent(self, room, message):
        now = fresh(message)
        assert now.reactions == reaction_summary(now)
        seqs = list(
            RoomEvent.objects.filter(room=room).order_by("seq").values_list("seq", flat=True)
        )
        assert seqs == list(range(1, last_seq(room) + 1))  # no gap, no repeat
        return now

    @pytest.mark.parametrize("attempt", range(3))
    def test_the_same_person_setting_the_same_reaction_twice_ends_with_one(
        self, message, room, bob, attempt
    ):
        results = self.race(lambda: react(message, bob), lambda: react(message, bob))
        assert sorted(done.changed for done in results) == [False, True]
        now = self.assert_consistent(room, message)
        assert now.reactions == {"👍": [[bob.pk, "bob"]]}
        assert Reaction.objects.count() == 1
        assert kinds(room) == [(1, "message.posted"), (2, "reactions.changed")]
        assert now.version == message.version + 1

    def test_the_same_person_unsetting_twice_ends_with_none(self, message, room, bob):
        react(message, bob)
        results = self.race(
            lambda: react(message, bob, on=False), lambda: react(message, bob, on=False)
        )
        assert sorted(done.changed for done in results) == [False, True]
        assert self.assert_consistent(room, message).reactions == {}
        assert last_seq(room) == 3

    def test_two_people_reacting_at_once_are_both_kept(self, message, room, alice, bob):
        results = self.race(lambda: react(message, alice, "❤️"), lambda: react(message, bob, "❤️"))
        assert all(done.changed for done in results)
        assert sorted(done.seq for done in results) == [2, 3]
        now = self.assert_consistent(room, message)
        assert sorted(now.reactions["❤️"]) == sorted([[alice.pk, "alice"], [bob.pk, "bob"]])
        assert now.version == message.version + 2
