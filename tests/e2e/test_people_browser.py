"""Who is here and who is typing, in real Chromium against two `web:` processes (issue 10).

The list is found as a screen reader finds it (a list named "People here"); typing is
real keystrokes in the composer, throttled by htmx alone: the hidden #typing-signal form
sends `{"typing": "1"}` at most once per 2 s, with no draft text.
"""

import json
import re
import time

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import (
    enter_room,
    expect_messages,
    open_room,
    send,
    sign_up,
    unique,
)

pytestmark = pytest.mark.e2e

THROTTLE_S = 2  # hx-trigger="... throttle:2s" on #typing-signal


def people_here(page):
    return page.get_by_role("list", name="People here").get_by_role("listitem")


def typing_frames(visitor, page):
    """The typing frames the page's sockets sent, parsed."""
    return [
        json.loads(frame)
        for socket in visitor.sockets_of(page)
        for frame in socket.sent
        if '"typing"' in str(frame)
    ]


def assert_nothing_went_wrong(*visitors):
    for visitor in visitors:
        assert visitor.dialogs == [], visitor.dialogs
        assert visitor.page_errors == [], visitor.page_errors
        assert visitor.console_errors == [], visitor.console_errors


def test_people_here_on_both_processes_with_two_tabs_of_one_person(shared_webs, browse):
    first, second = shared_webs
    alice, bob = browse(), browse()
    lobby = sign_up(alice, first.url)
    slug = open_room(lobby, first.url, unique("Standup"))
    sign_up(bob, second.url)
    alice_page = enter_room(alice, first.url, slug, page=alice.context.pages[0])
    expect(people_here(alice_page)).to_have_text([alice.username])  # her own name too
    bob_page = enter_room(bob, second.url, slug)
    both = sorted([alice.username, bob.username], key=str.casefold)
    for page in (alice_page, bob_page):
        expect(people_here(page)).to_have_text(both)

    # A second tab of alice's, on the other process: she is listed once.
    alice_again = enter_room(alice, second.url, slug)
    expect(people_here(alice_again)).to_have_text(both)
    lobby_page = bob.new_page()
    lobby_page.goto(f"{first.url}/")
    room_entry = lobby_page.locator(
        ".room-list li", has=lobby_page.locator(f'a[href="/chat/{slug}/"]')
    )
    expect(room_entry).to_contain_text("2 people here")

    alice_page.close()  # one of her two tabs
    # Then carol arrives on the same process: once the others list her, a removal of
    # alice (which would have gone out first) would show. She is still there.
    carol = browse()
    sign_up(carol, first.url)
    enter_room(carol, first.url, slug, page=carol.context.pages[0])
    everyone = sorted([alice.username, bob.username, carol.username], key=str.casefold)
    for page in (alice_again, bob_page):
        expect(people_here(page)).to_have_text(everyone)
    alice_again.close()  # her last tab: she goes
    expect(people_here(bob_page)).to_have_text(
        sorted([bob.username, carol.username], key=str.casefold)
    )
    lobby_page.reload()
    expect(room_entry).to_contain_text("2 people here")
    assert_nothing_went_wrong(alice, bob, carol)


def test_typing_shows_to_others_goes_when_sent_or_stopped_and_carries_no_text(shared_webs, browse):
    first, second = shared_webs
    alice, bob, carol = browse(), browse(), browse()
    slug = open_room(sign_up(alice, first.url), first.url, unique("Drafts"))
    sign_up(bob, second.url)
    sign_up(carol, first.url)
    alice_page = enter_room(alice, first.url, slug, page=alice.context.pages[0])
    bob_page = enter_room(bob, second.url, slug, page=bob.context.pages[0])
    carol_page = enter_room(carol, first.url, slug, page=carol.context.pages[0])
    typing = {page: page.locator("#typing") for page in (alice_page, bob_page, carol_page)}

    # Alice types, a key at a time, for a few seconds.
    started = time.monotonic()
    alice_page.locator("#message").press_sequentially("a secret draft", delay=200)
    elapsed = time.monotonic() - started
    expect(typing[bob_page]).to_have_text(f"{alice.username} is typing…")
    expect(typing[carol_page]).to_have_text(f"{alice.username} is typing…")
    sent = typing_frames(alice, alice_page)
    # htmx throttles: one frame, then at most one per 2 s; none carries the draft.
    assert 1 <= len(sent) <= 1 + elapsed // THROTTLE_S, (len(sent), elapsed)
    assert all(set(frame) == {"typing", "HEADERS"} and frame["typing"] == "1" for frame in sent)

    # Bob types too: carol reads both names; each of them reads only the other.
    bob_page.locator("#message").press_sequentially("hm", delay=50)
    expect(typing[carol_page]).to_have_text(
        f"{alice.username} and {bob.username} are typing…"
        if alice.username.casefold() < bob.username.casefold()
        else f"{bob.username} and {alice.username} are typing…"
    )
    expect(typing[alice_page]).to_have_text(f"{bob.username} is typing…")
    expect(typing[bob_page]).to_have_text(f"{alice.username} is typing…")

    # Alice sends: she is no longer typing anywhere.
    send(alice_page, "a secret draft, sent", enter=True)
    expect_messages(carol_page, ["a secret draft, sent"])
    expect(typing[carol_page]).to_have_text(f"{bob.username} is typing…")
    expect(typing[bob_page]).to_have_text("")

    # Bob stops without sending: the servers expire him (no script sends "stopped").
    for page in (alice_page, carol_page):
        expect(typing[page]).to_have_text("")

    # After a send the composer's fields are new; typing in them still signals.
    alice_page.locator("#message").press_sequentially("again", delay=50)
    expect(typing[carol_page]).to_have_text(f"{alice.username} is typing…")
    # So does the longer composer.
    bob_page.get_by_text("Write a longer message").click()
    bob_page.locator("#message-long").press_sequentially("long", delay=50)
    expect(typing[carol_page]).to_have_text(re.compile(rf"{re.escape(bob.username)}"))

    # Nobody ever saw themselves typing.
    for visitor, page in ((alice, alice_page), (bob, bob_page)):
        said = [
            str(frame)
            for socket in visitor.sockets_of(page)
            for frame in socket.received
            if 'id="typing"' in str(frame)
        ]
        assert not any(f"{visitor.username} is typing" in frame for frame in said), said
        assert not any(
            re.search(rf"{re.escape(visitor.username)} and|and {re.escape(visitor.username)}", f)
            for f in said
        ), said
    assert_nothing_went_wrong(alice, bob, carol)
