"""The message lifecycle in real Chromium (issue 9), found by the names a screen reader reads.

Enter sends (with JavaScript on and off), messages are edited in place or on a page of
their own, deleted after one confirmation, reacted to with toggle buttons whose pressed
state is each reader's own, replied to with a quote that leads back to the original (even
100,000 messages back), formatted, grouped under day dividers; and a page says when its
connection is gone and catches up when it is back. People on two `web:` processes see
each change live.
"""

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import (
    enter_room,
    expect_messages,
    open_room,
    send,
    sign_up,
    unique,
    wait_until,
)
from tests.support.servers import ROOT

pytestmark = pytest.mark.e2e

RECONNECT_MS = 90_000  # the ws extension's jittered backoff, on a busy machine
SCREENSHOT = Path(tempfile.gettempdir()) / "chat-room-reactions-reply-edited.png"


def assert_nothing_went_wrong(*visitors):
    for visitor in visitors:
        assert visitor.dialogs == [], visitor.dialogs
        assert visitor.page_errors == [], visitor.page_errors
        assert visitor.console_errors == [], visitor.console_errors


def post(page, text, *, shows=None):
    """Send `text` with Enter; returns the DOM id of the message once the page shows it
    (showing `shows`, when formatting makes the text differ from what was typed)."""
    send(page, text, enter=True)
    shown_text = page.locator(".message-text", has_text=shows or text)
    item = page.locator("#messages > .message", has=shown_text)
    expect(item.last).to_be_attached()
    return item.last.get_attribute("id")


def pk_of(dom_id):
    return int(dom_id.removeprefix("message-"))


def body(page, dom_id):
    return page.locator(f"#{dom_id} .message-text")


def open_editor(page, dom_id):
    """Open a message's Edit popover; returns its text field once htmx has filled it in."""
    item = page.locator(f"#{dom_id}")
    item.get_by_role("button", name="Edit", exact=True).click()
    field = item.get_by_role("textbox", name="Edit message")
    expect(field).to_be_visible()
    return field


def reaction(page, dom_id, emoji):
    """The one button for `emoji` the reader sees on a message (CSS hides the other)."""
    return page.locator(f"#{dom_id}").get_by_role("button", name=f"React with {emoji}", exact=True)


def shown_seqs(page):
    return page.eval_on_selector_all(
        "#messages > .message", "items => items.map(item => Number(item.dataset.seq))"
    )


# --- 1. the composer ---


def test_enter_sends_with_and_without_javascript_and_the_longer_form_keeps_lines(
    shared_webs, browse
):
    first, second = shared_webs
    alice, carol = browse(), browse(java_script_enabled=False)
    slug = open_room(sign_up(alice, first.url), first.url, unique("Enter"))
    page = enter_room(alice, first.url, slug, page=alice.context.pages[0])
    composer = page.get_by_role("textbox", name="Message", exact=True)
    expect(composer).to_have_attribute("type", "text")
    expect(composer).to_have_attribute("enterkeyhint", "send")

    post(page, "Sent with Enter")
    expect_messages(page, ["Sent with Enter"])
    expect(composer).to_have_value("")
    expect(composer).to_be_focused()

    # The longer form: Enter makes a new line there, its own Send button sends.
    page.get_by_text("Write a longer message").click()
    longer = page.get_by_role("textbox", name="Longer message")
    longer.fill("First line")
    longer.press("Enter")
    longer.press_sequentially("Second line")
    expect(longer).to_have_value("First line\nSecond line")
    page.locator("#composer-long").get_by_role("button", name="Send").click()
    expect(page.locator("#messages .message")).to_have_count(2)
    expect(longer).to_have_value("")
    two_lines = page.locator("#messages .message").last.locator(".message-text")
    expect(two_lines.locator("br")).to_have_count(1)
    assert two_lines.inner_text() == "First line\nSecond line"

    # Without JavaScript, Enter submits the form as a POST; the page comes back with it.
    carol_page = sign_up(carol, second.url)
    carol_page.goto(f"{second.url}/chat/{slug}/")
    carol_composer = carol_page.get_by_role("textbox", name="Message", exact=True)
    carol_composer.fill("Sent with Enter, no script")
    with carol_page.expect_navigation():
        carol_composer.press("Enter")
    expect(carol_page).to_have_url(re.compile(rf"/chat/{slug}/(#composer)?$"))
    sent = ["Sent with Enter", "First line\nSecond line", "Sent with Enter, no script"]
    expect(carol_page.locator("#messages .message")).to_have_count(3)
    expect(carol_page.locator("#messages .message").last).to_contain_text(sent[-1])
    expect(carol_composer).to_have_value("")
    carol_page.get_by_text("Write a longer message").click()
    carol_longer = carol_page.get_by_role("textbox", name="Longer message")
    carol_longer.fill("Plain\nold form")
    carol_page.locator("#composer-long").get_by_role("button", name="Send").click()
    expect(carol_page.locator("#messages .message")).to_have_count(4)
    plain_lines = carol_page.locator("#messages .message").last.locator(".message-text")
    expect(plain_lines.locator("br")).to_have_count(1)
    # Alice got both live.
    expect(page.locator("#messages .message")).to_have_count(4)
    texts = page.locator("#messages .message-text").all_inner_texts()
    assert texts == [*sent, "Plain\nold form"]
    assert_nothing_went_wrong(alice, carol)


