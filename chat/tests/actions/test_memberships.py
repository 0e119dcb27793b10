"""chat/actions/memberships.py: creating rooms, joining, leaving, inviting, removing,
renaming, archiving, direct conversations and what notifies whom.

Every change is a room line (a `Message` of its kind) numbered as the room's next event;
every refusal is a ValidationError with a code, and changes nothing at all: no
membership, no line, no event, no number taken, nothing published.
"""

import re

import pytest
from django.core.exceptions import ValidationError

from chat import events
from chat.actions.memberships import (
    DIRECT_MAX_PEOPLE,
    direct_open,
    may_post,
    member_add,
    member_remove,
    notify_set,
    room_archive,
    room_join,
    room_leave,
    room_open_or_create,
    room_rename,
)
from chat.actions.messages import message_post
from chat.models import Membership, Message, Room, RoomEvent
from chat.selectors.rooms import readable_room
from chat.tests.factories import make_author, make_message

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def unlimited(settings):
    settings.CHAT_RATE_LIMIT = None  # many changes by one person in a few seconds


@pytest.fixture
def carol():
    return make_author(username="carol")


@pytest.fixture
def staff():
    staff = make_author(username="staffer")  # no password: no second of hashing
    staff.is_staff = True
    staff.save(update_fields=["is_staff"])
    return staff


# --- helpers (also used by the selector and view tests of issue 11) ---


def make_private(*, owner, name="Secret plans"):
    room, created = room_open_or_create(user=owner, name=name, private=True)
    assert created
    return room


def make_public(*, owner, name="Open house"):
    room, _ = room_open_or_create(user=owner, name=name)
    return room


def make_direct(*, user, others):
    room, _ = direct_open(user=user, usernames=[person.username for person in others])
    return room


def add(room, owner, *people):
    for person in people:
        member_add(room=room, by=owner, username=person.username)


def deactivate(user):
    user.is_active = False
    user.save(update_fields=["is_active"])
    return user


def members_of(room):
    """{username: role} of the room's members."""
    return dict(Membership.objects.filter(room=room).values_list("user__username", "role"))


def lines(room):
    """The room's messages: [(seq, kind, author, subject, text)], oldest first."""
    return [
        (m.seq, m.kind, m.author.username, m.subject.username if m.subject else None, m.text)
        for m in Message.objects.filter(room=room).select_related("author", "subject")
    ]


def event_log(room):
    return list(RoomEvent.objects.filter(room=room).values_list("seq", "kind", "message__kind"))


def snapshot(room, *, everywhere=True):
    """Everything a refused change must leave as it was in this room (and, unless told
    otherwise, the number of rooms, memberships, messages and events everywhere)."""
    fresh = Room.objects.get(pk=room.pk)
    state = {
        "room": (fresh.name, fresh.slug, fresh.kind, fresh.archived_at, fresh.last_seq),
        "members": sorted(
            Membership.objects.filter(room=room).values_list(
                "user_id", "role", "last_read_seq", "notify"
            )
        ),
        "lines": lines(room),
        "events": event_log(room),
    }
    if everywhere:
        state["everywhere"] = (
            Room.objects.count(),
            Membership.objects.count(),
            Message.objects.count(),
            RoomEvent.objects.count(),
        )
    return state


@pytest.fixture
def refused(django_capture_on_commit_callbacks):
    """refused(code, action, room=..., **kwargs): the action raises ValidationError with
    `code`, and nothing changed in `room` (or anywhere), nothing was published."""

    def check(code, action, *, room, **kwargs):
        before = snapshot(room)
        with (
            django_capture_on_commit_callbacks() as published,
            pytest.raises(ValidationError) as raised,
        ):
            action(room=room, **kwargs)
        assert raised.value.code == code, raised.value
        assert raised.value.messages and all(raised.value.messages)  # a readable message
        assert snapshot(room) == before
        assert published == []
        return raised.value

    return check


# --- creating and opening rooms ---


