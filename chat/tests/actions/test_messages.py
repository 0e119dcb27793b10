"""chat/actions/messages.py: posting, editing and deleting, each one numbered room event.

Every durable change takes the room's next sequence number and stores one `RoomEvent` of
its kind in the transaction that makes it, and is published only after that commits.
A refused change (another person's message, a deleted one, bad text) changes nothing,
takes no number and publishes nothing.
"""

import asyncio
import uuid
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from chat.actions.messages import (
    GROUP_GAP,
    clean_message_text,
    may_change,
    message_delete,
    message_edit,
    message_post,
)
from chat.models import Message, Reaction, Room, RoomEvent
from chat.realtime.hub.link import EVENT_TYPE, group_name
from chat.tests.factories import (
    make_author,
    make_message,
    make_reaction,
    make_room,
    make_user,
    recorded_events,
)

pytestmark = pytest.mark.django_db


def event_log(room):
    """The room's stored events: [(seq, kind, message id)], oldest first."""
    return list(
        RoomEvent.objects.filter(room=room).order_by("seq").values_list("seq", "kind", "message_id")
    )


def last_seq(room):
    return Room.objects.get(pk=room.pk).last_seq


def fresh(message):
    return Message.objects.get(pk=message.pk)


def assert_unchanged(room, message, *, seq_before, events_before):
    """A refused change: the message as it was, no number taken, no event stored."""
    now = fresh(message)
    assert (now.text, now.version, now.edited_at, now.deleted_at, now.reactions) == (
        message.text,
        message.version,
        message.edited_at,
        message.deleted_at,
        message.reactions,
    )
    assert last_seq(room) == seq_before
    assert event_log(room) == events_before


class CleanMessageTextTests:
    def test_keeps_line_breaks_and_trims_the_ends(self):
        assert clean_message_text("  one\r\ntwo\rthree\n ") == "one\ntwo\nthree"

    @pytest.mark.parametrize(
        ("text", "code"),
        [
            ("", "blank"),
            (" \n\t ", "blank"),
            ("a\x00b", "control"),
            ("bell\x07", "control"),
            ("a\ud800b", "surrogate"),
            (None, "invalid"),
            (42, "invalid"),
        ],
    )
    def test_refuses_bad_text(self, text, code):
        with pytest.raises(ValidationError) as error:
            clean_message_text(text)
        assert error.value.code == code

    def test_refuses_text_over_the_limit(self, settings):
        settings.CHAT_MAX_MESSAGE_LENGTH = 10
        assert clean_message_text("x" * 10) == "x" * 10
        with pytest.raises(ValidationError) as error:
            clean_message_text("x" * 11)
        assert error.value.code == "too_long"
        assert "limit is 10" in error.value.messages[0]


class MayChangeTests:
    def test_authors_and_staff_only(self, room, alice, bob):
        message = make_message(room=room, author=alice)
        staff = make_user(password=None, is_staff=True)
        assert may_change(alice, message)
        assert may_change(staff, message)
        assert not may_change(bob, message)
        assert not may_change(AnonymousUser(), message)


class MessagePostTests:
    def test_each_post_takes_the_rooms_next_number_and_one_posted_event(self, room, alice):
        other = make_room()
        done = [message_post(room=room, author=alice, text=f"m{number}") for number in range(3)]
        assert [d.seq for d in done] == [d.message.seq for d in done] == [1, 2, 3]
        assert event_log(room) == [(d.seq, "message.posted", d.message.pk) for d in done]
        assert message_post(room=other, author=alice, text="elsewhere").seq == 1
        room.refresh_from_db()
        assert room.last_seq == 3
        newest = fresh(done[-1].message).created_at
        assert abs(room.last_message_at - newest) < timedelta(seconds=1)

    def test_the_same_form_twice_stores_one_message_and_one_event(self, room, alice):
        key = uuid.uuid4()
        first = message_post(room=room, author=alice, text="hi", client_key=key)
        second = message_post(room=room, author=alice, text="hi", client_key=key)
        assert first.changed and not second.changed and second.seq is None
        assert second.message.pk == first.message.pk
        assert Message.objects.count() == 1
        assert event_log(room) == [(1, "message.posted", first.message.pk)]
        assert last_seq(room) == 1

    def test_new_text_under_a_stale_key_is_a_new_message(self, room, alice):
        # The composer's fresh key did not arrive (socket dropped): the next text must not vanish.
        key = uuid.uuid4()
        message_post(room=room, author=alice, text="first", client_key=key)
        second = message_post(room=room, author=alice, text="second", client_key=key)
        assert second.changed
        assert list(Message.objects.values_list("text", flat=True)) == ["first", "second"]

    def test_invalid_text_stores_nothing_and_takes_no_number(self, room, alice):
        with pytest.raises(ValidationError):
            message_post(room=room, author=alice, text="   ")
        assert Message.objects.count() == 0 and event_log(room) == []
        assert message_post(room=room, author=alice, text="ok").seq == 1

    def test_numbers_are_shared_with_every_other_kind_of_change(self, room, alice, bob):
        first = message_post(room=room, author=alice, text="one")
        edited = message_edit(room=room, user=alice, message_id=first.message.pk, text="uno")
        reacted = make_reaction(message=first.message, user=bob)
        second = message_post(room=room, author=bob, text="two")
        assert [first.seq, edited.seq, reacted.seq, second.seq] == [1, 2, 3, 4]
        assert second.message.seq == 4  # a message's seq is its posted event's number
        assert fresh(first.message).seq == 1  # changes do not move a message


