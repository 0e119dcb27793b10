"""chat/localtime.py: each reader's own clock, from HTML rendered once on the operator's.

Pacific/Kiritimati (UTC+14) and Pacific/Pago_Pago (UTC-11) are 25 hours apart: their
dates always differ, whatever the moment the test runs.
"""

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings as django_settings
from django.db.models import F
from django.template.loader import render_to_string
from django.test import Client
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from chat.actions.messages import message_edit
from chat.actions.profiles import profile_update
from chat.localtime import localise, operator_clock, time_element
from chat.models import Message
from chat.rendering import MESSAGE_TEMPLATE, with_fragments
from chat.selectors.messages import messages_by_pk
from chat.tests.factories import make_author, make_message, make_room, make_user
from chat.tests.test_security import parse_html

EAST = "Pacific/Kiritimati"  # UTC+14
WEST = "Pacific/Pago_Pago"  # UTC-11
ZONES = [
    "UTC",
    EAST,
    WEST,
    "Asia/Kolkata",
    "America/St_Johns",
    "Europe/London",
    "Australia/Lord_Howe",
]


def on_operator_clock(instant, kind, previous=None):
    with operator_clock():
        return str(time_element(instant, kind, previous=previous))


def on_clock(zone, instant, kind, previous=None):
    with timezone.override(ZoneInfo(zone)):
        return str(time_element(instant, kind, previous=previous))


def times(html):
    """[(datetime, format, text, title, hidden)] of the <time> elements in `html`."""
    tree = parse_html(str(html))
    return [
        (
            node.attrs["datetime"],
            node.attrs["data-format"],
            node.text(),
            node.attrs.get("title"),
            "hidden" in node.attrs,
        )
        for node in tree.find_all(lambda n: n.tag == "time")
    ]


# --- the elements ---


class LocaliseTests:
    def test_the_operators_zone_is_left_as_it_is(self):
        html = on_operator_clock(datetime(2025, 3, 1, 23, 30, tzinfo=UTC), "time")
        assert localise(html, django_settings.TIME_ZONE) is html

    def test_html_without_times_is_left_as_it_is(self):
        html = "<p>At 10:00 we meet. <time>not ours</time></p>"
        assert localise(html, EAST) is html
        assert localise("", EAST) == ""

    def test_a_message_time_shows_the_readers_hour_and_keeps_the_instant(self):
        instant = datetime(2025, 3, 1, 23, 30, 15, tzinfo=UTC)
        html = on_operator_clock(instant, "time")
        assert times(html) == [
            ("2025-03-01T23:30:15+00:00", "time", "23:30", "1 Mar 2025, 23:30", False)
        ]
        assert times(localise(html, "Asia/Kolkata")) == [
            ("2025-03-01T23:30:15+00:00", "time", "05:00", "2 Mar 2025, 05:00", False)
        ]
        assert times(localise(html, WEST)) == [
            ("2025-03-01T23:30:15+00:00", "time", "12:30", "1 Mar 2025, 12:30", False)
        ]

    def test_the_edited_mark_carries_the_readers_time_in_its_title(self):
        html = on_operator_clock(datetime(2025, 7, 1, 12, 0, tzinfo=UTC), "edited")
        [(_, kind, text, title, _)] = times(localise(html, "America/St_Johns"))  # UTC-2:30
        assert (kind, text, title) == ("edited", "(edited)", "Edited 1 Jul 2025, 09:30")

    def test_a_day_divider_shows_only_where_the_readers_day_changes(self):
        # 23:30 and 00:30 UTC: a new day in UTC, the same evening in New York.
        previous = datetime(2025, 3, 1, 23, 30, tzinfo=UTC)
        created = datetime(2025, 3, 2, 0, 30, tzinfo=UTC)
        html = on_operator_clock(created, "day", previous)
        [(_, _, text, _, hidden)] = times(html)
        assert (text, hidden) == ("Sunday 2 March 2025", False)
        [(_, _, text, _, hidden)] = times(localise(html, "America/New_York"))
        assert (text, hidden) == ("Saturday 1 March 2025", True)

        # 09:30 and 10:30 UTC: the same day in UTC, across midnight in Kiritimati.
        previous = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
        created = datetime(2025, 3, 1, 10, 30, tzinfo=UTC)
        html = on_operator_clock(created, "day", previous)
        assert times(html)[0][4] is True
        [(_, _, text, _, hidden)] = times(localise(html, EAST))
        assert (text, hidden) == ("Sunday 2 March 2025", False)

    def test_a_day_divider_carries_the_readers_date_for_today_and_yesterday(self):
        created = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
        html = on_operator_clock(created, "day")
        days = {
            zone: parse_html(str(localise(html, zone))).find_all(lambda n: n.tag == "time")[0]
            for zone in (EAST, WEST)
        }
        assert days[EAST].attrs["data-day"] == "2025-03-02"
        assert days[WEST].attrs["data-day"] == "2025-03-01"

    def test_the_first_message_always_starts_a_day(self):
        html = on_operator_clock(datetime(2025, 3, 1, 12, 0, tzinfo=UTC), "day")
        for zone in ZONES:
            [(_, _, _, _, hidden)] = times(localise(html, zone))
            assert hidden is False

    def test_only_our_time_elements_are_rewritten(self):
        instant = datetime(2025, 3, 1, 23, 30, tzinfo=UTC)
        html = (
            "<p>Text about <time datetime='2025-03-01'>a date</time> stays.</p>"
            + on_operator_clock(instant, "time")
            + "<code>&lt;time class=&quot;local&quot;&gt;</code>"
        )
        localised = localise(html, "Asia/Kolkata")
        assert localised.startswith("<p>Text about <time datetime='2025-03-01'>a date</time>")
        assert localised.endswith("<code>&lt;time class=&quot;local&quot;&gt;</code>")
        assert ">05:00</time>" in localised


