"""Private rooms, revocation and unread counts (issue 11), against two `web:` processes
started as the Procfile starts them, on real Redis and the database DATABASE_URL names.

People are HTTP sessions (tests/support/accounts.py); their open pages are `Tab`s: a
`tests.system.clients.Page` loaded from the room page or the lobby, whose socket applies
every frame as the htmx page does and keeps each frame as received. What a page shows
(its #my-rooms links' accessible names, its title, #connection-status) is read from that
tree; what it never received is read from the frames.
"""

import asyncio
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass

import pytest

from tests.support import htmx
from tests.support.accounts import CSRF_FIELD, HttpSession
from tests.support.servers import ROOT, WebProcess
from tests.system.clients import Page, parse, post_without_javascript

pytestmark = [pytest.mark.system, pytest.mark.timeout(240)]

SLOW = 60  # seconds: generous, the machine is shared
REVOKED = 4410
NO_SUCH_ROOM = 4404
# The issue asks for "within a second"; on a shared 2-core machine running other suites,
# only a bound far above that is asserted (each close is awaited as a condition).
REVOKE_BOUND = 10
READER_STYLE = re.compile(r'\.message\[data-author="(\d+)"\]')


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def webs(system_env):
    """Two `web:` processes for the whole module."""
    processes = [WebProcess(dict(system_env), name=f"private.{n}") for n in (1, 2)]
    try:
        for process in processes:
            process.start()
        yield processes
    finally:
        for process in processes:
            process.kill()


# --- people ---


@dataclass
class Person:
    name: str  # username, also their display name here
    session: HttpSession  # on the first process
    pk: int | None = None

    def on(self, web):
        """Their session (cookies) talking to `web`."""
        other = HttpSession(web.url)
        for cookie in self.session.jar:
            other.jar.set_cookie(cookie)
        return other


async def sign_up(web, *prefixes):
    names = [unique(prefix) for prefix in prefixes]
    sessions = await asyncio.gather(
        *(asyncio.to_thread(HttpSession(web.url).sign_up, name) for name in names)
    )
    return [Person(name, session) for name, session in zip(names, sessions, strict=True)]


def request(session, path, data=None):
    """GET (or POST `data`) without raising on 4xx: (status, body)."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    headers = {"Referer": session.base_url + "/"}
    req = urllib.request.Request(session.base_url + path, data=body, headers=headers)
    try:
        with session.opener.open(req, timeout=15) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def csrf_token(session, path="/"):
    _, html = session.get(path)
    return CSRF_FIELD.search(html)[1]


def create_private_room(session, name):
    """The lobby's form with `private` ticked; returns the new room's slug."""
    status, url, body = session.post_form("/", {"name": name, "private": "on"})
    assert status == 200 and "/chat/" in url, body[-2000:]
    return url.rstrip("/").rsplit("/", 1)[-1]


def open_direct(session, username):
    """`/dm/<username>/`: the direct conversation's slug."""
    with session.opener.open(f"{session.base_url}/dm/{username}/", timeout=15) as response:
        assert "/chat/" in response.url, response.url
        return response.url.rstrip("/").rsplit("/", 1)[-1]


def add_member(owner, slug, username):
    """The members page's form, field `username`."""
    status, url, body = owner.post_form(f"/chat/{slug}/members/", {"username": username})
    assert status == 200 and url.endswith(f"/chat/{slug}/members/"), body[-2000:]


def remove_button(owner, slug, name):
    """(name, value) of the members page's button "Remove <name>"."""
    _, html = owner.get(f"/chat/{slug}/members/")
    for button in htmx.Document(html).select_all("button"):
        if " ".join(button.text().split()) == f"Remove {name}":
            return button.get("name"), button.get("value")
    members = html[html.find('<ul class="member-list"') :][:1500]
    raise AssertionError(f"no button 'Remove {name}' on the members page:\n{members}")


def remove_member(owner, slug, name):
    """Press "Remove <name>" on the members page, as the owner."""
    field, value = remove_button(owner, slug, name)
    status, url, body = owner.post_form(f"/chat/{slug}/members/", {field: value})
    assert status == 200 and url.endswith(f"/chat/{slug}/members/"), body[-2000:]
    return int(value)


