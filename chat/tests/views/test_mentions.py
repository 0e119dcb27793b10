"""chat/views/mentions.py: while "@al" is typed, the room's members whose name starts so
are offered; picking one brings the composer back with "@alice " in place of "@al"."""

from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth import get_user_model

from chat.actions.memberships import member_add, room_join, room_open_or_create
from chat.models import Profile
from chat.tests.factories import make_author
from chat.tests.test_security import parse_html

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
KEY = "5f0c6f5e-0d7e-4b43-9d6a-3f1f7c1e9a11"


@pytest.fixture(autouse=True)
def unlimited(settings):
    settings.CHAT_RATE_LIMIT = None


@pytest.fixture
def private(alice, bob):
    """bob's private room with alice and alfred in it; albert and alina are not."""
    room, _ = room_open_or_create(user=bob, name="Back room", private=True)
    for name in ("alfred", "albert", "alina", "zed"):
        make_author(username=name)
    for name in ("alice", "alfred", "zed"):
        member_add(room=room, by=bob, username=name)
    return room


def suggest(client, room, text, **extra):
    response = client.get(
        f"/chat/{room.slug}/mentions/", {"message": text, "client_key": KEY, **extra}, **HTMX
    )
    assert response.status_code == 200
    return response


def offered(response):
    """[(username shown, composer url)] of the suggestion buttons."""
    tree = parse_html(response.content.decode())
    assert tree.by_id("mention-suggestions") is not None
    return [
        (
            " ".join(button.text().split()).rsplit("@", 1)[-1],
            button.attrs["hx-get"],
        )
        for button in tree.find_all(lambda n: n.tag == "button")
    ]


def completed_text(url):
    query = parse_qs(urlsplit(url).query, keep_blank_values=True)
    return query["text"][0]


class SuggestionsTests:
    def test_members_whose_name_starts_so_are_offered(self, client, bob, private):
        client.force_login(bob)
        names = [name for name, _ in offered(suggest(client, private, "hi @al"))]
        assert names == ["alfred", "alice"]

    def test_people_outside_a_private_room_are_never_offered(self, client, bob, private):
        client.force_login(bob)
        body = suggest(client, private, "@al").content.decode()
        assert "albert" not in body and "alina" not in body

    def test_the_typist_is_not_offered(self, client, alice, private):
        client.force_login(alice)
        assert [name for name, _ in offered(suggest(client, private, "@al"))] == ["alfred"]

    def test_a_public_room_offers_those_who_joined(self, client, alice, bob):
        room, _ = room_open_or_create(user=bob, name="Town square")
        room_join(room=room, user=alice)
        make_author(username="alfred")  # not in the room
        client.force_login(bob)
        assert [name for name, _ in offered(suggest(client, room, "@al"))] == ["alice"]

    def test_display_names_match_too(self, client, bob, private):
        alfred = get_user_model().objects.get(username="alfred")
        Profile.objects.create(user=alfred, display_name="Freddie")
        client.force_login(bob)
        response = suggest(client, private, "@fre")
        assert [name for name, _ in offered(response)] == ["alfred"]
        assert "Freddie" in response.content.decode()

    def test_deactivated_members_are_not_offered(self, client, bob, private):
        get_user_model().objects.filter(username="alfred").update(is_active=False)
        client.force_login(bob)
        assert [name for name, _ in offered(suggest(client, private, "@al"))] == ["alice"]

    def test_picking_completes_the_trailing_name(self, client, bob, private):
        client.force_login(bob)
        choices = dict(offered(suggest(client, private, "see you @al")))
        url = choices["alice"]
        assert urlsplit(url).path == f"/chat/{private.slug}/composer/"
        assert completed_text(url) == "see you @alice "
        query = parse_qs(urlsplit(url).query)
        assert query["client_key"] == [KEY]  # the same form: sent once
        composer = client.get(url, **HTMX)
        assert composer.status_code == 200
        field = parse_html(composer.content.decode()).by_id("message")
        assert field.attrs["value"] == "see you @alice "

    def test_picking_keeps_a_reply(self, client, bob, private):
        client.force_login(bob)
        choices = dict(offered(suggest(client, private, "@al", reply_to="7")))
        assert parse_qs(urlsplit(choices["alice"]).query)["reply_to"] == ["7"]

    def test_only_the_trailing_at_is_completed(self, client, bob, private):
        client.force_login(bob)
        choices = dict(offered(suggest(client, private, "@zed and @alf")))
        assert completed_text(choices["alfred"]) == "@zed and @alfred "

    def test_a_bare_at_offers_every_member(self, client, bob, private):
        client.force_login(bob)
        names = [name for name, _ in offered(suggest(client, private, "hey @"))]
        assert names == ["alfred", "alice", "zed"]

    @pytest.mark.parametrize(
        "text",
        [
            "",
            "hello",
            "hi @al there",
            "mail me at bob@al",
            "@al ",
            "@nobody",
        ],
        ids=["empty", "no at", "not trailing", "inside a word", "finished", "no match"],
    )
    def test_nothing_is_offered_without_a_trailing_at_name(self, client, bob, private, text):
        client.force_login(bob)
        assert offered(suggest(client, private, text)) == []

    def test_a_non_member_gets_a_404(self, client, private):
        outsider = make_author(username="outsider")
        client.force_login(outsider)
        response = client.get(f"/chat/{private.slug}/mentions/", {"message": "@al"}, **HTMX)
        assert response.status_code == 404
