"""Accessibility (issue 10): axe-core finds no WCAG 2.1 A/AA violation on any page, in
light and dark, on a desktop and a phone; and every control of the room works from the
keyboard.

axe-core is the copy shipped inside the axe-playwright-python package (nothing is
downloaded at run time); it is injected once per loaded page and run on the whole
document. Each page is checked in the states a person meets: a live room with reactions,
a reply and an edited message (and a message arriving over the socket), its Edit and
Delete popovers open, a reply being written, the composer refusing a message, the phone's
sidebar open, forms with errors, the history window, the edit page, settings, a person's
page and the 404 page.
"""

import re
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass

import pytest
from axe_playwright_python.base import AXE_SCRIPT
from playwright.sync_api import expect

from tests.e2e.conftest import PASSWORD, Visitor, unique, wait_for_catch_up
from tests.support.accounts import HttpSession

pytestmark = pytest.mark.e2e

WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
DESKTOP = {"viewport": {"width": 1000, "height": 760}}
# 320 CSS pixels: the width WCAG's Reflow (1.4.10) asks content to fit without scrolling.
PHONE = {"viewport": {"width": 320, "height": 640}, "is_mobile": True, "has_touch": True}
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


# --- a room with everything in it, made over HTTP (the no-JavaScript forms) ---


@dataclass
class Scene:
    url: str
    alice: HttpSession
    bob: HttpSession
    bob_name: str
    slug: str
    edited: int  # alice's message: edited, with reactions, replied to


def send_form(session, slug, **fields):
    """Submit one of the room page's forms without JavaScript (/chat/<slug>/send/)."""
    _, page = session.get(f"/chat/{slug}/")
    data = {"csrfmiddlewaretoken": CSRF.search(page)[1], **fields}
    request = urllib.request.Request(
        f"{session.base_url}/chat/{slug}/send/",
        data=urllib.parse.urlencode(data).encode(),
        headers={"Referer": f"{session.base_url}/chat/{slug}/"},
    )
    with session.opener.open(request, timeout=15) as response:
        assert response.status == 200, response.status


def post(session, slug, text, **fields):
    send_form(session, slug, message=text, client_key=str(uuid.uuid4()), **fields)
    _, page = session.get(f"/chat/{slug}/")
    return int(re.findall(r'<li class="message[^"]*" id="message-(\d+)"', page)[-1])


@pytest.fixture(scope="module")
def scene(shared_webs):
    web = shared_webs[0]
    bob_name = unique("bob")
    alice = HttpSession(web.url).sign_up(unique("alice"))
    bob = HttpSession(web.url).sign_up(bob_name)
    slug = alice.open_room(unique("Accessible"))
    edited = post(alice, slug, "Hello **everyone**, with `code` and a [link](https://example.com/)")
    post(bob, slug, "A reply to that", reply_to=edited)
    send_form(bob, slug, react=f"{edited} 👍 on")
    send_form(alice, slug, react=f"{edited} 🎉 on")
    send_form(alice, slug, edit=str(edited), message="Hello again, **everyone** (edited)")
    post(bob, slug, "- a list\n- of two\n\n> and a quote")
    post(alice, slug, "The newest one")
    return Scene(web.url, alice, bob, bob_name, slug, edited)


def logged_in(browser, session, options):
    visitor = Visitor(browser.new_context(**options))
    cookies = [
        {"name": k, "value": v, "url": session.base_url} for k, v in session.cookies().items()
    ]
    visitor.context.add_cookies(cookies)
    return visitor


# --- axe ---


def axe_violations(page, *, colours_only=False):
    """["rule (impact): target: what is wrong"] for each node axe-core finds at fault;
    `colours_only`: only the rules about colour (contrast, links told apart by colour)."""
    # Controls fade in and out (0.1 s): check what a person sees once they have.
    page.wait_for_function(
        "() => document.getAnimations().every(a => !(a instanceof CSSTransition) || a.playState !== 'running')"
    )
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE_SCRIPT)
    rules = {"type": "tag", "values": WCAG_21_AA}
    if colours_only:
        rules = {
            "type": "rule",
            "values": page.evaluate(
                """tags => axe.getRules(['cat.color'])
                    .filter(rule => rule.tags.some(tag => tags.includes(tag)))
                    .map(rule => rule.ruleId)""",
                WCAG_21_AA,
            ),
        }
        assert "color-contrast" in rules["values"]
    result = page.evaluate(
        "options => axe.run(document, options)",
        {"runOnly": rules, "resultTypes": ["violations"]},
    )
    found = []
    for violation in result["violations"]:
        for node in violation["nodes"]:
            checks = node.get("any", []) + node.get("all", []) + node.get("none", [])
            why = "; ".join(check["message"] for check in checks) or violation["help"]
            found.append(f"{violation['id']} ({violation['impact']}): {node['target']}: {why}")
    return found


