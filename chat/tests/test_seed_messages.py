"""`manage.py seed_messages`: a long history, numbered like posted messages, fast."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from chat.actions.messages import clean_message_text, message_post
from chat.models import Message, Room, RoomEvent
from chat.selectors import messages as selectors
from chat.tests.factories import make_message, make_room, make_user

pytestmark = pytest.mark.django_db

METHODS = ["fast", "orm"]


def seed(room_name, count, **options):
    out = StringIO()
    call_command("seed_messages", room=room_name, count=count, stdout=out, **options)
    return out.getvalue()


def history(room):
    return list(Message.objects.filter(room=room).order_by("seq"))


@pytest.mark.parametrize("method", METHODS)
def test_creates_the_room_and_numbers_messages_one_to_n(method):
    output = seed("Seeded Room", 250, batch_size=100, method=method)

    room = Room.objects.get(slug="seeded-room")
    messages = history(room)
    assert [message.seq for message in messages] == list(range(1, 251))
    assert room.last_seq == 250
    # Each is the room's "posted" event, as if posted: a page that was away catches up on them.
    events = RoomEvent.objects.filter(room=room).order_by("seq")
    assert [(e.seq, e.kind, e.message_id) for e in events] == [
        (m.seq, "message.posted", m.pk) for m in messages
    ]
    assert room.last_message_at == messages[-1].created_at
    assert "250 messages" in output and "seeded-room" in output


@pytest.mark.parametrize("method", METHODS)
def test_created_at_climbs_with_seq_over_the_requested_span(method):
    seed("Spread", 300, batch_size=64, days=30, method=method)

    room = Room.objects.get(slug="spread")
    times = [message.created_at for message in history(room)]
    assert times == sorted(times)
    assert len(set(times)) == len(times)
    span = times[-1] - times[0]
    assert 29 <= span.total_seconds() / 86400 <= 30
    assert room.created_at <= times[0]


@pytest.mark.parametrize("method", METHODS)
def test_running_twice_adds_after_the_first_run(method):
    seed("Twice", 120, batch_size=50, method=method)
    first = Room.objects.get(slug="twice")
    seed("Twice", 80, batch_size=50, method=method)

    room = Room.objects.get(slug="twice")
    messages = history(room)
    assert room.pk == first.pk
    assert Room.objects.filter(slug="twice").count() == 1
    assert [message.seq for message in messages] == list(range(1, 201))
    assert room.last_seq == 200
    times = [message.created_at for message in messages]
    assert times == sorted(times)
    assert times[119] >= first.last_message_at
    assert room.last_message_at == times[-1]


def test_continues_after_posted_messages_and_posting_continues_after_it():
    room = make_room(name="Busy")
    author = make_user()
    make_message(room=room, author=author, text="before the seed")

    seed("Busy", 40, batch_size=16)
    after = message_post(room=room, author=author, text="after the seed").message

    room.refresh_from_db()
    messages = history(room)
    assert [message.seq for message in messages] == list(range(1, 43))
    assert messages[0].text == "before the seed"
    assert after.seq == 42 and messages[-1].pk == after.pk
    assert room.last_seq == 42


def test_leaves_other_rooms_alone():
    other = make_room(name="Quiet")
    make_message(room=other, text="only one")

    seed("Loud", 30)

    other.refresh_from_db()
    assert other.last_seq == 1
    assert Message.objects.filter(room=other).count() == 1


def test_text_is_varied_and_authors_are_the_requested_number():
    seed("Chatty", 600, authors=7, seed=1)

    messages = history(Room.objects.get(slug="chatty"))
    texts = [message.text for message in messages]
    assert len(set(texts)) > 500
    lengths = [len(text) for text in texts]
    assert min(lengths) < 20 and max(lengths) > 150
    assert all(text.strip() == text and text for text in texts)
    assert all(clean_message_text(text) == text for text in texts)
    author_ids = {message.author_id for message in messages}
    assert len(author_ids) == 7


def test_authors_are_reused_and_cannot_log_in():
    seed("One", 50, authors=3)
    seed("Two", 50, authors=3)

    authors = get_user_model().objects.filter(chat_messages__isnull=False).distinct()
    assert authors.count() == 3
    assert not any(author.has_usable_password() for author in authors)


def test_same_seed_gives_the_same_text():
    seed("First", 40, seed=7)
    seed("Second", 40, seed=7)

    first = [m.text for m in history(Room.objects.get(slug="first"))]
    second = [m.text for m in history(Room.objects.get(slug="second"))]
    assert first == second


def test_seeded_history_pages_like_posted_history():
    seed("Paged", 130, batch_size=40)
    room = Room.objects.get(slug="paged")

    latest = selectors.message_positions_latest(room, limit=50)
    older = selectors.message_positions_before(room, before_seq=latest[0].seq, limit=50)
    assert [m.seq for m in older + latest] == list(range(31, 131))


def test_count_zero_creates_an_empty_room():
    seed("Empty", 0)

    room = Room.objects.get(slug="empty")
    assert room.last_seq == 0 and room.last_message_at is None
    assert not Message.objects.filter(room=room).exists()


@pytest.mark.parametrize(
    "options",
    [
        {"room": "Bad", "count": -1},
        {"room": "Bad", "count": 10, "batch_size": 0},
        {"room": "Bad", "count": 10, "authors": 0},
        {"room": "   ", "count": 10},
        {"room": "!!!", "count": 10},
    ],
)
def test_refuses_nonsense(options):
    with pytest.raises(CommandError):
        call_command("seed_messages", stdout=StringIO(), **options)
    assert not Message.objects.exists()
