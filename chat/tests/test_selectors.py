"""Reads: what the selectors return, and that pages cost the same however long the history."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from chat import selectors
from chat.models import Message, Room
from chat.tests.factories import make_message, make_room

pytestmark = pytest.mark.django_db

PAGE = 50  # settings.CHAT_PAGE_SIZE by default
# Session, user, room, one page of message numbers (their HTML comes from the cache).
ROOM_PAGE_QUERIES = 4
OLDER_PAGE_QUERIES = 4
RENDERING = 1  # plus one query, for all of them, when some messages are not in the cache yet


def fill(room, count, *, authors):
    """`count` messages by turns of `authors`, numbered on from the room's last_seq."""
    start = room.last_seq
    now = timezone.now()
    Message.objects.bulk_create(
        Message(
            room=room,
            author=authors[i % len(authors)],
            seq=start + i + 1,
            text=f"message {start + i + 1}",
        )
        for i in range(count)
    )
    Room.objects.filter(pk=room.pk).update(last_seq=start + count, last_message_at=now)
    room.refresh_from_db()
    return room


def seqs(messages):
    return [message.seq for message in messages]


def make_author(name):
    # No password: hashing one costs a second on a busy machine, and nobody logs in.
    return get_user_model().objects.create_user(username=name, password=None)


@pytest.fixture
def authors():
    return [make_author(f"author{number}") for number in range(5)]


@pytest.fixture
def viewer(client):
    user = make_author("viewer")
    client.force_login(user)
    return user


# --- selectors ---


class MessagesLatestTests:
    def test_newest_page_oldest_first(self, authors):
        room = fill(make_room(), 120, authors=authors)
        assert seqs(selectors.message_positions_latest(room, limit=PAGE)) == list(range(71, 121))

    def test_short_history_is_all_of_it(self, authors):
        room = fill(make_room(), 3, authors=authors)
        assert seqs(selectors.message_positions_latest(room, limit=PAGE)) == [1, 2, 3]

    def test_empty_room(self):
        assert selectors.message_positions_latest(make_room(), limit=PAGE) == []

    def test_only_this_room(self, authors):
        room, other = make_room(), make_room()
        fill(other, 10, authors=authors)
        fill(room, 4, authors=authors)
        fill(other, 10, authors=authors)
        latest = selectors.message_positions_latest(room, limit=PAGE)
        assert seqs(latest) == [1, 2, 3, 4]
        rooms = Message.objects.filter(pk__in=[row.pk for row in latest]).values_list("room_id")
        assert set(rooms) == {(room.pk,)}

    def test_whole_messages_come_with_their_authors_in_one_query(
        self, authors, django_assert_num_queries
    ):
        room = fill(make_room(), 20, authors=authors)
        pks = [row.pk for row in selectors.message_positions_latest(room, limit=PAGE)]
        with django_assert_num_queries(1):
            messages = selectors.messages_by_pk(pks)
            names = [message.author.get_username() for message in messages]
        assert sorted(message.pk for message in messages) == sorted(pks)
        assert set(names) == {author.get_username() for author in authors}


class MessagesBeforeTests:
    def test_page_just_before_oldest_first(self, authors):
        room = fill(make_room(), 300, authors=authors)
        assert seqs(selectors.message_positions_before(room, before_seq=151, limit=PAGE)) == list(
            range(101, 151)
        )

    def test_near_the_start_is_shorter(self, authors):
        room = fill(make_room(), 300, authors=authors)
        assert seqs(selectors.message_positions_before(room, before_seq=11, limit=PAGE)) == list(
            range(1, 11)
        )
        assert selectors.message_positions_before(room, before_seq=1, limit=PAGE) == []

    def test_pages_walk_back_without_gaps_or_repeats(self, authors):
        room = fill(make_room(), 237, authors=authors)
        seen = selectors.message_positions_latest(room, limit=PAGE)
        while True:
            older = selectors.message_positions_before(room, before_seq=seen[0].seq, limit=PAGE)
            if not older:
                break
            assert len(older) <= PAGE
            seen = older + seen
        assert seqs(seen) == list(range(1, 238))

    def test_only_this_room(self, authors):
        room, other = make_room(), make_room()
        fill(other, 80, authors=authors)
        fill(room, 30, authors=authors)
        assert seqs(selectors.message_positions_before(room, before_seq=20, limit=PAGE)) == list(
            range(1, 20)
        )


class MessagesAfterTests:
    def test_everything_after_oldest_first(self, authors):
        room = fill(make_room(), 40, authors=authors)
        assert seqs(selectors.messages_after(room, after_seq=32)) == list(range(33, 41))

    def test_upto_and_limit(self, authors):
        room = fill(make_room(), 40, authors=authors)
        assert seqs(selectors.messages_after(room, after_seq=10, upto_seq=15)) == list(
            range(11, 16)
        )
        assert seqs(selectors.messages_after(room, after_seq=10, limit=3)) == [11, 12, 13]
        assert seqs(selectors.messages_after(room, after_seq=10, upto_seq=30, limit=5)) == list(
            range(11, 16)
        )
        assert selectors.messages_after(room, after_seq=40) == []

    def test_only_this_room(self, authors):
        room, other = make_room(), make_room()
        fill(room, 5, authors=authors)
        fill(other, 9, authors=authors)
        assert seqs(selectors.messages_after(room, after_seq=0)) == [1, 2, 3, 4, 5]


