"""chat/views/messages.py: a message's permalink, its edit form and replying to it."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from chat.actions.messages import message_delete, message_edit
from chat.models import Message
from chat.tests.factories import make_history, make_message, make_room, make_user
from chat.tests.test_security import parse_html

pytestmark = pytest.mark.django_db


def fields_of(node):
    fields = {}
    for field in node.walk():
        name = field.attrs.get("name")
        if name and field.tag == "input":
            fields[name] = field.attrs.get("value", "")
        elif name and field.tag == "textarea":
            fields[name] = field.text()
    return fields


class PermalinkTests:
    def test_opens_the_room_around_the_message_highlighted(self, client_alice, alice, room):
        make_history(room=room, count=200, authors=[alice])
        message = Message.objects.get(room=room, seq=42)
        response = client_alice.get(f"/messages/{message.pk}/")
        assert response.status_code == 302
        assert response["Location"] == f"/chat/{room.slug}/?around=42#message-{message.pk}"
        page = client_alice.get(response["Location"].split("#")[0])
        tree = parse_html(page.content.decode())
        assert tree.by_id(f"message-{message.pk}") is not None
        shown = [
            int(n.attrs["data-seq"])
            for n in tree.find_all(lambda n: "message" in n.classes and n.tag == "li")
        ]
        assert shown[0] < 42 < shown[-1]

    def test_even_far_back(self, client_alice, alice, room):
        make_history(room=room, count=5_000, authors=[alice])
        message = Message.objects.get(room=room, seq=3)
        location = client_alice.get(f"/messages/{message.pk}/")["Location"]
        page = client_alice.get(location.split("#")[0])
        assert parse_html(page.content.decode()).by_id(f"message-{message.pk}") is not None

    def test_message_time_links_to_the_permalink(self, client_alice, alice, room):
        message = make_message(room=room, author=alice)
        tree = parse_html(client_alice.get(room.get_absolute_url()).content.decode())
        [time_link] = tree.by_id(f"message-{message.pk}").find_all(
            lambda n: "message-time" in n.classes
        )
        assert time_link.attrs["href"] == f"/messages/{message.pk}/"

    def test_a_deleted_or_unknown_message_is_not_found(self, client_alice, alice, room):
        message = make_message(room=room, author=alice)
        message_delete(room=room, user=alice, message_id=message.pk)
        assert client_alice.get(f"/messages/{message.pk}/").status_code == 404
        assert client_alice.get("/messages/987654/").status_code == 404

    def test_needs_a_login(self, room):
        message = make_message(room=room)
        response = Client().get(f"/messages/{message.pk}/")
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


class EditPageTests:
    def test_the_author_gets_a_page_with_the_form(self, client_alice, alice, room):
        message = make_message(room=room, author=alice, text="helo <b>")
        response = client_alice.get(f"/messages/{message.pk}/edit/")
        assert response.status_code == 200
        body = response.content.decode()
        assert "<html" in body
        form = parse_html(body).by_id(f"edit-form-{message.pk}")
        assert form.tag == "form" and form.attrs["method"] == "post"
        assert form.attrs["action"] == f"/chat/{room.slug}/send/"
        fields = fields_of(form)
        assert fields["edit"] == str(message.pk) and fields["message"] == "helo <b>"
        assert "csrfmiddlewaretoken" in fields
        assert "<b>" not in body.split(f'id="edit-form-{message.pk}"')[1].split("</form>")[0]
        cancel = [a for a in form.find_all(lambda n: n.tag == "a") if "Cancel" in a.text()]
        assert cancel[0].attrs["href"] == f"{room.get_absolute_url()}#message-{message.pk}"

    def test_htmx_gets_the_form_alone(self, client_alice, alice, room):
        message = make_message(room=room, author=alice, text="short")
        response = client_alice.get(f"/messages/{message.pk}/edit/", HTTP_HX_REQUEST="true")
        body = response.content.decode()
        assert response.status_code == 200 and "<html" not in body
        tree = parse_html(body)
        assert [n.tag for n in tree.children if not isinstance(n, str)] == ["form"]
        assert tree.by_id(f"edit-{message.pk}").attrs["value"] == "short"

    def test_a_multi_line_message_is_edited_in_a_textarea(self, client_alice, alice, room):
        message = make_message(room=room, author=alice, text="one\ntwo")
        tree = parse_html(client_alice.get(f"/messages/{message.pk}/edit/").content.decode())
        field = tree.by_id(f"edit-{message.pk}")
        assert field.tag == "textarea" and field.text() == "one\ntwo"

    def test_other_people_get_not_found(self, client, alice, bob, room):
        message = make_message(room=room, author=alice)
        client.force_login(bob)
        assert client.get(f"/messages/{message.pk}/edit/").status_code == 404
        assert (
            client.get(f"/messages/{message.pk}/edit/", HTTP_HX_REQUEST="true").status_code == 404
        )

    def test_staff_may_open_anyones(self, client, alice, room):
        message = make_message(room=room, author=alice)
        client.force_login(make_user(password=None, is_staff=True))
        assert client.get(f"/messages/{message.pk}/edit/").status_code == 200

    def test_a_deleted_or_unknown_message_is_not_found(self, client_alice, alice, room):
        message = make_message(room=room, author=alice)
        message_delete(room=room, user=alice, message_id=message.pk)
        assert client_alice.get(f"/messages/{message.pk}/edit/").status_code == 404
        assert client_alice.get("/messages/987654/edit/").status_code == 404

    def test_only_get(self, client_alice, alice, room):
        message = make_message(room=room, author=alice)
        assert (
            client_alice.post(f"/messages/{message.pk}/edit/", {"message": "x"}).status_code == 405
        )
        message.refresh_from_db()
        assert message.text == "hello"


class ReplyTests:
    def test_htmx_gets_the_composer_with_the_quote(self, client_alice, bob, room):
        message = make_message(room=room, author=bob, text="what **time** is it?")
        response = client_alice.get(f"/messages/{message.pk}/reply/", HTTP_HX_REQUEST="true")
        body = response.content.decode()
        assert response.status_code == 200 and "<html" not in body
        fields = parse_html(body).by_id("composer-fields")
        assert fields is not None
        values = fields_of(fields)
        assert values["reply_to"] == str(message.pk) and values["message"] == ""
        assert values["client_key"]
        [quote] = fields.find_all(lambda n: "reply-quote" in n.classes)
        assert quote.attrs["href"] == f"/messages/{message.pk}/"
        # The words as shown, without the formatting marks.
        assert "bob" in quote.text() and "what time is it?" in quote.text()
        cancel = [a for a in fields.find_all(lambda n: n.tag == "a") if "Cancel reply" in a.text()]
        assert cancel[0].attrs["href"] == room.get_absolute_url()

    def test_without_htmx_the_room_opens_replying(self, client_alice, bob, room):
        message = make_message(room=room, author=bob, text="question?")
        response = client_alice.get(f"/messages/{message.pk}/reply/")
        assert response.status_code == 302
        assert response["Location"] == f"/chat/{room.slug}/?reply_to={message.pk}#composer"
        page = client_alice.get(f"/chat/{room.slug}/", {"reply_to": message.pk})
        values = fields_of(parse_html(page.content.decode()).by_id("composer"))
        assert values["reply_to"] == str(message.pk)

    def test_the_room_ignores_a_reply_to_of_another_room_or_a_deleted_message(
        self, client_alice, bob, room
    ):
        elsewhere = make_message(room=make_room(), author=bob, text="elsewhere")
        gone = make_message(room=room, author=bob, text="gone")
        message_delete(room=room, user=bob, message_id=gone.pk)
        for target in (elsewhere.pk, gone.pk, 987654, "abc"):
            page = client_alice.get(f"/chat/{room.slug}/", {"reply_to": target})
            assert page.status_code == 200
            values = fields_of(parse_html(page.content.decode()).by_id("composer"))
            assert "reply_to" not in values, target
            assert "elsewhere" not in page.content.decode()

    def test_a_deleted_or_unknown_message_is_not_found(self, client_alice, bob, room):
        message = make_message(room=room, author=bob)
        message_delete(room=room, user=bob, message_id=message.pk)
        for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
            assert client_alice.get(f"/messages/{message.pk}/reply/", **headers).status_code == 404
            assert client_alice.get("/messages/987654/reply/", **headers).status_code == 404

    def test_a_reply_quotes_the_original_and_follows_its_changes(
        self, client_alice, alice, bob, room
    ):
        original = make_message(room=room, author=bob, text="first words")
        reply = make_message(room=room, author=alice, text="re", reply_to=original)

        def quote_text():
            tree = parse_html(client_alice.get(room.get_absolute_url()).content.decode())
            [quote] = tree.by_id(f"message-{reply.pk}").find_all(
                lambda n: "reply-quote" in n.classes
            )
            return " ".join(quote.text().split())

        assert quote_text() == "bob first words"
        message_edit(room=room, user=bob, message_id=original.pk, text="second words")
        assert quote_text() == "bob second words"
        message_delete(room=room, user=bob, message_id=original.pk)
        assert quote_text() == "Original message deleted"


def test_admin_escapes_message_text_and_room_names(client, alice):
    admin = get_user_model().objects.create_superuser("root", "root@example.com", None)
    client.force_login(admin)
    room = make_room(name="<b>room</b>")
    make_message(room=room, author=alice, text="<script>alert(1)</script>")
    for path in ["/admin/chat/message/", "/admin/chat/room/"]:
        body = client.get(path).content.decode()
        assert "<script>alert(1)</script>" not in body and "<b>room</b>" not in body
        assert "&lt;b&gt;room&lt;/b&gt;" in body
