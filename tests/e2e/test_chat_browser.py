"""The chat in real Chromium, served by `web:` processes started as the Procfile starts them.

Issue 2: people on two processes chat live, a page without JavaScript posts through the
plain form, history reloads in order, markup stays text, rooms stay apart, the page loads
only htmx and its ws extension, logins and 404s lead somewhere, older messages load, and
refused messages keep their text.
"""

import json
import re
import uuid
from pathlib import PurePosixPath
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect
from websockets.sync.client import connect

from tests.e2e.conftest import (
    enter_room,
    expect_messages,
    open_room,
    send,
    shown,
    sign_up,
    unique,
)
from tests.support.accounts import HttpSession

pytestmark = pytest.mark.e2e


def assert_nothing_went_wrong(*visitors):
    for visitor in visitors:
        assert visitor.dialogs == [], visitor.dialogs
        assert visitor.page_errors == [], visitor.page_errors
        assert visitor.console_errors == [], visitor.console_errors


def test_two_people_on_two_processes_and_a_page_without_javascript_chat_live(shared_webs, browse):
    first, second = shared_webs
    alice, bob = browse(), browse()
    carol = browse(java_script_enabled=False)
    slug = open_room(sign_up(alice, first.url), first.url, unique("Tea break"))
    sign_up(bob, second.url)
    alice_page = enter_room(alice, first.url, slug, page=alice.context.pages[0])
    bob_page = enter_room(bob, second.url, slug)
    sockets = [alice.sockets_of(alice_page)[-1], bob.sockets_of(bob_page)[-1]]
    assert sockets[0].url.startswith(first.ws_url)
    assert sockets[1].url.startswith(second.ws_url)

    sent = []
    for page, text in [
        (alice_page, "Hi Bob, are you there?"),
        (bob_page, "Yes! Just got back from lunch."),
        (alice_page, "Great, shall we review the release notes?"),
    ]:
        send(page, text)
        sent.append(text)
        for reader in (alice_page, bob_page):
            expect_messages(reader, sent)
        # The sender's composer comes back empty and focused, ready for the next line.
        expect(page.locator("#message")).to_have_value("")
        expect(page.locator("#message")).to_be_focused()

    # Carol has JavaScript off: the composer is a plain form that posts and redirects.
    carol_page = sign_up(carol, second.url)
    carol_page.goto(f"{second.url}/chat/{slug}/")
    send(carol_page, "Hello both, I am on a very old browser.")
    sent.append("Hello both, I am on a very old browser.")
    expect(carol_page).to_have_url(re.compile(rf"/chat/{slug}/(#composer)?$"))
    expect_messages(carol_page, sent)
    for reader in (alice_page, bob_page):
        expect_messages(reader, sent)  # live, without a reload

    # All of it over the first socket of each page: no drop, no reconnect.
    assert [socket.closed for socket in sockets] == [False, False]
    assert sockets == [alice.sockets_of(alice_page)[-1], bob.sockets_of(bob_page)[-1]]

    live = {name: shown(page) for name, page in [("alice", alice_page), ("bob", bob_page)]}
    authors = [alice.username, bob.username, alice.username, carol.username]
    seqs = [seq for seq, _, _ in live["alice"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
    assert [(author, text) for _, author, text in live["alice"]] == list(
        zip(authors, sent, strict=True)
    )
    assert live["bob"] == live["alice"]

    # A reload shows the same history, in the order it was sent.
    for page in (alice_page, bob_page):
        page.reload()
        expect_messages(page, sent)
        assert shown(page) == live["alice"]
    assert_nothing_went_wrong(alice, bob)


def test_markup_in_a_message_is_text_and_other_rooms_do_not_see_it(shared_webs, browse):
    first, second = shared_webs
    alice, bob = browse(), browse()
    slug = open_room(sign_up(alice, first.url), first.url, unique("Front desk"))
    other_slug = open_room(sign_up(bob, second.url), second.url, unique("Back office"))
    alice_page = enter_room(alice, first.url, slug, page=alice.context.pages[0])
    bob_page = enter_room(bob, second.url, slug)
    elsewhere = enter_room(bob, second.url, other_slug)

    payload = "<img src=x onerror=alert(1)>"
    send(alice_page, payload)
    for page in (alice_page, bob_page):
        expect_messages(page, [payload])
        assert page.locator("#messages img").count() == 0

    # The other room got nothing: a later message of its own arrives alone.
    send(elsewhere, "Only for the back office")
    expect_messages(elsewhere, ["Only for the back office"])
    expect_messages(bob_page, [payload])
    expect_messages(alice_page, [payload])

    bob_page.reload()
    expect_messages(bob_page, [payload])
    assert bob_page.locator("#messages img").count() == 0
    assert_nothing_went_wrong(alice, bob)


def test_the_page_loads_no_script_but_htmx_and_its_ws_extension(shared_webs, browse):
    web = shared_webs[0]
    alice = browse()
    slug = open_room(sign_up(alice, web.url), web.url, unique("Scripts"))
    page = alice.new_page()
    scripts = []
    page.on("request", lambda r: r.resource_type == "script" and scripts.append(r.url))
    enter_room(alice, web.url, slug, page=page)
    send(page, "a message, so a fragment was swapped in too")
    expect_messages(page, ["a message, so a fragment was swapped in too"])
    page.reload()
    enter_room(alice, web.url, slug, page=page)  # a second load: the same scripts again

    names = {PurePosixPath(urlsplit(url).path).name for url in scripts}
    assert len(names) == 2, scripts
    assert any(re.fullmatch(r"htmx-2[\w.-]*\.js", name) for name in names), names
    assert any(re.fullmatch(r"hx-ws-2[\w.-]*\.js", name) for name in names), names
    assert all(urlsplit(url).netloc == urlsplit(web.url).netloc for url in scripts), scripts
    # No inline script and no inline event handlers anywhere in the live DOM.
    assert page.locator("script:not([src])").count() == 0
    handlers = page.evaluate(
        """() => [...document.querySelectorAll('*')].flatMap(element =>
            [...element.attributes].map(a => a.name)
                .filter(name => name.startsWith('on') || name.startsWith('hx-on'))
                .map(name => element.tagName + ' ' + name))"""
    )
    assert handlers == []
    assert_nothing_went_wrong(alice)


def test_an_anonymous_visitor_logs_in_and_comes_back_to_the_room(shared_webs, browse):
    web = shared_webs[0]
    alice, stranger = browse(), browse()
    slug = open_room(sign_up(alice, web.url), web.url, unique("Members only"))

    page = stranger.new_page()
    page.goto(f"{web.url}/chat/{slug}/")
    expect(page).to_have_url(re.compile(re.escape(f"{web.url}/accounts/login/?next=")))
    assert parse_qs(urlsplit(page.url).query)["next"] == [f"/chat/{slug}/"]
    assert page.locator("#messages").count() == 0
    page.fill("#id_username", alice.username)
    page.fill("#id_password", alice.password)
    page.click("form.stacked button[type=submit]")
    expect(page).to_have_url(f"{web.url}/chat/{slug}/")
    expect(page.locator("#composer")).to_be_visible()


def test_an_unknown_room_is_a_404_page_with_a_way_back_to_the_lobby(shared_webs, browse):
    web = shared_webs[0]
    alice = browse()
    page = sign_up(alice, web.url)
    response = page.goto(f"{web.url}/chat/{unique('no-such-room')}/")
    assert response.status == 404
    expect(page.locator("h1")).to_have_text("Nothing here")
    page.click("main a[href='/']")
    expect(page).to_have_url(f"{web.url}/")
    expect(page.locator("input[name=name]")).to_be_visible()


def post_over_a_socket(web, session, slug, texts):
    """Post messages as a script would: the socket, one after another, each confirmed."""
    with connect(
        f"{web.ws_url}/ws/chat/{slug}/",
        origin=session.origin,
        additional_headers=session.socket_headers(),
        open_timeout=15,
    ) as socket:
        for text in texts:
            socket.send(json.dumps({"message": text, "client_key": str(uuid.uuid4())}))
            while 'id="composer-fields"' not in (frame := socket.recv(timeout=15)):
                pass
            assert "composer-error" not in frame, frame


def test_older_messages_load_at_the_top_and_through_the_plain_link(shared_webs, browse):
    web = shared_webs[0]
    poster = HttpSession(web.url).sign_up(unique("poster"))
    slug = poster.open_room(unique("Long history"))
    texts = [f"history line {number:03}" for number in range(1, 121)]
    post_over_a_socket(web, poster, slug, texts)

    alice = browse()
    sign_up(alice, web.url)
    page = enter_room(alice, web.url, slug)
    expect_messages(page, texts[-50:])
    scroller = page.locator(".scroller")
    scroll_to_top = "element => { element.scrollTop = -element.scrollHeight; }"
    scroller.evaluate(scroll_to_top)
    expect_messages(page, texts[-100:])
    scroller.evaluate(scroll_to_top)
    expect_messages(page, texts)
    expect(page.locator("#messages .older")).to_have_count(0)
    seqs = [seq for seq, _, _ in shown(page)]
    assert seqs == list(range(1, 121))
    ids = page.eval_on_selector_all("#messages .message", "items => items.map(i => i.id)")
    assert len(set(ids)) == 120

    # Without JavaScript the same sentinel is a plain link to the page before.
    reader = browse(java_script_enabled=False)
    plain = sign_up(reader, web.url)
    plain.goto(f"{web.url}/chat/{slug}/")
    expect_messages(plain, texts[-50:])
    plain.click("#messages .older a")
    expect(plain).to_have_url(f"{web.url}/chat/{slug}/?before=71")
    expect_messages(plain, texts[20:70])
    plain.click("#messages .older a")
    expect_messages(plain, texts[:20])
    expect(plain.locator("#messages .older")).to_have_count(0)
    plain.click("text=Jump to the latest")
    expect_messages(plain, texts[-50:])
    assert_nothing_went_wrong(alice)


def test_a_refused_message_keeps_its_text_and_shows_why(shared_webs, browse):
    web = shared_webs[0]
    alice = browse()
    slug = open_room(sign_up(alice, web.url), web.url, unique("Careful"))
    page = enter_room(alice, web.url, slug, page=alice.context.pages[0])
    composer = page.locator("#message")
    error = page.locator("#composer .composer-error")

    send(page, "      ")
    expect(error).to_be_visible()
    expect(error).not_to_be_empty()
    expect(composer).to_have_value("      ")

    too_long = "x" * 4001
    send(page, too_long)
    expect(error).to_contain_text("4000")
    expect(composer).to_have_value(too_long)

    # The socket is still usable, and the error goes with the next good message.
    send(page, "Now a proper message")
    expect_messages(page, ["Now a proper message"])
    expect(error).to_have_count(0)
    expect(composer).to_have_value("")
    page.reload()
    expect_messages(page, ["Now a proper message"])
    assert_nothing_went_wrong(alice)


def test_without_javascript_a_refused_message_keeps_its_text_and_shows_why(start_web, browse):
    web = start_web(CHAT_MAX_MESSAGE_LENGTH=20)
    carol = browse(java_script_enabled=False)
    slug = open_room(sign_up(carol, web.url), web.url, unique("Plain"))
    page = carol.context.pages[0]
    send(page, "This sentence is longer than twenty characters.")
    expect(page.locator("#composer .composer-error")).to_contain_text("20")
    expect(page.locator("#message")).to_have_value(
        "This sentence is longer than twenty characters."
    )
    send(page, "Short one")
    expect(page).to_have_url(re.compile(rf"/chat/{slug}/(#composer)?$"))
    expect_messages(page, ["Short one"])
    expect(page.locator("#composer .composer-error")).to_have_count(0)
