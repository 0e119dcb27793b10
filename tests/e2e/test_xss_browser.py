"""Hostile text in real Chromium (issue 4, item 7): shown as text, never run, never acted on.

The reading page runs with the Content-Security-Policy bypassed, so an injected inline
handler WOULD run there and raise a dialog: escaping is tested on its own, not hidden
behind the CSP. htmx still processes whatever is swapped in, so an injected `hx-*` or
`ws-send` attribute would show up as a request or a frame.
"""

import json
import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import (
    enter_room,
    expect_messages,
    open_room,
    send,
    shown,
    sign_up,
    unique,
)

pytestmark = pytest.mark.e2e

PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<img src=x onerror=alert(1)//",
    '"><script>alert(1)</script>',
    "'><svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "<svg/onload=alert(1)>",
    '<a href="javascript:alert(1)">click me</a>',
    "javascript:alert(1)",
    '<iframe src="javascript:alert(1)"></iframe>',
    "<details open ontoggle=alert(1)>",
    "<input autofocus onfocus=alert(1)>",
    "<body onload=alert(1)>",
    '<div style="background:url(javascript:alert(1))">styled</div>',
    "<style>body{display:none}</style>",
    '<meta http-equiv="refresh" content="0;url=/accounts/logout/">',
    "</li></ol><script>alert(1)</script>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<div hx-get="/" hx-trigger="load">x</div>',
    '<a hx-post="/accounts/logout/" hx-trigger="load">bye</a>',
    '<form ws-send hx-trigger="load"><input name="message" value="spam"></form>',
    '<img src="x" hx-get="/" hx-trigger="load">',
    '<div hx-ext="ws" ws-connect="/ws/chat/elsewhere/">x</div>',
    '<div id="composer-fields" hx-swap-oob="true">hijacked</div>',
    '<ol id="messages" hx-swap-oob="innerHTML">wiped</ol>',
    "http://example.com/<script>alert(1)</script>",
    'www.example.com" onmouseover="alert(1)',
    "{{ 7|add:7 }} {% csrf_token %} ${7*7}",
]
# Shown as typed too, but Markdown decodes character references: tested on its own below.
ESCAPED = "&lt;b&gt;already escaped&lt;/b&gt; &amp; &#60;"

# Inside a message's text only what the formatter makes of plain words: paragraphs, line
# breaks and links (http/https/mailto) that open in a new tab and tell the target nothing.
MESSAGE_MARKUP = """items => items.flatMap(text => [...text.querySelectorAll('*')].flatMap(element => {
    const bad = [];
    const tag = element.tagName;
    if (!['P', 'A', 'BR'].includes(tag)) bad.push(tag);
    if (tag === 'A') {
        if (!/^(https?:|mailto:)/i.test(element.getAttribute('href') || '')) {
            bad.push('A href=' + element.getAttribute('href'));
        }
        if (element.getAttribute('target') !== '_blank') bad.push('A target');
        if (element.getAttribute('rel') !== 'noopener noreferrer') bad.push('A rel');
    }
    for (const attribute of element.attributes) {
        if (!(tag === 'A' && ['href', 'rel', 'target'].includes(attribute.name))) {
            bad.push(tag + ' ' + attribute.name);
        }
    }
    return bad;
}))"""


def test_hostile_messages_show_as_text_run_nothing_and_trigger_no_htmx(shared_webs, browse):
    first, second = shared_webs
    mallory = browse()
    reader = browse(bypass_csp=True)  # an injected handler would run here
    slug = open_room(sign_up(mallory, first.url), first.url, unique("Hostile"))
    sign_up(reader, second.url)
    sender_page = enter_room(mallory, first.url, slug, page=mallory.context.pages[0])
    reader_page = enter_room(reader, second.url, slug)
    for page in (sender_page, reader_page):
        page.wait_for_load_state("networkidle")
    reader_socket = reader.sockets_of(reader_page)[-1]
    sender_socket = mallory.sockets_of(sender_page)[-1]
    frames_before = len(reader_socket.sent), len(sender_socket.sent)
    sockets_before = len(reader.sockets), len(mallory.sockets)
    reader.requests.clear()
    mallory.requests.clear()

    for number, payload in enumerate(PAYLOADS, start=1):
        send(sender_page, payload)
        expect_messages(sender_page, PAYLOADS[:number])
        expect(sender_page.locator("#message")).to_have_value("")
    expect_messages(reader_page, PAYLOADS)
    for page in (sender_page, reader_page):
        page.wait_for_load_state("networkidle")

    # Nothing ran, nothing was fetched, nothing was sent but the posts themselves.
    for visitor in (mallory, reader):
        assert visitor.dialogs == []
        assert visitor.page_errors == []
    assert [request.url for request in reader.requests + mallory.requests] == []
    assert len(reader_socket.sent) == frames_before[0]
    sent = [json.loads(frame) for frame in sender_socket.sent[frames_before[1] :]]
    assert [frame["message"] for frame in sent if "message" in frame] == PAYLOADS
    # Besides the posts, only the composer's "typing" signal (no text in it).
    assert all(set(frame) <= {"typing", "HEADERS"} for frame in sent if "message" not in frame)
    assert (len(reader.sockets), len(mallory.sockets)) == sockets_before
    assert not reader_socket.closed and not sender_socket.closed
    for page in (sender_page, reader_page):
        assert_text_only(page)
        expect(page.locator("#composer-fields input#message")).to_have_count(1)
    live = shown(reader_page)
    assert [text for _, _, text in live] == PAYLOADS
    assert {author for _, author, _ in live} == {mallory.username}

    # The same after a reload: the page fetches only itself, its stylesheet, icon and htmx.
    reader.requests.clear()
    reader_page.reload()
    reader_page.wait_for_load_state("networkidle")
    expect_messages(reader_page, PAYLOADS)
    assert shown(reader_page) == live
    assert_text_only(reader_page)
    fetched = sorted(
        urlsplit(request.url).path
        for request in reader.requests
        if urlsplit(request.url).path != "/favicon.ico"
    )
    assert len(fetched) == 5, fetched
    assert fetched[0].startswith("/chat/"), fetched
    assert re.fullmatch(r"/static/chat/chat[\w.]*\.css", fetched[1]), fetched
    assert re.fullmatch(r"/static/chat/favicon[\w.]*\.svg", fetched[2]), fetched
    assert re.fullmatch(r"/static/django_htmx/ext/hx-ws-2[\w.]*\.js", fetched[3]), fetched
    assert re.fullmatch(r"/static/django_htmx/htmx-2[\w.]*\.js", fetched[4]), fetched
    assert reader.dialogs == [] and reader.page_errors == []
    expect(reader_page.locator(".whoami")).to_have_text(reader.username)  # still logged in