def message(page, pk):
    return page.locator(f"#message-{pk}")


def settled(page, locator):
    """Wait until the element and its floating controls have finished fading in."""
    locator.hover()
    page.wait_for_function(
        "element => [...element.querySelectorAll('.message-actions, .reaction-offer')]"
        ".every(part => getComputedStyle(part).opacity === '1' || matchMedia('(hover: none)').matches)",
        arg=locator.element_handle(),
    )


def open_popover(page, pk, name):
    item = message(page, pk)
    settled(page, item)
    item.get_by_role("button", name=name, exact=True).click()
    popover = page.locator(f"#message-{pk}-{'editor' if name == 'Edit' else 'delete'}")
    expect(popover).to_be_visible()
    if name == "Edit":
        expect(popover.get_by_role("textbox", name="Edit message")).to_be_focused()


# Journeys: (who, path, [(state, what to do on the page before checking it), ...]); the
# states of one journey follow each other on one page.


def journeys(scene, device):
    room = f"/chat/{scene.slug}/"
    pk = scene.edited

    def live(page, visitor):
        wait_for_catch_up(visitor, page)
        text = f"Live {uuid.uuid4().hex[:6]}"
        post(scene.bob, scene.slug, text)  # arrives over the socket
        expect(page.locator(".message-text", has_text=text)).to_be_visible()

    def replying(page, visitor):
        item = message(page, pk)
        settled(page, item)
        item.get_by_role("link", name="Reply", exact=True).click()
        expect(page.locator("#composer-fields .replying")).to_be_visible()

    def refused(page, visitor):
        page.fill("#message", "x" * 5000)
        page.press("#message", "Enter")
        expect(page.locator("#composer-error")).to_be_visible()

    def editing(page, visitor):
        open_popover(page, pk, "Edit")

    def deleting(page, visitor):
        page.keyboard.press("Escape")  # the Edit popover
        open_popover(page, pk, "Delete")

    def hovered(page, visitor):
        wait_for_catch_up(visitor, page)
        settled(page, message(page, pk))

    def settings_refused(page, visitor):
        page.fill("#id_display_name", "")
        page.fill("#id_time_zone", "Nowhere/Else")
        page.get_by_role("button", name="Save", exact=True).click()
        expect(page.locator(".field-error")).to_have_count(2)

    def password_refused(page, visitor):
        page.fill("#id_old_password", "not the password")
        page.fill("#id_new_password1", "short")
        page.fill("#id_new_password2", "different")
        page.get_by_role("button", name="Change password").click()
        expect(page.locator(".form-saved, .field-error").first).to_be_visible()
        expect(page.locator(".field-error")).not_to_have_count(0)

    def signup_refused(page, visitor):
        page.fill("#id_username", "two words")
        page.fill("#id_password1", "short")
        page.fill("#id_password2", "other")
        page.get_by_role("button", name="Sign up").click()
        expect(page.locator(".field-error").first).to_be_visible()

    def login_refused(page, visitor):
        page.fill("#id_username", "nobody-at-all")
        page.fill("#id_password", PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.locator(".form-error")).to_be_visible()

    def lobby_refused(page, visitor):
        page.fill("#id_name", "!!!")
        page.get_by_role("button", name="Go").click()
        expect(page.locator("#room-error")).to_be_visible()

    def sidebar_open(page, visitor):
        expect(page.get_by_role("link", name="Settings")).to_be_visible()

    found = [
        (None, "/accounts/login/", [("login", None), ("login, refused", login_refused)]),
        (None, "/accounts/signup/", [("sign up", None), ("sign up, refused", signup_refused)]),
        ("alice", "/", [("lobby", None), ("lobby, refused", lobby_refused)]),
        (
            "alice",
            room,
            [
                ("room, live", live),
                ("room, replying", replying),
                ("room, composer refused", refused),
                ("room, Edit popover", editing),
                ("room, Delete popover", deleting),
            ],
        ),
        ("bob", room, [("room, another reader", hovered)]),
        ("alice", f"{room}?around=2#message-{pk}", [("room, history window", None)]),
        ("alice", f"/messages/{pk}/edit/", [("edit page", None)]),
        (
            "alice",
            "/accounts/settings/",
            [
                ("settings", None),
                ("settings, refused", settings_refused),
                ("settings, password refused", password_refused),
            ],
        ),
        ("alice", f"/people/{scene.bob_name}/", [("person", None)]),
        ("alice", "/chat/no-such-room/", [("404", None)]),
    ]
    if device == "phone":  # the sidebar, behind "Rooms and people"
        found.append(("alice", f"{room}#sidebar", [("room, sidebar open", sidebar_open)]))
    return found


