"""Access to private rooms and direct conversations over HTTP (chat/views/).

A person who may not read a room gets, for every page, fragment, form and message link of
it, exactly the 404 a room that does not exist gives: same status, same body. An
anonymous visitor is sent to log in, exactly as for a room that does not exist. No list
ever names a room to someone who may not read it.
"""

import difflib
import re
import uuid
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.shortcuts import resolve_url

from chat.actions.memberships import (
    direct_open,
    member_add,
    member_remove,
    room_open_or_create,
)
from chat.actions.messages import message_post
from chat.models import Membership, Mention, Message, Room, RoomEvent
from chat.tests.factories import make_author
from chat.tests.test_security import parse_html

pytestmark = pytest.mark.django_db

SECRET_NAME = "Zebra Conspiracy"
NO_SUCH_SLUG = "zebra-conspiracy-0a1b2c"
HTMX = {"HTTP_HX_REQUEST": "true"}

# (method, path under the room, data, headers): everything a room's address answers.
ROOM_REQUESTS = [
    ("get", "", {}, {}),
    ("get", "?before=3", {}, {}),
    ("get", "?before=3", {}, HTMX),
    ("get", "?after=0", {}, {}),
    ("get", "?after=0", {}, HTMX),
    ("get", "?around=2", {}, {}),
    ("get", "composer/", {"text": "hi", "client_key": str(uuid.uuid4())}, {}),
    ("get", "composer/", {"reply_to": "1"}, HTMX),
    ("get", "mentions/", {"message": "hi @al"}, HTMX),
    ("get", "members/", {}, {}),
    ("post", "send/", {"message": "let me in", "client_key": str(uuid.uuid4())}, {}),
    ("post", "send/", {"react": "1 👍 on"}, {}),
    ("post", "send/", {"edit": "1", "message": "changed"}, {}),
    ("post", "send/", {"delete_message": "1"}, {}),
    ("post", "members/", {"username": "outsider"}, {}),
    ("post", "members/", {"remove": "1"}, {}),
    ("post", "members/", {"rename": "1", "name": "Mine"}, {}),
    ("post", "members/", {"archive": "on"}, {}),
    ("post", "join/", {}, {}),
    ("post", "leave/", {}, {}),
    ("post", "notify/", {"notify": "none"}, {}),
]
ROOM_IDS = [
    f"{method} {path or '/'}{' htmx' if headers else ''}"
    for method, path, _, headers in ROOM_REQUESTS
]
MESSAGE_REQUESTS = [
    ("get", "", {}),
    ("get", "edit/", {}),
    ("get", "edit/", HTMX),
    ("get", "reply/", {}),
    ("get", "reply/", HTMX),
]


@pytest.fixture(autouse=True)
def unlimited(settings):
    settings.CHAT_RATE_LIMIT = None


@pytest.fixture
def outsider():
    return make_author(username="outsider")


@pytest.fixture
def private(alice, bob):
    """alice's private room, bob in it, a few messages (one of them mentions bob)."""
    room, _ = room_open_or_create(user=alice, name=SECRET_NAME, private=True)
    member_add(room=room, by=alice, username="bob")
    for text in ("first", "hello @bob", "third"):
        message_post(room=Room.objects.get(pk=room.pk), author=alice, text=text)
    return Room.objects.get(pk=room.pk)


@pytest.fixture
def direct(alice, bob):
    room, _ = direct_open(user=alice, usernames=["bob"])
    message_post(room=room, author=alice, text="just us")
    return Room.objects.get(pk=room.pk)


def as_user(client, user):
    client.force_login(user)
    return client


def request(client, method, path, data, headers):
    if method == "get":
        return client.get(path, data, **headers)
    return client.post(path, data, **headers)


def comparable(response):
    """Status and body, without what differs between any two responses (CSRF tokens,
    script nonces)."""
    body = response.content.decode()
    body = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", body)
    body = re.sub(r' nonce="[^"]*"', "", body)
    return response.status_code, body


def state():
    """Everything a refused request must leave unchanged."""
    return (
        sorted(Membership.objects.values_list("room_id", "user_id", "role", "notify")),
        sorted(Message.objects.values_list("pk", "room_id", "kind", "text", "version")),
        RoomEvent.objects.count(),
        Mention.objects.count(),
        sorted(Room.objects.values_list("pk", "name", "archived_at", "last_seq")),
    )


