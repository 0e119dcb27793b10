"""Each reader's own clock (issue 10), in real Chromium on two `web:` processes.

Alice lives in Pacific/Kiritimati (UTC+14), Bob in Pacific/Pago_Pago (UTC-11), each set
through their settings page: 25 hours apart, their dates always differ. They see the same
messages at their own local times and day dividers on their own days, whether a message
arrives over the socket (each process localises it once per zone) or with the page.
"""

from contextlib import closing
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import enter_room, open_room, send, sign_up, unique

pytestmark = pytest.mark.e2e

EAST = "Pacific/Kiritimati"
WEST = "Pacific/Pago_Pago"


def set_time_zone(page, base_url, zone):
    page.goto(f"{base_url}/accounts/settings/")
    page.get_by_label("Time zone").fill(zone)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".form-saved")).to_have_text("Saved.")
    expect(page.get_by_label("Time zone")).to_have_value(zone)


def clock(page, text):
    """How the page shows the message with `text`: its time and its day divider."""
    item = page.locator("#messages > .message", has=page.locator(".message-text", has_text=text))
    expect(item).to_have_count(1)
    return item.evaluate(
        """item => {
            const time = item.querySelector('.message-time time');
            const day = item.querySelector('.day-divider time');
            const divider = item.querySelector('.day-divider');
            return {
                instant: time.getAttribute('datetime'),
                time: time.textContent,
                title: time.title,
                day: day.dataset.day,
                divider_shown: getComputedStyle(divider).display !== 'none',
                divider_reads: getComputedStyle(day, '::after').content,
            };
        }"""
    )


def local(instant, zone):
    return datetime.fromisoformat(instant).astimezone(ZoneInfo(zone))


def today_in(zone):
    return datetime.now(UTC).astimezone(ZoneInfo(zone)).date()


def assert_on_clock(shown, zone, *, divider, reads=None):
    """The message's time is on `zone`'s clock; its divider shown or not, reading `reads`
    ("Today", "Yesterday") when shown."""
    at = local(shown["instant"], zone)
    assert shown["time"] == at.strftime("%H:%M"), (zone, shown)
    assert shown["title"] == f"{at.day} {at:%b %Y, %H:%M}", (zone, shown)
    assert shown["day"] == at.date().isoformat(), (zone, shown)
    assert shown["divider_shown"] is divider, (zone, shown)
    if divider and reads:
        assert shown["divider_reads"] == f'"{reads}"', (zone, shown)


def a_moment_on_one_side_of_midnight(now):
    """(minutes back from now, the zone whose midnight lies in between): a moment that
    is on the same day as now in one zone and on the day before in the other, with half
    an hour to spare either way."""

    def day_changes(zone, minutes):
        zone = ZoneInfo(zone)
        return (now - timedelta(minutes=minutes)).astimezone(zone).date() != now.astimezone(
            zone
        ).date()

    for minutes in range(30, 24 * 60 - 30, 10):
        for crossed, kept in ((WEST, EAST), (EAST, WEST)):
            if all(
                day_changes(crossed, m) and not day_changes(kept, m)
                for m in (minutes - 25, minutes, minutes + 25)
            ):
                return minutes, crossed
    raise AssertionError("no such moment")  # two zones 25 h apart always have one


def move_message(database_url, text, created_at):
    """Backdate a stored message (as if posted at `created_at`) in the servers' database,
    with a new version so its kept HTML is not reused."""
    sql = "UPDATE chat_message SET created_at = {0}, version = version + 1 WHERE text = {0}"
    if database_url.startswith("sqlite:///"):
        import sqlite3

        naive_utc = created_at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
        with closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as connection:
            updated = connection.execute(sql.format("?"), (naive_utc, text)).rowcount
            connection.commit()
    else:
        import psycopg

        with psycopg.connect(database_url) as connection:
            updated = connection.execute(sql.format("%s"), (created_at, text)).rowcount
    assert updated == 1


def test_two_readers_in_different_zones_see_the_same_messages_at_their_own_times(
    shared_webs, browse, system_database_url
):
    first, second = shared_webs
    alice, bob = browse(), browse()
    alice_page = sign_up(alice, first.url)
    bob_page = sign_up(bob, second.url)
    set_time_zone(alice_page, first.url, EAST)
    set_time_zone(bob_page, second.url, WEST)
    zones = {EAST: (alice_page, first), WEST: (bob_page, second)}
    slug = open_room(alice_page, first.url, unique("Clocks"))
    enter_room(alice, first.url, slug, page=alice_page)
    enter_room(bob, second.url, slug, page=bob_page)

    # Live: the first message of the room, over each page's socket, on each one's clock.
    opening = f"Good morning {unique('m')}"
    send(alice_page, opening)
    shown = {zone: clock(page, opening) for zone, (page, _) in zones.items()}
    assert shown[EAST]["instant"] == shown[WEST]["instant"]
    assert shown[EAST]["day"] != shown[WEST]["day"]  # 25 hours apart
    for zone, seen in shown.items():
        assert seen["day"] == today_in(zone).isoformat(), (zone, seen)
        assert_on_clock(seen, zone, divider=True, reads="Today")

    # Backdate it so that midnight lies between it and the next message in one zone only.
    now = datetime.now(UTC)
    minutes, crossed = a_moment_on_one_side_of_midnight(now)
    kept = WEST if crossed == EAST else EAST
    move_message(system_database_url, opening, now - timedelta(minutes=minutes))

    # Live again: Bob's answer leads a new day in one zone, continues the day in the other.
    answer = f"Good evening {unique('e')}"
    send(bob_page, answer)
    for zone, divider in ((crossed, True), (kept, False)):
        page, _ = zones[zone]
        assert_on_clock(clock(page, answer), zone, divider=divider, reads="Today")

    # The same on a fresh page: the backdated message is yesterday only where midnight
    # passed since.
    for zone, (page, web) in zones.items():
        page.goto(f"{web.url}/chat/{slug}/")
        assert_on_clock(
            clock(page, opening),
            zone,
            divider=True,
            reads="Yesterday" if zone == crossed else "Today",
        )
        assert_on_clock(clock(page, answer), zone, divider=zone == crossed, reads="Today")
    # And the history window (a permalink) too.
    for zone, (page, web) in zones.items():
        page.goto(f"{web.url}/chat/{slug}/?around=1")
        assert_on_clock(clock(page, answer), zone, divider=zone == crossed, reads="Today")

    for visitor in (alice, bob):
        assert visitor.page_errors == [] and visitor.console_errors == []
