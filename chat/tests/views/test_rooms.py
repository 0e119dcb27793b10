"""chat/views/rooms.py: the lobby, the room page and its windows into the history, and the
no-JavaScript path (`/chat/<slug>/send/`) for every form the room page has."""

import re

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.db.models import F
from django.test import Client
from django.test.utils import CaptureQueriesContext

from chat.actions.messages import message_delete, message_edit
from chat.models import Message, Reaction, Room, RoomEvent
from chat.tests.factories import (
    make_author,
    make_history,
    make_message,
    make_reaction,
    make_room,
    make_user,
)
from chat.tests.test_security import parse_html

pytestmark = pytest.mark.django_db

PAGE = 50  # settings.CHAT_PAGE_SIZE by default
STATIC_PREFIX = "/" + django_settings.STATIC_URL.lstrip("/")


def error_text(response, element_id):
    node = parse_html(response.content.decode()).by_id(element_id)
    assert node is not None, f"no #{element_id} in the page"
    return " ".join(node.text().split())


def shown(response):
    """The messages of a page or fragment: [(dom id, seq, text)], in page order."""
    tree = parse_html(response.content.decode())
    return [
        (
            node.attrs["id"],
            int(node.attrs["data-seq"]),
            " ".join(node.find_all(lambda n: "message-text" in n.classes)[0].text().split()),
        )
        for node in tree.find_all(lambda n: n.tag == "li" and "message" in n.classes)
    ]


def seqs(response):
    return [seq for _, seq, _ in shown(response)]


def message_node(response, message):
    node = parse_html(response.content.decode()).by_id(f"message-{message.pk}")
    assert node is not None, f"message {message.pk} is not in the page"
    return node


def links(response, text):
    tree = parse_html(response.content.decode())
    return [a.attrs["href"] for a in tree.find_all(lambda n: n.tag == "a" and text in n.text())]


# --- lobby ---


def test_lobby_lists_rooms_and_has_the_room_form(client_alice):
    make_room(name="General")
    response = client_alice.get("/")
    assert response.status_code == 200
    tree = parse_html(response.content.decode())
    [form] = [
        f
        for f in tree.find_all(lambda n: n.tag == "form")
        if f.find_all(lambda n: n.attrs.get("name") == "name")
    ]
    assert form.attrs["method"] == "post" and form.attrs["action"] == "/"
    assert tree.find_all(lambda n: n.tag == "a" and n.attrs.get("href") == "/chat/general/")


def test_lobby_creates_a_room_and_redirects_to_it(client_alice):
    response = client_alice.post("/", {"name": "  Tea   Time  "})
    assert response.status_code == 302 and response["Location"] == "/chat/tea-time/"
    room = Room.objects.get()
    assert (room.name, room.slug) == ("Tea Time", "tea-time")


def test_lobby_joins_an_existing_room(client_alice):
    room = make_room(name="Tea Time")
    for name in ("Tea Time", "tea time"):
        response = client_alice.post("/", {"name": name})
        assert response.status_code == 302 and response["Location"] == room.get_absolute_url()
    assert Room.objects.count() == 1


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "Give the room a name."),
        ("   \t ", "Give the room a name."),
        ("x" * 81, "at most 80 characters"),
        ("!!!", "Use some letters or digits in the room name."),
        ("<>&'\"", "Use some letters or digits in the room name."),
    ],
    ids=["blank", "whitespace", "too long", "punctuation", "markup only"],
)
def test_lobby_refuses_unusable_names_clearly(client_alice, name, message):
    response = client_alice.post("/", {"name": name})
    assert response.status_code == 400
    assert message in error_text(response, "room-error")
    assert Room.objects.count() == 0


def test_lobby_keeps_a_refused_name_escaped(client_alice):
    name = '"><script>alert(1)</script>' + "x" * 80
    response = client_alice.post("/", {"name": name})
    assert response.status_code == 400
    body = response.content.decode()
    assert "<script>alert(1)" not in body
    assert parse_html(body).by_id("id_name").attrs["value"] == name


