"""chat/views/memberships.py: the members page (owners add by username, remove with a
"Remove <name>" button, rename, archive), joining, leaving, what notifies me, and direct
conversations (`/dm/<username>/`, the "New message" form). Every refusal is said on the
page (role=alert) with a 4xx status, and changes nothing."""

import re

import pytest

from chat.actions.memberships import (
    direct_open,
    member_add,
    room_join,
    room_open_or_create,
)
from chat.actions.messages import message_post
from chat.models import Membership, Message, Profile, Room, RoomEvent
from chat.tests.factories import make_author
from chat.tests.test_security import parse_html

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def unlimited(settings):
    settings.CHAT_RATE_LIMIT = None


@pytest.fixture
def carol():
    return make_author(username="carol")


@pytest.fixture
def private(alice, bob):
    room, _ = room_open_or_create(user=alice, name="Back room", private=True)
    member_add(room=room, by=alice, username="bob")
    return Room.objects.get(pk=room.pk)


@pytest.fixture
def public(alice):
    room, _ = room_open_or_create(user=alice, name="Town square")
    return room


def as_user(client, user):
    client.force_login(user)
    return client


def members_url(room):
    return f"/chat/{room.slug}/members/"


def members_of(room):
    return dict(Membership.objects.filter(room=room).values_list("user__username", "role"))


def state():
    return (
        sorted(Membership.objects.values_list("room_id", "user_id", "role", "notify")),
        sorted(Message.objects.values_list("pk", "room_id", "kind", "text")),
        RoomEvent.objects.count(),
        sorted(Room.objects.values_list("pk", "name", "slug", "archived_at", "last_seq")),
    )


def alert(response):
    """The text of the page's role=alert elements that say something."""
    tree = parse_html(response.content.decode())
    texts = [
        " ".join(node.text().split())
        for node in tree.find_all(lambda n: n.attrs.get("role") == "alert")
    ]
    return " ".join(text for text in texts if text)


def notice(response):
    """The room page's notice (#notice, role=alert): what the last form said."""
    node = parse_html(response.content.decode()).by_id("notice")
    assert node is not None, "no #notice in the page"
    return " ".join(node.text().split())


def buttons(response):
    """{visible text: (name, value)} of the page's buttons."""
    tree = parse_html(response.content.decode())
    return {
        " ".join(node.text().split()): (node.attrs.get("name"), node.attrs.get("value"))
        for node in tree.find_all(lambda n: n.tag == "button")
    }


def field_names(response):
    tree = parse_html(response.content.decode())
    return {
        node.attrs.get("name") for node in tree.find_all(lambda n: n.tag in ("input", "select"))
    }


def listed_members(response):
    tree = parse_html(response.content.decode())
    [listing] = tree.find_all(lambda n: n.tag == "ul" and n.attrs.get("aria-label") == "Members")
    return [
        " ".join(a.text().split()) for a in listing.find_all(lambda n: n.tag == "a" and n.text())
    ]


# --- the members page ---