class RoomListTests:
    def test_latest_activity_first_then_quiet_rooms_by_name(self):
        now = timezone.now()
        quiet_b, quiet_a = make_room(name="Bravo quiet"), make_room(name="Alpha quiet")
        old, new, middle = make_room(name="Old"), make_room(name="New"), make_room(name="Middle")
        for room, age in ((old, 3), (new, 1), (middle, 2)):
            Room.objects.filter(pk=room.pk).update(last_message_at=now - timedelta(hours=age))
        assert list(selectors.room_list()) == [new, middle, old, quiet_a, quiet_b]

    def test_posting_moves_a_room_to_the_top(self, authors):
        first, second = make_room(name="First"), make_room(name="Second")
        make_message(room=first, author=authors[0])
        make_message(room=second, author=authors[0])
        assert list(selectors.room_list())[:2] == [second, first]
        make_message(room=first, author=authors[0])
        assert list(selectors.room_list())[:2] == [first, second]

    def test_same_activity_time_sorts_by_name(self):
        now = timezone.now()
        rooms = [make_room(name=name) for name in ("Zulu", "Echo", "Kilo")]
        Room.objects.filter(pk__in=[room.pk for room in rooms]).update(last_message_at=now)
        assert [room.name for room in selectors.room_list()] == ["Echo", "Kilo", "Zulu"]


def test_room_last_seqs(authors):
    room, other, empty = make_room(), make_room(), make_room()
    fill(room, 7, authors=authors)
    fill(other, 3, authors=authors)
    assert selectors.room_last_seqs([room.pk, other.pk, empty.pk]) == {
        room.pk: 7,
        other.pk: 3,
        empty.pk: 0,
    }


def test_room_by_slug():
    room = make_room(name="Find Me")
    assert selectors.room_by_slug("find-me") == room
    assert selectors.room_by_slug("nope") is None


# --- pages: a constant number of queries, however long the history ---

HISTORY_SIZES = [60, 3_000]


@pytest.mark.parametrize("size", HISTORY_SIZES)
def test_room_page_queries_do_not_grow_with_history(
    size, authors, viewer, client, django_assert_num_queries
):
    room = fill(make_room(name="Long"), size, authors=authors)

    with django_assert_num_queries(ROOM_PAGE_QUERIES + RENDERING):  # nothing kept yet
        response = client.get(f"/chat/{room.slug}/")

    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('class="message"') == PAGE
    assert f'data-seq="{size}"' in html and f'data-seq="{size - PAGE + 1}"' in html
    assert f'data-seq="{size - PAGE}"' not in html
    assert f"?before={size - PAGE + 1}" in html  # the "older" link
    for author in authors:
        assert author.get_username() in html

    with django_assert_num_queries(ROOM_PAGE_QUERIES):  # again, with whatever is now kept
        again = client.get(f"/chat/{room.slug}/")
    assert again.content.decode().count('class="message"') == PAGE


@pytest.mark.parametrize("size", HISTORY_SIZES)
@pytest.mark.parametrize("where", ["middle", "start"])
def test_older_fragment_queries_do_not_grow_with_history(
    size, where, authors, viewer, client, django_assert_num_queries
):
    room = fill(make_room(name="Long"), size, authors=authors)
    before = max(size // 2, PAGE + 5) if where == "middle" else 11

    with django_assert_num_queries(OLDER_PAGE_QUERIES + RENDERING):
        response = client.get(f"/chat/{room.slug}/", {"before": before}, HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and 'id="composer"' not in html  # the fragment alone
    shown = min(PAGE, before - 1)
    assert html.count('class="message"') == shown
    assert f'data-seq="{before - 1}"' in html and f'data-seq="{before - shown}"' in html
    assert f'data-seq="{before}"' not in html
    if where == "middle":
        assert f"?before={before - PAGE}" in html  # more older ones to come
    else:
        assert "?before=" not in html  # the start of the history: no link further back

    with django_assert_num_queries(OLDER_PAGE_QUERIES):  # again, the fragments now kept
        again = client.get(f"/chat/{room.slug}/", {"before": before}, HTTP_HX_REQUEST="true")
    assert again.content.decode() == html


@pytest.mark.parametrize("size", HISTORY_SIZES)
def test_older_full_page_without_htmx_queries_do_not_grow_with_history(
    size, authors, viewer, client, django_assert_num_queries
):
    room = fill(make_room(name="Long"), size, authors=authors)

    with django_assert_num_queries(ROOM_PAGE_QUERIES + RENDERING):
        response = client.get(f"/chat/{room.slug}/", {"before": max(size // 2, PAGE + 5)})

    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html and html.count('class="message"') == PAGE


@pytest.mark.parametrize("size", [0, 60, 3_000])
def test_lobby_queries_do_not_grow_with_history(
    size, authors, viewer, client, django_assert_num_queries
):
    for number in range(3):
        fill(make_room(name=f"Lobby room {number}"), size, authors=authors)

    with django_assert_num_queries(3):  # session, user, rooms
        response = client.get("/")

    assert response.status_code == 200
    assert all(f"Lobby room {number}" in response.content.decode() for number in range(3))