class ReplyTests:
    def test_a_reply_points_at_a_message_of_the_same_room(self, room, alice, bob):
        original = make_message(room=room, author=alice, text="question?")
        done = message_post(room=room, author=bob, text="answer", reply_to_id=original.pk)
        assert done.message.reply_to == original
        assert fresh(done.message).reply_to_id == original.pk

    @pytest.mark.parametrize("where", ["another room", "deleted", "unknown"])
    def test_a_reply_to_a_message_not_shown_here_is_refused(self, room, alice, bob, where):
        if where == "another room":
            target = make_message(room=make_room(), author=alice).pk
        elif where == "deleted":
            target = make_message(room=room, author=alice).pk
            message_delete(room=room, user=alice, message_id=target)
        else:
            target = 987654
        seq_before, events_before = last_seq(room), event_log(room)
        with pytest.raises(ValidationError) as error:
            message_post(room=room, author=bob, text="answer", reply_to_id=target)
        assert error.value.code == "reply_gone"
        assert not Message.objects.filter(text="answer").exists()
        assert last_seq(room) == seq_before and event_log(room) == events_before


class GroupingTests:
    """continues_group and starts_day are fixed when a message is posted."""

    def test_the_first_message_starts_a_day_and_a_group(self, room, alice):
        message = make_message(room=room, author=alice)
        assert (message.starts_day, message.continues_group) == (True, False)

    def test_the_same_author_soon_after_continues_the_group(self, room, alice):
        make_message(room=room, author=alice, text="one")
        second = make_message(room=room, author=alice, text="two")
        assert (second.starts_day, second.continues_group) == (False, True)
        assert (fresh(second).starts_day, fresh(second).continues_group) == (False, True)

    def test_another_author_starts_a_new_group(self, room, alice, bob):
        make_message(room=room, author=alice)
        reply = make_message(room=room, author=bob)
        assert (reply.starts_day, reply.continues_group) == (False, False)

    def test_a_pause_starts_a_new_group(self, room, alice):
        first = make_message(room=room, author=alice)
        Message.objects.filter(pk=first.pk).update(
            created_at=timezone.now() - GROUP_GAP - timedelta(seconds=5)
        )
        later = make_message(room=room, author=alice)
        assert not later.continues_group

    def test_a_new_day_starts_a_day_and_a_group(self, room, alice):
        first = make_message(room=room, author=alice)
        Message.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(days=1))
        today = make_message(room=room, author=alice)
        assert (today.starts_day, today.continues_group) == (True, False)

    def test_a_deleted_message_is_not_the_one_before(self, room, alice, bob):
        make_message(room=room, author=alice, text="alice")
        gone = make_message(room=room, author=bob, text="bob, deleted")
        message_delete(room=room, user=bob, message_id=gone.pk)
        after = make_message(room=room, author=alice, text="alice again")
        assert after.continues_group  # what readers see: alice, then alice

    def test_messages_of_other_rooms_do_not_count(self, room, alice):
        make_message(room=make_room(), author=alice)
        message = make_message(room=room, author=alice)
        assert (message.starts_day, message.continues_group) == (True, False)