class MembersPageTests:
    def test_lists_the_members_owners_first(self, client, alice, bob, private):
        response = as_user(client, bob).get(members_url(private))
        assert response.status_code == 200
        assert listed_members(response) == ["alice", "bob"]

    def test_the_owner_gets_the_add_field_and_a_remove_button_per_other_member(
        self, client, alice, bob, carol, private
    ):
        member_add(room=private, by=alice, username="carol")
        response = as_user(client, alice).get(members_url(private))
        assert response.status_code == 200
        assert "username" in field_names(response)
        found = buttons(response)
        assert found["Remove bob"] == ("remove", str(bob.pk))
        assert found["Remove carol"] == ("remove", str(carol.pk))
        assert "Remove alice" not in found

    def test_a_private_room_says_it_is_private(self, client, alice, bob, private):
        as_user(client, bob)
        members_page = client.get(members_url(private)).content.decode()
        assert "A private room" in members_page and "A public room" not in members_page
        room_page = parse_html(client.get(private.get_absolute_url()).content.decode())
        kinds = room_page.find_all(lambda n: "room-kind" in n.classes)
        assert [" ".join(node.text().split()) for node in kinds] == ["Private"]

    def test_a_member_gets_no_controls(self, client, bob, private):
        response = as_user(client, bob).get(members_url(private))
        assert "username" not in field_names(response)
        assert not [text for text in buttons(response) if text.startswith("Remove")]

    def test_the_owner_adds_someone_by_username(self, client, alice, carol, private):
        response = as_user(client, alice).post(members_url(private), {"username": "carol"})
        assert response.status_code == 302 and response["Location"] == members_url(private)
        assert members_of(private)["carol"] == Membership.MEMBER
        line = Message.objects.filter(room=private).last()
        assert (line.kind, line.author, line.subject) == (Message.ADDED, alice, carol)
        assert "carol" in listed_members(client.get(members_url(private)))

    def test_the_owner_removes_someone_with_their_button(self, client, alice, bob, private):
        page = as_user(client, alice).get(members_url(private))
        name, value = buttons(page)["Remove bob"]
        response = client.post(members_url(private), {name: value})
        assert response.status_code == 302
        assert "bob" not in members_of(private)
        line = Message.objects.filter(room=private).last()
        assert (line.kind, line.subject) == (Message.REMOVED, bob)
        assert client.get(members_url(private)).status_code == 200
        assert as_user(client, bob).get(private.get_absolute_url()).status_code == 404

    def test_a_removed_persons_display_name_is_on_the_button(self, client, alice, bob, private):
        Profile.objects.create(user=bob, display_name="Bobby Tables")
        page = as_user(client, alice).get(members_url(private))
        assert buttons(page)["Remove Bobby Tables"] == ("remove", str(bob.pk))

    @pytest.mark.parametrize(
        ("data", "status", "says"),
        [
            ({"username": "nobody"}, 400, "nobody"),
            ({"username": "bob"}, 400, "already in this room"),
            ({"username": ""}, 400, "Nobody is called"),
            ({"username": "ghost"}, 400, "Nobody is called"),
            ({"remove": "999999"}, 400, "not in this room"),
            ({"remove": "not-a-number"}, 400, "not in this room"),
            ({"rename": "1", "name": "   "}, 400, "name"),
            ({"rename": "1", "name": "x" * 81}, 400, "at most 80"),
        ],
        ids=[
            "unknown user",
            "already member",
            "blank username",
            "deactivated user",
            "remove a stranger",
            "remove garbage",
            "blank name",
            "long name",
        ],
    )
    def test_the_owners_mistakes_are_said_and_change_nothing(
        self, client, alice, private, data, status, says
    ):
        ghost = make_author(username="ghost")
        ghost.is_active = False
        ghost.save(update_fields=["is_active"])
        before = state()
        response = as_user(client, alice).post(members_url(private), data)
        assert response.status_code == status
        assert says in alert(response)
        assert state() == before

    @pytest.mark.parametrize("username", ["nobody", "bob"])
    def test_what_the_owner_typed_is_kept_after_a_mistake(self, client, alice, private, username):
        response = as_user(client, alice).post(members_url(private), {"username": username})
        assert response.status_code == 400
        field = parse_html(response.content.decode()).by_id("id_username")
        assert field is not None, "no username field on the page"
        assert field.attrs.get("value") == username
        assert field.attrs.get("aria-invalid") == "true"

    @pytest.mark.parametrize(
        "data",
        [
            {"username": "carol"},
            {"remove": "ALICE"},
            {"rename": "1", "name": "Mine now"},
            {"archive": "on"},
        ],
        ids=["add", "remove", "rename", "archive"],
    )
    def test_a_member_is_forbidden_and_nothing_changes(
        self, client, alice, bob, carol, private, data
    ):
        data = {key: str(alice.pk) if value == "ALICE" else value for key, value in data.items()}
        before = state()
        response = as_user(client, bob).post(members_url(private), data)
        assert response.status_code == 403
        assert "owners" in alert(response)
        assert state() == before

    def test_a_public_rooms_visitor_is_forbidden_too(self, client, bob, public):
        before = state()
        response = as_user(client, bob).post(members_url(public), {"archive": "on"})
        assert response.status_code == 403
        assert state() == before

    def test_nobody_is_invited_to_a_public_room(self, client, alice, carol, public):
        before = state()
        response = as_user(client, alice).post(members_url(public), {"username": "carol"})
        assert 400 <= response.status_code < 500
        assert "public" in alert(response).lower() or "join" in alert(response).lower()
        assert state() == before

    def test_the_owner_renames_the_room(self, client, alice, private):
        response = as_user(client, alice).post(
            members_url(private), {"rename": "1", "name": "Front room"}
        )
        assert response.status_code == 302
        assert Room.objects.get(pk=private.pk).name == "Front room"
        room_page = client.get(private.get_absolute_url())
        assert "Front room" in parse_html(room_page.content.decode()).by_id("room-name").text()

    def test_the_owner_archives_and_brings_back(self, client, alice, bob, private):
        as_user(client, alice)
        page = client.get(members_url(private))
        assert buttons(page)["Archive the room"] == ("archive", "on")
        assert client.post(members_url(private), {"archive": "on"}).status_code == 302
        assert Room.objects.get(pk=private.pk).is_archived
        page = client.get(members_url(private))
        assert buttons(page)["Bring the room back"] == ("archive", "off")
        # Read-only: no composer, and a post through the no-JavaScript path is refused.
        room_page = client.get(private.get_absolute_url())
        assert "archived" in room_page.content.decode()
        assert 'id="composer"' not in room_page.content.decode()
        before = state()
        refused = as_user(client, bob).post(
            f"/chat/{private.slug}/send/", {"message": "anyone?", "client_key": ""}
        )
        assert 400 <= refused.status_code < 500
        assert "can be read, not written in" in refused.content.decode()
        assert state() == before
        as_user(client, alice).post(members_url(private), {"archive": "off"})
        assert not Room.objects.get(pk=private.pk).is_archived

    def test_a_direct_conversation_has_no_members_page(self, client, alice, bob):
        room, _ = direct_open(user=alice, usernames=["bob"])
        assert as_user(client, alice).get(members_url(room)).status_code == 404
        assert client.post(members_url(room), {"username": "carol"}).status_code == 404

    def test_staff_manage_a_private_room_they_are_not_in(self, client, bob, carol, private):
        staff = make_author(username="staffer")
        staff.is_staff = True
        staff.save(update_fields=["is_staff"])
        response = as_user(client, staff).post(members_url(private), {"username": "carol"})
        assert response.status_code == 302
        assert "carol" in members_of(private)