# --- 2. edit ---


def test_people_edit_their_own_messages_in_place_and_without_javascript(shared_webs, browse):
    first, second = shared_webs
    alice, bob, carol = browse(), browse(), browse(java_script_enabled=False)
    slug = open_room(sign_up(alice, first.url), first.url, unique("Edits"))
    sign_up(bob, second.url)
    alice_page = enter_room(alice, first.url, slug, page=alice.context.pages[0])
    bob_page = enter_room(bob, second.url, slug)
    pages = (alice_page, bob_page)
    mine = post(alice_page, "Helo wrold")
    theirs = post(bob_page, "A line by Bob")
    for page in pages:
        expect_messages(page, ["Helo wrold", "A line by Bob"])

    # Each sees Edit and Delete on their own message only; Reply on every message.
    for page, own, other in [(alice_page, mine, theirs), (bob_page, theirs, mine)]:
        for name in ("Edit", "Delete"):
            expect(page.locator(f"#{own}").get_by_role("button", name=name)).to_have_count(1)
            expect(page.locator(f"#{other}").get_by_role("button", name=name)).to_have_count(0)
        expect(page.locator(f"#{other}").get_by_role("link", name="Reply")).to_have_count(1)

    # Enter saves.
    field = open_editor(alice_page, mine)
    expect(field).to_have_value("Helo wrold")
    field.fill("Hello world")
    field.press("Enter")
    expect(field).to_be_hidden()
    for page in pages:
        expect(body(page, mine)).to_have_text("Hello world")
        edited = page.locator(f"#{mine} .edited")
        expect(edited).to_have_text("(edited)")
        expect(edited).to_have_attribute("title", re.compile(r"^Edited \d"))

    # Save saves.
    field = open_editor(alice_page, mine)
    field.fill("Hello, world")
    alice_page.locator(f"#{mine}").get_by_role("button", name="Save").click()
    for page in pages:
        expect(body(page, mine)).to_have_text("Hello, world")

    # Escape and Cancel close the editor without sending anything.
    edits_before = len(alice.frames_sent(alice_page, "edit"))
    field = open_editor(alice_page, mine)
    field.fill("Not this")
    field.press("Escape")
    expect(field).to_be_hidden()
    field = open_editor(alice_page, mine)
    field.fill("Nor this")
    alice_page.locator(f"#{mine}").get_by_role("button", name="Cancel").click()
    expect(field).to_be_hidden()
    assert len(alice.frames_sent(alice_page, "edit")) == edits_before
    # Bob's edit of his own line is the next event: every page gets it after Alice's.
    field = open_editor(bob_page, theirs)
    field.fill("A line by Bob, edited")
    field.press("Enter")
    for page in pages:
        expect_messages(page, ["Hello, world", "A line by Bob, edited"])

    # Without JavaScript: the Edit button still opens its popover, whose link is the edit page.
    carol_page = sign_up(carol, second.url)
    carol_page.goto(f"{second.url}/chat/{slug}/")
    carol_page.get_by_role("textbox", name="Message", exact=True).fill("Teh plan is fine")
    with carol_page.expect_navigation():
        carol_page.get_by_role("textbox", name="Message", exact=True).press("Enter")
    own = carol_page.locator("#messages > .message").last
    expect(own).to_contain_text("Teh plan is fine")
    carols = own.get_attribute("id")
    own.get_by_role("button", name="Edit", exact=True).click()
    own.get_by_role("link", name="Edit this message").click()
    expect(carol_page).to_have_url(f"{second.url}/messages/{pk_of(carols)}/edit/")
    field = carol_page.get_by_role("textbox", name="Edit message")
    expect(field).to_have_value("Teh plan is fine")
    field.fill("The plan is fine")
    with carol_page.expect_navigation():
        field.press("Enter")
    expect(carol_page).to_have_url(f"{second.url}/chat/{slug}/#{carols}")
    for page in (carol_page, *pages):
        expect(body(page, carols)).to_have_text("The plan is fine")
        expect(page.locator(f"#{carols} .edited")).to_have_text("(edited)")
    # Someone else's message has no edit page for her, and no edit without one.
    response = carol_page.goto(f"{second.url}/messages/{pk_of(mine)}/edit/")
    assert response.status == 404
    for page in pages:
        page.reload()
        expect_messages(page, ["Hello, world", "A line by Bob, edited", "The plan is fine"])
    assert_nothing_went_wrong(alice, bob)