class RoomOpenOrCreateTests:
    def test_a_new_public_room_is_owned_by_its_creator(self, alice):
        room, created = room_open_or_create(user=alice, name="  Tea   Time ")
        assert created
        assert (room.name, room.slug, room.kind, room.created_by) == (
            "Tea Time",
            "tea-time",
            Room.PUBLIC,
            alice,
        )
        assert members_of(room) == {"alice": Membership.OWNER}
        # It starts empty: no line, as nobody else is there yet.
        assert lines(room) == [] and event_log(room) == []
        assert Room.objects.get(pk=room.pk).last_seq == 0

    def test_opening_an_existing_public_room_joins_it_as_a_member(self, alice, bob):
        room, _ = room_open_or_create(user=alice, name="Tea Time")
        again, created = room_open_or_create(user=bob, name="tea time")
        assert again == room and not created
        assert members_of(room) == {"alice": Membership.OWNER, "bob": Membership.MEMBER}
        assert lines(room) == [(1, Message.JOINED, "bob", None, "")]
        assert event_log(room) == [(1, events.MEMBER_JOINED.name, Message.JOINED)]

    def test_opening_it_again_as_a_member_changes_nothing(self, alice, bob):
        room, _ = room_open_or_create(user=alice, name="Tea Time")
        room_open_or_create(user=bob, name="Tea Time")
        before = snapshot(room)
        assert room_open_or_create(user=bob, name="Tea Time") == (room, False)
        assert snapshot(room) == before

    def test_a_private_room_gets_a_random_tail_and_its_creator_owns_it(self, alice):
        first, created = room_open_or_create(user=alice, name="Secret", private=True)
        second, _ = room_open_or_create(user=alice, name="Secret", private=True)
        assert created and first != second
        for room in (first, second):
            assert re.fullmatch(r"secret-[0-9a-f]{6}", room.slug), room.slug
            assert (room.name, room.kind) == ("Secret", Room.PRIVATE)
            assert members_of(room) == {"alice": Membership.OWNER}
            assert lines(room) == []
        assert first.slug != second.slug

    def test_a_public_room_named_like_a_private_one_is_another_room(self, alice, bob):
        private = make_private(owner=alice, name="Secret")
        before = snapshot(private, everywhere=False)
        public, created = room_open_or_create(user=bob, name="Secret")
        assert created and public != private
        assert (public.slug, public.kind) == ("secret", Room.PUBLIC)
        assert members_of(public) == {"bob": Membership.OWNER}
        assert snapshot(private, everywhere=False) == before
        assert readable_room(bob, private.slug) is None

    @pytest.mark.parametrize("kind", ["private", "direct"])
    def test_naming_a_public_room_after_a_hidden_rooms_address_reveals_nothing(
        self, alice, bob, carol, kind
    ):
        """Someone who learnt a private room's address (a former member, a shared link)
        types it in the lobby: the answer must be the one an unused address gets (a new
        public room), not an error that confirms the room exists."""
        if kind == "private":
            hidden = make_private(owner=alice, name="Secret")
            unused = re.sub(r"[0-9a-f]{6}$", "000000", hidden.slug)
            if unused == hidden.slug:
                unused = re.sub(r"[0-9a-f]{6}$", "111111", hidden.slug)
        else:
            hidden = make_direct(user=alice, others=[carol])
            unused = "dm-" + ("0" * 12 if hidden.slug != "dm-" + "0" * 12 else "1" * 12)
        before = snapshot(hidden, everywhere=False)
        as_unused, unused_created = room_open_or_create(user=bob, name=unused)
        assert unused_created and as_unused.kind == Room.PUBLIC
        as_hidden, hidden_created = room_open_or_create(user=bob, name=hidden.slug)
        assert hidden_created and as_hidden.kind == Room.PUBLIC
        assert as_hidden != hidden
        assert snapshot(hidden, everywhere=False) == before

    @pytest.mark.parametrize("private", [False, True])
    @pytest.mark.parametrize(
        ("name", "code"),
        [("", "blank"), ("  \t", "blank"), ("x" * 81, "too_long"), ("!!!", "unusable")],
    )
    def test_unusable_names_are_refused_and_create_nothing(self, alice, name, code, private):
        with pytest.raises(ValidationError) as raised:
            room_open_or_create(user=alice, name=name, private=private)
        assert raised.value.code == code
        assert not Room.objects.exists() and not Membership.objects.exists()