# --- joining, leaving, what notifies me ---


class JoinLeaveTests:
    def test_joining_a_public_room(self, client, bob, public):
        response = as_user(client, bob).post(f"/chat/{public.slug}/join/")
        assert response.status_code == 302 and response["Location"] == public.get_absolute_url()
        assert members_of(public)["bob"] == Membership.MEMBER
        # Twice: still one membership, one line.
        client.post(f"/chat/{public.slug}/join/")
        assert Message.objects.filter(room=public, kind=Message.JOINED).count() == 1

    def test_the_room_page_offers_join_then_leave(self, client, bob, public):
        as_user(client, bob)
        assert "Join room" in buttons(client.get(public.get_absolute_url()))
        client.post(f"/chat/{public.slug}/join/")
        page_buttons = buttons(client.get(public.get_absolute_url()))
        assert "Leave room" in page_buttons and "Join room" not in page_buttons

    def test_leaving_goes_back_to_the_lobby(self, client, bob, public):
        room_join(room=public, user=bob)
        response = as_user(client, bob).post(f"/chat/{public.slug}/leave/")
        assert response.status_code == 302 and response["Location"] == "/"
        assert "bob" not in members_of(public)

    def test_leaving_a_private_room_ends_access(self, client, bob, private):
        as_user(client, bob).post(f"/chat/{private.slug}/leave/")
        assert "bob" not in members_of(private)
        assert client.get(private.get_absolute_url()).status_code == 404

    def test_a_direct_conversation_cannot_be_left(self, client, alice, bob):
        room, _ = direct_open(user=alice, usernames=["bob"])
        before = state()
        response = as_user(client, bob).post(f"/chat/{room.slug}/leave/", follow=True)
        assert response.status_code == 200
        assert notice(response) == "You cannot leave a direct conversation."
        assert state() == before

    @pytest.mark.parametrize("notify", ["mentions", "none", "all"])
    def test_what_notifies_me(self, client, bob, private, notify):
        response = as_user(client, bob).post(f"/chat/{private.slug}/notify/", {"notify": notify})
        assert response.status_code == 302
        assert Membership.objects.get(room=private, user=bob).notify == notify
        page = client.get(response["Location"])
        assert notice(page) == "Saved: what notifies you in this room."
        tree = parse_html(page.content.decode())
        [selected] = tree.by_id("notify").find_all(
            lambda n: n.tag == "option" and "selected" in n.attrs
        )
        assert selected.attrs["value"] == notify

    def test_a_bad_notify_value_is_said_and_changes_nothing(self, client, bob, private):
        before = state()
        response = as_user(client, bob).post(
            f"/chat/{private.slug}/notify/", {"notify": "loud"}, follow=True
        )
        assert notice(response) == "Pick every message, mentions only or nothing."
        assert state() == before

    def test_the_notice_is_empty_when_there_is_nothing_to_say(self, client, alice, bob, private):
        message_post(room=private, author=alice, text="hello there")
        page = as_user(client, bob).get(private.get_absolute_url())
        assert page.status_code == 200
        assert notice(page) == ""