# --- 3. delete ---


def test_a_message_is_deleted_after_one_confirmation_on_every_page(shared_webs, browse):
    first, second = shared_webs
    alice, bob = browse(), browse()
    slug = open_room(sign_up(alice, first.url), first.url, unique("Deletes"))
    sign_up(bob, second.url)
    alice_page = enter_room(alice, first.url, slug, page=alice.context.pages[0])
    bob_page = enter_room(bob, second.url, slug)
    pages = (alice_page, bob_page)
    post(alice_page, "Keep this")
    doomed = post(alice_page, "Delete this")
    for page in pages:
        expect_messages(page, ["Keep this", "Delete this"])

    item = alice_page.locator(f"#{doomed}")
    question = item.get_by_text("Delete this message for everyone?")
    item.get_by_role("button", name="Delete").click()
    expect(question).to_be_visible()
    item.get_by_role("button", name="Cancel").click()  # changed her mind
    expect(question).to_be_hidden()
    expect_messages(alice_page, ["Keep this", "Delete this"])

    item.get_by_role("button", name="Delete").click()
    expect(question).to_be_visible()
    # While asking, the one Delete button a reader finds is the confirmation.
    item.get_by_role("button", name="Delete").click()
    for page in pages:
        expect(page.locator(f"#{doomed}")).to_have_count(0)
        expect_messages(page, ["Keep this"])
    for page in pages:
        page.reload()
        expect_messages(page, ["Keep this"])
    assert bob_page.request.get(f"{second.url}/messages/{pk_of(doomed)}/").status == 404
    assert_nothing_went_wrong(alice, bob)


# --- 4. reactions ---