def assert_not_found_as_nowhere(client, method, path, data, headers, *, room_path, nowhere_path):
    before = state()
    hidden = request(client, method, room_path + path, data, headers)
    after = state()
    absent = request(client, method, nowhere_path + path, data, headers)
    assert hidden.status_code == 404, (room_path + path, hidden.status_code)
    assert comparable(hidden) == comparable(absent), "\n".join(
        difflib.unified_diff(
            comparable(absent)[1].splitlines(), comparable(hidden)[1].splitlines(), lineterm=""
        )
    )
    assert SECRET_NAME not in hidden.content.decode()
    assert after == before


@pytest.fixture
def staff():
    staff = make_author(username="staffer")
    staff.is_staff = True
    staff.save(update_fields=["is_staff"])
    return staff


class NonMemberTests:
    @pytest.mark.parametrize(("method", "path", "data", "headers"), ROOM_REQUESTS, ids=ROOM_IDS)
    def test_a_private_room_is_a_404_like_no_room(
        self, client, outsider, private, method, path, data, headers
    ):
        assert_not_found_as_nowhere(
            as_user(client, outsider),
            method,
            path,
            data,
            headers,
            room_path=private.get_absolute_url(),
            nowhere_path=f"/chat/{NO_SUCH_SLUG}/",
        )

    @pytest.mark.parametrize(("method", "path", "data", "headers"), ROOM_REQUESTS, ids=ROOM_IDS)
    def test_a_direct_conversation_is_a_404_like_no_room(
        self, client, outsider, direct, method, path, data, headers
    ):
        assert_not_found_as_nowhere(
            as_user(client, outsider),
            method,
            path,
            data,
            headers,
            room_path=direct.get_absolute_url(),
            nowhere_path="/chat/dm-0123456789ab/",
        )

    @pytest.mark.parametrize(("method", "path", "data", "headers"), ROOM_REQUESTS, ids=ROOM_IDS)
    def test_a_removed_member_gets_the_same_404(
        self, client, alice, bob, private, method, path, data, headers
    ):
        member_remove(room=private, by=alice, user_id=bob.pk)
        assert_not_found_as_nowhere(
            as_user(client, bob),
            method,
            path,
            data,
            headers,
            room_path=private.get_absolute_url(),
            nowhere_path=f"/chat/{NO_SUCH_SLUG}/",
        )

    @pytest.mark.parametrize(
        ("method", "path", "data", "headers"),
        [r for r in ROOM_REQUESTS if not r[1].startswith("members/")],
        ids=[
            i
            for i, r in zip(ROOM_IDS, ROOM_REQUESTS, strict=True)
            if not r[1].startswith("members/")
        ],
    )
    def test_staff_not_in_it_cannot_read_it_either(
        self, client, staff, private, method, path, data, headers
    ):
        assert_not_found_as_nowhere(
            as_user(client, staff),
            method,
            path,
            data,
            headers,
            room_path=private.get_absolute_url(),
            nowhere_path=f"/chat/{NO_SUCH_SLUG}/",
        )

    @pytest.mark.parametrize(("method", "path", "headers"), MESSAGE_REQUESTS)
    @pytest.mark.parametrize("kind", ["private", "direct"])
    def test_a_message_in_it_is_a_404_like_no_message(
        self, client, outsider, private, direct, kind, method, path, headers
    ):
        room = private if kind == "private" else direct
        message = Message.objects.filter(room=room, kind=Message.TEXT).last()
        nowhere = Message.objects.order_by("-pk").first().pk + 1000
        assert_not_found_as_nowhere(
            as_user(client, outsider),
            method,
            path,
            {},
            headers,
            room_path=f"/messages/{message.pk}/",
            nowhere_path=f"/messages/{nowhere}/",
        )

    @pytest.mark.parametrize(("method", "path", "headers"), MESSAGE_REQUESTS)
    def test_staff_not_in_it_cannot_open_its_messages(
        self, client, staff, private, method, path, headers
    ):
        message = Message.objects.filter(room=private, kind=Message.TEXT).first()
        assert_not_found_as_nowhere(
            as_user(client, staff),
            method,
            path,
            {},
            headers,
            room_path=f"/messages/{message.pk}/",
            nowhere_path=f"/messages/{message.pk + 1000}/",
        )


