"""Who is here and who is typing (issue 10), against `web:` processes started as the
Procfile starts them, each test on a Redis of its own that it may kill and restart.

Pages are `tests.system.clients.Page`: they load the room over HTTP (so the list the
server renders is the one a browser shows first), open the socket and apply every frame
as the htmx page does. What they show is read from their `#people` and `#typing`.
"""

import asyncio
import json
import uuid
from dataclasses import dataclass

import pytest

from tests.support import htmx
from tests.support.accounts import HttpSession
from tests.system.clients import Page

pytestmark = [pytest.mark.system, pytest.mark.timeout(240)]

SLOW = 60  # seconds: generous, the machine is shared; the bound for a killed process
TYPING = {"typing": "1"}


@pytest.fixture
def start(start_web, private_redis):
    """start_web(**env) on this test's own Redis, which the test may stop and start."""

    def start(**env):
        return start_web(**{"REDIS_URL": private_redis.url, **env})

    return start


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@dataclass
class Person:
    name: str  # their username, which is also their display name here
    session: HttpSession

    def on(self, web):
        """Their session (cookies) talking to `web`."""
        other = HttpSession(web.url)
        for cookie in self.session.jar:
            other.jar.set_cookie(cookie)
        return other


async def sign_up(web, *prefixes):
    """One Person per prefix (names made unique), signed up on `web`."""
    names = [unique(prefix) for prefix in prefixes]
    sessions = await asyncio.gather(
        *(asyncio.to_thread(HttpSession(web.url).sign_up, name) for name in names)
    )
    return [Person(name, session) for name, session in zip(names, sessions, strict=True)]


class RecordingPage(Page):
    """A Page that also keeps every frame it received, as sent."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.raw = []

    async def _apply(self, frame):
        self.raw.append(frame)
        await super()._apply(frame)


async def visit(web, person, slug, **options):
    """Load the room page on `web` as `person` and open its socket, as a tab does."""
    page = RecordingPage(web, person.on(web), slug, name=f"{person.name} on {web.name}", **options)
    await page.load()
    return await page.connect()


def names(*people):
    return sorted((person.name for person in people), key=str.casefold)


def listed(page):
    """The names in the page's #people, in order."""
    element = page.document.by_id("people")
    assert element is not None, f"{page.name} has no #people"
    return [
        " ".join(item.text().split())
        for item in element.select_all("li")
        if "empty" not in item.classes
    ]


def typing(page):
    element = page.document.by_id("typing")
    return " ".join(element.text().split()) if element is not None else None


async def lists(pages, people, *, timeout=30):
    """Every page lists exactly these people (in the list's order: by name)."""
    expected = names(*people)
    for page in pages:
        await page.until(lambda page=page: listed(page) == expected, timeout=timeout)


async def types(page):
    """What the hidden #typing-signal form sends when the composer gets input."""
    frame = {**TYPING, "HEADERS": {"HX-Request": "true", "HX-Trigger": "typing-signal"}}
    await page.send(json.dumps(frame))


def fresh_list(session, slug):
    """#people of a freshly loaded room page: the list before any socket opens."""
    _, html = session.get(f"/chat/{slug}/")
    element = htmx.Document(html).by_id("people")
    return [
        " ".join(item.text().split())
        for item in element.select_all("li")
        if "empty" not in item.classes
    ]


def lobby_count(session, slug):
    """How many people the lobby says have the room open (0 when it says nothing)."""
    _, html = session.get("/")
    document = htmx.Document(html)
    # Rooms the person is in ("Your rooms"), then the other public rooms.
    items = document.by_id("my-rooms").select_all("li") + document.select(".room-list").select_all(
        "li"
    )
    for item in items:
        if item.select(f'a[href="/chat/{slug}/"]') is not None:
            count = item.select(".room-people")
            return int(count.text().split()[0]) if count is not None else 0
    raise AssertionError(f"the lobby does not list {slug}")