# --- direct conversations ---


class DirectWithTests:
    def test_creates_then_reuses_the_conversation(self, client, alice, bob):
        first = as_user(client, alice).get("/dm/bob/")
        assert first.status_code == 302
        assert re.fullmatch(r"/chat/dm-[0-9a-f]{12}/", first["Location"])
        room = Room.objects.get(kind=Room.DIRECT)
        assert members_of(room) == {"alice": Membership.MEMBER, "bob": Membership.MEMBER}
        assert client.get("/dm/bob/")["Location"] == first["Location"]
        assert as_user(client, bob).get("/dm/alice/")["Location"] == first["Location"]
        assert Room.objects.filter(kind=Room.DIRECT).count() == 1
        page = client.get(first["Location"])
        assert page.status_code == 200
        assert parse_html(page.content.decode()).by_id("room-name").text().strip() == "alice"

    @pytest.mark.parametrize(
        ("username", "says"),
        [("alice", "someone besides you"), ("nobody", "nobody")],
        ids=["oneself", "unknown"],
    )
    def test_refusals_are_said_on_the_form(self, client, alice, username, says):
        before = state()
        response = as_user(client, alice).get(f"/dm/{username}/")
        assert response.status_code == 400
        assert says in alert(response)
        tree = parse_html(response.content.decode())
        assert tree.by_id("id_usernames").attrs.get("value") == username
        assert state() == before

    def test_a_deactivated_person_is_unknown(self, client, alice, bob):
        bob.is_active = False
        bob.save(update_fields=["is_active"])
        response = as_user(client, alice).get("/dm/bob/")
        assert response.status_code == 400
        assert not Room.objects.exists()


