"""chat/rendering.py: one fragment per message version, kept in the cache and never served
once the message has changed (edit, reaction, delete, a change to the message it quotes)."""

import pytest
from django.db import connection
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext

from chat import events
from chat.actions.messages import message_delete, message_edit
from chat.models import Message, RoomEvent
from chat.rendering import MESSAGE_TEMPLATE, shown_messages, with_fragments
from chat.selectors import messages as message_selectors
from chat.selectors.events import events_after
from chat.tests.factories import (
    make_author,
    make_message,
    make_reaction,
    recorded_events,
)
from chat.tests.test_security import parse_html

pytestmark = pytest.mark.django_db


def page(client, room, query=""):
    """{message pk: its <li>'s text and reactions, as the page shows them}."""
    tree = parse_html(client.get(room.get_absolute_url() + query).content.decode())
    shown = {}
    for node in tree.find_all(lambda n: n.tag == "li" and "message" in n.classes):
        body = node.find_all(lambda n: "message-text" in n.classes)[0]
        counts = {
            button.attrs["aria-label"].removeprefix("React with "): button.find_all(
                lambda n: "reaction-count" in n.classes
            )[0].text()
            for button in node.find_all(lambda n: "reaction-on" in n.classes)
        }
        quotes = [
            " ".join(q.text().split()) for q in node.find_all(lambda n: "reply-quote" in n.classes)
        ]
        edited = bool(node.find_all(lambda n: "edited" in n.classes))
        shown[int(node.attrs["id"].removeprefix("message-"))] = (
            " ".join(body.text().split()),
            counts,
            quotes,
            edited,
        )
    return shown


def positions(room):
    return message_selectors.message_positions_latest(room, limit=50)


class OneRenderingTests:
    def test_the_page_shows_the_fragment_that_is_broadcast(
        self, client_alice, alice, room, django_capture_on_commit_callbacks
    ):
        with recorded_events() as sent, django_capture_on_commit_callbacks(execute=True):
            message = make_message(
                room=room, author=alice, text="hello **you** https://example.com"
            )
        message = message_selectors.message_in_room(room, message.pk)
        fragment = render_to_string(MESSAGE_TEMPLATE, {"message": message}).strip()
        [(_, _, broadcast)] = sent
        assert fragment in broadcast
        assert fragment in client_alice.get(room.get_absolute_url()).content.decode()
        assert fragment in client_alice.get(room.get_absolute_url() + "?around=1").content.decode()

    def test_the_broadcast_keeps_the_fragment_so_the_page_renders_nothing(
        self, client_alice, alice, room, django_capture_on_commit_callbacks
    ):
        make_message(room=room, author=alice, text="warm up")
        page(client_alice, room)  # every fragment now kept
        with CaptureQueriesContext(connection) as warm:
            client_alice.get(room.get_absolute_url())
        with recorded_events(), django_capture_on_commit_callbacks(execute=True):
            make_message(room=room, author=alice, text="published")
        with CaptureQueriesContext(connection) as after:
            response = client_alice.get(room.get_absolute_url())
        assert "published" in response.content.decode()
        assert len(after) == len(warm)  # the new message's fragment came from the cache

    def test_shown_messages_reads_the_cache_once_and_renders_only_the_missing(
        self, alice, room, django_assert_num_queries
    ):
        messages = [make_message(room=room, author=alice, text=f"m{n}") for n in range(5)]
        with_fragments(messages[:3], new=True)  # three kept
        rows = positions(room)
        with django_assert_num_queries(1):  # the two others, in one query
            first = shown_messages(rows)
        with django_assert_num_queries(0):  # now all kept
            again = shown_messages(rows)
        assert [m.pk for m in first] == [m.pk for m in again] == [m.pk for m in messages]
        assert [m.fragment for m in first] == [m.fragment for m in again]


