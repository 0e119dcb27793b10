"""Convergence: every open page ends showing what a freshly loaded page shows.

Three people keep four tabs open on two `web:` processes started as the Procfile starts
them (alice has one on each). They post, reply, edit, delete and react (on and off) in
random interleavings (hypothesis) and in a scripted sequence, each acting on the
messages their own tab shows at that moment, as a person clicks what they see; frames
are sent without waiting for their answers, so changes race through both processes.
Meanwhile tabs reconnect (to the same or the other process) and one process is killed
with kill -9 and started again; tabs on it reconnect by themselves, sending what was
queued while it was down after their catch-up frame, as the htmx ws extension does.

Afterwards every tab, a tab loaded at the start whose socket opened only at the end, and
a socket that never loaded the page (catch-up from 0) show in #messages, normalised
(tests/support/htmx.py), exactly what `GET /chat/<slug>/` shows the same person. Each
tab is a `tests.system.clients.Page`, which applies frames as the ws extension does.
"""

import asyncio
import re
import signal
import uuid
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, Phase, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from chat.actions.reactions import REACTION_EMOJI
from tests.support import htmx
from tests.support.accounts import HttpSession
from tests.support.servers import WebProcess
from tests.system.clients import Page, room_document, room_html

pytestmark = [pytest.mark.system, pytest.mark.timeout(300)]

SLOW = 60  # seconds: generous, the machine is shared
PEOPLE = ("alice", "bob", "carol")
TABS = ((0, 0), (1, 1), (2, 0), (0, 1))  # (person, process): alice has a tab on each
PAGE_SIZE = 50  # CHAT_PAGE_SIZE: a fresh page shows this many; a story stays below it
READER_STYLE = re.compile(r'\.message\[data-author="(\d+)"\]')


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def webs(system_env):
    """Two `web:` processes for the whole module (stories restart one themselves)."""
    processes = [WebProcess(dict(system_env), name=f"converge.{n}") for n in (1, 2)]
    try:
        for process in processes:
            process.start()
        yield processes
    finally:
        for process in processes:
            process.kill()


@dataclass(frozen=True)
class Person:
    name: str
    pk: int
    jar: object

    def session(self, web):
        session = HttpSession(web.url)
        for cookie in self.jar:
            session.jar.set_cookie(cookie)
        return session


@pytest.fixture(scope="module")
def people(webs):
    """alice, bob and carol, signed up once for the module."""

    def sign_up(name):
        session = HttpSession(webs[0].url).sign_up(unique(name))
        slug = session.open_room(unique("whoami"))
        pk = int(READER_STYLE.search(room_html(session, slug))[1])
        return Person(name=name, pk=pk, jar=list(session.jar))

    return [sign_up(name) for name in PEOPLE]


# --- what people do: one operation each ---


@dataclass(frozen=True)
class Post:
    tab: int
    text: str


@dataclass(frozen=True)
class Reply:
    tab: int
    target: int | str  # an index into what the tab shows, or the text of a message
    text: str


@dataclass(frozen=True)
class Edit:
    tab: int
    target: int | str
    text: str
    own: bool = True  # pick among the person's own messages (else any: mostly refused)


@dataclass(frozen=True)
class Delete:
    tab: int
    target: int | str
    own: bool = True


@dataclass(frozen=True)
class React:
    tab: int
    target: int | str
    emoji: str
    on: bool = True


@dataclass(frozen=True)
class Reconnect:
    tab: int
    other: bool  # to the other process (if it is up)


@dataclass(frozen=True)
class Sync:
    """The tab posts a marker and waits until every tab that can shows it."""

    tab: int


@dataclass(frozen=True)
class Story:
    before: tuple
    killed: int  # which process is killed with kill -9, after `before`
    during: tuple  # while it is down
    after: tuple  # once it is started again