def shown_texts(session, slug):
    return [shown.text for shown in parse(session.get(f"/chat/{slug}/")[1]).messages]


def django_shell(env, code):
    """Run `code` in `manage.py shell` with the processes' environment (a shell on the
    deployed app: its saves fire the same signals as the admin's)."""
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- open pages ---


class Tab(Page):
    """One open page of a person: a room page (`slug`) or the lobby (`slug=None`)."""

    def __init__(self, web, person, slug=None, *, label=None):
        super().__init__(web, person.on(web), slug or "", name=label or person.name)
        self.path = f"/chat/{slug}/" if slug else "/"
        self.raw = []  # every frame, as received

    async def load(self):
        status, html = await asyncio.to_thread(self.session.get, self.path)
        assert status == 200
        document = htmx.Document(html)
        live = document.select("[ws-connect]")
        assert live is not None, f"{self.path} has no ws-connect"
        self.ws_connect = live.get("ws-connect")
        self.document = document
        return self

    async def _apply(self, frame):
        self.raw.append(frame.decode() if isinstance(frame, bytes) else frame)
        await super()._apply(frame)

    def label(self, slug):
        """The accessible name of this page's #my-rooms link to the room (None: no link)."""
        rooms = self.document.by_id("my-rooms")
        assert rooms is not None, f"{self.name} has no #my-rooms"
        link = rooms.select(f'a[href="/chat/{slug}/"]')
        return link.get("aria-label") if link is not None else None

    @property
    def title(self):
        return " ".join(self.document.by_id("page-title").text().split())

    def received(self, text):
        return [frame for frame in self.raw if text in frame]


async def tab(web, person, slug=None, *, label=None):
    page = Tab(web, person, slug, label=label)
    await page.load()
    return await page.connect()


async def close_all(*pages):
    await asyncio.gather(*(page.close() for page in pages))


async def closes_with(pages, code, *, since):
    """Every page's socket closes with `code`; returns the seconds since `since`."""
    got = await asyncio.gather(*(page.wait_closed(timeout=SLOW) for page in pages))
    elapsed = time.monotonic() - since
    print(f"closed {[page.name for page in pages]} with {got} in {elapsed:.2f} s")
    assert got == [code] * len(pages), [(page.name, page.closes) for page in pages]
    return elapsed