class AnonymousTests:
    @pytest.mark.parametrize(("method", "path", "data", "headers"), ROOM_REQUESTS, ids=ROOM_IDS)
    def test_sent_to_log_in_exactly_as_for_no_room(
        self, client, private, method, path, data, headers
    ):
        before = state()
        answers = []
        for base in (private.get_absolute_url(), f"/chat/{NO_SUCH_SLUG}/"):
            response = request(client, method, base + path, data, headers)
            assert response.status_code == 302
            location = response["Location"]
            login = resolve_url(django_settings.LOGIN_URL)
            assert location.startswith(f"{login}?next=")
            location = location.replace(quote(base, safe=""), "<room>").replace(base, "<room>")
            assert "<room>" in location
            answers.append((location, response.content))
        assert answers[0] == answers[1]
        assert state() == before

    @pytest.mark.parametrize(("method", "path", "headers"), MESSAGE_REQUESTS)
    def test_a_message_in_it_sends_to_log_in(self, client, private, method, path, headers):
        message = Message.objects.filter(room=private, kind=Message.TEXT).first()
        response = request(client, method, f"/messages/{message.pk}/{path}", {}, headers)
        assert response.status_code == 302
        assert response["Location"].startswith(resolve_url(django_settings.LOGIN_URL))
        assert SECRET_NAME not in response.content.decode()


class MemberTests:
    """The same addresses answer a member: the 404s above are about access, not bugs."""

    @pytest.mark.parametrize(
        ("path", "headers"),
        [("", {}), ("?before=3", {}), ("?after=0", HTMX), ("?around=2", {}), ("members/", {})],
    )
    def test_a_member_reads_the_room(self, client, bob, private, path, headers):
        response = as_user(client, bob).get(private.get_absolute_url() + path, **headers)
        assert response.status_code == 200

    def test_a_member_opens_a_message(self, client, bob, private):
        message = Message.objects.filter(room=private, kind=Message.TEXT).first()
        response = as_user(client, bob).get(f"/messages/{message.pk}/")
        assert response.status_code == 302
        assert response["Location"].startswith(private.get_absolute_url())

    def test_the_room_page_names_the_room(self, client, bob, private):
        response = as_user(client, bob).get(private.get_absolute_url())
        tree = parse_html(response.content.decode())
        assert " ".join(tree.by_id("room-name").text().split()) == SECRET_NAME

    def test_a_direct_conversation_is_named_after_the_others(self, client, bob, direct):
        response = as_user(client, bob).get(direct.get_absolute_url())
        tree = parse_html(response.content.decode())
        assert " ".join(tree.by_id("room-name").text().split()) == "alice"


# --- lists never name what one may not read ---


def my_room_links(response):
    tree = parse_html(response.content.decode())
    listing = tree.by_id("my-rooms")
    assert listing is not None
    return {
        a.attrs["href"]: a.attrs.get("aria-label", "")
        for a in listing.find_all(lambda n: n.tag == "a")
    }


class ListsTests:
    def pages(self, client, public_room):
        return [client.get("/"), client.get(public_room.get_absolute_url())]

    @pytest.fixture
    def public_room(self, alice):
        room, _ = room_open_or_create(user=alice, name="Town square")
        return room

    @pytest.mark.parametrize("who", ["outsider", "staff", "removed"])
    def test_the_lobby_and_sidebar_never_name_a_hidden_room(
        self, client, request, alice, bob, private, direct, public_room, who
    ):
        if who == "removed":
            member_remove(room=private, by=alice, user_id=bob.pk)
            viewer = bob
        else:
            viewer = request.getfixturevalue(who)
        for response in self.pages(as_user(client, viewer), public_room):
            assert response.status_code == 200
            body = response.content.decode()
            assert SECRET_NAME not in body
            assert SECRET_NAME.lower() not in body.lower()
            assert private.slug not in body
            if who != "removed":
                assert direct.slug not in body

    def test_members_see_it_in_their_lists_marked_private(self, client, bob, private, public_room):
        for response in self.pages(as_user(client, bob), public_room):
            links = my_room_links(response)
            assert links[private.get_absolute_url()].startswith(f"{SECRET_NAME}, private")

    def test_the_public_rooms_list_holds_public_rooms_only(
        self, client, outsider, private, direct, public_room
    ):
        response = as_user(client, outsider).get("/")
        tree = parse_html(response.content.decode())
        hrefs = {a.attrs.get("href") for a in tree.find_all(lambda n: n.tag == "a")}
        assert public_room.get_absolute_url() in hrefs
        assert private.get_absolute_url() not in hrefs
        assert direct.get_absolute_url() not in hrefs