# --- joining and leaving ---


class RoomJoinTests:
    def test_joining_a_public_room_adds_a_member_and_a_joined_line(self, alice, bob):
        room = make_public(owner=alice)
        make_message(room=room, author=alice, text="before bob")
        seq_before = Room.objects.get(pk=room.pk).last_seq
        room.refresh_from_db()
        done = room_join(room=room, user=bob)
        assert done.changed and done.seq == seq_before + 1
        assert done.message.kind == Message.JOINED and done.message.author == bob
        membership = Membership.objects.get(room=room, user=bob)
        assert membership.role == Membership.MEMBER
        # What was said before joining is not unread.
        assert membership.last_read_seq == seq_before
        assert lines(room)[-1] == (seq_before + 1, Message.JOINED, "bob", None, "")
        assert event_log(room)[-1] == (seq_before + 1, events.MEMBER_JOINED.name, "joined")

    def test_joining_twice_is_one_join(self, alice, bob, django_capture_on_commit_callbacks):
        room = make_public(owner=alice)
        room_join(room=room, user=bob)
        before = snapshot(room)
        with django_capture_on_commit_callbacks() as published:
            done = room_join(room=room, user=bob)
        assert not done.changed and done.message is None
        assert snapshot(room) == before
        assert published == []

    def test_joining_as_the_owner_changes_nothing(self, alice):
        room = make_public(owner=alice)
        before = snapshot(room)
        assert not room_join(room=room, user=alice).changed
        assert snapshot(room) == before

    def test_a_private_room_cannot_be_joined(self, alice, bob, refused):
        room = make_private(owner=alice)
        refused("forbidden", room_join, room=room, user=bob)

    def test_a_direct_conversation_cannot_be_joined(self, alice, bob, carol, refused):
        room = make_direct(user=alice, others=[bob])
        refused("forbidden", room_join, room=room, user=carol)

    def test_an_archived_room_cannot_be_joined(self, alice, bob, refused):
        room = make_public(owner=alice)
        room_archive(room=room, by=alice)
        refused("archived", room_join, room=room, user=bob)


class RoomLeaveTests:
    @pytest.mark.parametrize("kind", ["public", "private"])
    def test_leaving_removes_the_membership_with_a_left_line(self, alice, bob, kind):
        if kind == "public":
            room = make_public(owner=alice)
            room_join(room=room, user=bob)
        else:
            room = make_private(owner=alice)
            add(room, alice, bob)
        seq = Room.objects.get(pk=room.pk).last_seq
        done = room_leave(room=room, user=bob)
        assert done.changed and done.seq == seq + 1
        assert "bob" not in members_of(room)
        assert lines(room)[-1] == (seq + 1, Message.LEFT, "bob", None, "")
        assert event_log(room)[-1] == (seq + 1, events.MEMBER_LEFT.name, "left")

    def test_leaving_then_joining_again(self, alice, bob):
        room = make_public(owner=alice)
        room_join(room=room, user=bob)
        room_leave(room=room, user=bob)
        assert room_join(room=room, user=bob).changed
        assert [(kind, who) for _, kind, who, *_ in lines(room)] == [
            ("joined", "bob"),
            ("left", "bob"),
            ("joined", "bob"),
        ]

    def test_a_direct_conversation_cannot_be_left(self, alice, bob, refused):
        room = make_direct(user=alice, others=[bob])
        refused("direct", room_leave, room=room, user=bob)

    def test_leaving_a_room_one_is_not_in_changes_nothing(self, alice, bob, refused):
        room = make_public(owner=alice)
        refused("not_member", room_leave, room=room, user=bob)

    def test_leaving_twice_is_refused_the_second_time(self, alice, bob, refused):
        room = make_public(owner=alice)
        room_join(room=room, user=bob)
        room_leave(room=room, user=bob)
        refused("not_member", room_leave, room=room, user=bob)