async def until(predicate, *, timeout=30, what="condition"):
    """Poll something no page frame signals (a fresh page, the lobby)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not met in {timeout} s")
        await asyncio.sleep(0.1)


async def closed_all(*pages):
    await asyncio.gather(*(page.close() for page in pages))


# --- who is here ---


async def test_people_on_both_processes_show_everywhere_and_tabs_of_one_person_count_once(start):
    first, second = start(), start()
    alice, bob = await sign_up(first, "alice", "bob")
    slug = await asyncio.to_thread(alice.session.open_room, unique("room"))

    # The page lists its reader before its socket opens.
    assert await asyncio.to_thread(fresh_list, bob.session, slug) == [bob.name]
    alice_here = await visit(first, alice, slug)
    alice_there = await visit(second, alice, slug)
    bob_page = RecordingPage(second, bob.on(second), slug, name="bob")
    await bob_page.load()
    assert listed(bob_page) == names(alice, bob)  # before bob's socket opens
    await bob_page.connect()
    pages = [alice_here, alice_there, bob_page]
    try:
        await lists(pages, [alice, bob])  # alice once, with two tabs on two processes
        assert await asyncio.to_thread(lobby_count, bob.session, slug) == 2

        await alice_here.close()  # one of her tabs: she stays
        await quiet(bob_page)
        assert listed(bob_page) == listed(alice_there) == names(alice, bob)
        await alice_there.close()  # her last tab: she goes, everywhere
        await lists([bob_page], [bob])
        assert await asyncio.to_thread(lobby_count, bob.session, slug) == 1
    finally:
        await closed_all(*pages)
    await until(lambda: lobby_count(bob.session, slug) == 0, what="an empty room in the lobby")


async def quiet(page, seconds=1.0):
    """Wait until the page has had no frame for `seconds` (a change would be in by then)."""
    while True:
        frames = page.frames
        await asyncio.sleep(seconds)
        if page.frames == frames:
            return


async def test_a_person_hiding_their_presence_is_not_listed_anywhere(start):
    first, second = start(), start()
    alice, bob = await sign_up(first, "alice", "bob")
    status, _, _ = await asyncio.to_thread(
        bob.session.post_form,
        "/accounts/settings/",
        {"display_name": bob.name, "time_zone": "UTC"},  # "Show me under People here" unticked
    )
    assert status == 200
    slug = await asyncio.to_thread(alice.session.open_room, unique("room"))
    bob_page = await visit(second, bob, slug)
    alice_page = await visit(first, alice, slug)
    try:
        await lists([alice_page, bob_page], [alice])
        assert await asyncio.to_thread(fresh_list, alice.session, slug) == [alice.name]
        assert await asyncio.to_thread(lobby_count, alice.session, slug) == 1
    finally:
        await closed_all(alice_page, bob_page)


async def test_a_killed_process_takes_its_people_off_the_list_and_the_others_stay(start):
    # Short records, so the test is quick; the default (30 s) keeps the 60 s bound.
    first, second = start(CHAT_PRESENCE_TTL_SECONDS=3), start(CHAT_PRESENCE_TTL_SECONDS=3)
    alice, bob, carol = await sign_up(first, "alice", "bob", "carol")
    slug = await asyncio.to_thread(alice.session.open_room, unique("room"))
    doomed = await visit(first, alice, slug)
    bob_page = await visit(second, bob, slug)
    carol_page = await visit(second, carol, slug)
    try:
        await lists([doomed, bob_page, carol_page], [alice, bob, carol])
        first.kill()  # -9: nobody says alice left
        await lists([bob_page, carol_page], [bob, carol], timeout=SLOW)
        fresh = await asyncio.to_thread(fresh_list, bob.on(second), slug)
        assert fresh == names(bob, carol)
    finally:
        await closed_all(doomed, bob_page, carol_page)


async def test_after_redis_restarts_empty_presence_is_whole_again(start, private_redis):
    first, second = start(CHAT_PRESENCE_TTL_SECONDS=3), start(CHAT_PRESENCE_TTL_SECONDS=3)
    alice, bob, carol = await sign_up(first, "alice", "bob", "carol")
    slug = await asyncio.to_thread(alice.session.open_room, unique("room"))
    alice_page = await visit(first, alice, slug, auto_reconnect=True)
    bob_page = await visit(second, bob, slug, auto_reconnect=True)
    pages = [alice_page, bob_page]
    try:
        await lists(pages, [alice, bob])
        private_redis.stop()
        private_redis.start()  # same port, nothing in it
        await until(
            lambda: (
                fresh_list(bob.on(second), slug) == names(alice, bob)
                and lobby_count(bob.on(second), slug) == 2
            ),
            timeout=SLOW,
            what="a fresh page and the lobby listing both again",
        )
        await lists(pages, [alice, bob], timeout=SLOW)
        # Live changes flow again: a third person arrives and shows on both pages.
        pages.append(await visit(first, carol, slug))
        await lists(pages, [alice, bob, carol], timeout=SLOW)
    finally:
        await closed_all(*pages)


async def test_the_in_memory_default_with_one_process(start_web):
    web = start_web(REDIS_URL="")  # no Redis at all: in-process channel layer and records
    alice, bob = await sign_up(web, "alice", "bob")
    slug = await asyncio.to_thread(alice.session.open_room, unique("room"))
    pages = [await visit(web, alice, slug), await visit(web, alice, slug)]
    bob_page = await visit(web, bob, slug)
    try:
        await lists([*pages, bob_page], [alice, bob])
        assert await asyncio.to_thread(lobby_count, bob.session, slug) == 2
        await pages[0].close()
        await quiet(bob_page)
        assert listed(bob_page) == names(alice, bob)
        await pages[1].close()
        await lists([bob_page], [bob])

        # Typing works the same in one process; alice comes back and sees it at once.
        await types(bob_page)
        pages.append(await visit(web, alice, slug))
        await pages[-1].until(lambda: typing(pages[-1]) == f"{bob.name} is typing…")
    finally:
        await closed_all(*pages, bob_page)


# --- who is typing ---


async def test_typing_shows_on_other_pages_on_both_processes_never_to_the_typist(start):
    first, second = start(), start()
    alice, bob, carol = await sign_up(first, "alice", "bob", "carol")
    slug = await asyncio.to_thread(alice.session.open_room, unique("room"))
    alice_page, alice_there = await visit(first, alice, slug), await visit(second, alice, slug)
    bob_page, carol_page = await visit(second, bob, slug), await visit(first, carol, slug)
    pages = [alice_page, alice_there, bob_page, carol_page]
    a, b = alice.name, bob.name
    try:
        await types(alice_page)
        for page in (bob_page, carol_page):
            await page.until(lambda page=page: typing(page) == f"{a} is typing…")
        await types(bob_page)
        await carol_page.until(lambda: typing(carol_page) == f"{a} and {b} are typing…")
        for page in (alice_page, alice_there):  # she sees bob, never herself
            await page.until(lambda page=page: typing(page) == f"{b} is typing…")
        await bob_page.until(lambda: typing(bob_page) == f"{a} is typing…")

        # Alice sends: her name goes from every page; bob is still typing.
        await alice_page.post("done typing")
        await carol_page.until(lambda: "done typing" in carol_page.texts)
        await carol_page.until(lambda: typing(carol_page) == f"{b} is typing…")
        await bob_page.until(lambda: typing(bob_page) == "")
        # Bob stops without sending: the servers expire him by themselves.
        for page in pages:
            await page.until(lambda page=page: typing(page) == "")
        for page in (alice_page, alice_there):
            assert not any(a in typing_text(frame) for frame in page.raw), page.raw
        assert not any(b in typing_text(frame) for frame in bob_page.raw)
    finally:
        await closed_all(*pages)


def typing_text(frame):
    """The text of a frame's #typing, or "" if it has none."""
    element = htmx.Document(frame).by_id("typing")
    return element.text() if element is not None else ""