async def until(predicate, *, timeout=SLOW, what="condition"):
    """Poll something no frame signals (a freshly drawn page)."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(predicate):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met in {timeout} s")
        await asyncio.sleep(0.2)


def seq_of_line(document, words):
    """data-seq of the newest room line (li.room-line) whose text contains `words`."""
    for line in reversed(document.select_all("li.room-line")):
        if words in " ".join(line.text().split()):
            return int(line.get("data-seq"))
    raise AssertionError(f"no room line saying {words!r}")


def seqs_received_in(frame):
    """Every data-seq in a frame (0 if none)."""
    return [0] + [int(seq) for seq in re.findall(r'data-seq="(\d+)"', frame)]


def seqs_received(page):
    """Every data-seq in every frame the page received (0 if none)."""
    return [seq for frame in page.raw for seq in seqs_received_in(frame)]


def same_page(html):
    """A page with what differs per request (CSRF tokens, nonces) blanked."""
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "csrf", html)
    return re.sub(r'nonce="[^"]*"', "nonce", html)


# --- a. a non-member finds no trace ---


async def test_a_non_member_can_neither_see_open_connect_to_nor_write_in_a_private_room(webs):
    first, second = webs
    alice, bob, eve = await sign_up(first, "alice", "bob", "eve")
    name = unique("Secret Plans")
    slug = await asyncio.to_thread(create_private_room, alice.session, name)
    direct = await asyncio.to_thread(open_direct, alice.session, bob.name)
    for room in (slug, direct):
        status = await asyncio.to_thread(
            post_without_javascript,
            alice.session,
            room,
            f"only members read this {room}",
            uuid.uuid4(),
        )
        assert status == 200
    pk = parse(alice.session.get(f"/chat/{slug}/")[1]).messages[-1].pk
    ghost = unique("no-such-room")
    eve_lobby = await tab(second, eve, label="eve's lobby")
    try:
        # Posted while eve's lobby is open: her person stream says nothing of it.
        await asyncio.to_thread(
            post_without_javascript, alice.session, slug, "posted while eve looks", uuid.uuid4()
        )
        eve_there = eve.on(second)
        _, lobby = await asyncio.to_thread(eve_there.get, "/")
        for trace in (name, slug, direct, name.split("-")[-1]):
            assert trace not in lobby

        # Every page, fragment, history page and permalink: the same 404 as no room at all.
        for room in (slug, direct):
            for suffix in (
                "",
                "?before=100",
                "?after=0",
                "?around=1",
                "members/",
                "composer/",
                "composer/?text=hi",
                "mentions/?message=%40al",
            ):
                got = await asyncio.to_thread(request, eve_there, f"/chat/{room}/{suffix}")
                nothing = await asyncio.to_thread(request, eve_there, f"/chat/{ghost}/{suffix}")
                assert got[0] == nothing[0] == 404, (room, suffix, got[0], nothing[0])
                assert same_page(got[1]) == same_page(nothing[1]), (room, suffix)
                assert name not in got[1] and room not in got[1]
        for suffix in ("", "edit/", "reply/"):
            got = await asyncio.to_thread(request, eve_there, f"/messages/{pk}/{suffix}")
            nothing = await asyncio.to_thread(request, eve_there, f"/messages/99999999/{suffix}")
            assert got[0] == nothing[0] == 404, (suffix, got[0], nothing[0])
            assert same_page(got[1]) == same_page(nothing[1]), suffix

        # Forms: send (the no-JavaScript composer), join, notify, leave, add herself.
        token = await asyncio.to_thread(csrf_token, eve_there)
        forms = [
            ("send/", {"message": "eve was here", "client_key": str(uuid.uuid4())}),
            ("join/", {}),
            ("notify/", {"notify": "all"}),
            ("leave/", {}),
            ("members/", {"username": eve.name}),
        ]
        for room in (slug, direct):
            for action, fields in forms:
                data = {**fields, "csrfmiddlewaretoken": token}
                got = await asyncio.to_thread(request, eve_there, f"/chat/{room}/{action}", data)
                nothing = await asyncio.to_thread(
                    request, eve_there, f"/chat/{ghost}/{action}", data
                )
                assert got[0] == nothing[0] == 404, (room, action, got[0], nothing[0])
                assert same_page(got[1]) == same_page(nothing[1]), (room, action)
            _, html = await asyncio.to_thread(alice.session.get, f"/chat/{room}/")
            assert "eve was here" not in html
            assert eve.name not in html  # no "eve joined", no "eve added"

        # Sockets: refused exactly as a room that does not exist, on both processes.
        for web in (first, second):
            refused = []
            for room in (slug, direct, ghost):
                page = Tab(web, eve, room, label=f"eve's socket to {room}")
                await page.connect()
                refused.append((await page.wait_closed(), page.status))
                assert not page.received("only members read this"), page.raw
            assert refused[0] == refused[1] == refused[2], refused
            assert refused[0][0] == NO_SUCH_ROOM, refused

        await asyncio.sleep(1)  # a redraw caused by the post would be in by now (0.2 s)
        assert not [frame for frame in eve_lobby.raw if name in frame or slug in frame]
    finally:
        await eve_lobby.close()


# --- b. revocation ---


async def test_removal_closes_the_members_sockets_on_both_processes_and_nothing_later_reaches_them(
    webs,
):
    first, second = webs
    alice, bob, carol = await sign_up(first, "alice", "bob", "carol")
    slug = await asyncio.to_thread(create_private_room, alice.session, unique("Board"))
    for person in (bob, carol):
        await asyncio.to_thread(add_member, alice.session, slug, person.name)
    alice_page = await tab(first, alice, slug, label="alice")
    carol_page = await tab(second, carol, slug, label="carol")
    bob_pages = [
        await tab(first, bob, slug, label="bob on 1"),
        await tab(second, bob, slug, label="bob on 2"),
    ]
    bob_lobby = await tab(second, bob, label="bob's lobby")
    pages = [alice_page, carol_page, *bob_pages, bob_lobby]
    try:
        await alice_page.post("before the removal")
        for page in (*bob_pages, carol_page):
            await page.until_shows("before the removal")
        assert bob_lobby.label(slug) is not None

        # Alice keeps posting while the owner's form is in flight (she is the owner: two
        # of her tabs), then once more right after: whatever is numbered after the
        # removal must reach neither of bob's pages, on either process.
        removed_at = time.monotonic()
        removal = asyncio.ensure_future(
            asyncio.to_thread(remove_member, alice.session, slug, bob.name)
        )
        burst = 0
        while not removal.done():
            await alice_page.post(f"burst {burst}")
            burst += 1
            await asyncio.sleep(0.02)
        await removal
        await alice_page.post("after the removal")  # right away
        elapsed = await closes_with(bob_pages, REVOKED, since=removed_at)
        assert elapsed < REVOKE_BOUND, f"closed after {elapsed:.1f} s"
        for page in bob_pages:
            assert "no longer a member" in page.status, page.status

        # The message posted after the removal reaches the others, and not bob.
        await carol_page.until_shows("after the removal", timeout=SLOW)
        await alice_page.until_shows("after the removal", timeout=SLOW)
        removal_seq = seq_of_line(alice_page.document, f"removed {bob.name}")
        later = [m.text for m in alice_page.messages if m.seq > removal_seq]
        assert "after the removal" in later
        for page in bob_pages:
            assert not page.received("after the removal"), page.name
            assert max(seqs_received(page)) <= removal_seq, (page.name, removal_seq)
            assert not [m for m in page.messages if m.seq > removal_seq], page.name
        # His lobby (still open: it is not the room's) drops the room.
        await bob_lobby.until(lambda: bob_lobby.label(slug) is None, timeout=SLOW)
        assert bob_lobby.connected
        assert not bob_lobby.received("after the removal")

        # He cannot come back: the page, a new socket and his old form are all refused.
        for web in (first, second):
            status, _ = await asyncio.to_thread(request, bob.on(web), f"/chat/{slug}/")
            assert status == 404
            again = Tab(web, bob, slug, label="bob again")
            await again.connect()
            assert await again.wait_closed() == NO_SUCH_ROOM
            assert not again.received("after the removal")
        token = bob_pages[0].csrf
        status, _ = await asyncio.to_thread(
            request,
            bob.on(first),
            f"/chat/{slug}/send/",
            {
                "csrfmiddlewaretoken": token,
                "message": "bob replays",
                "client_key": str(uuid.uuid4()),
            },
        )
        assert status == 404
        texts = await asyncio.to_thread(shown_texts, alice.session, slug)
        assert "bob replays" not in texts and "after the removal" in texts
    finally:
        await close_all(*pages)


RACE_ROUNDS = 4  # rounds of the race below (it showed in most single rounds, SQLite and PostgreSQL)


async def flood(page, prefix, *, until_closed):
    """Post "<prefix> <n>" from `page` as fast as it goes while any of `until_closed` is open."""
    n = 0
    while any(each.connected for each in until_closed):
        await page.post(f"{prefix} {n}")
        n += 1
        await asyncio.sleep(0.005)


async def test_while_a_member_is_removed_his_posts_are_refused_and_nothing_later_reaches_him(webs):
    """Bob's two pages (one per process) post as fast as they can while the owner removes
    him and alice keeps posting. Each of bob's posts is stored before the removal or
    refused (none is numbered after it), and no frame numbered after the removal reaches
    either of his pages, whoever posted it."""
    first, second = webs
    alice, bob = await sign_up(first, "alice", "bob")
    slug = await asyncio.to_thread(create_private_room, alice.session, unique("Race"))
    alice_page = await tab(first, alice, slug, label="alice")
    bob_pages = []
    try:
        for round_ in range(RACE_ROUNDS):
            await asyncio.to_thread(add_member, alice.session, slug, bob.name)
            bob_pages = [
                await tab(first, bob, slug, label=f"bob on 1, round {round_}"),
                await tab(second, bob, slug, label=f"bob on 2, round {round_}"),
            ]

            # Alice posts too, until both of bob's pages are closed: nothing of hers
            # numbered after the removal may reach him either.
            floods = [flood(page, f"flood {page.name}", until_closed=[page]) for page in bob_pages]
            floods.append(flood(alice_page, f"alice {round_}", until_closed=bob_pages))
            floods = [asyncio.ensure_future(each) for each in floods]
            await asyncio.sleep(0.3)
            await asyncio.to_thread(remove_member, alice.session, slug, bob.name)
            await closes_with(bob_pages, REVOKED, since=time.monotonic())
            await asyncio.gather(*floods)
            await alice_page.post(f"round {round_} over")
            await alice_page.until_shows(f"round {round_} over", timeout=SLOW)
            removal_seq = seq_of_line(alice_page.document, f"removed {bob.name}")
            late = [
                (
                    page.name,
                    seqs_received_in(frame)[1:],
                    re.findall(r"(?:flood|alice) [^<]*", frame),
                )
                for page in bob_pages
                for frame in page.raw
                if max(seqs_received_in(frame)) > removal_seq
            ]
            assert not late, f"received after the removal (seq {removal_seq}): {late}"
            late = [
                (m.seq, m.text)
                for m in alice_page.messages
                if m.seq > removal_seq and m.text.startswith("flood")
            ]
            assert not late, f"stored after the removal (seq {removal_seq}): {late}"
            await close_all(*bob_pages)
    finally:
        await close_all(alice_page, *bob_pages)


async def test_deactivating_an_account_closes_every_socket_of_theirs(webs, system_env):
    first, second = webs
    alice, dave = await sign_up(first, "alice", "dave")
    slug = await asyncio.to_thread(create_private_room, alice.session, unique("Ops"))
    await asyncio.to_thread(add_member, alice.session, slug, dave.name)
    alice_page = await tab(first, alice, slug, label="alice")
    dave_pages = [
        await tab(first, dave, slug, label="dave's room on 1"),
        await tab(second, dave, slug, label="dave's room on 2"),
        await tab(second, dave, label="dave's lobby on 2"),
    ]
    try:
        code = (
            "from django.contrib.auth import get_user_model\n"
            f"user = get_user_model().objects.get(username={dave.name!r})\n"
            "user.is_active = False\n"
            "user.save()\n"
        )
        await asyncio.to_thread(django_shell, system_env, code)
        saved_at = time.monotonic()
        await alice_page.post("after the deactivation")
        elapsed = await closes_with(dave_pages, REVOKED, since=saved_at)
        assert elapsed < REVOKE_BOUND, f"closed after {elapsed:.1f} s"
        for page in dave_pages:
            assert "deactivated" in page.status, page.status
        await alice_page.until_shows("after the deactivation", timeout=SLOW)
        for page in dave_pages:
            assert not page.received("after the deactivation"), page.name
        # And a new socket is not let in.
        again = Tab(second, dave, slug, label="dave again")
        await again.connect()
        assert await again.wait_closed() in (4401, NO_SUCH_ROOM)
    finally:
        await close_all(alice_page, *dave_pages)


async def test_changing_the_password_closes_every_socket_of_theirs(webs):
    first, second = webs
    (erin,) = await sign_up(first, "erin")
    slug = await asyncio.to_thread(erin.session.open_room, unique("Town square"))
    erin_pages = [
        await tab(first, erin, slug, label="erin's room on 1"),
        await tab(second, erin, label="erin's lobby on 2"),
        await tab(second, erin, slug, label="erin's room on 2"),
    ]
    try:
        new = "another-long-password-2"
        changed_at = time.monotonic()
        status, _, body = await asyncio.to_thread(
            erin.session.post_form,
            "/accounts/settings/",
            {
                "old_password": "a-long-test-password-1",
                "new_password1": new,
                "new_password2": new,
                "change_password": "1",
            },
        )
        assert status == 200 and "Your password is changed" in body, body[-2000:]
        elapsed = await closes_with(erin_pages, REVOKED, since=changed_at)
        assert elapsed < REVOKE_BOUND, f"closed after {elapsed:.1f} s"
        for page in erin_pages:
            assert "password was changed" in page.status, page.status
    finally:
        await close_all(*erin_pages)


# --- c. unread and mentions across two tabs ---


def counts_of(label):
    """The counts an accessible name carries: "general, 2 unread, 1 mention" -> (2, 1);
    None when there is no link at all."""
    if label is None:
        return None
    unread = re.search(r"(\d+) unread", label)
    mentions = re.search(r"(\d+) mentions?\b", label)
    return (int(unread[1]) if unread else 0, int(mentions[1]) if mentions else 0)


async def shows(pages, slug, counts, title):
    """Every page's #my-rooms link to `slug` carries `counts`; its title reads `title(page)`."""
    for page in pages:
        await page.until(
            lambda page=page: counts_of(page.label(slug)) == counts and page.title == title(page),
            timeout=SLOW,
        )