@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_no_page_has_a_wcag_21_aa_violation_in_light_or_dark(browser, scene, device):
    """Every rule in light; in dark, which only changes colours (chat.css), the colour
    rules again. And no page scrolls sideways."""
    options = DESKTOP if device == "desktop" else PHONE
    visitors = {
        None: Visitor(browser.new_context(**options)),
        "alice": logged_in(browser, scene.alice, options),
        "bob": logged_in(browser, scene.bob, options),
    }
    found = []
    try:
        for who, path, steps in journeys(scene, device):
            visitor = visitors[who]
            page = visitor.new_page()
            page.goto(scene.url + path)
            for name, prepare in steps:
                if prepare:
                    prepare(page, visitor)
                overflow = page.evaluate(
                    "() => document.documentElement.scrollWidth - window.innerWidth"
                )
                if overflow > 0:
                    found.append(f"{name}: scrolls sideways by {overflow}px (WCAG 1.4.10 Reflow)")
                for scheme in ("light", "dark"):
                    page.emulate_media(color_scheme=scheme)
                    violations = axe_violations(page, colours_only=scheme == "dark")
                    found += [f"{name} [{scheme}] {v}" for v in violations]
                page.emulate_media(color_scheme="light")
            page.close()
        for visitor in visitors.values():
            assert visitor.page_errors == [], visitor.page_errors
            # axe-core came from the package: the pages fetched nothing from elsewhere.
            elsewhere = [r.url for r in visitor.requests if not r.url.startswith(scene.url)]
            assert elsewhere == [], elsewhere
    finally:
        for visitor in visitors.values():
            visitor.context.close()
    assert found == [], "\n".join(found)


# --- the keyboard ---


def focused(page):
    """What has the focus: its role-ish description, for messages."""
    return page.evaluate(
        """() => {
            const e = document.activeElement;
            return e ? `${e.tagName.toLowerCase()}#${e.id} "${(e.getAttribute('aria-label') || e.textContent || '').trim().slice(0, 30)}"` : 'nothing';
        }"""
    )


def tab_to(page, locator, *, backwards=False, limit=120):
    """Press Tab (Shift+Tab) until `locator` has the focus; fails if it never does."""
    key = "Shift+Tab" if backwards else "Tab"
    handle = locator.element_handle()
    path = []
    for _ in range(limit):
        if page.evaluate("element => document.activeElement === element", handle):
            return path
        page.keyboard.press(key)
        path.append(focused(page))
    raise AssertionError(f"{key} never reached {locator}: went through {path}")


def assert_focus_is_visible(page):
    """The focused element is on screen, not faded out, and drawn with a focus ring
    (waits out the controls' short fade-in)."""
    try:
        page.wait_for_function(
            """() => {
                const e = document.activeElement, box = e.getBoundingClientRect();
                let opacity = 1;
                // A popover is drawn in the top layer: its ancestors' opacity does not reach it.
                for (let n = e; n; n = n.matches(':popover-open') ? null : n.parentElement) {
                    opacity *= Number(getComputedStyle(n).opacity);
                }
                const style = getComputedStyle(e);
                const ring = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0;
                return box.width > 0 && box.height > 0 && opacity > 0.99 && ring;
            }""",
            timeout=5_000,
        )
    except Exception as error:
        why = page.evaluate(
            """() => {
                const e = document.activeElement, box = e.getBoundingClientRect();
                const faded = [];
                for (let n = e; n; n = n.parentElement) {
                    const o = getComputedStyle(n).opacity;
                    if (o !== '1') faded.push(`${n.tagName}.${n.className}: ${o}`);
                }
                const style = getComputedStyle(e);
                return {box: [box.width, box.height], faded, outline: [style.outlineStyle, style.outlineWidth]};
            }"""
        )
        raise AssertionError(f"the focus on {focused(page)} cannot be seen: {why}") from error


