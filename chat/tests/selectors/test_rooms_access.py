"""chat/selectors/rooms.py: who may read a room (`readable_room`) and who may manage it
(`managed_room`), for every kind of person and room. A room one may not read is None,
exactly as a room that does not exist."""

import pytest
from django.contrib.auth.models import AnonymousUser

from chat.actions.memberships import (
    direct_open,
    member_add,
    member_remove,
    room_join,
    room_leave,
    room_open_or_create,
)
from chat.selectors.rooms import (
    managed_room,
    may_read,
    readable_room,
    readable_room_and_membership,
    rooms_of,
    title_for,
)
from chat.tests.factories import make_author

pytestmark = pytest.mark.django_db

PEOPLE = ["anonymous", "outsider", "member", "owner", "staff"]
KINDS = ["public", "private", "direct"]

READS = {
    "public": {"anonymous": False, "outsider": True, "member": True, "owner": True, "staff": True},
    # Staff manage a private room from its members page, but read it only once in it.
    "private": {
        "anonymous": False,
        "outsider": False,
        "member": True,
        "owner": True,
        "staff": False,
    },
    # "owner": whoever started the conversation (a member like the others).
    "direct": {
        "anonymous": False,
        "outsider": False,
        "member": True,
        "owner": True,
        "staff": False,
    },
}
MANAGES = {
    "public": {
        "anonymous": False,
        "outsider": False,
        "member": False,
        "owner": True,
        "staff": True,
    },
    "private": {
        "anonymous": False,
        "outsider": False,
        "member": False,
        "owner": True,
        "staff": True,
    },
    "direct": {
        "anonymous": False,
        "outsider": False,
        "member": False,
        "owner": False,
        "staff": False,
    },
}


@pytest.fixture(autouse=True)
def unlimited(settings):
    settings.CHAT_RATE_LIMIT = None


def make_staff():
    staff = make_author(username="staff")  # no password: no second of hashing
    staff.is_staff = True
    staff.save(update_fields=["is_staff"])
    return staff


@pytest.fixture
def world():
    """The three kinds of room, each with its owner and a member, and everyone else."""
    owner, member = make_author(username="owner"), make_author(username="member")
    people = {
        "anonymous": AnonymousUser(),
        "outsider": make_author(username="outsider"),
        "member": member,
        "owner": owner,
        "staff": make_staff(),
    }
    public, _ = room_open_or_create(user=owner, name="Town square")
    room_join(room=public, user=member)
    private, _ = room_open_or_create(user=owner, name="Back room", private=True)
    member_add(room=private, by=owner, username="member")
    direct, _ = direct_open(user=owner, usernames=["member"])
    return people, {"public": public, "private": private, "direct": direct}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("person", PEOPLE)
def test_readable_room(world, person, kind):
    people, rooms = world
    room = rooms[kind]
    expected = room if READS[kind][person] else None
    assert readable_room(people[person], room.slug) == expected
    if person != "anonymous":
        assert may_read(people[person], room) is READS[kind][person]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("person", PEOPLE)
def test_a_sockets_one_query_decides_as_readable_room(
    world, person, kind, django_assert_max_num_queries
):
    people, rooms = world
    room = rooms[kind]
    with django_assert_max_num_queries(1):
        found, member = readable_room_and_membership(people[person], room.slug)
    assert found == (room if READS[kind][person] else None)
    assert member is (person in ("member", "owner"))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("person", PEOPLE)
def test_managed_room(world, person, kind):
    people, rooms = world
    room = rooms[kind]
    expected = room if MANAGES[kind][person] else None
    assert managed_room(people[person], room.slug) == expected


@pytest.mark.parametrize("person", PEOPLE)
def test_a_slug_nobody_uses_is_none_for_everyone(world, person):
    people, _ = world
    assert readable_room(people[person], "no-such-room") is None
    assert managed_room(people[person], "no-such-room") is None


def test_staff_in_a_private_room_read_it(world):
    people, rooms = world
    member_add(room=rooms["private"], by=people["owner"], username="staff")
    assert readable_room(people["staff"], rooms["private"].slug) == rooms["private"]


def test_a_removed_member_reads_no_more(world):
    people, rooms = world
    private = rooms["private"]
    member_remove(room=private, by=people["owner"], user_id=people["member"].pk)
    assert readable_room(people["member"], private.slug) is None
    assert not may_read(people["member"], private)


def test_leaving_a_private_room_ends_reading_it(world):
    people, rooms = world
    room_leave(room=rooms["private"], user=people["member"])
    assert readable_room(people["member"], rooms["private"].slug) is None


def test_readable_room_with_many_members_is_one_room(world):
    # The membership join must not multiply the room.
    people, rooms = world
    for n in range(3):
        room_join(room=rooms["public"], user=make_author(username=f"extra{n}"))
    assert readable_room(people["member"], rooms["public"].slug) == rooms["public"]


class RoomsOfTests:
    def test_the_sidebar_lists_ones_rooms_only(self, world):
        people, rooms = world
        assert {room.pk for room in rooms_of(people["member"])} == {
            room.pk for room in rooms.values()
        }
        assert rooms_of(people["outsider"]) == []
        assert rooms_of(people["staff"]) == []

    def test_a_direct_conversation_is_named_after_the_others(self, world):
        people, rooms = world
        titles = {room.pk: room.title for room in rooms_of(people["member"])}
        assert titles[rooms["direct"].pk] == "owner"
        assert titles[rooms["private"].pk] == "Back room"
        assert title_for(rooms["direct"], people["owner"]) == "member"