class DirectNewTests:
    def test_the_form(self, client, alice):
        response = as_user(client, alice).get("/dm/")
        assert response.status_code == 200
        assert "usernames" in field_names(response)
        assert not alert(response)

    def test_writes_to_several_people(self, client, alice, bob, carol):
        response = as_user(client, alice).post("/dm/", {"usernames": "bob, @carol"})
        assert response.status_code == 302
        room = Room.objects.get(kind=Room.DIRECT)
        assert response["Location"] == room.get_absolute_url()
        assert set(members_of(room)) == {"alice", "bob", "carol"}
        again = as_user(client, carol).post("/dm/", {"usernames": "alice bob"})
        assert again["Location"] == room.get_absolute_url()

    @pytest.mark.parametrize(
        ("usernames", "says"),
        [
            ("alice", "someone besides you"),
            ("bob nobody", "nobody"),
            ("", "Name at least one person"),
            (" , ", "Name at least one person"),
            ("EIGHT", "at most 8 people"),
        ],
        ids=["oneself", "unknown", "blank", "commas only", "too many"],
    )
    def test_refusals_are_said_and_create_nothing(self, client, alice, bob, usernames, says):
        if usernames == "EIGHT":
            usernames = " ".join(make_author(username=f"friend{n}").username for n in range(8))
        before = state()
        response = as_user(client, alice).post("/dm/", {"usernames": usernames})
        assert response.status_code == 400
        assert says in alert(response)
        assert state() == before
        assert not Room.objects.filter(kind=Room.DIRECT).exists()

    def test_the_conversation_appears_in_both_sidebars(self, client, alice, bob):
        room, _ = direct_open(user=alice, usernames=["bob"])
        message_post(room=room, author=alice, text="psst")
        page = as_user(client, bob).get("/")
        tree = parse_html(page.content.decode())
        [link] = tree.by_id("my-rooms").find_all(
            lambda n: n.tag == "a" and n.attrs.get("href") == room.get_absolute_url()
        )
        assert link.attrs["aria-label"] == "alice, direct, 1 unread"


# --- the lobby ---


class LobbyTests:
    def test_the_lobby_creates_a_private_room(self, client, alice):
        as_user(client, alice)
        first = client.post("/", {"name": "Plans", "private": "on"})
        second = client.post("/", {"name": "Plans", "private": "on"})
        rooms = list(Room.objects.filter(kind=Room.PRIVATE))
        assert len(rooms) == 2
        assert {first["Location"], second["Location"]} == {r.get_absolute_url() for r in rooms}
        for room in rooms:
            assert re.fullmatch(r"plans-[0-9a-f]{6}", room.slug)
            assert members_of(room) == {"alice": Membership.OWNER}

    def test_an_archived_public_room_is_off_the_lobbys_lists(self, client, alice, bob, public):
        as_user(client, alice).post(members_url(public), {"archive": "on"})
        assert Room.objects.get(pk=public.pk).is_archived
        for viewer in (alice, bob):
            page = as_user(client, viewer).get("/")
            tree = parse_html(page.content.decode())
            hrefs = {a.attrs.get("href") for a in tree.find_all(lambda n: n.tag == "a")}
            assert public.get_absolute_url() not in hrefs, viewer

    def test_the_lobby_costs_the_same_for_few_and_many_rooms(self, client, alice, bob):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        def rooms_for(person, count):
            for n in range(count):
                room, _ = room_open_or_create(user=person, name=f"r{n} {person.username}")
                message_post(room=room, author=person, text="hello")
                secret, _ = room_open_or_create(
                    user=person, name=f"s{n} {person.username}", private=True
                )
                other = make_author()
                member_add(room=secret, by=person, username=other.username)
                message_post(room=Room.objects.get(pk=secret.pk), author=other, text="@hi")
                direct, _ = direct_open(user=other, usernames=[person.username])
                message_post(room=direct, author=other, text="psst")

        rooms_for(alice, 1)
        rooms_for(bob, 8)
        costs = []
        for person in (alice, bob):
            as_user(client, person).get("/")  # the session's first use
            with CaptureQueriesContext(connection) as captured:
                assert client.get("/").status_code == 200
            costs.append(len(captured))
        assert costs[0] == costs[1]
