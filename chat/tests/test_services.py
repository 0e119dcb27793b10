import uuid

import pytest
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from django.test import Client

from chat import services
from chat.models import Message, Room
from chat.tests.factories import make_message, make_room, make_user

pytestmark = pytest.mark.django_db


class RoomGetOrCreateTests:
    def test_creates_a_room_with_a_slug_from_its_name(self):
        room, created = services.room_get_or_create(name="  Coffee   Corner ")
        assert created
        assert (room.name, room.slug) == ("Coffee Corner", "coffee-corner")

    def test_joins_the_existing_room(self):
        first, _ = services.room_get_or_create(name="Coffee Corner")
        again, created = services.room_get_or_create(name="coffee corner")
        assert not created and again == first
        assert Room.objects.count() == 1

    @pytest.mark.parametrize(
        ("name", "code"),
        [("", "blank"), ("   ", "blank"), ("x" * 81, "too_long"), ("!!!", "unusable")],
    )
    def test_refuses_bad_names_clearly(self, name, code):
        with pytest.raises(ValidationError) as error:
            services.room_get_or_create(name=name)
        assert error.value.code == code
        assert Room.objects.count() == 0


class CleanMessageTextTests:
    def test_keeps_line_breaks_and_trims_the_ends(self):
        assert services.clean_message_text("  one\r\ntwo\n ") == "one\ntwo"

    @pytest.mark.parametrize(
        ("text", "code"),
        [("", "blank"), (" \n\t ", "blank"), ("a\x00b", "control"), ("a\ud800b", "surrogate")],
    )
    def test_refuses_bad_text(self, text, code):
        with pytest.raises(ValidationError) as error:
            services.clean_message_text(text)
        assert error.value.code == code

    def test_refuses_text_over_the_limit(self, settings):
        settings.CHAT_MAX_MESSAGE_LENGTH = 10
        assert services.clean_message_text("x" * 10) == "x" * 10
        with pytest.raises(ValidationError) as error:
            services.clean_message_text("x" * 11)
        assert error.value.code == "too_long"
        assert "limit is 10" in error.value.messages[0]


class MessageSaveTests:
    def test_numbers_messages_one_after_another_per_room(self):
        room, other = make_room(), make_room()
        author = make_user()
        seqs = [
            services.message_save(room=room, author=author, text=f"m{i}").message.seq
            for i in range(3)
        ]
        assert seqs == [1, 2, 3]
        assert services.message_save(room=other, author=author, text="x").message.seq == 1
        room.refresh_from_db()
        assert room.last_seq == 3 and room.last_message_at is not None

    def test_the_same_form_twice_stores_one_message(self):
        room, author, key = make_room(), make_user(), uuid.uuid4()
        first = services.message_save(room=room, author=author, text="hi", client_key=key)
        second = services.message_save(room=room, author=author, text="hi", client_key=key)
        assert first.created and not second.created
        assert second.message.pk == first.message.pk
        assert Message.objects.count() == 1

    def test_new_text_under_a_stale_key_is_a_new_message(self):
        # The composer's fresh key did not arrive (socket dropped): the next text must not vanish.
        room, author, key = make_room(), make_user(), uuid.uuid4()
        services.message_save(room=room, author=author, text="first", client_key=key)
        second = services.message_save(room=room, author=author, text="second", client_key=key)
        assert second.created
        assert list(Message.objects.values_list("text", flat=True)) == ["first", "second"]

    def test_invalid_text_stores_nothing_and_uses_no_number(self):
        room, author = make_room(), make_user()
        with pytest.raises(ValidationError):
            services.message_save(room=room, author=author, text="   ")
        assert services.message_save(room=room, author=author, text="ok").message.seq == 1

    def test_rate_limit_refuses_the_excess(self, settings):
        settings.CHAT_RATE_LIMIT = (2, 60)
        room, author, other = make_room(), make_user(), make_user()
        services.message_save(room=room, author=author, text="1")
        services.message_save(room=room, author=author, text="2")
        with pytest.raises(services.RateLimited) as error:
            services.message_save(room=room, author=author, text="3")
        assert "Slow down" in str(error.value)
        assert services.message_save(room=room, author=other, text="others go on").created
        assert Message.objects.filter(author=author).count() == 2

    def test_rate_limit_exempts_named_users(self, settings):
        settings.CHAT_RATE_LIMIT = (1, 60)
        settings.CHAT_RATE_LIMIT_EXEMPT = {"bench"}
        room, author = make_room(), make_user(username="bench")
        for number in range(3):
            services.message_save(room=room, author=author, text=str(number))
        assert Message.objects.count() == 3


class RenderingTests:
    def test_the_page_shows_the_fragment_that_is_broadcast(self, settings):
        settings.STORAGES = {
            **settings.STORAGES,
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        }
        room, author = make_room(), make_user(username="ann")
        message = make_message(
            room=room, author=author, text="hello <b>you</b>\nsee https://example.com"
        )
        fragment = render_to_string("chat/_message.html", {"message": message}).strip()

        broadcast = services.message_render(message)
        assert fragment in broadcast
        assert 'hx-swap-oob="beforeend"' in broadcast
        assert f'value="{message.seq}"' in broadcast

        client = Client()
        client.force_login(author)
        page = client.get(room.get_absolute_url()).content.decode()
        assert fragment in page

    def test_text_is_escaped_and_links_made_safely(self):
        room = make_room()
        message = make_message(
            room=room,
            text="<img src=x onerror=alert(1)> javascript:alert(1) https://example.com/?a=1&b=2",
        )
        html = services.message_render(message)
        assert "<img" not in html
        assert "&lt;img src=x onerror=alert(1)&gt;" in html
        assert 'href="javascript' not in html
        assert 'href="https://example.com/?a=1&amp;b=2"' in html


class MessagePostTests:
    def test_sync_post_saves_and_publishes_through_the_room_group(self):
        from asgiref.sync import async_to_sync
        from channels.layers import get_channel_layer

        room, author = make_room(), make_user()
        layer = get_channel_layer()
        channel = async_to_sync(layer.new_channel)()
        async_to_sync(layer.group_add)(room.group_name, channel)

        posted = services.message_post(room=room, author=author, text="over the layer")

        event = async_to_sync(layer.receive)(channel)
        assert event["type"] == "chat.message"
        assert (event["room"], event["seq"]) == (room.pk, posted.message.seq)
        assert event["html"] == posted.html