instants = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2060, 1, 1), timezones=st.just(UTC)
)


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    instant=instants,
    gap=st.one_of(st.none(), st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3))),
    kind=st.sampled_from(["time", "edited", "day"]),
    zone=st.sampled_from(ZONES),
    other=st.sampled_from(ZONES),
)
def test_localising_equals_rendering_on_the_readers_clock(instant, gap, kind, zone, other):
    previous = instant - gap if gap is not None and kind == "day" else None
    canonical = on_operator_clock(instant, kind, previous)
    mine = localise(canonical, zone)
    assert mine == on_clock(zone, instant, kind, previous)
    # Localised again, for the same or another zone: the instants travel with the HTML.
    assert localise(mine, zone) == mine
    if other != django_settings.TIME_ZONE:
        assert localise(mine, other) == on_clock(other, instant, kind, previous)


# --- whole messages ---


def fresh(message):
    [loaded] = messages_by_pk([message.pk])
    return loaded


def moved(message, *, created_at, previous_at):
    """The message as if posted at `created_at`, after one posted at `previous_at`."""
    Message.objects.filter(pk=message.pk).update(
        created_at=created_at, previous_at=previous_at, version=F("version") + 1
    )
    return fresh(message)


@pytest.mark.django_db
@pytest.mark.parametrize("zone", ZONES)
def test_a_kept_message_localised_equals_the_message_rendered_on_that_clock(zone):
    room = make_room()
    alice, bob = make_author(), make_author()
    first = make_message(room=room, author=alice, text="first")
    reply = make_message(room=room, author=bob, text="a *reply*", reply_to=first)
    message_edit(room=room, user=bob, message_id=reply.pk, text="an edited *reply*")
    reply = moved(
        reply,
        created_at=datetime(2025, 3, 2, 0, 30, tzinfo=UTC),
        previous_at=datetime(2025, 3, 1, 23, 30, tzinfo=UTC),
    )
    [kept] = with_fragments([reply])  # rendered on the operator's clock, and kept
    with timezone.override(ZoneInfo(zone)):
        direct = render_to_string(MESSAGE_TEMPLATE, {"message": reply})
    assert localise(kept.fragment, zone) == direct
    assert len(times(direct)) == 3  # the day divider, the time, the edited mark


@pytest.mark.django_db
def test_the_kept_html_is_the_same_whatever_the_zone_of_the_request_that_rendered_it():
    message = make_message(room=make_room(), text="once")
    renders = set()
    for zone in (EAST, WEST):
        Message.objects.filter(pk=message.pk).update(version=F("version") + 1)
        with timezone.override(ZoneInfo(zone)):
            [kept] = with_fragments([fresh(message)], new=True)
        renders.add(str(kept.fragment))
    assert len(renders) == 1


# --- pages, on each reader's clock ---


def reader(zone):
    user = make_user(password=None)
    profile_update(user=user, display_name=user.username, time_zone=zone, show_presence=True)
    client = Client()
    client.force_login(user)
    return client


def room_times(client, room, **query):
    response = client.get(room.get_absolute_url(), query)
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.django_db
def test_two_readers_see_the_same_messages_at_their_own_times():
    room = make_room()
    first = make_message(room=room, text="first")
    second = make_message(room=room, text="second")
    moved(first, created_at=datetime(2025, 3, 1, 9, 0, tzinfo=UTC), previous_at=None)
    moved(
        second,
        created_at=datetime(2025, 3, 1, 10, 30, tzinfo=UTC),
        previous_at=datetime(2025, 3, 1, 9, 0, tzinfo=UTC),
    )
    east, west = reader(EAST), reader(WEST)
    for client, expected in (
        (
            east,
            [
                ("day", "Saturday 1 March 2025", False),
                ("time", "23:00", False),
                ("day", "Sunday 2 March 2025", False),  # midnight passed in Kiritimati
                ("time", "00:30", False),
            ],
        ),
        (
            west,
            [
                ("day", "Friday 28 February 2025", False),
                ("time", "22:00", False),
                ("day", "Friday 28 February 2025", True),
                ("time", "23:30", False),
            ],
        ),
    ):
        for query in ({}, {"around": second.seq}):
            shown = [
                (kind, text, hidden)
                for _, kind, text, _, hidden in times(room_times(client, room, **query))
            ]
            assert shown == expected


@pytest.mark.django_db
def test_today_and_yesterday_are_the_readers_own():
    room = make_room()
    make_message(room=room, text="now")
    for zone in (EAST, WEST):
        today = timezone.now().astimezone(ZoneInfo(zone)).date()
        page = room_times(reader(zone), room)
        style = re.search(r"<style[^>]*>(.*?)</style>", page, re.S)[1]
        assert f'[data-day="{today:%Y-%m-%d}"]::after {{ content: "Today"; }}' in style
        yesterday = today - timedelta(days=1)
        assert f'[data-day="{yesterday:%Y-%m-%d}"]::after {{ content: "Yesterday"; }}' in style
        # The message posted just now is on the reader's today.
        assert f'data-day="{today:%Y-%m-%d}"' in page.split("</style>", 1)[1]


@pytest.mark.django_db
def test_a_reader_without_a_zone_is_on_the_operators_clock(settings):
    settings.TIME_ZONE = "Asia/Kolkata"
    room = make_room()
    message = make_message(room=room, text="hello")
    moved(message, created_at=datetime(2025, 3, 1, 23, 30, tzinfo=UTC), previous_at=None)
    client = Client()
    client.force_login(make_user(password=None))
    [_, (_, _, text, title, _)] = times(room_times(client, room))
    assert (text, title) == ("05:00", "2 Mar 2025, 05:00")