class Room:
    """One story's room: the tabs, the processes, and what each operation does."""

    def __init__(self, webs, people):
        self.webs = webs
        self.people = people
        self.slug = None
        self.tabs = []
        self.late = None
        self.numbers = iter(range(1, 10_000))

    async def open(self):
        opener = self.people[0].session(self.webs[0])
        self.slug = await asyncio.to_thread(opener.open_room, unique("converge"))
        for number, (person, web) in enumerate(TABS):
            page = Page(
                self.webs[web],
                self.people[person].session(self.webs[web]),
                self.slug,
                name=f"tab {number} ({PEOPLE[person]} on {self.webs[web].name})",
                auto_reconnect=True,
            )
            await page.load()
            self.tabs.append(page)
        for page in self.tabs:
            await page.connect()
        # Loaded now; its socket opens only at the end: one long catch-up of every kind.
        self.late = Page(
            self.webs[1], self.people[1].session(self.webs[1]), self.slug, name="late tab"
        )
        await self.late.load()

    async def close(self):
        await asyncio.gather(*(page.close() for page in [*self.tabs, self.late] if page))

    def text(self, text):
        return text.replace("{n}", str(next(self.numbers)))

    def up(self, web):
        return web.process is not None and web.process.poll() is None

    # --- operations ---

    async def perform(self, operation):
        page = self.tabs[operation.tab]
        person = self.people[TABS[operation.tab][0]]
        if isinstance(operation, Reconnect):
            return await self.reconnect(page, other=operation.other)
        if isinstance(operation, Sync):
            return await self.sync(page)
        target = None
        if not isinstance(operation, Post):
            own = getattr(operation, "own", False)
            target = self.target(page, person, operation.target, own=own)
        if isinstance(operation, Post) or target is None:  # nothing to click yet: talk
            await self.say(page, self.text(getattr(operation, "text", "{n} nothing to click")))
        elif isinstance(operation, Reply):
            await self.say(page, self.text(operation.text), reply_to=target)
        elif isinstance(operation, Edit):
            await page.edit(target, self.text(operation.text))
        elif isinstance(operation, Delete):
            await page.delete_message(target)
        elif isinstance(operation, React):
            await page.react(target, operation.emoji, operation.on)

    async def say(self, page, text, *, reply_to=None):
        """Post, and (if the tab is live) wait for the composer to come back empty, as a
        person waits before typing the next message. Other tabs do not wait for it."""
        answers = len(page.composers)
        await page.post(text, reply_to=reply_to)
        if page.connected and self.up(page.web):
            await page.until(lambda: len(page.composers) > answers, timeout=SLOW)

    def target(self, page, person, target, *, own):
        """The pk of the message the person clicks on, among those their tab shows."""
        shown = page.document.messages
        if isinstance(target, str):
            found = [element for element in shown if htmx.normal_message(element).text == target]
            assert len(found) == 1, f"{page.name} shows {target!r} {len(found)} times: {page.texts}"
            (element,) = found
            return int(element.id.removeprefix("message-"))
        if own:
            shown = [element for element in shown if element.get("data-author") == str(person.pk)]
        if not shown:
            return None
        return int(shown[target % len(shown)].id.removeprefix("message-"))

    async def reconnect(self, page, *, other):
        await page.close()
        here = page.web
        there = self.webs[1] if here is self.webs[0] else self.webs[0]
        web = there if other else here
        if not self.up(web):
            web = there if web is here else here
        await page.connect(web)

    async def sync(self, page):
        """A marker from `page`, awaited on every tab whose process is up."""
        if not self.up(page.web):
            return
        await page.until(lambda: page.connected, timeout=SLOW)  # back after a restart
        marker = self.text("{n} sync")
        await page.post(marker)
        for tab in self.tabs:
            if self.up(tab.web):
                await tab.until_shows(marker, timeout=SLOW)

    async def kill(self, web):
        await asyncio.to_thread(web.kill, signal.SIGKILL)
        for page in self.tabs:
            if page.web is web:
                await page.until(lambda page=page: not page.connected, timeout=SLOW)

    async def restart(self, web):
        await asyncio.to_thread(web.start)  # same port: its tabs find it again

    # --- the end ---

    async def converge(self):
        """Every frame sent has been handled; then every page equals a fresh page."""
        for page in self.tabs:
            await page.until(lambda page=page: page.connected, timeout=SLOW)
        await self.late.connect()
        never_loaded = Page(
            self.webs[0],
            self.people[2].session(self.webs[0]),
            self.slug,
            name="socket only (catch-up from 0)",
        )
        await never_loaded.connect()
        pages = [*self.tabs, self.late, never_loaded]
        try:
            # Frames of one socket are handled in order: once each tab's last word is
            # shown everywhere, everything any tab sent before it has been handled.
            last_words = [self.text("{n} last word") for _ in self.tabs]
            for page, text in zip(self.tabs, last_words, strict=True):
                await page.post(text)
            for page in pages:
                await page.until(lambda page=page: set(last_words) <= set(page.texts), timeout=SLOW)
            for page in pages:
                await self.assert_fresh(page, loaded=page is not never_loaded)
        finally:
            await never_loaded.close()

    async def assert_fresh(self, page, *, loaded):
        # The same person's page, freshly loaded from each process.
        fresh = [
            await asyncio.to_thread(room_document, self._session_on(page, web), self.slug)
            for web in self.webs
        ]
        assert len(fresh[0].messages) < PAGE_SIZE, "the story outgrew one page"
        expected = htmx.normalised(fresh[0])
        assert htmx.normalised(fresh[1]) == expected, "the two processes serve different pages"
        await page.until(lambda: (page.last_seq or 0) >= fresh[0].last_seq, timeout=SLOW)
        assert page.last_seq == fresh[0].last_seq, page.name
        shown = page.normalised
        assert [m.id for m in shown] == [m.id for m in expected], page.name
        assert shown == expected, page.name
        if loaded:
            assert len({m.id for m in shown}) == len(shown), f"{page.name} repeats a message"

    def _session_on(self, page, web):
        session = HttpSession(web.url)
        for cookie in page.session.jar:
            session.jar.set_cookie(cookie)
        return session