# --- owners invite and remove ---


class MemberAddTests:
    def test_the_owner_adds_someone_with_an_added_line(self, alice, bob):
        room = make_private(owner=alice)
        seq = Room.objects.get(pk=room.pk).last_seq
        done = member_add(room=room, by=alice, username="bob")
        assert done.changed and done.seq == seq + 1
        assert members_of(room) == {"alice": Membership.OWNER, "bob": Membership.MEMBER}
        assert lines(room)[-1] == (seq + 1, Message.ADDED, "alice", "bob", "")
        assert event_log(room)[-1] == (seq + 1, events.MEMBER_ADDED.name, "added")
        assert readable_room(bob, room.slug) == room

    def test_a_typed_at_sign_and_spaces_are_forgiven(self, alice, bob):
        room = make_private(owner=alice)
        member_add(room=room, by=alice, username="  @bob ")
        assert "bob" in members_of(room)

    def test_staff_add_people_to_a_room_they_are_not_in(self, alice, bob, staff):
        room = make_private(owner=alice)
        member_add(room=room, by=staff, username="bob")
        assert members_of(room) == {"alice": Membership.OWNER, "bob": Membership.MEMBER}
        assert lines(room)[-1][1:4] == (Message.ADDED, "staffer", "bob")

    def test_an_added_member_may_add_no_one(self, alice, bob, carol, refused):
        room = make_private(owner=alice)
        add(room, alice, bob)
        refused("forbidden", member_add, room=room, by=bob, username="carol")

    def test_a_non_member_may_add_no_one(self, alice, bob, carol, refused):
        room = make_private(owner=alice)
        refused("forbidden", member_add, room=room, by=bob, username="carol")
        refused("forbidden", member_add, room=room, by=bob, username="bob")

    def test_an_unknown_user_is_refused(self, alice, refused):
        room = make_private(owner=alice)
        error = refused("unknown_user", member_add, room=room, by=alice, username="nobody")
        assert "nobody" in error.messages[0]
        refused("unknown_user", member_add, room=room, by=alice, username="")

    def test_a_deactivated_user_is_refused_as_unknown(self, alice, bob, refused):
        room = make_private(owner=alice)
        deactivate(bob)
        refused("unknown_user", member_add, room=room, by=alice, username="bob")

    def test_someone_already_in_is_refused(self, alice, bob, refused):
        room = make_private(owner=alice)
        add(room, alice, bob)
        refused("already_member", member_add, room=room, by=alice, username="bob")
        refused("already_member", member_add, room=room, by=alice, username="alice")

    def test_nobody_is_invited_to_a_public_room(self, alice, bob, staff, refused):
        room = make_public(owner=alice)
        refused("public", member_add, room=room, by=alice, username="bob")
        refused("public", member_add, room=room, by=staff, username="bob")

    def test_nobody_is_added_to_a_direct_conversation_not_even_by_staff(
        self, alice, bob, carol, staff, refused
    ):
        room = make_direct(user=alice, others=[bob])
        refused("forbidden", member_add, room=room, by=alice, username="carol")
        refused("forbidden", member_add, room=room, by=staff, username="carol")

    def test_nobody_is_added_to_an_archived_room(self, alice, bob, refused):
        room = make_private(owner=alice)
        room_archive(room=room, by=alice)
        refused("archived", member_add, room=room, by=alice, username="bob")


