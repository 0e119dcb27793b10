"""A theme without forking (issue 10): CHAT_THEME_DIR overrides every template the README's
Customising table lists, and a static file, and the room still chats live.

The theme is built in a temporary folder from our own templates, so it keeps every id and
attribute the live parts need, each with a marker of its own:

- templates that extend `base.html` (pages) extend OURS of the same name, as the README
  shows, and override each block of `base.html` (title, head, body_class, content),
  keeping what ours put there with `{{ block.super }}`;
- `base.html` and the fragments are copies of ours with a marker (an HTML comment, or a
  `<meta>` in the head);
- static: a new `theme/brand.css`, and `chat/chat.css` (ours plus a marker) in place of
  ours.

A `web:` process started as the Procfile starts it, with CHAT_THEME_DIR set and its static
files collected as the build step does (DEBUG off: WhiteNoise serves STATIC_ROOT), serves
every page and frame with the theme's markers, and two people chat live through it.
"""

import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from pathlib import Path

import pytest
import websockets

from tests.support.accounts import HttpSession
from tests.support.servers import ROOT
from tests.system.clients import Page

pytestmark = [pytest.mark.system, pytest.mark.timeout(180)]

OURS = ROOT / "templates"
BASE_BLOCKS = ("title", "head", "body_class", "content")
SLOW = 30  # seconds, a shared machine


def listed_templates():
    """Every template the README's Customising table lists (its first column), as paths
    under templates/: a bare `name.html` after a full path is in that path's folder if
    there is one of that name there, else at the top."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Customising", 1)[1].split("\n## ", 1)[0]
    names = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        folder = ""
        for name in re.findall(r"`([^`]+)`", line.split("|")[1]):
            if "/" in name:
                folder = name.rsplit("/", 1)[0] + "/"
            elif list(OURS.glob(folder + name)):
                name = folder + name  # beside the full path before it, or else at the top
            found = sorted(OURS.glob(name))
            assert found, f"the README lists {name}, which is not in templates/"
            names.extend(str(path.relative_to(OURS)) for path in found)
    return sorted(set(names))


def marker(name):
    return f"theme-marker:{name}"


def extends_base(source):
    return re.match(r'\s*{%\s*extends\s+"base\.html"\s*%}', source) is not None


def themed(name, source):
    """The theme's version of our template `name`."""
    if extends_base(source):
        overrides = {
            "title": "{{ block.super }} · Themed",
            "head": f'{{{{ block.super }}}}<meta name="theme-page" content="{marker(name)}">',
            "body_class": "{{ block.super }} themed",
            "content": f"<!-- {marker(name)} -->{{{{ block.super }}}}",
        }
        return f'{{% extends "{name}" %}}\n' + "".join(
            f"{{% block {block} %}}{overrides[block]}{{% endblock {block} %}}\n"
            for block in BASE_BLOCKS
        )
    if name == "base.html":
        head = (
            f'<meta name="theme-base" content="{marker(name)}">\n'
            '  <link rel="stylesheet" href="{% static \'theme/brand.css\' %}">\n'
            "  {% block head %}"
        )
        assert source.count("{% block head %}") == 1
        return source.replace("{% block head %}", head)
    return f"<!-- {marker(name)} -->" + source


@pytest.fixture(scope="module")
def theme():
    folder = Path(tempfile.mkdtemp(prefix="chat-theme-"))
    names = listed_templates()
    for name in names:
        target = folder / "templates" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(themed(name, (OURS / name).read_text()))
    static = folder / "static"
    (static / "theme").mkdir(parents=True)
    (static / "theme" / "brand.css").write_text(
        f"/* {marker('theme/brand.css')} */\n:root {{ --radius: 2px; }}\n"
    )
    (static / "chat").mkdir()
    (static / "chat" / "chat.css").write_text(
        (ROOT / "static" / "chat" / "chat.css").read_text() + f"\n/* {marker('chat/chat.css')} */\n"
    )
    yield folder, names
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def themed_web(theme, system_env, start_web):
    folder, _ = theme
    static_root = tempfile.mkdtemp(prefix="chat-theme-static-")
    env = {
        **system_env,
        "CHAT_THEME_DIR": str(folder),
        "STATIC_ROOT": static_root,
        "CHAT_HEARTBEAT_SECONDS": "1",
    }
    # The build step of a Procfile platform, with the theme set: its static files first.
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    yield start_web(CHAT_THEME_DIR=folder, STATIC_ROOT=static_root, CHAT_HEARTBEAT_SECONDS="1")
    shutil.rmtree(static_root, ignore_errors=True)


def get(session, path, *, htmx=False, status=200):
    request = urllib.request.Request(
        session.base_url + path, headers={"HX-Request": "true"} if htmx else {}
    )
    try:
        with session.opener.open(request, timeout=15) as response:
            code, body = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        code, body = error.code, error.read().decode()
    assert code == status, f"{path}: {code}\n{body[-2000:]}"
    return body


def markers_in(html):
    return set(re.findall(r"theme-marker:([\w./-]+)", html))