def assert_text_only(page):
    texts = page.locator("#messages .message-text")
    assert texts.evaluate_all(MESSAGE_MARKUP) == []
    assert page.locator("#messages script, #messages img, #messages svg").count() == 0
    assert page.locator("#messages .message-text [hx-get]").count() == 0
    assert (
        page.locator(
            "#messages [hx-post], #messages [ws-send], #messages [hx-trigger=load]"
        ).count()
        == 0
    )
    # The only requests a message may make are its own: the Reply and Edit fragments.
    for item in page.locator("#messages .message").all():
        pk = item.get_attribute("id").removeprefix("message-")
        gets = item.locator("[hx-get]").evaluate_all(
            "els => els.map(e => e.getAttribute('hx-get'))"
        )
        assert sorted(gets) == [f"/messages/{pk}/edit/", f"/messages/{pk}/reply/"], gets


def test_room_names_and_usernames_with_markup_stay_text(shared_webs, browse):
    web = shared_webs[0]
    visitor = browse(bypass_csp=True)
    # Django usernames allow only letters, digits and @.+-_ ; markup is refused, and echoed as text.
    page = visitor.new_page()
    page.goto(f"{web.url}/accounts/signup/")
    page.fill("#id_username", "<b>bob</b><img src=x onerror=alert(1)>")
    page.fill("#id_password1", visitor.password)
    page.fill("#id_password2", visitor.password)
    page.click("form.stacked button[type=submit]")
    expect(page.locator(".field-error").first).to_be_visible()
    expect(page.locator("#id_username")).to_have_value("<b>bob</b><img src=x onerror=alert(1)>")
    assert page.locator("main b, main img").count() == 0
    page.close()

    sign_up(visitor, web.url, username=unique("e2e.o+n-e_il@x"))
    page = visitor.context.pages[0]
    name = unique('<script>alert(1)</script> "Q&A" <b>bold</b>')
    slug = open_room(page, web.url, name)
    assert re.fullmatch(r"[a-z0-9-]+", slug), slug
    expect(page.locator(".room-header h1")).to_have_text(name)
    expect(page).to_have_title(f"{name} · Chat")
    expect(page.locator("#message")).to_have_attribute("placeholder", f"Message {name}")
    assert page.locator("main b, main script").count() == 0

    enter_room(visitor, web.url, slug, page=page)
    send(page, "hello")
    expect_messages(page, ["hello"])
    expect(page.locator("#messages .message-author")).to_have_text([visitor.username])

    page.goto(f"{web.url}/")
    # The visitor is in the room: it is listed under "Your rooms" (#my-rooms).
    link = page.locator("#my-rooms a", has_text=name)
    expect(link).to_have_text(name)
    expect(link).to_have_attribute("href", f"/chat/{slug}/")
    assert (
        page.locator("#my-rooms b, #my-rooms script, .room-list b, .room-list script").count() == 0
    )

    # A name with no usable letters: refused, and the error and the field echo it as text.
    unusable = "\"><!-- <> & ' -->"
    page.fill("input[name=name]", unusable)
    page.click("form.inline-form button[type=submit]")
    expect(page.locator("#room-error")).to_be_visible()
    expect(page.locator("input[name=name]")).to_have_value(unusable)
    assert page.locator("main img, main script, main b").count() == 0
    assert visitor.dialogs == [] and visitor.page_errors == []


def test_character_references_show_as_typed(shared_webs, browse):
    web = shared_webs[0]
    visitor = browse(bypass_csp=True)
    slug = open_room(sign_up(visitor, web.url), web.url, unique("Escaped"))
    page = enter_room(visitor, web.url, slug, page=visitor.context.pages[0])
    send(page, ESCAPED)
    expect(page.locator("#messages .message")).to_have_count(1)
    assert [text for _, _, text in shown(page)] == [ESCAPED]
    assert_text_only(page)
    page.reload()
    expect(page.locator("#messages .message")).to_have_count(1)
    assert [text for _, _, text in shown(page)] == [ESCAPED]
    assert visitor.dialogs == [] and visitor.page_errors == []