class MemberRemoveTests:
    def test_the_owner_removes_someone_with_a_removed_line(self, alice, bob):
        room = make_private(owner=alice)
        add(room, alice, bob)
        seq = Room.objects.get(pk=room.pk).last_seq
        done = member_remove(room=room, by=alice, user_id=bob.pk)
        assert done.changed and done.seq == seq + 1
        assert members_of(room) == {"alice": Membership.OWNER}
        assert lines(room)[-1] == (seq + 1, Message.REMOVED, "alice", "bob", "")
        assert event_log(room)[-1] == (seq + 1, events.MEMBER_REMOVED.name, "removed")
        assert readable_room(bob, room.slug) is None

    def test_staff_remove_people(self, alice, bob, staff):
        room = make_private(owner=alice)
        add(room, alice, bob)
        member_remove(room=room, by=staff, user_id=bob.pk)
        assert members_of(room) == {"alice": Membership.OWNER}

    def test_a_member_may_remove_no_one(self, alice, bob, carol, refused):
        room = make_private(owner=alice)
        add(room, alice, bob, carol)
        refused("forbidden", member_remove, room=room, by=bob, user_id=carol.pk)
        refused("forbidden", member_remove, room=room, by=bob, user_id=alice.pk)

    def test_a_non_member_may_remove_no_one(self, alice, bob, carol, refused):
        room = make_private(owner=alice)
        add(room, alice, carol)
        refused("forbidden", member_remove, room=room, by=bob, user_id=carol.pk)

    def test_someone_not_in_the_room_cannot_be_removed(self, alice, bob, refused):
        room = make_private(owner=alice)
        refused("not_member", member_remove, room=room, by=alice, user_id=bob.pk)
        refused("not_member", member_remove, room=room, by=alice, user_id=10**9)

    def test_someone_removed_can_be_added_again(self, alice, bob):
        room = make_private(owner=alice)
        add(room, alice, bob)
        member_remove(room=room, by=alice, user_id=bob.pk)
        assert member_add(room=room, by=alice, username="bob").changed
        assert members_of(room)["bob"] == Membership.MEMBER
        assert [kind for _, kind, *_ in lines(room)] == ["added", "removed", "added"]

    def test_removing_twice_is_refused_the_second_time(self, alice, bob, refused):
        room = make_private(owner=alice)
        add(room, alice, bob)
        member_remove(room=room, by=alice, user_id=bob.pk)
        refused("not_member", member_remove, room=room, by=alice, user_id=bob.pk)

    def test_nobody_is_removed_from_a_public_room(self, alice, bob, staff, refused):
        room = make_public(owner=alice)
        room_join(room=room, user=bob)
        refused("public", member_remove, room=room, by=alice, user_id=bob.pk)
        refused("public", member_remove, room=room, by=staff, user_id=bob.pk)

    def test_nobody_is_removed_from_a_direct_conversation(self, alice, bob, staff, refused):
        room = make_direct(user=alice, others=[bob])
        refused("forbidden", member_remove, room=room, by=alice, user_id=bob.pk)
        refused("forbidden", member_remove, room=room, by=staff, user_id=bob.pk)


# --- renaming and archiving ---


class RoomRenameTests:
    def test_the_owner_renames_with_a_renamed_line(self, alice):
        room = make_private(owner=alice, name="Old name")
        slug = room.slug
        seq = Room.objects.get(pk=room.pk).last_seq
        done = room_rename(room=room, by=alice, name="  New   name ")
        assert done.changed and done.seq == seq + 1
        fresh = Room.objects.get(pk=room.pk)
        assert (fresh.name, fresh.slug) == ("New name", slug)  # the address stays
        assert lines(room)[-1] == (seq + 1, Message.RENAMED, "alice", None, "New name")
        assert event_log(room)[-1] == (seq + 1, events.ROOM_RENAMED.name, "renamed")

    def test_staff_rename(self, alice, staff):
        room = make_public(owner=alice, name="Old name")
        room_rename(room=room, by=staff, name="New name")
        assert Room.objects.get(pk=room.pk).name == "New name"

    def test_the_same_name_changes_nothing(self, alice):
        room = make_private(owner=alice, name="Same")
        before = snapshot(room)
        assert not room_rename(room=room, by=alice, name=" Same ").changed
        assert snapshot(room) == before

    def test_a_member_may_not_rename(self, alice, bob, refused):
        room = make_private(owner=alice)
        add(room, alice, bob)
        refused("forbidden", room_rename, room=room, by=bob, name="Mine now")

    def test_a_public_rooms_visitor_may_not_rename(self, alice, bob, refused):
        room = make_public(owner=alice)
        room_join(room=room, user=bob)
        refused("forbidden", room_rename, room=room, by=bob, name="Mine now")

    def test_a_direct_conversation_is_not_renamed(self, alice, bob, refused):
        room = make_direct(user=alice, others=[bob])
        refused("forbidden", room_rename, room=room, by=alice, name="Us")

    @pytest.mark.parametrize(("name", "code"), [("", "blank"), ("x" * 81, "too_long")])
    def test_bad_names_are_refused(self, alice, refused, name, code):
        room = make_private(owner=alice)
        refused(code, room_rename, room=room, by=alice, name=name)

    def test_an_archived_room_is_not_renamed(self, alice, refused):
        room = make_private(owner=alice)
        room_archive(room=room, by=alice)
        refused("archived", room_rename, room=room, by=alice, name="Other")