async def tell(webs, people, story):
    room = Room(webs, people)
    await room.open()
    try:
        for operation in story.before:
            await room.perform(operation)
        killed = webs[story.killed]
        await room.kill(killed)
        for operation in story.during:
            await room.perform(operation)
        await room.restart(killed)
        for operation in story.after:
            await room.perform(operation)
        await room.converge()
    finally:
        await room.close()
        for web in webs:
            if not room.up(web):
                await asyncio.to_thread(web.start)
    return room


# --- random stories ---

tabs = st.integers(0, len(TABS) - 1)
picks = st.integers(0, 50)
texts = st.sampled_from(
    [
        "{n} hi",
        "{n} **bold** and _italic_",
        "{n} `code`",
        "{n}\n> a quote",
        "{n}\n- one\n- two",
        "{n} see https://example.com",
        "{n} <b>not bold</b>",
        "{n} ünïcødé ✓",
    ]
)
operations = st.one_of(
    st.builds(Post, tab=tabs, text=texts),
    st.builds(Post, tab=tabs, text=texts),
    st.builds(Reply, tab=tabs, target=picks, text=texts),
    st.builds(Edit, tab=tabs, target=picks, text=texts, own=st.booleans()),
    st.builds(Delete, tab=tabs, target=picks, own=st.booleans()),
    st.builds(Reply, tab=tabs, target=picks, text=texts),
    st.builds(React, tab=tabs, target=picks, emoji=st.sampled_from(REACTION_EMOJI)),
    st.builds(
        React, tab=tabs, target=picks, emoji=st.sampled_from(REACTION_EMOJI), on=st.just(False)
    ),
    st.builds(Reconnect, tab=tabs, other=st.booleans()),
    st.builds(Sync, tab=tabs),
)
stories = st.builds(
    Story,
    before=st.lists(operations, min_size=6, max_size=14).map(tuple),
    killed=st.integers(0, 1),
    during=st.lists(operations, max_size=6).map(tuple),
    after=st.lists(operations, min_size=2, max_size=10).map(tuple),
)


@hypothesis_settings(
    max_examples=8,
    deadline=None,
    derandomize=True,  # the same stories every run
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: each story costs seconds
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=False,
)
@given(story=stories)
def test_random_interleavings_on_two_processes_converge_to_a_fresh_page(webs, people, story):
    room = asyncio.run(tell(webs, people, story))
    # What the stories came to (pytest --hypothesis-show-statistics).
    shown = room.tabs[0].normalised
    event(f"{sum(bool(m.edited) for m in shown) > 0} edited")
    event(f"{sum(m.quote is not None for m in shown) > 0} replies")
    event(f"{sum(bool(m.quote and m.quote.deleted) for m in shown) > 0} quoting a deleted one")
    event(f"{sum(bool(m.reactions) for m in shown) > 0} reactions")
    event(f"{room.tabs[0].last_seq - len(shown) > 0} events besides posts")


# --- a scripted story: the same, every step chosen ---


def test_a_scripted_story_converges_to_a_fresh_page(webs, people):
    alice, bob, carol, alice_too = range(4)
    story = Story(
        before=(
            Post(alice, "hello everyone"),
            Post(bob, "hi alice"),
            Post(carol, "**bold** news:\n- one\n- two"),
            Sync(alice),
            Reply(bob, "hello everyone", "a reply to alice"),
            Reply(carol, "hello everyone", "another reply"),
            React(carol, "hello everyone", "👍"),
            React(bob, "hello everyone", "👍"),
            Sync(bob),
            # The same reaction from alice's two tabs at once: one ends set.
            React(alice, "hi alice", "🎉"),
            React(alice_too, "hi alice", "🎉"),
            Edit(alice, "hello everyone", "hello everyone (edited)"),
            Sync(alice),  # handled after her edit: every tab shows the edit
            Reconnect(carol, other=True),
            Sync(carol),
        ),
        killed=1,  # bob's and alice's second tab's process
        during=(
            Post(alice, "while web.2 is down"),
            Edit(bob, "hi alice", "queued edit from a dead process"),  # sent on reconnect
            React(alice, "a reply to alice", "❤️"),
            React(carol, "hello everyone (edited)", "👍", on=False),
            React(carol, "hello everyone (edited)", "😮"),
            Sync(alice),
        ),
        after=(
            Sync(bob),  # bob's tab is back, its queued edit handled before its marker
            Delete(alice, "hello everyone (edited)"),  # the quoted message goes
            React(alice_too, "queued edit from a dead process", "🎉", on=False),
            Edit(bob, "a reply to alice", "a reply to alice, edited"),
            Reconnect(bob, other=True),
            Post(bob, "back on the other process"),
        ),
    )
    room = asyncio.run(tell(webs, people, story))
    shown = {message.text: message for message in room.tabs[0].normalised}
    assert "hello everyone (edited)" not in shown
    for reply in ("a reply to alice, edited", "another reply"):
        assert shown[reply].quote.deleted
        assert shown[reply].quote.text == "Original message deleted"
    assert shown["queued edit from a dead process"].edited
    assert shown["queued edit from a dead process"].reactions == ()
    (hearts,) = shown["a reply to alice, edited"].reactions
    assert (hearts.emoji, hearts.count, hearts.reactors) == ("❤️", 1, (f"u{people[0].pk}",))