def test_reactions_are_toggle_buttons_pressed_for_whoever_reacted(shared_webs, browse):
    first, second = shared_webs
    alice, bob = browse(), browse()
    slug = open_room(sign_up(alice, first.url), first.url, unique("Reactions"))
    sign_up(bob, second.url)
    alice_page = enter_room(alice, first.url, slug, page=alice.context.pages[0])
    bob_page = enter_room(bob, second.url, slug)
    lunch = post(alice_page, "Lunch at noon?")
    expect_messages(bob_page, ["Lunch at noon?"])

    expect(reaction(bob_page, lunch, "👍")).to_have_attribute("aria-pressed", "false")
    reaction(bob_page, lunch, "👍").click()
    for page, pressed in [(bob_page, "true"), (alice_page, "false")]:
        thumbs = reaction(page, lunch, "👍")
        expect(thumbs).to_have_attribute("aria-pressed", pressed)
        expect(thumbs).to_have_text("👍 1")
        expect(thumbs).to_have_attribute("title", bob.username)

    reaction(alice_page, lunch, "👍").click()
    for page in (alice_page, bob_page):
        thumbs = reaction(page, lunch, "👍")
        expect(thumbs).to_have_attribute("aria-pressed", "true")
        expect(thumbs).to_have_text("👍 2")
        expect(thumbs).to_have_attribute("title", f"{bob.username}, {alice.username}")
        expect(reaction(page, lunch, "🎉")).to_have_attribute("aria-pressed", "false")

    # Bob in two tabs, on two processes, toggles the same reaction in both at once.
    bob_tab = enter_room(bob, first.url, slug)
    expect(reaction(bob_tab, lunch, "👍")).to_have_attribute("aria-pressed", "true")
    tabs = (bob_page, bob_tab)
    for _ in range(2):
        reacts_before = [len(bob.frames_sent(tab, "react")) for tab in tabs]
        for tab in tabs:
            reaction(tab, lunch, "👍").click()
        wait_until(
            bob_page,
            lambda before=reacts_before: all(
                len(bob.frames_sent(tab, "react")) > count
                for tab, count in zip(tabs, before, strict=True)
            ),
            what="both tabs to send their reaction",
        )
    sync = post(alice_page, "Settled?")
    fresh = enter_room(alice, first.url, slug)
    everyone = (alice_page, bob_page, bob_tab, fresh)
    for page in everyone:
        expect(page.locator(f"#{sync}")).to_be_attached()
    wait_until(
        fresh,
        lambda: len({page.locator("#last-seq").input_value() for page in everyone}) == 1,
        what="every page to have applied the same events",
    )
    reactions = fresh.locator(f"#{lunch}-reactions").inner_html()
    for page in everyone:
        assert page.locator(f"#{lunch}-reactions").inner_html() == reactions
    bob_pressed = reaction(bob_page, lunch, "👍").get_attribute("aria-pressed")
    expect(reaction(bob_tab, lunch, "👍")).to_have_attribute("aria-pressed", bob_pressed)
    expect(reaction(fresh, lunch, "👍")).to_have_attribute("aria-pressed", "true")  # Alice's
    count = "2" if bob_pressed == "true" else "1"
    for page in everyone:
        expect(reaction(page, lunch, "👍")).to_have_text(f"👍 {count}")
    assert_nothing_went_wrong(alice, bob)


# --- 5. reply, permalinks ---


def test_a_reply_quotes_the_original_which_its_link_opens_highlighted(shared_webs, browse):
    """Ends on the screenshot of a room with reactions, a reply and an edited message."""
    first, second = shared_webs
    alice, bob = browse(), browse()
    slug = open_room(sign_up(alice, first.url), first.url, unique("Release review"))
    sign_up(bob, second.url)
    alice_page = enter_room(alice, first.url, slug, page=alice.context.pages[0])
    bob_page = enter_room(bob, second.url, slug)
    pages = (alice_page, bob_page)
    original = post(
        alice_page,
        "Shall we meet at 3pm on Thursday for the **release review**?",
        shows="Shall we meet at 3pm on Thursday for the release review?",
    )
    post(alice_page, "I will bring the latency numbers")
    expect(bob_page.locator("#messages .message")).to_have_count(2)

    bob_page.locator(f"#{original}").get_by_role("link", name="Reply", exact=True).click()
    quoting = bob_page.locator("#composer .reply-quote")
    expect(quoting).to_contain_text(alice.username)
    expect(quoting).to_contain_text("Shall we meet at 3pm")
    expect(quoting).to_have_attribute("href", f"/messages/{pk_of(original)}/")
    reply = post(bob_page, "Thursday works, see you there")
    expect(bob_page.locator("#composer .reply-quote")).to_have_count(0)
    for page in pages:
        quote = page.locator(f"#{reply} .reply-quote")
        expect(quote).to_have_attribute("href", f"/messages/{pk_of(original)}/")
        expect(quote.locator(".quote-author")).to_have_text(alice.username)
        expect(quote).to_contain_text("Shall we meet at 3pm")
        expect(body(page, reply)).to_have_text("Thursday works, see you there")

    # The original is edited: its quote follows on every page.
    field = open_editor(alice_page, original)
    field.fill("Shall we meet at 4pm on Thursday for the **release review**?")
    field.press("Enter")
    for page in pages:
        expect(page.locator(f"#{reply} .reply-quote")).to_contain_text("Shall we meet at 4pm")
        expect(page.locator(f"#{original} .edited")).to_be_visible()

    # The quote leads to the original: the room around it, highlighted.
    bob_page.locator(f"#{reply} .reply-quote").click()
    expect(bob_page).to_have_url(
        re.compile(rf"{re.escape(second.url)}/chat/{slug}/\?around=\d+#{original}$")
    )
    target = bob_page.locator(f"#{original}")
    expect(target).to_be_in_viewport()
    assert target.evaluate("item => item.matches(':target')")
    assert target.evaluate("item => getComputedStyle(item).outlineStyle") == "solid"

    reaction(alice_page, reply, "👍").click()
    reaction(alice_page, reply, "🎉").click()
    expect(reaction(alice_page, reply, "🎉")).to_have_attribute("aria-pressed", "true")
    reaction(alice_page, original, "❤️").click()
    expect(reaction(alice_page, original, "❤️")).to_have_attribute("aria-pressed", "true")
    expect(reaction(alice_page, reply, "👍")).to_have_text("👍 1")
    # Nothing hovered or focused in the messages, so their action bars have faded away.
    alice_page.mouse.move(0, 0)
    alice_page.locator("#message").focus()
    alice_page.wait_for_function(
        """() => [...document.querySelectorAll('#messages .message-actions, #messages .reaction-offer')]
            .every(element => getComputedStyle(element).opacity === '0')"""
    )
    alice_page.screenshot(path=SCREENSHOT)
    assert_nothing_went_wrong(alice, bob)