def test_every_room_control_works_from_the_keyboard(browser, scene):
    visitor = logged_in(browser, scene.alice, DESKTOP)
    try:
        page = visitor.new_page()
        page.goto(f"{scene.url}/chat/{scene.slug}/")
        wait_for_catch_up(visitor, page)
        composer = page.get_by_role("textbox", name="Message", exact=True)
        expect(composer).to_be_focused()  # autofocus: a person can type at once

        # From the top of the page, Tab reaches the composer; Enter sends.
        page.evaluate("() => document.activeElement.blur()")
        tab_to(page, composer, limit=600)  # past every room of the sidebar
        page.keyboard.type("Typed with the keyboard")
        page.keyboard.press("Enter")
        mine = page.locator("#messages > .message", has_text="Typed with the keyboard")
        expect(mine).to_have_count(1)
        expect(composer).to_be_focused()
        expect(composer).to_have_value("")
        pk = int(mine.get_attribute("id").removeprefix("message-"))
        item = message(page, pk)

        # Back from the composer to the new message's controls: each shows its focus.
        reply = item.get_by_role("link", name="Reply", exact=True)
        tab_to(page, reply, backwards=True)
        assert_focus_is_visible(page)
        page.keyboard.press("Enter")
        replying = page.locator("#composer-fields .replying")
        expect(replying).to_contain_text("Typed with the keyboard")
        tab_to(page, composer)
        page.keyboard.type("A reply, by keyboard")
        page.keyboard.press("Enter")
        answer = page.locator("#messages > .message", has_text="A reply, by keyboard")
        expect(answer.locator(".reply-quote")).to_contain_text("Typed with the keyboard")
        expect(replying).to_have_count(0)

        # React with Space, then take it back with Enter: a toggle that says its state.
        thumbs = item.get_by_role("button", name="React with 👍", exact=True)
        tab_to(page, thumbs, backwards=True)
        assert_focus_is_visible(page)
        expect(thumbs).to_have_attribute("aria-pressed", "false")
        page.keyboard.press("Space")
        expect(thumbs).to_have_attribute("aria-pressed", "true")
        expect(thumbs).to_contain_text("1")
        # The reactions were replaced: Tab goes on from where the old button was.
        tab_to(page, thumbs, limit=600)
        page.keyboard.press("Enter")
        expect(thumbs).to_have_attribute("aria-pressed", "false")
        expect(item.locator(".reactions .has-count")).to_have_count(0)

        # Edit: Enter opens the popover with the text field focused; Escape closes it and
        # gives the focus back; Enter in the field saves.
        edit = item.get_by_role("button", name="Edit", exact=True)
        composer.focus()
        tab_to(page, edit, backwards=True)
        assert_focus_is_visible(page)
        page.keyboard.press("Enter")
        field = item.get_by_role("textbox", name="Edit message")
        expect(field).to_be_focused()
        popover = page.locator(f"#message-{pk}-editor")
        page.keyboard.press("Escape")
        expect(popover).to_be_hidden()
        expect(edit).to_be_focused()
        page.keyboard.press("Space")
        expect(field).to_be_focused()
        page.keyboard.press("Control+a")
        page.keyboard.type("Edited with the keyboard")
        page.keyboard.press("Enter")
        expect(item.locator(".message-text")).to_have_text("Edited with the keyboard")
        expect(item.locator(".edited")).to_be_attached()

        # Delete: Space opens the question, Tab to its Delete, Enter deletes.
        delete = item.get_by_role("button", name="Delete", exact=True)
        composer.focus()
        tab_to(page, delete, backwards=True)
        page.keyboard.press("Space")
        confirm = page.locator(f"#message-{pk}-delete").get_by_role("button", name="Delete")
        tab_to(page, confirm, limit=5)
        assert_focus_is_visible(page)
        page.keyboard.press("Enter")
        expect(item).to_have_count(0)
        expect(answer.locator(".reply-quote")).to_have_text("Original message deleted")

        assert visitor.page_errors == [], visitor.page_errors
        assert visitor.console_errors == [], visitor.console_errors
    finally:
        visitor.context.close()


def test_the_phone_sidebar_opens_and_closes_from_the_keyboard(browser, scene):
    visitor = logged_in(browser, scene.alice, PHONE)
    try:
        page = visitor.new_page()
        page.goto(f"{scene.url}/chat/{scene.slug}/")
        sidebar = page.locator("#sidebar")
        expect(sidebar).to_be_hidden()
        expect(page.locator(".site-header")).to_be_hidden()  # one header on a phone
        page.evaluate("() => document.activeElement.blur()")
        tab_to(page, page.get_by_role("link", name="Rooms and people"))
        page.keyboard.press("Enter")
        expect(sidebar).to_be_visible()
        settings = sidebar.get_by_role("link", name="Settings")
        tab_to(page, settings)
        assert_focus_is_visible(page)
        tab_to(page, sidebar.get_by_role("button", name="Log out"))
        close = sidebar.get_by_role("link", name="Close")
        tab_to(page, close, backwards=True)
        page.keyboard.press("Enter")
        expect(sidebar).to_be_hidden()
    finally:
        visitor.context.close()