# --- the same form twice changes things once ---


class Twice:
    """alice's message, with a tab of hers on each process and bob watching."""

    def __init__(self, webs, people):
        self.webs, self.people = webs, people

    async def open(self):
        alice, bob = self.people[0], self.people[1]
        web1, web2 = self.webs
        self.slug = await asyncio.to_thread(alice.session(web1).open_room, unique("twice"))
        self.here = Page(web1, alice.session(web1), self.slug, name="alice on web.1")
        self.there = Page(web2, alice.session(web2), self.slug, name="alice on web.2")
        self.watcher = Page(web2, bob.session(web2), self.slug, name="bob on web.2")
        self.pages = [self.here, self.there, self.watcher]
        for page in self.pages:
            await page.load()
            await page.connect()
        await self.here.post("say it once")
        for page in self.pages:
            await page.until_shows("say it once")
        self.pk = self.here.find("say it once").pk
        return self

    async def close(self):
        await asyncio.gather(*(page.close() for page in self.pages))

    async def events_made_by(self, frame_of):
        """Send the frame twice on each tab (one per process), all at once; then a word
        from each tab, shown everywhere: by then every copy has been handled. The number
        of events the copies made."""
        here, there = self.here, self.there
        before = self.watcher.last_seq
        copies = [(here, frame_of(here)), (there, frame_of(there))] * 2
        await asyncio.gather(*(page.send(frame) for page, frame in copies))
        words = [unique("settled") for _ in (here, there)]
        for page, word in zip((here, there), words, strict=True):
            await page.post(word)
        for page in self.pages:
            await page.until(lambda page=page: set(words) <= set(page.texts), timeout=SLOW)
        return self.watcher.last_seq - before - len(words)

    async def assert_fresh(self):
        for page in self.pages:
            fresh = await asyncio.to_thread(room_document, page.session, self.slug)
            assert page.normalised == htmx.normalised(fresh), page.name
            assert page.last_seq == fresh.last_seq, page.name


@pytest.fixture
async def twice(webs, people):
    twice = await Twice(webs, people).open()
    yield twice
    await twice.close()


async def test_the_same_edit_twice_changes_the_message_once(twice):
    assert await twice.events_made_by(lambda page: page.edit_frame(twice.pk, "said once")) == 1
    await twice.assert_fresh()
    (message,) = [m for m in twice.watcher.normalised if m.id == f"message-{twice.pk}"]
    assert message.text == "said once" and message.edited


async def test_the_same_reaction_twice_sets_or_unsets_it_once(twice):
    assert await twice.events_made_by(lambda page: page.react_frame(twice.pk, "👍")) == 1
    (message,) = [m for m in twice.watcher.normalised if m.id == f"message-{twice.pk}"]
    assert [(r.emoji, r.count) for r in message.reactions] == [("👍", 1)]
    assert await twice.events_made_by(lambda page: page.react_frame(twice.pk, "👍", False)) == 1
    (message,) = [m for m in twice.watcher.normalised if m.id == f"message-{twice.pk}"]
    assert message.reactions == ()
    await twice.assert_fresh()


async def test_the_same_delete_twice_deletes_once_and_says_so_to_the_late_copies(twice):
    notices = len(twice.here.notices) + len(twice.there.notices)
    assert await twice.events_made_by(lambda page: page.delete_frame(twice.pk)) == 1
    # The copies that came too late say so to their tab; nothing else changed.
    late = [*twice.here.notices, *twice.there.notices][notices:]
    assert late == ["That message was deleted."] * 3, late
    for page in twice.pages:
        assert page.document.by_id(f"message-{twice.pk}") is None, page.name
    await twice.assert_fresh()