def test_a_permalink_100000_messages_back_opens_there_and_loads_both_ways(
    shared_webs, browse, system_env
):
    web = shared_webs[1]
    room, count = unique("Far back"), "100000"
    seeded = subprocess.run(
        [sys.executable, "manage.py", "seed_messages", "--room", room, "--count", count],
        cwd=ROOT,
        env=system_env,
        capture_output=True,
        text=True,
        check=True,
    )
    slug = re.search(r"room '([^']+)'", seeded.stdout)[1]
    alice = browse()
    page = sign_up(alice, web.url)
    # The permalink of the 100th message, 99,900 before the newest.
    page.goto(f"{web.url}/chat/{slug}/?before=101")
    permalink = page.locator('#messages > .message[data-seq="100"] a.message-time')
    href = permalink.get_attribute("href")
    dom_id = f"message-{href.strip('/').rsplit('/', 1)[-1]}"

    page.goto(f"{web.url}{href}")
    expect(page).to_have_url(f"{web.url}/chat/{slug}/?around=100#{dom_id}")
    target = page.locator(f"#{dom_id}")
    expect(target).to_be_in_viewport()
    assert target.evaluate("item => item.matches(':target')")
    assert shown_seqs(page) == list(range(75, 125))
    expect(page.get_by_role("link", name="Older messages")).to_have_count(1)
    expect(page.get_by_role("link", name="Newer messages")).to_have_count(1)

    scroller = page.locator(".scroller")
    scroller.evaluate("element => { element.scrollTop = -element.scrollHeight; }")  # the top
    expect(page.locator('#messages > .message[data-seq="25"]')).to_be_attached()
    scroller.evaluate("element => { element.scrollTop = 0; }")  # the bottom (column-reverse)
    expect(page.locator('#messages > .message[data-seq="174"]')).to_be_attached()
    seqs = shown_seqs(page)
    assert seqs == list(range(seqs[0], seqs[-1] + 1)), seqs  # in order, no gap, no repeat
    assert seqs[0] <= 25 and seqs[-1] >= 174, seqs
    assert target.evaluate("item => item.matches(':target')")
    assert_nothing_went_wrong(alice)


# --- 6. formatting ---


def test_formatting_bold_code_blocks_and_links_that_open_in_a_new_tab(shared_webs, browse):
    first, second = shared_webs
    alice, bob = browse(), browse()
    slug = open_room(sign_up(alice, first.url), first.url, unique("Formatting"))
    sign_up(bob, second.url)
    alice_page = enter_room(alice, first.url, slug, page=alice.context.pages[0])
    bob_page = enter_room(bob, second.url, slug)
    line = post(
        alice_page,
        "**Ship it** with `make release`, _soon_; notes at https://example.com/notes",
        shows="Ship it with make release, soon; notes at https://example.com/notes",
    )
    alice_page.get_by_text("Write a longer message").click()
    alice_page.get_by_role("textbox", name="Longer message").fill(
        "```\nfor n in range(3):\n    print(n)\n```"
    )
    alice_page.locator("#composer-long").get_by_role("button", name="Send").click()
    expect(bob_page.locator("#messages .message")).to_have_count(2)
    block = bob_page.locator("#messages .message").last.locator(".message-text")

    text = body(bob_page, line)
    expect(text.locator("strong")).to_have_text("Ship it")
    expect(text.locator("code")).to_have_text("make release")
    expect(text.locator("em")).to_have_text("soon")
    link = text.get_by_role("link", name="https://example.com/notes")
    expect(link).to_have_attribute("href", "https://example.com/notes")
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    assert block.locator("pre > code").text_content() == "for n in range(3):\n    print(n)\n"
    assert "```" not in block.text_content()

    # The link opens a new tab that knows neither this page nor where it came from.
    bob.context.route(
        "https://example.com/**",
        lambda route: route.fulfill(content_type="text/html", body="<title>Notes</title>"),
    )
    with bob.context.expect_page() as opened:
        link.click()
    notes = opened.value
    notes.wait_for_load_state()
    assert notes.url == "https://example.com/notes"
    assert notes.evaluate("() => window.opener === null && document.referrer === ''")
    assert bob_page.url == f"{second.url}/chat/{slug}/"
    assert_nothing_went_wrong(alice, bob)