class NeverAnOldVersionTests:
    """The page is viewed (so every fragment is kept), then the message changes."""

    def test_after_an_edit(self, client_alice, alice, room):
        message = make_message(room=room, author=alice, text="before")
        assert page(client_alice, room)[message.pk][0] == "before"
        message_edit(room=room, user=alice, message_id=message.pk, text="after")
        for query in ("", "?around=1", "?after=0", "?before=99"):
            text, _, _, edited = page(client_alice, room, query)[message.pk]
            assert (text, edited) == ("after", True), query

    def test_after_reactions(self, client_alice, alice, room):
        message = make_message(room=room, author=alice)
        assert page(client_alice, room)[message.pk][1] == {}
        make_reaction(message=message, emoji="🎉")
        assert page(client_alice, room)[message.pk][1] == {"🎉": "1"}
        reactor = make_author()
        make_reaction(message=message, user=reactor, emoji="🎉")
        assert page(client_alice, room)[message.pk][1] == {"🎉": "2"}
        make_reaction(message=message, user=reactor, emoji="🎉", on=False)
        assert page(client_alice, room)[message.pk][1] == {"🎉": "1"}

    def test_after_a_delete(self, client_alice, alice, room):
        message = make_message(room=room, author=alice, text="regret")
        kept = make_message(room=room, author=alice, text="kept")
        assert set(page(client_alice, room)) == {message.pk, kept.pk}
        message_delete(room=room, user=alice, message_id=message.pk)
        for query in ("", "?around=1", "?after=0"):
            shown = page(client_alice, room, query)
            assert set(shown) == {kept.pk}, query
        assert "regret" not in client_alice.get(room.get_absolute_url()).content.decode()

    def test_after_the_quoted_message_changes(self, client_alice, alice, room):
        original = make_message(room=room, author=alice, text="first words")
        reply = make_message(room=room, text="re", reply_to=original)
        assert page(client_alice, room)[reply.pk][2] == ["alice first words"]
        message_edit(room=room, user=alice, message_id=original.pk, text="second words")
        assert page(client_alice, room)[reply.pk][2] == ["alice second words"]
        message_delete(room=room, user=alice, message_id=original.pk)
        assert page(client_alice, room)[reply.pk][2] == ["Original message deleted"]

    def test_a_position_read_before_a_change_shows_the_message_as_it_is_now(self, alice, room):
        """A page that read its positions just before an edit still gets a current fragment
        when the old one is not kept (its socket then applies the edit event: same HTML)."""
        message = make_message(room=room, author=alice, text="old")
        stale = positions(room)
        message_edit(room=room, user=alice, message_id=message.pk, text="new")
        [shown] = shown_messages(stale)
        assert "new" in shown.fragment and "old" not in shown.fragment


class CatchUpRenderingTests:
    """Catch-up renders stored events from the messages' current state."""

    def test_replaying_the_stream_shows_each_message_as_it_is_now(self, alice, room):
        message = make_message(room=room, author=alice, text="v1")
        message_edit(room=room, user=alice, message_id=message.pk, text="v2")
        make_reaction(message=message, emoji="👍")
        gone = make_message(room=room, author=alice, text="gone soon")
        message_delete(room=room, user=alice, message_id=gone.pk)
        rendered = events.render_stored(events_after(room.pk, after_seq=0, limit=100))
        assert [seq for seq, _ in rendered] == [1, 2, 3, 4, 5]
        posted, edited, reacted, gone_posted, deleted = (html for _, html in rendered)
        assert "v2" in posted and "v1" not in posted  # the current text, even for the first event
        assert "v2" in edited and 'data-reactors=" u' in reacted
        assert "gone soon" not in gone_posted and f"message-{gone.pk}" not in gone_posted
        assert f'<li id="message-{gone.pk}" hx-swap-oob="delete">' in deleted
        for seq, html in rendered:
            assert f'id="last-seq" name="last_seq" value="{seq}"' in html

    def test_live_and_catch_up_render_the_last_event_alike(
        self, alice, room, django_capture_on_commit_callbacks
    ):
        message = make_message(room=room, author=alice, text="text")
        make_message(room=room, text="re", reply_to=message)  # its quote changes too
        with recorded_events() as sent, django_capture_on_commit_callbacks(execute=True):
            message_edit(room=room, user=alice, message_id=message.pk, text="new text")
        [(_, seq, live)] = sent
        [(stored_seq, stored)] = events.render_stored(
            events_after(room.pk, after_seq=seq - 1, limit=1)
        )
        assert stored_seq == seq
        assert " ".join(live.split()) == " ".join(stored.split())

    def test_an_event_without_a_message_keeps_the_position(self, room, alice):
        make_message(room=room, author=alice)
        RoomEvent.objects.create(room=room, seq=2, kind="something.else", message=None)
        rendered = events.render_stored(events_after(room.pk, after_seq=1, limit=5))
        assert len(rendered) == 1 and rendered[0][0] == 2
        assert 'value="2"' in rendered[0][1] and "<li" not in rendered[0][1]
        assert Message.objects.count() == 1