class RoomArchiveTests:
    def test_archiving_makes_the_room_read_only(self, alice, bob, refused):
        room = make_private(owner=alice)
        add(room, alice, bob)
        seq = Room.objects.get(pk=room.pk).last_seq
        done = room_archive(room=room, by=alice)
        assert done.changed and done.seq == seq + 1
        assert Room.objects.get(pk=room.pk).archived_at is not None
        assert lines(room)[-1] == (seq + 1, Message.ARCHIVED, "alice", None, "")
        assert event_log(room)[-1] == (seq + 1, events.ROOM_ARCHIVED.name, "archived")
        room = Room.objects.get(pk=room.pk)
        for author in (alice, bob):
            refused("archived", message_post, room=room, author=author, text="still here?")

    def test_may_post_says_archived(self, alice):
        room = make_public(owner=alice)
        room_archive(room=room, by=alice)
        with pytest.raises(ValidationError) as raised:
            may_post(room, alice)
        assert raised.value.code == "archived"

    def test_bringing_it_back_allows_posting_again(self, alice):
        room = make_private(owner=alice)
        room_archive(room=room, by=alice)
        done = room_archive(room=room, by=alice, archived=False)
        assert done.changed and Room.objects.get(pk=room.pk).archived_at is None
        assert lines(room)[-1][1] == Message.UNARCHIVED
        assert event_log(room)[-1][1] == events.ROOM_UNARCHIVED.name
        room = Room.objects.get(pk=room.pk)
        assert message_post(room=room, author=alice, text="back").changed

    def test_archiving_twice_is_one_change(self, alice):
        room = make_private(owner=alice)
        room_archive(room=room, by=alice)
        before = snapshot(room)
        assert not room_archive(room=room, by=alice).changed
        assert snapshot(room) == before

    def test_a_member_may_not_archive(self, alice, bob, refused):
        room = make_private(owner=alice)
        add(room, alice, bob)
        refused("forbidden", room_archive, room=room, by=bob)

    def test_a_direct_conversation_is_not_archived(self, alice, bob, refused):
        room = make_direct(user=alice, others=[bob])
        refused("forbidden", room_archive, room=room, by=alice)


# --- posting needs membership where the room is not public ---


class MayPostTests:
    def test_a_non_member_cannot_post_in_a_private_room(self, alice, bob, refused):
        room = make_private(owner=alice)
        refused("not_found", message_post, room=room, author=bob, text="let me in")

    def test_a_removed_member_cannot_post(self, alice, bob, refused):
        room = make_private(owner=alice)
        add(room, alice, bob)
        assert message_post(room=room, author=bob, text="hi").changed
        member_remove(room=room, by=alice, user_id=bob.pk)
        refused("not_found", message_post, room=room, author=bob, text="still here")

    def test_an_outsider_cannot_post_in_a_direct_conversation(self, alice, bob, carol, refused):
        room = make_direct(user=alice, others=[bob])
        refused("not_found", message_post, room=room, author=carol, text="hello both")

    def test_anyone_signed_in_posts_in_a_public_room(self, alice, bob):
        room = make_public(owner=alice)
        may_post(room, bob)  # no error
        assert message_post(room=room, author=bob, text="hi").changed


# --- direct conversations ---