class MessageEditTests:
    def test_the_author_edits_as_the_rooms_next_event(self, room, alice):
        message = make_message(room=room, author=alice, text="helo")
        done = message_edit(room=room, user=alice, message_id=message.pk, text="  hello \r\n")
        assert done.changed and done.seq == 2
        now = fresh(message)
        assert now.text == "hello"
        assert now.edited_at is not None
        assert now.version == message.version + 1 == done.message.version
        assert now.seq == 1
        assert event_log(room) == [
            (1, "message.posted", message.pk),
            (2, "message.edited", message.pk),
        ]
        assert last_seq(room) == 2

    def test_each_edit_is_one_more_event_and_version(self, room, alice):
        message = make_message(room=room, author=alice, text="a")
        for number, text in enumerate(["b", "c", "d"], start=2):
            assert (
                message_edit(room=room, user=alice, message_id=message.pk, text=text).seq == number
            )
        assert fresh(message).version == message.version + 3
        assert [kind for _, kind, _ in event_log(room)] == ["message.posted"] + [
            "message.edited"
        ] * 3

    @pytest.mark.parametrize("text", ["same", " same \n"])
    def test_the_same_text_changes_nothing(self, room, alice, text):
        message = make_message(room=room, author=alice, text="same")
        done = message_edit(room=room, user=alice, message_id=message.pk, text=text)
        assert not done.changed and done.seq is None
        assert_unchanged(room, message, seq_before=1, events_before=event_log(room))
        assert len(event_log(room)) == 1

    def test_the_same_edit_twice_is_one_change(self, room, alice):
        message = make_message(room=room, author=alice, text="draft")
        first = message_edit(room=room, user=alice, message_id=message.pk, text="final")
        second = message_edit(room=room, user=alice, message_id=message.pk, text="final")
        assert first.changed and not second.changed
        assert fresh(message).version == message.version + 1
        assert last_seq(room) == 2

    @pytest.mark.parametrize(
        ("text", "code"), [("   ", "blank"), ("x" * 4001, "too_long"), ("a\x00", "control")]
    )
    def test_the_text_is_checked_as_when_posting(self, room, alice, text, code):
        message = make_message(room=room, author=alice, text="fine")
        events_before = event_log(room)
        with pytest.raises(ValidationError) as error:
            message_edit(room=room, user=alice, message_id=message.pk, text=text)
        assert error.value.code == code
        assert_unchanged(room, message, seq_before=1, events_before=events_before)

    def test_nobody_else_may_edit(self, room, alice, bob):
        message = make_message(room=room, author=alice, text="mine")
        events_before = event_log(room)
        with pytest.raises(ValidationError) as error:
            message_edit(room=room, user=bob, message_id=message.pk, text="yours now")
        assert error.value.code == "forbidden"
        assert_unchanged(room, message, seq_before=1, events_before=events_before)

    def test_staff_may_edit_anyones(self, room, alice):
        message = make_message(room=room, author=alice, text="rude")
        staff = make_user(password=None, is_staff=True)
        done = message_edit(room=room, user=staff, message_id=message.pk, text="[removed]")
        assert done.seq == 2 and fresh(message).text == "[removed]"
        assert fresh(message).author == alice

    def test_an_unknown_message_is_not_found(self, room, alice):
        make_message(room=room, author=alice)
        with pytest.raises(ValidationError) as error:
            message_edit(room=room, user=alice, message_id=999999, text="x")
        assert error.value.code == "not_found"
        assert last_seq(room) == 1

    def test_a_message_of_another_room_is_not_found_here(self, room, alice):
        elsewhere = make_room()
        message = make_message(room=elsewhere, author=alice, text="there")
        with pytest.raises(ValidationError) as error:
            message_edit(room=room, user=alice, message_id=message.pk, text="here")
        assert error.value.code == "not_found"
        assert_unchanged(elsewhere, message, seq_before=1, events_before=event_log(elsewhere))
        assert last_seq(room) == 0 and event_log(room) == []

    def test_a_deleted_message_cannot_be_edited(self, room, alice):
        message = make_message(room=room, author=alice)
        message_delete(room=room, user=alice, message_id=message.pk)
        deleted, events_before = fresh(message), event_log(room)
        with pytest.raises(ValidationError) as error:
            message_edit(room=room, user=alice, message_id=message.pk, text="back")
        assert error.value.code == "deleted"
        assert_unchanged(room, deleted, seq_before=2, events_before=events_before)

    def test_replies_get_a_new_version_for_their_quote(self, room, alice, bob):
        original = make_message(room=room, author=alice, text="old text")
        reply = make_message(room=room, author=bob, text="re", reply_to=original)
        unrelated = make_message(room=room, author=bob, text="unrelated")
        message_edit(room=room, user=alice, message_id=original.pk, text="new text")
        assert fresh(reply).version == reply.version + 1
        assert fresh(unrelated).version == unrelated.version
        assert fresh(reply).text == "re"  # only its quote changes
        assert last_seq(room) == 4  # one event: the edit (replies are shown through it)