# --- 7. connection state ---


def test_the_page_says_it_is_reconnecting_and_catches_up_when_back(start_web, shared_webs, browse):
    web = start_web(CHAT_HEARTBEAT_SECONDS=0.5)
    other = shared_webs[0]
    alice, bob = browse(), browse()
    slug = open_room(sign_up(alice, web.url), web.url, unique("Flaky line"))
    sign_up(bob, other.url)
    alice_page = enter_room(alice, web.url, slug, page=alice.context.pages[0])
    bob_page = enter_room(bob, other.url, slug)
    notice = alice_page.locator("#connection-status").get_by_text("Reconnecting…")
    sent = ["Before the drop"]
    send(alice_page, sent[0], enter=True)
    for page in (alice_page, bob_page):
        expect_messages(page, sent)
    socket = alice.sockets_of(alice_page)[-1]
    beats = len(socket.received)
    wait_until(alice_page, lambda: len(socket.received) >= beats + 4, what="a few heartbeats")
    expect(notice).to_be_hidden()  # heard from the server lately

    web.kill()  # SIGKILL: no close frame; only the missing heartbeats tell
    expect(notice).to_be_visible(timeout=10_000)
    sent.append("Posted while Alice's server was down")
    send(bob_page, sent[-1], enter=True)
    expect_messages(bob_page, sent)
    expect_messages(alice_page, sent[:1])

    web.start()  # the same port: the page's retries find it again
    expect(notice).to_be_hidden(timeout=RECONNECT_MS)
    expect_messages(alice_page, sent, timeout=RECONNECT_MS)
    sent.append("Back, and caught up")
    send(alice_page, sent[-1], enter=True)
    for page in (alice_page, bob_page):
        expect_messages(page, sent)
    expect(notice).to_be_hidden()


# --- 8. grouping and day dividers ---


def test_consecutive_messages_by_one_author_show_the_name_once_under_today(shared_webs, browse):
    first, second = shared_webs
    alice, bob = browse(), browse()
    slug = open_room(sign_up(alice, first.url), first.url, unique("Grouping"))
    sign_up(bob, second.url)
    alice_page = enter_room(alice, first.url, slug, page=alice.context.pages[0])
    bob_page = enter_room(bob, second.url, slug)
    ids = [
        post(alice_page, "First of the day"),
        post(alice_page, "Second, straight after"),
    ]
    expect(bob_page.locator("#messages .message")).to_have_count(2)
    ids.append(post(bob_page, "Bob chimes in"))
    expect(alice_page.locator("#messages .message")).to_have_count(3)
    ids.append(post(alice_page, "Alice again"))
    for page in (alice_page, bob_page):
        expect(page.locator("#messages .message")).to_have_count(4)
        first_name, repeated, bob_name, alice_again = (
            page.locator(f"#{dom_id} .message-author") for dom_id in ids
        )
        expect(repeated).to_be_hidden()
        for name in (first_name, bob_name, alice_again):
            expect(name).to_be_visible()
        dividers = page.locator("#messages").get_by_role("separator")
        expect(dividers).to_have_count(1)
        expect(page.locator(f"#{ids[0]}").get_by_role("separator")).to_have_count(1)
        # The date is there for machines; the reader sees "Today" (the page's own style).
        reads = dividers.locator("time").evaluate(
            "time => [getComputedStyle(time, '::after').content, getComputedStyle(time).fontSize]"
        )
        assert reads == ['"Today"', "0px"], reads
    assert_nothing_went_wrong(alice, bob)