class DirectOpenTests:
    def test_a_conversation_between_two_people(self, alice, bob):
        room, created = direct_open(user=alice, usernames=["bob"])
        assert created
        assert room.kind == Room.DIRECT
        assert re.fullmatch(r"dm-[0-9a-f]{12}", room.slug), room.slug
        assert room.direct_key == "-".join(str(pk) for pk in sorted([alice.pk, bob.pk]))
        assert members_of(room) == {"alice": Membership.MEMBER, "bob": Membership.MEMBER}
        assert readable_room(bob, room.slug) == room

    def test_the_same_people_in_any_order_get_the_same_conversation(self, alice, bob, carol):
        room, created = direct_open(user=alice, usernames=["bob", "carol"])
        assert created
        for user, names in [
            (alice, ["carol", "bob"]),
            (carol, ["bob", "alice"]),
            (bob, ["@alice", " carol ", "alice"]),
            (bob, ["alice", "carol", "bob"]),  # oneself among the names
        ]:
            assert direct_open(user=user, usernames=names) == (room, False)
        assert Room.objects.filter(kind=Room.DIRECT).count() == 1

    def test_another_set_of_people_is_another_conversation(self, alice, bob, carol):
        two = make_direct(user=alice, others=[bob])
        three = make_direct(user=alice, others=[bob, carol])
        other_two = make_direct(user=bob, others=[carol])
        assert len({two.pk, three.pk, other_two.pk}) == 3

    def test_eight_people_in_all_is_the_most(self, alice):
        others = [make_author(username=f"friend{n}") for n in range(DIRECT_MAX_PEOPLE - 1)]
        room, created = direct_open(user=alice, usernames=[p.username for p in others])
        assert created and len(members_of(room)) == DIRECT_MAX_PEOPLE == 8

    @pytest.mark.parametrize("count", [DIRECT_MAX_PEOPLE, 50])
    def test_more_than_eight_people_is_refused(self, alice, count):
        others = [make_author(username=f"friend{n}") for n in range(count)]
        with pytest.raises(ValidationError) as raised:
            direct_open(user=alice, usernames=[p.username for p in others])
        assert raised.value.code == "too_many"
        assert not Room.objects.filter(kind=Room.DIRECT).exists()
        assert not Membership.objects.exists()

    @pytest.mark.parametrize(
        ("names", "code"),
        [
            (["alice"], "self"),
            (["@alice", "alice "], "self"),
            ([], "blank"),
            (["", "  "], "blank"),
            (["nobody"], "unknown_user"),
            (["bob", "nobody"], "unknown_user"),
        ],
    )
    def test_refusals_create_nothing(self, alice, bob, names, code):
        with pytest.raises(ValidationError) as raised:
            direct_open(user=alice, usernames=names)
        assert raised.value.code == code
        assert not Room.objects.exists() and not Membership.objects.exists()

    def test_a_deactivated_person_cannot_be_written_to(self, alice, bob):
        deactivate(bob)
        with pytest.raises(ValidationError) as raised:
            direct_open(user=alice, usernames=["bob"])
        assert raised.value.code == "unknown_user"
        assert not Room.objects.exists()


# --- what notifies me ---


class NotifySetTests:
    @pytest.mark.parametrize("notify", ["mentions", "none", "all"])
    def test_a_member_chooses(self, alice, bob, notify):
        room = make_public(owner=alice)
        room_join(room=room, user=bob)
        notify_set(room=room, user=bob, notify=notify)
        assert Membership.objects.get(room=room, user=bob).notify == notify
        assert Membership.objects.get(room=room, user=alice).notify == Membership.NOTIFY_ALL

    @pytest.mark.parametrize("notify", ["loud", "", None, "ALL", " all"])
    def test_other_values_are_refused(self, alice, refused, notify):
        room = make_public(owner=alice)
        refused("notify", notify_set, room=room, user=alice, notify=notify)

    def test_a_non_member_is_refused(self, alice, bob, refused):
        room = make_public(owner=alice)
        refused("not_member", notify_set, room=room, user=bob, notify="none")