class MessageDeleteTests:
    def test_deleting_blanks_the_text_and_reactions_and_keeps_the_row(self, room, alice, bob):
        message = make_message(room=room, author=alice, text="secret")
        make_reaction(message=message, user=bob, emoji="👍")
        make_reaction(message=message, user=alice, emoji="🎉")
        before = fresh(message)
        done = message_delete(room=room, user=alice, message_id=message.pk)
        assert done.changed and done.seq == 4
        now = fresh(message)
        assert now.text == "" and now.reactions == {}
        assert now.deleted_at is not None and now.is_deleted
        assert now.version == before.version + 1
        assert now.seq == 1 and now.author == alice
        assert not Reaction.objects.filter(message=message).exists()
        assert not Message.objects.filter(text__contains="secret").exists()
        assert event_log(room)[-1] == (4, "message.deleted", message.pk)
        assert last_seq(room) == 4

    def test_replies_keep_pointing_at_it_with_a_new_version(self, room, alice, bob):
        original = make_message(room=room, author=alice, text="original")
        reply = make_message(room=room, author=bob, text="re", reply_to=original)
        message_delete(room=room, user=alice, message_id=original.pk)
        now = fresh(reply)
        assert now.reply_to_id == original.pk and now.version == reply.version + 1

    def test_nobody_else_may_delete(self, room, alice, bob):
        message = make_message(room=room, author=alice, text="mine")
        make_reaction(message=message, user=bob)
        message, events_before = fresh(message), event_log(room)
        with pytest.raises(ValidationError) as error:
            message_delete(room=room, user=bob, message_id=message.pk)
        assert error.value.code == "forbidden"
        assert_unchanged(room, message, seq_before=2, events_before=events_before)
        assert Reaction.objects.filter(message=message).count() == 1

    def test_staff_may_delete_anyones(self, room, alice):
        message = make_message(room=room, author=alice)
        done = message_delete(
            room=room, user=make_user(password=None, is_staff=True), message_id=message.pk
        )
        assert done.seq == 2 and fresh(message).is_deleted

    def test_deleting_twice_is_refused_and_changes_nothing(self, room, alice):
        message = make_message(room=room, author=alice)
        message_delete(room=room, user=alice, message_id=message.pk)
        deleted, events_before = fresh(message), event_log(room)
        with pytest.raises(ValidationError) as error:
            message_delete(room=room, user=alice, message_id=message.pk)
        assert error.value.code == "deleted"
        assert_unchanged(room, deleted, seq_before=2, events_before=events_before)

    @pytest.mark.parametrize("where", ["unknown", "another room"])
    def test_a_message_not_in_this_room_is_not_found(self, room, alice, where):
        target = 999999 if where == "unknown" else make_message(room=make_room(), author=alice).pk
        with pytest.raises(ValidationError) as error:
            message_delete(room=room, user=alice, message_id=target)
        assert error.value.code == "not_found"
        assert not Message.objects.filter(deleted_at__isnull=False).exists()
        assert last_seq(room) == 0