def static_url(html, name):
    """The URL the page links for static file `name` (its hashed name, with DEBUG off)."""
    stem, suffix = name.rsplit(".", 1)
    found = re.search(rf'href="(/static/{re.escape(stem)}(?:\.[0-9a-f]+)?\.{suffix})"', html)
    assert found, f"the page does not link {name}"
    return found[1]


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_a_theme_overrides_every_listed_template_and_the_room_still_chats_live(
    theme, themed_web
):
    _, names = theme
    web = themed_web
    seen = {}  # marker -> where it was seen

    def saw(where, html):
        for found in markers_in(html):
            seen.setdefault(found, where)
        return html

    # Pages before logging in: every block of base.html, overridden by the page's theme.
    visitor = HttpSession(web.url)
    login = saw("login", get(visitor, "/accounts/login/"))
    assert '<title id="page-title">Log in · Chat · Themed</title>' in login
    assert re.search(r'<body class="\s*themed">', login)
    assert '<meta name="theme-page" content="theme-marker:registration/login.html">' in login
    saw("signup", get(visitor, "/accounts/signup/"))

    # Static files: the theme's own, and the theme's chat.css in place of ours.
    brand = get(visitor, static_url(login, "theme/brand.css"))
    assert marker("theme/brand.css") in brand
    css = get(visitor, static_url(login, "chat/chat.css"))
    assert marker("chat/chat.css") in css and "--radius" in css

    bob_name = unique("bob")
    alice = HttpSession(web.url).sign_up(unique("alice"))
    bob = HttpSession(web.url).sign_up(bob_name)
    saw("lobby", get(alice, "/"))
    room_name = unique("Themed")
    slug = alice.open_room(room_name)
    bob.open_room(room_name)  # bob joins: a line in the room (and its event, in catch-up)
    saw("settings", get(alice, "/accounts/settings/"))
    saw("members", get(alice, f"/chat/{slug}/members/"))
    saw("new message", get(alice, "/dm/"))
    saw("mention suggestions", get(alice, f"/chat/{slug}/mentions/?message=@bo", htmx=True))
    saw("person", get(alice, f"/people/{bob_name}/"))
    saw("404", get(alice, "/chat/no-such-room/", status=404))

    # Two people chat live, their pages recording every frame they receive.
    frames = []
    pages = []
    for session, name in ((alice, "alice"), (bob, "bob")):
        page = Page(web, session, slug, name=name)
        apply = page._apply

        async def recording(frame, apply=apply):
            frames.append(frame if isinstance(frame, str) else frame.decode())
            await apply(frame)

        page._apply = recording
        await page.load()
        pages.append(await page.connect())
    alice_page, bob_page = pages
    try:
        await alice_page.post("hello from alice")
        await bob_page.until_shows("hello from alice", timeout=SLOW)
        first = bob_page.find("hello from alice").pk
        await bob_page.reply(first, "hello back from bob")
        await alice_page.until_shows("hello back from bob", timeout=SLOW)
        await bob_page.react(first, "🎉")
        await alice_page.until(
            lambda: "🎉" in str(alice_page.document.by_id(f"message-{first}-reactions").text()),
            timeout=SLOW,
        )
        await alice_page.edit(first, "hello again from alice")
        await bob_page.until_shows("hello again from alice", timeout=SLOW)
        await alice_page.post("a mistake")
        await bob_page.until_shows("a mistake", timeout=SLOW)
        mistake = bob_page.find("a mistake").pk
        await alice_page.delete_message(mistake)
        await bob_page.until(lambda: "a mistake" not in bob_page.texts, timeout=SLOW)
        # Heartbeats come every second here: one to each page after this point.
        beats = len(frames)
        await alice_page.until(
            lambda: any("connection-status" in frame for frame in frames[beats:]), timeout=SLOW
        )
        for frame in frames:
            saw("a frame", frame)
    finally:
        for page in pages:
            await page.close()

    # The room with a reply, an edit and reactions; its history windows and the editor.
    room = saw("room", room_html(alice, slug))
    assert '<body class="room-page themed">' in room
    saw("around", get(alice, f"/chat/{slug}/?around=1"))
    saw("after (htmx)", get(alice, f"/chat/{slug}/?after=0", htmx=True))
    saw("before (htmx)", get(alice, f"/chat/{slug}/?before=99", htmx=True))
    saw("edit page", get(alice, f"/messages/{first}/edit/"))
    saw("edit form (htmx)", get(alice, f"/messages/{first}/edit/", htmx=True))
    saw("catch-up from 0", await catch_up_frames(web, alice, slug))
    saw("refused socket", await refused_frame(web, alice))

    missing = sorted(set(names) - seen.keys())
    assert missing == [], f"the theme's version of these templates never showed: {missing}"


def room_html(session, slug):
    return get(session, f"/chat/{slug}/")


async def catch_up_frames(web, session, slug):
    """Every stored event of the room, as a socket that saw none of them is sent them."""
    async with websockets.connect(
        f"{web.ws_url}/ws/chat/{slug}/",
        origin=web.url,
        additional_headers=session.socket_headers(),
    ) as socket:
        await socket.send(json.dumps({"last_seq": "0"}))
        received = []
        async with asyncio.timeout(SLOW):
            while not any('hx-swap-oob="delete"' in frame for frame in received):
                received.append(await socket.recv())
        return "".join(received)


async def refused_frame(web, session):
    """What a page is sent before its socket closes, for a room that does not exist."""
    async with websockets.connect(
        f"{web.ws_url}/ws/chat/no-such-room/",
        origin=web.url,
        additional_headers=session.socket_headers(),
    ) as socket:
        received = []
        try:
            async with asyncio.timeout(SLOW):
                async for frame in socket:
                    received.append(frame)
        except websockets.exceptions.ConnectionClosed:
            pass
        assert socket.close_code == 4404, socket.close_code
        return "".join(received)