async def test_unread_and_mentions_move_in_every_tab_of_one_person_on_both_processes(webs):
    first, second = webs
    alice, reader = await sign_up(first, "alice", "reader")
    news = await asyncio.to_thread(alice.session.open_room, unique("News"))
    lounge_name = unique("Lounge")
    lounge = await asyncio.to_thread(reader.session.open_room, lounge_name)
    await asyncio.to_thread(reader.session.open_room, news)  # reader joins News
    lounge_tab = await tab(first, reader, lounge, label="reader in Lounge on 1")
    lobby_tab = await tab(second, reader, label="reader's lobby on 2")
    tabs = [lounge_tab, lobby_tab]
    page_names = {lounge_tab: f"{lounge_name} · Chat", lobby_tab: "Rooms · Chat"}
    alice_page = await tab(second, alice, news, label="alice in News")
    try:
        assert lounge_tab.title == page_names[lounge_tab]
        for page in tabs:
            assert counts_of(page.label(news)) == (0, 0), page.label(news)

        await alice_page.post("the paper is out")
        await shows(tabs, news, (1, 0), lambda page: f"(1) {page_names[page]}")
        for page in tabs:
            assert "1 unread" in page.label(news)
            # The title, out of band: "(1) <the page's own title>".
            assert page.received(f'hx-swap-oob="innerHTML:#page-title">(1) {page_names[page]}<')
        assert lounge_tab.document.by_id("my-rooms").select('a[aria-current="page"]').get(
            "href"
        ) == (f"/chat/{lounge}/")

        await alice_page.post(f"@{reader.name} page two is yours")
        await shows(tabs, news, (2, 1), lambda page: f"(2) {page_names[page]}")
        for page in tabs:
            assert "2 unread, 1 mention" in page.label(news), page.label(news)

        # Opening News (a plain GET of its page, as a tab does) clears it in both tabs.
        _, html = await asyncio.to_thread(reader.on(first).get, f"/chat/{news}/")
        opened = htmx.Document(html)
        listed = [c for c in opened.by_id("messages").children if isinstance(c, htmx.Element)]
        line = next(n for n, c in enumerate(listed) if c.id == "unread-line")
        first_unread = listed[line + 1]
        assert first_unread.select(".message-text").text().strip() == "the paper is out"
        [mention] = [m for m in opened.messages if "page two" in m.select(".message-text").text()]
        reader_pk = int(READER_STYLE.search(html)[1])
        assert f"u{reader_pk}" in mention.get("data-mentions", "").split()
        assert mention.select(f'a[data-mention="u{reader_pk}"]') is not None
        # No count in its title: News is read now, and nothing else is unread.
        assert not opened.by_id("page-title").text().strip().startswith("(")
        await shows(tabs, news, (0, 0), lambda page: page_names[page])
        for page in tabs:
            assert "unread" not in page.label(news) and "mention" not in page.label(news)

        # Open in a tab whose socket stays: what arrives there is read, and the other tabs
        # end showing it read (a page open on a room keeps it read).
        news_tab = await tab(first, reader, news, label="reader in News on 1")
        tabs.append(news_tab)
        await alice_page.post("late edition")
        await news_tab.until_shows("late edition", timeout=SLOW)
        await shows([lobby_tab, lounge_tab], news, (0, 0), lambda page: page_names[page])
        lobby_there = reader.on(second)

        def fresh_lobby_has_it_read():
            document = htmx.Document(lobby_there.get("/")[1])
            link = document.by_id("my-rooms").select(f'a[href="/chat/{news}/"]')
            return counts_of(link.get("aria-label")) == (0, 0)

        await until(fresh_lobby_has_it_read, what="News read in a freshly drawn lobby")
        await shows([lobby_tab, lounge_tab], news, (0, 0), lambda page: page_names[page])
    finally:
        await close_all(*tabs, alice_page)