def test_lobby_needs_a_login(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/?next=/"
    response = client.post("/", {"name": "sneaky"})
    assert response.status_code == 302 and Room.objects.count() == 0


# --- the room page and its windows into the history ---


def test_room_page_shows_the_latest_50_in_order_with_stable_ids(client_alice, alice, room):
    make_history(room=room, count=60, authors=[alice])
    response = client_alice.get(room.get_absolute_url())
    assert response.status_code == 200
    expected = list(Message.objects.filter(room=room, seq__gt=10).order_by("seq"))
    assert shown(response) == [(f"message-{m.pk}", m.seq, m.text) for m in expected]
    container = parse_html(response.content.decode()).by_id("messages")
    assert container is not None and container.tag == "ol"
    # A link to the older ones works without JavaScript.
    assert links(response, "Older messages") == [f"{room.get_absolute_url()}?before=11"]


def test_room_page_is_live_and_history_pages_are_not(client_alice, alice, room):
    make_history(room=room, count=60, authors=[alice])
    live = parse_html(client_alice.get(room.get_absolute_url()).content.decode())
    assert (
        live.by_id("room")
        .attrs.get("ws-connect")
        .startswith(f"/ws/chat/{room.slug}/?after=60&drawn=")
    )
    assert live.by_id("last-seq").attrs["value"] == "60"
    for query in ("?before=30", "?after=5", "?around=30"):
        page = parse_html(client_alice.get(room.get_absolute_url() + query).content.decode())
        assert "ws-connect" not in page.by_id("room").attrs, query
        assert page.by_id("catch-up") is None, query


def test_the_page_starts_its_catch_up_at_the_rooms_last_event_not_its_last_message(
    client_alice, alice, room
):
    message = make_message(room=room, author=alice)
    make_reaction(message=message)
    message_edit(room=room, user=alice, message_id=message.pk, text="edited")
    tree = parse_html(client_alice.get(room.get_absolute_url()).content.decode())
    assert tree.by_id("last-seq").attrs["value"] == "3"
    assert "?after=3&drawn=" in tree.by_id("room").attrs["ws-connect"]


def test_older_page_shows_the_50_before(client_alice, alice, room):
    make_history(room=room, count=120, authors=[alice])
    response = client_alice.get(f"{room.get_absolute_url()}?before=61")
    assert response.status_code == 200
    assert seqs(response) == list(range(11, 61))
    assert "<html" in response.content.decode()
    # The htmx request gets the fragment alone.
    response = client_alice.get(f"{room.get_absolute_url()}?before=11", HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body
    assert seqs(response) == list(range(1, 11))
    assert "?before=" not in body  # the start of the history


def test_newer_fragment_for_htmx_shows_the_page_after(client_alice, alice, room):
    make_history(room=room, count=120, authors=[alice])
    response = client_alice.get(f"{room.get_absolute_url()}?after=10", HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body and 'id="composer"' not in body
    assert seqs(response) == list(range(11, 61))
    assert links(response, "Newer messages") == [f"{room.get_absolute_url()}?after=60"]
    # The last page says so and leads back to the live room.
    response = client_alice.get(f"{room.get_absolute_url()}?after=100", HTTP_HX_REQUEST="true")
    assert seqs(response) == list(range(101, 121))
    assert not links(response, "Newer messages")
    assert links(response, "live room") == [room.get_absolute_url()]


def test_newer_full_page_without_htmx(client_alice, alice, room):
    make_history(room=room, count=120, authors=[alice])
    response = client_alice.get(f"{room.get_absolute_url()}?after=10")
    assert "<html" in response.content.decode()
    assert seqs(response) == list(range(11, 61))
    assert links(response, "Newer messages") == [f"{room.get_absolute_url()}?after=60"]


def test_around_page_shows_the_message_in_the_middle_with_links_both_ways(
    client_alice, alice, room
):
    make_history(room=room, count=300, authors=[alice])
    target = Message.objects.get(room=room, seq=150)
    response = client_alice.get(room.get_absolute_url(), {"around": 150})
    assert response.status_code == 200
    assert seqs(response) == list(range(125, 175))
    assert message_node(response, target).attrs["data-seq"] == "150"
    assert links(response, "Older messages") == [f"{room.get_absolute_url()}?before=125"]
    assert links(response, "Newer messages") == [f"{room.get_absolute_url()}?after=174"]
    assert links(response, "Jump to the latest") == [room.get_absolute_url()]


def test_around_page_near_either_end(client_alice, alice, room):
    make_history(room=room, count=300, authors=[alice])
    start = client_alice.get(room.get_absolute_url(), {"around": 3})
    assert seqs(start) == list(range(1, 28))
    assert not links(start, "Older messages") and links(start, "Newer messages")
    end = client_alice.get(room.get_absolute_url(), {"around": 299})
    assert seqs(end) == list(range(274, 301))
    assert links(end, "Older messages") and not links(end, "Newer messages")


def test_history_pages_leave_out_deleted_messages_and_show_current_text(client_alice, alice, room):
    _, gone, edited = (make_message(room=room, author=alice, text=t) for t in "abc")
    message_delete(room=room, user=alice, message_id=gone.pk)
    message_edit(room=room, user=alice, message_id=edited.pk, text="c, edited")
    for query in ("", "?around=2", "?after=0", "?before=4"):
        response = client_alice.get(room.get_absolute_url() + query)
        assert [(seq, text) for _, seq, text in shown(response)] == [(1, "a"), (3, "c, edited")], (
            query
        )
        assert f"message-{gone.pk}" not in response.content.decode()


def test_room_page_has_the_composer_forms(client_alice, room):
    tree = parse_html(client_alice.get(room.get_absolute_url()).content.decode())
    for form_id, field_tag in (("composer", "input"), ("composer-long", "textarea")):
        form = tree.by_id(form_id)
        assert form is not None and form.tag == "form"
        assert "ws-send" in form.attrs
        assert form.attrs["method"] == "post"
        assert form.attrs["action"] == f"/chat/{room.slug}/send/"
        [field] = form.find_all(lambda n: n.attrs.get("name") == "message")
        assert field.tag == field_tag
        assert form.find_all(lambda n: n.attrs.get("name") == "csrfmiddlewaretoken")
        assert form.find_all(lambda n: n.attrs.get("name") == "client_key")
        assert form.find_all(lambda n: n.tag == "button" and n.attrs.get("type") == "submit")
    field = tree.by_id("message")
    assert field.attrs["type"] == "text" and field.attrs.get("enterkeyhint") == "send"
    actions = tree.by_id("message-actions")
    assert (
        actions.attrs["method"] == "post" and actions.attrs["action"] == f"/chat/{room.slug}/send/"
    )


def test_room_page_needs_a_login(client, room):
    response = client.get(room.get_absolute_url())
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next=/chat/{room.slug}/"


def test_unknown_room_is_a_404_page_with_a_way_back(client_alice):
    response = client_alice.get("/chat/no-such-room/")
    assert response.status_code == 404
    tree = parse_html(response.content.decode())
    assert tree.find_all(lambda n: n.tag == "a" and n.attrs.get("href") == "/")
    assert "does not exist" in response.content.decode()


@pytest.mark.parametrize("name", ["before", "after", "around"])
@pytest.mark.parametrize("value", ["abc", "-1", "1e3", "9" * 40, "%00", "1; DROP TABLE", ""])
def test_bad_window_values_are_harmless(client_alice, alice, room, name, value):
    make_history(room=room, count=3, authors=[alice])
    response = client_alice.get(room.get_absolute_url(), {name: value})
    assert response.status_code in (200, 400)


# --- every form of the room page, posted without JavaScript ---


def form_fields(form):
    """What a browser sends for a form's fields (text, hidden; textareas), by name."""
    fields = {}
    for node in form.walk():
        name = node.attrs.get("name")
        if not name:
            continue
        if node.tag == "input" and node.attrs.get("type", "text") in ("text", "hidden"):
            fields[name] = node.attrs.get("value", "")
        elif node.tag == "textarea":
            fields[name] = node.text()
    return fields


def press(client, page, button_predicate, **typed):
    """Press a submit button of `page` as a browser without JavaScript does: POST the
    fields of its form (its `form=` attribute, or the form around it), its own name and
    value, and whatever was `typed` into named fields."""
    tree = parse_html(page.content.decode())
    buttons = tree.find_all(lambda n: n.tag == "button" and button_predicate(n))
    assert len(buttons) == 1, [b.attrs for b in buttons]
    [button] = buttons
    if "form" in button.attrs:
        form = tree.by_id(button.attrs["form"])
    else:
        form = button.parent
        while form.tag != "form":
            form = form.parent
    fields = form_fields(form)
    if button.attrs.get("name"):
        fields[button.attrs["name"]] = button.attrs.get("value", "")
    fields.update(typed)
    return client.post(form.attrs["action"], fields)


def named(text):
    return lambda node: (
        " ".join(node.text().split()) == text or node.attrs.get("aria-label") == text
    )


def inside(message, predicate):
    """A button inside the message's element."""

    def matches(node):
        parent = node.parent
        while parent is not None and parent.attrs.get("id") != f"message-{message.pk}":
            parent = parent.parent
        return parent is not None and predicate(node)

    return matches


@pytest.fixture
def csrf_alice(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    return client


class NoJavaScriptFormsTests:
    """Each control of the page, pressed in a browser without JavaScript, with CSRF checked."""

    def test_post_through_the_composer(self, csrf_alice, alice, room):
        page = csrf_alice.get(room.get_absolute_url())
        response = press(
            csrf_alice,
            page,
            lambda n: n.text().strip() == "Send" and n.parent.attrs.get("id") == "composer",
            message=" hello **there** \r\n",
        )
        assert response.status_code == 302
        # No anchor: Chromium would not autofocus the composer with one.
        assert response["Location"] == room.get_absolute_url()
        message = Message.objects.get()
        assert (message.text, message.author, message.seq) == ("hello **there**", alice, 1)
        page = csrf_alice.get(room.get_absolute_url())
        body = message_node(page, message).find_all(lambda n: "message-text" in n.classes)[0]
        assert body.find_all(lambda n: n.tag == "strong")[0].text() == "there"

    def test_post_through_the_long_composer_keeps_line_breaks(self, csrf_alice, alice, room):
        page = csrf_alice.get(room.get_absolute_url())
        response = press(
            csrf_alice,
            page,
            lambda n: n.text().strip() == "Send" and n.parent.attrs.get("id") == "composer-long",
            message="line one\r\nline two",
        )
        assert response.status_code == 302
        assert Message.objects.get().text == "line one\nline two"

    def test_reply_through_the_reply_link(self, csrf_alice, alice, bob, room):
        original = make_message(room=room, author=bob, text="question?")
        page = csrf_alice.get(room.get_absolute_url())
        [reply_link] = [
            href for href in links(page, "Reply") if href == f"/messages/{original.pk}/reply/"
        ]
        page = csrf_alice.get(reply_link, follow=True)
        assert (
            page.redirect_chain[-1][0]
            == f"{room.get_absolute_url()}?reply_to={original.pk}#composer"
        )
        replying = parse_html(page.content.decode()).by_id("composer-fields")
        assert "question?" in replying.text()
        response = press(
            csrf_alice,
            page,
            lambda n: n.text().strip() == "Send" and n.parent.attrs.get("id") == "composer",
            message="answer",
        )
        assert response.status_code == 302
        reply = Message.objects.get(text="answer")
        assert reply.reply_to == original
        quote = message_node(csrf_alice.get(room.get_absolute_url()), reply).find_all(
            lambda n: "reply-quote" in n.classes
        )
        assert quote[0].attrs["href"] == f"/messages/{original.pk}/"
        assert "question?" in quote[0].text()

    def test_edit_through_the_edit_page(self, csrf_alice, alice, room):
        message = make_message(room=room, author=alice, text="helo")
        page = csrf_alice.get(f"/messages/{message.pk}/edit/")
        response = press(csrf_alice, page, named("Save"), message="hello")
        assert response.status_code == 302
        assert response["Location"] == f"{room.get_absolute_url()}#message-{message.pk}"
        message.refresh_from_db()
        assert message.text == "hello" and message.edited_at is not None
        node = message_node(csrf_alice.get(room.get_absolute_url()), message)
        assert node.find_all(lambda n: "edited" in n.classes)

    def test_delete_through_the_confirm_button(self, csrf_alice, alice, room):
        message = make_message(room=room, author=alice, text="oops")
        page = csrf_alice.get(room.get_absolute_url())
        response = press(
            csrf_alice, page, inside(message, lambda n: n.attrs.get("name") == "delete_message")
        )
        assert response.status_code == 302
        message.refresh_from_db()
        assert message.is_deleted and message.text == ""
        assert (
            f"message-{message.pk}" not in csrf_alice.get(room.get_absolute_url()).content.decode()
        )

    def test_react_on_and_off_through_the_reaction_buttons(self, csrf_alice, alice, bob, room):
        message = make_message(room=room, author=bob, text="nice")
        page = csrf_alice.get(room.get_absolute_url())
        response = press(
            csrf_alice,
            page,
            inside(
                message,
                lambda n: "reaction-off" in n.classes and n.attrs["aria-label"] == "React with 🎉",
            ),
        )
        assert response.status_code == 302
        assert response["Location"] == f"{room.get_absolute_url()}#message-{message.pk}"
        message.refresh_from_db()
        assert message.reactions == {"🎉": [[alice.pk, "alice"]]}
        page = csrf_alice.get(room.get_absolute_url())
        [pressed] = message_node(page, message).find_all(lambda n: "reaction-on" in n.classes)
        assert pressed.attrs["aria-pressed"] == "true" and "1" in pressed.text()
        response = press(csrf_alice, page, inside(message, lambda n: "reaction-on" in n.classes))
        assert response.status_code == 302
        message.refresh_from_db()
        assert message.reactions == {}

    @pytest.mark.parametrize(
        "fields",
        [
            {"message": "forged"},
            {"edit": "{pk}", "message": "forged"},
            {"delete_message": "{pk}"},
            {"react": "{pk} 👍 on"},
        ],
        ids=["post", "edit", "delete", "react"],
    )
    def test_every_kind_needs_a_csrf_token(self, csrf_alice, alice, room, fields):
        message = make_message(room=room, author=alice, text="original")
        fields = {name: value.format(pk=message.pk) for name, value in fields.items()}
        response = csrf_alice.post(f"/chat/{room.slug}/send/", fields)
        assert response.status_code == 403
        message.refresh_from_db()
        assert (message.text, message.version, message.is_deleted) == ("original", 1, False)
        assert Message.objects.count() == 1 and not Reaction.objects.exists()
        assert RoomEvent.objects.count() == 1


class SendTests:
    """What the send view does with what it is given."""

    def send(self, client, room, **fields):
        return client.post(f"/chat/{room.slug}/send/", fields)

    def test_the_same_form_twice_stores_one_message(self, client_alice, room):
        key = "0b7d2a3e-5c1f-4d8e-9a6b-2f4c8e1d3a5b"
        for _ in range(2):
            assert self.send(client_alice, room, message="once", client_key=key).status_code == 302
        assert Message.objects.count() == 1

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("", r"Write something first\."),
            (" \r\n\t ", r"Write something first\."),
            ("x" * 4001, r"That is 4001 characters; the limit is 4000\."),
            ("bell\x07 rings", "control character"),
            ("nul\x00here", "(control|null) character"),
        ],
        ids=["empty", "whitespace", "too long", "control", "nul"],
    )
    def test_bad_text_is_refused_and_kept(self, client_alice, room, text, message):
        response = self.send(client_alice, room, message=text)
        assert response.status_code == 400
        assert re.search(message, error_text(response, "composer-error"), re.IGNORECASE)
        field = parse_html(response.content.decode()).by_id("message")
        assert (
            field.attrs["value"] == text.replace("\x00", "\ufffd") or field.attrs["value"] == text
        )
        assert field.attrs.get("aria-invalid") == "true"
        assert Message.objects.count() == 0

    def test_a_refused_multi_line_text_is_kept_with_its_line_breaks(
        self, client_alice, room, settings
    ):
        settings.CHAT_MAX_MESSAGE_LENGTH = 10
        response = self.send(client_alice, room, message="a long\nmulti-line text")
        assert response.status_code == 400
        textareas = parse_html(response.content.decode()).find_all(
            lambda n: n.tag == "textarea" and n.attrs.get("name") == "message"
        )
        assert [t.text() for t in textareas if t.text()] == ["a long\nmulti-line text"]

    def test_a_refused_post_keeps_its_key_and_its_reply(self, client_alice, bob, room):
        original = make_message(room=room, author=bob, text="question?")
        key = "0b7d2a3e-5c1f-4d8e-9a6b-2f4c8e1d3a5b"
        response = self.send(
            client_alice, room, message="", client_key=key, reply_to=str(original.pk)
        )
        assert response.status_code == 400
        fields = form_fields(parse_html(response.content.decode()).by_id("composer"))
        assert fields["client_key"] == key and fields["reply_to"] == str(original.pk)

    @pytest.mark.parametrize("where", ["another room", "deleted", "unknown"])
    def test_a_reply_to_a_message_not_shown_here_is_refused(self, client_alice, bob, room, where):
        if where == "another room":
            target = make_message(room=make_room(), author=bob).pk
        elif where == "deleted":
            target = make_message(room=room, author=bob).pk
            message_delete(room=room, user=bob, message_id=target)
        else:
            target = 987654
        response = self.send(client_alice, room, message="my answer", reply_to=str(target))
        assert response.status_code == 400
        assert "not in this room" in error_text(response, "composer-error")
        assert parse_html(response.content.decode()).by_id("message").attrs["value"] == "my answer"
        assert not Message.objects.filter(text="my answer").exists()

    def test_edit_errors_show_on_the_edit_page_with_the_text_kept(self, client, alice, bob, room):
        message = make_message(room=room, author=alice, text="mine")
        client.force_login(bob)
        response = self.send(client, room, edit=str(message.pk), message="hijacked")
        assert response.status_code == 403
        assert "only change your own" in error_text(response, f"edit-{message.pk}-error")
        assert (
            parse_html(response.content.decode()).by_id(f"edit-{message.pk}").attrs["value"]
            == "hijacked"
        )
        message.refresh_from_db()
        assert (message.text, message.version, message.edited_at) == ("mine", 1, None)
        assert RoomEvent.objects.count() == 1

    @pytest.mark.parametrize(
        ("case", "status", "error"),
        [
            ("unknown", 404, "does not exist in this room"),
            ("another room", 404, "does not exist in this room"),
            ("deleted", 400, "was deleted"),
            ("blank", 400, "Write something first"),
        ],
    )
    def test_edit_refusals(self, client_alice, alice, room, case, status, error):
        message = make_message(
            room=room if case != "another room" else make_room(), author=alice, text="kept"
        )
        target, text = message.pk, "new text"
        if case == "unknown":
            target = 987654
        elif case == "deleted":
            message_delete(room=message.room, user=alice, message_id=message.pk)
        elif case == "blank":
            text = "   "
        events = RoomEvent.objects.count()
        response = self.send(client_alice, room, edit=str(target), message=text)
        assert response.status_code == status
        assert error in error_text(response, f"edit-{target}-error")
        message.refresh_from_db()
        assert message.edited_at is None and RoomEvent.objects.count() == events

    @pytest.mark.parametrize(
        ("fields", "status", "notice"),
        [
            ({"delete_message": "{other}"}, 403, "only change your own"),
            ({"delete_message": "987654"}, 404, "does not exist in this room"),
            ({"delete_message": "{gone}"}, 400, "was deleted"),
            ({"delete_message": "abc"}, 400, "delete_message"),
            ({"react": "{mine} 🦄 on"}, 400, "not one of the offered emoji"),
            ({"react": "987654 👍 on"}, 404, "does not exist in this room"),
            ({"react": "{gone} 👍 on"}, 400, "was deleted"),
            ({"react": "{mine} 👍 maybe"}, 400, "react"),
            ({"react": "{mine}"}, 400, "react"),
            ({"last_seq": "3"}, 400, "cannot be sent here"),
            ({"delete_message": "{mine}", "extra": "x"}, 400, "Unexpected field"),
        ],
        ids=[
            "delete another's",
            "delete unknown",
            "delete deleted",
            "delete malformed",
            "react odd emoji",
            "react unknown",
            "react deleted",
            "react bad state",
            "react malformed",
            "catch-up",
            "unknown field",
        ],
    )
    def test_change_refusals_show_in_the_notice(
        self, client_alice, alice, bob, room, fields, status, notice
    ):
        mine = make_message(room=room, author=alice, text="mine")
        other = make_message(room=room, author=bob, text="other")
        gone = make_message(room=room, author=alice, text="gone")
        message_delete(room=room, user=alice, message_id=gone.pk)
        ids = {"mine": mine.pk, "other": other.pk, "gone": gone.pk}
        fields = {name: value.format(**ids) for name, value in fields.items()}
        before = list(Message.objects.order_by("pk").values_list("text", "version", "deleted_at"))
        events = RoomEvent.objects.count()
        response = self.send(client_alice, room, **fields)
        assert response.status_code == status
        assert notice in error_text(response, "notice")
        assert parse_html(response.content.decode()).by_id("notice").attrs.get("role") == "alert"
        assert (
            list(Message.objects.order_by("pk").values_list("text", "version", "deleted_at"))
            == before
        )
        assert RoomEvent.objects.count() == events and not Reaction.objects.exists()
        # The page is still the room, with its composer.
        assert parse_html(response.content.decode()).by_id("composer") is not None

    def test_staff_may_edit_and_delete_anyones_message(self, client, alice, room):
        message = make_message(room=room, author=alice, text="rude")
        client.force_login(make_user(password=None, is_staff=True))
        assert self.send(client, room, edit=str(message.pk), message="[removed]").status_code == 302
        assert self.send(client, room, delete_message=str(message.pk)).status_code == 302
        message.refresh_from_db()
        assert message.is_deleted and message.text == ""

    def test_the_same_change_twice_changes_once(self, client_alice, alice, room):
        message = make_message(room=room, author=alice, text="x")
        for _ in range(2):
            assert self.send(client_alice, room, react=f"{message.pk} 👍 on").status_code == 302
            assert (
                self.send(client_alice, room, edit=str(message.pk), message="y").status_code == 302
            )
        message.refresh_from_db()
        assert message.version == 3 and Reaction.objects.count() == 1
        assert RoomEvent.objects.count() == 3

    def test_is_rate_limited_like_the_socket(self, client_alice, settings, room):
        settings.CHAT_RATE_LIMIT = (2, 60)
        for number in range(2):
            assert self.send(client_alice, room, message=f"m{number}").status_code == 302
        response = self.send(client_alice, room, message="one too many")
        assert response.status_code in (400, 429)
        assert "slow down" in error_text(response, "composer-error").lower()
        assert (
            parse_html(response.content.decode()).by_id("message").attrs["value"] == "one too many"
        )
        assert Message.objects.count() == 2

    def test_needs_a_login_a_real_room_and_a_post(self, client_alice, room):
        assert self.send(client_alice, Room(slug="nope"), message="hi").status_code == 404
        response = Client().post(f"/chat/{room.slug}/send/", {"message": "hi"})
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
        assert client_alice.get(f"/chat/{room.slug}/send/").status_code == 405
        assert Message.objects.count() == 0


def test_the_composer_fragment_is_fresh_with_no_reply(client_alice, room):
    first = client_alice.get(f"/chat/{room.slug}/composer/")
    second = client_alice.get(f"/chat/{room.slug}/composer/")
    assert first.status_code == 200
    fields = [
        form_fields(parse_html(r.content.decode()).by_id("composer-fields"))
        for r in (first, second)
    ]
    assert fields[0]["message"] == "" and "reply_to" not in fields[0]
    assert fields[0]["client_key"] != fields[1]["client_key"]


# --- CSRF on the lobby ---


def test_lobby_post_needs_a_csrf_token(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post("/", {"name": "forged"}).status_code == 403
    assert Room.objects.count() == 0
    page = client.get("/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
    assert client.post("/", {"name": "real", "csrfmiddlewaretoken": token}).status_code == 302


# --- Content-Security-Policy and the pages' markup ---


def csp(response):
    header = response.headers.get("Content-Security-Policy")
    assert header, "no Content-Security-Policy header"
    directives = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0].lower()] = words[1:]
    return directives


def pages(client_alice, alice):
    room = make_room(name="General")
    message = make_message(room=room, author=alice, text="hello **you** https://example.com")
    make_message(room=room, author=alice, text="re", reply_to=message)
    make_reaction(message=message)
    anonymous = Client()
    return {
        "lobby": client_alice.get("/"),
        "room": client_alice.get(room.get_absolute_url()),
        "older": client_alice.get(room.get_absolute_url() + "?before=2"),
        "around": client_alice.get(room.get_absolute_url() + "?around=1"),
        "edit": client_alice.get(f"/messages/{message.pk}/edit/"),
        "refused send": client_alice.post(f"/chat/{room.slug}/send/", {"message": ""}),
        "refused change": client_alice.post(f"/chat/{room.slug}/send/", {"react": "1 x on"}),
        "404": client_alice.get("/chat/nothing/"),
        "login": anonymous.get("/accounts/login/"),
        "signup": anonymous.get("/accounts/signup/"),
    }


def test_pages_send_a_csp_that_allows_only_our_own_scripts(client_alice, alice):
    for name, response in pages(client_alice, alice).items():
        directives = csp(response)
        scripts = directives.get("script-src", directives.get("default-src"))
        assert scripts == ["'self'"], (name, scripts)
        assert directives.get("default-src") == ["'self'"], name
        styles = directives.get("style-src", directives.get("default-src"))
        assert "'unsafe-inline'" not in styles and "'unsafe-eval'" not in styles, name
        assert all(s == "'self'" or s.startswith("'nonce-") for s in styles), (name, styles)
        assert directives.get("object-src") == ["'none'"], name
        assert directives.get("base-uri") in (["'none'"], ["'self'"]), name
        assert directives.get("frame-ancestors") == ["'none'"], name


def test_pages_have_no_inline_script_and_no_event_handler_attributes(client_alice, alice):
    for name, response in pages(client_alice, alice).items():
        tree = parse_html(response.content.decode())
        for script in tree.find_all(lambda n: n.tag == "script"):
            assert script.attrs.get("src", "").startswith(STATIC_PREFIX), (name, script.attrs)
            assert script.text().strip() == "", (name, script.attrs)
        for node in tree.walk():
            for attribute, value in node.attrs.items():
                assert not attribute.startswith("on"), (name, node.tag, attribute)
                assert not attribute.startswith(("hx-on", "data-hx-on")), (name, attribute)
                assert "javascript:" not in (value or "").lower(), (name, attribute, value)
                assert attribute != "style", (name, node.tag)  # blocked by the CSP anyway
        sources = csp(response).get("style-src") or []
        nonces = [s.removeprefix("'nonce-").rstrip("'") for s in sources if s.startswith("'nonce-")]
        for style in tree.find_all(lambda n: n.tag == "style"):
            assert style.attrs.get("nonce") in nonces, (name, style.attrs)


def test_the_style_nonce_is_new_for_every_response(client_alice, room):
    first, second = (csp(client_alice.get(room.get_absolute_url())) for _ in range(2))
    assert first["style-src"] != second["style-src"]


def test_htmx_is_served_from_our_own_origin(client_alice, room):
    tree = parse_html(client_alice.get(room.get_absolute_url()).content.decode())
    sources = [n.attrs.get("src", "") for n in tree.find_all(lambda n: n.tag == "script")]
    assert any("htmx" in src for src in sources), sources
    assert all(src.startswith("/") and not src.startswith("//") for src in sources), sources


def test_room_names_are_escaped_everywhere(client_alice):
    name = "<img src=x onerror=alert(1)> & co"
    response = client_alice.post("/", {"name": name})
    assert response.status_code == 302
    room = Room.objects.get()
    assert room.name == name
    for path in ["/", room.get_absolute_url()]:
        body = client_alice.get(path).content.decode()
        assert "<img src=x" not in body
        assert "&lt;img src=x onerror=alert(1)&gt; &amp; co" in body


# --- a fixed number of queries, whatever the history holds ---


def count_queries(client, path, **headers):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path, **headers)
    assert response.status_code == 200
    return len(captured)


def lively_room(name, authors, *, count=60):
    """`count` messages, and on top: reactions by several people, edits, replies (to shown,
    far-back and deleted messages) and deletes, all through the actions."""
    room = make_room(name=name)
    messages = [
        make_message(
            room=room, author=authors[n % len(authors)], text=f"m{n} **bold** https://e.com"
        )
        for n in range(count)
    ]
    for n, message in enumerate(messages):
        if n % 2:
            for person, emoji in zip(authors[:4], ("👍", "❤️", "👍", "🎉"), strict=True):
                make_reaction(message=message, user=person, emoji=emoji)
        if n % 3 == 0:
            message_edit(
                room=room, user=message.author, message_id=message.pk, text=f"m{n}, edited"
            )
    for n in range(0, count, 4):  # replies to the first messages, some deleted below
        target = messages[n // 4]
        make_message(room=room, author=authors[n % len(authors)], text=f"re {n}", reply_to=target)
    for message in messages[: count // 4 : 3]:
        message_delete(room=room, user=message.author, message_id=message.pk)
    for message in messages[-10::3]:
        message_delete(room=room, user=message.author, message_id=message.pk)
    return room


def first_shown(room):
    return Message.objects.filter(room=room, deleted_at=None).order_by("seq").first().pk


def plain_room(name, authors, *, count=100):
    return make_history(room=make_room(name=name), count=count, authors=authors)


@pytest.fixture
def authors(settings):
    settings.CHAT_RATE_LIMIT = None
    return [make_author(username=f"author{n}") for n in range(5)]


WINDOWS = {
    "latest": ("", {}),
    "older page": ("?before=60", {}),
    "older fragment": ("?before=60", {"HTTP_HX_REQUEST": "true"}),
    "newer page": ("?after=20", {}),
    "newer fragment": ("?after=20", {"HTTP_HX_REQUEST": "true"}),
    "around": ("?around=50", {}),
    "replying": ("?reply_to={first}", {}),
}


def test_room_pages_cost_the_same_with_or_without_reactions_edits_replies_and_deletes(
    client_alice, authors
):
    plain, lively = plain_room("plain", authors), lively_room("lively", authors)
    assert Reaction.objects.filter(message__room=lively).count() >= 100
    assert Message.objects.filter(room=lively, reply_to__isnull=False).count() >= 15
    assert (
        Message.objects.filter(room=lively, deleted_at__isnull=False).exclude(replies=None).exists()
    )
    assert Message.objects.filter(room=lively, edited_at__isnull=False).count() >= 20

    for window, (query, headers) in WINDOWS.items():
        paths = [
            room.get_absolute_url() + query.format(first=first_shown(room))
            for room in (plain, lively)
        ]
        # A first view: a new version of every message, so no fragment is kept, and one
        # query reads whatever the page shows.
        Message.objects.filter(room__in=[plain, lively]).update(version=F("version") + 1)
        first = [count_queries(client_alice, path, **headers) for path in paths]
        # Again: every fragment now comes from the cache.
        again = [count_queries(client_alice, path, **headers) for path in paths]
        assert first[0] == first[1], f"{window}, first view: plain {first[0]}, lively {first[1]}"
        assert again[0] == again[1], f"{window}, cached view: plain {again[0]}, lively {again[1]}"
        assert first[0] == again[0] + 1, window  # the one query for fragments not kept yet
        # And not one per message, author, reaction or quote (the sidebar's rooms and
        # counts are a fixed few: chat/selectors/unread.py).
        assert again[0] <= 12, window


@pytest.mark.parametrize("size", [60, 3_000])
@pytest.mark.parametrize("window", ["latest", "older page", "older fragment", "around"])
def test_room_pages_cost_the_same_however_long_the_history(client_alice, authors, size, window):
    query, headers = WINDOWS[window]
    small = plain_room("small", authors, count=60)
    large = plain_room("large", authors, count=size)
    small_first = count_queries(client_alice, small.get_absolute_url() + query, **headers)
    large_first = count_queries(client_alice, large.get_absolute_url() + query, **headers)
    assert small_first == large_first
    assert (
        count_queries(client_alice, large.get_absolute_url() + query, **headers) == large_first - 1
    )


@pytest.mark.parametrize("size", [60, 3_000])
def test_room_page_shows_a_full_page_of_a_long_history(client_alice, authors, size):
    room = plain_room("Long", authors, count=size)
    response = client_alice.get(room.get_absolute_url())
    assert seqs(response) == list(range(size - PAGE + 1, size + 1))
    assert links(response, "Older messages") == [
        f"{room.get_absolute_url()}?before={size - PAGE + 1}"
    ]
    body = response.content.decode()
    for author in authors:
        assert f'data-author="{author.pk}"' in body


@pytest.mark.parametrize("size", [0, 60, 3_000])
def test_lobby_queries_do_not_grow_with_history(client_alice, authors, size):
    for number in range(3):
        plain_room(f"Lobby room {number}", authors, count=size)
    baseline = count_queries(client_alice, "/")
    for number in range(30):
        Room.objects.create(name=f"many {number}", slug=f"many-{number}")
    # Session, user, the person's rooms, their unread and mention counts, public rooms.
    assert count_queries(client_alice, "/") == baseline <= 6
    response = client_alice.get("/")
    assert all(f"Lobby room {number}" in response.content.decode() for number in range(3))