class EventStreamTests:
    def test_a_mixed_history_is_numbered_without_gaps_one_event_per_change(self, room, alice, bob):
        a = message_post(room=room, author=alice, text="a").message
        b = message_post(room=room, author=bob, text="b", reply_to_id=a.pk).message
        done = [
            message_edit(room=room, user=alice, message_id=a.pk, text="a2"),
            make_reaction(message=b, user=alice, emoji="❤️"),
            make_reaction(message=b, user=alice, emoji="❤️"),  # already so: nothing
            make_reaction(message=b, user=alice, emoji="❤️", on=False),
            message_delete(room=room, user=bob, message_id=b.pk),
        ]
        for refused in (
            lambda: message_edit(room=room, user=bob, message_id=a.pk, text="x"),
            lambda: message_delete(room=room, user=bob, message_id=b.pk),
            lambda: make_reaction(message=a, user=bob, emoji="🦄"),
        ):
            with pytest.raises(ValidationError):
                refused()
        assert [d.seq for d in done] == [3, 4, None, 5, 6]
        assert event_log(room) == [
            (1, "message.posted", a.pk),
            (2, "message.posted", b.pk),
            (3, "message.edited", a.pk),
            (4, "reactions.changed", b.pk),
            (5, "reactions.changed", b.pk),
            (6, "message.deleted", b.pk),
        ]
        assert last_seq(room) == 6

    def test_each_change_is_published_once_after_commit(
        self, room, alice, django_capture_on_commit_callbacks
    ):
        with recorded_events() as sent, django_capture_on_commit_callbacks(execute=True):
            posted = message_post(room=room, author=alice, text="**hello**")
            edited = message_edit(room=room, user=alice, message_id=posted.message.pk, text="bye")
            message_edit(room=room, user=alice, message_id=posted.message.pk, text="bye")
            deleted = message_delete(room=room, user=alice, message_id=posted.message.pk)
        assert [(room_id, seq) for room_id, seq, _ in sent] == [
            (room.pk, 1),
            (room.pk, 2),
            (room.pk, 3),
        ]
        pk = posted.message.pk
        posted_html, edited_html, deleted_html = (html for _, _, html in sent)
        assert 'id="messages" hx-swap-oob="beforeend"' in posted_html
        assert f'id="message-{pk}"' in posted_html and "<strong>hello</strong>" in posted_html
        assert 'value="1"' in posted_html  # the page's last-seq follows
        assert "bye" in edited_html and "(edited)" in edited_html and 'value="2"' in edited_html
        assert f'<li id="message-{pk}" hx-swap-oob="delete">' in deleted_html
        assert "bye" not in deleted_html and 'value="3"' in deleted_html
        assert (edited.seq, deleted.seq) == (2, 3)

    def test_nothing_is_published_before_commit(
        self, room, alice, django_capture_on_commit_callbacks
    ):
        with recorded_events() as sent, django_capture_on_commit_callbacks() as callbacks:
            message_post(room=room, author=alice, text="pending")
            assert sent == []  # still inside the transaction
        assert len(callbacks) == 1 and sent == []

    def test_an_edit_of_a_quoted_message_also_replaces_its_quotes(
        self, room, alice, bob, django_capture_on_commit_callbacks
    ):
        original = make_message(room=room, author=alice, text="old words")
        make_message(room=room, author=bob, text="re", reply_to=original)
        with recorded_events() as sent, django_capture_on_commit_callbacks(execute=True):
            message_edit(room=room, user=alice, message_id=original.pk, text="new words")
            message_delete(room=room, user=alice, message_id=original.pk)
        [(_, _, edited), (_, _, deleted)] = sent
        quote = f'hx-swap-oob="outerHTML:.quote-of-{original.pk}"'
        assert quote in edited and "new words" in edited
        assert quote in deleted and "Original message deleted" in deleted


@pytest.mark.django_db(transaction=True)
class RolledBackTests:
    """A write whose transaction rolls back takes no number and reaches no page."""

    class Boom(Exception):
        pass

    def rolled_back(self, action, **kwargs):
        with pytest.raises(self.Boom), transaction.atomic():
            action(**kwargs)
            raise self.Boom

    def test_rolled_back_changes_publish_nothing(self, room, alice):
        message = make_message(room=room, author=alice, text="kept")
        with recorded_events() as sent:
            self.rolled_back(message_post, room=room, author=alice, text="never")
            self.rolled_back(
                message_edit, room=room, user=alice, message_id=message.pk, text="nope"
            )
            self.rolled_back(message_delete, room=room, user=alice, message_id=message.pk)
            assert sent == []
            after = message_post(room=room, author=alice, text="committed")
        assert [(room_id, seq) for room_id, seq, _ in sent] == [(room.pk, 2)]
        assert "committed" in sent[0][2]
        assert fresh(message).text == "kept" and not fresh(message).is_deleted
        assert not Message.objects.filter(text="never").exists()
        assert after.seq == 2 and event_log(room) == [
            (1, "message.posted", message.pk),
            (2, "message.posted", after.message.pk),
        ]

    async def test_only_committed_changes_reach_the_channel_layer(self):
        """Through the real hub and Redis: the room's group gets the committed post only."""
        room = await database_sync_to_async(make_room)(name="Layer")
        alice = await database_sync_to_async(make_author)()
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(group_name(room.pk), channel)

        await database_sync_to_async(self.rolled_back)(
            message_post, room=room, author=alice, text="never"
        )
        done = await database_sync_to_async(message_post)(
            room=room, author=alice, text="over the layer"
        )

        async with asyncio.timeout(10):
            event = await layer.receive(channel)
        assert event["type"] == EVENT_TYPE
        assert (event["room"], event["seq"]) == (room.pk, done.seq) == (room.pk, 1)
        assert "over the layer" in event["html"] and "never" not in event["html"]
        await layer.group_discard(group_name(room.pk), channel)
