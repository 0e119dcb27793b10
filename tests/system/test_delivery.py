"""Delivery guarantees (issue 3) against `web:` processes started as the Procfile starts them.

Every page here is a `tests.system.clients.Page`: it loads the room over HTTP, opens the
socket with the page's Origin and session cookie, reports `#last-seq` on every open and
applies frames as the htmx page does. A page's record of what it shows is compared with
the room's history as a fresh page reads it (`/chat/<slug>/` and its `?before=` pages).
"""

import asyncio
import signal
import uuid

import pytest
import redis
import websockets
from websockets.exceptions import ConnectionClosed

from tests.support.accounts import HttpSession
from tests.system.clients import (
    RETRIED_CODES,
    Page,
    history,
    open_page,
    post_without_javascript,
    room_html,
    texts,
)

pytestmark = [pytest.mark.system, pytest.mark.timeout(180)]

SLOW = 60  # seconds: generous, the machine is shared


@pytest.fixture
def start(start_web, private_redis):
    """start_web(**env) on this test's own Redis, which the test may stop and start."""

    def start(**env):
        return start_web(**{"REDIS_URL": private_redis.url, **env})

    return start


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def signed_up(system_env):
    """Cookie jars of the users signed up in this session's database (signing up is slow)."""
    return []


@pytest.fixture
def people(signed_up):
    """await people(web, web, ...) -> one logged-in HttpSession per process given, each a
    different user; users are signed up once per test session and reused across tests."""

    async def people(*webs):
        missing = len(webs) - len(signed_up)
        if missing > 0:
            fresh = await asyncio.gather(
                *(
                    asyncio.to_thread(HttpSession(webs[0].url).sign_up, unique("user"))
                    for _ in range(missing)
                )
            )
            signed_up.extend(session.jar for session in fresh)
        sessions = []
        for web, jar in zip(webs, signed_up, strict=False):
            session = HttpSession(web.url)
            for cookie in jar:
                session.jar.set_cookie(cookie)
            sessions.append(session)
        return sessions

    return people


async def open_room(session):
    return await asyncio.to_thread(session.open_room, unique("room"))


async def fresh_history(session, slug):
    return await asyncio.to_thread(history, session, slug)


async def closed_all(*pages):
    await asyncio.gather(*(page.close() for page in pages))


def assert_once_in_order(page, upto):
    """The page shows messages 1..upto, each once, in order, each with its own element."""
    assert page.seqs == list(range(1, upto + 1)), f"{page.name} shows {page.seqs}"
    assert len({message.id for message in page.messages}) == upto, page.name
    assert page.last_seq == upto, page.name


async def settle(poster, pages, text="sentinel"):
    """Post one more message and wait until every page shows it: what was in flight is in."""
    text = unique(text)
    await poster.post(text)
    for page in pages:
        await page.until_shows(text, timeout=SLOW)
    return text


# --- 1. one order ---


async def test_concurrent_posters_on_two_processes_see_one_order_equal_to_history(start, people):
    first, second = start(), start()
    processes = [first, second, first, second]
    sessions = await people(*processes, first, second)
    senders, watchers = sessions[:4], sessions[4:]
    slug = await open_room(watchers[0])
    poster_pages = [
        await open_page(web, session, slug, name=f"poster {number} on {web.name}")
        for number, (web, session) in enumerate(zip(processes, senders, strict=True))
    ]
    observers = [
        await open_page(first, watchers[0], slug, name="observer on web.1"),
        await open_page(second, watchers[1], slug, name="observer on web.2"),
    ]
    pages = poster_pages + observers
    per_sender = 25
    total = per_sender * len(poster_pages)

    async def burst(number, page):
        for index in range(per_sender):
            await page.send(page.post_frame(f"poster {number} message {index}"))

    try:
        # Everyone at once: 100 frames in flight through two processes.
        await asyncio.gather(*(burst(n, page) for n, page in enumerate(poster_pages)))
        for page in pages:
            await page.until_seq(total, timeout=SLOW)
        await settle(observers[0], pages)
        total += 1

        for page in pages:
            assert_once_in_order(page, total)
        # Both observers (and every poster) show the same messages in the same order.
        for page in pages:
            assert page.messages == observers[0].messages, page.name
        # That order is the history a fresh page shows, and a fresh socket's catch-up from 0.
        assert await fresh_history(watchers[1], slug) == observers[0].messages
        fresh = Page(second, watchers[0], slug, name="fresh catch-up from 0")
        await fresh.connect()
        await fresh.until_seq(total, timeout=SLOW)
        assert fresh.messages == observers[0].messages
        await fresh.close()
        # Every message once; each poster's messages in the order it sent them.
        for number in range(len(poster_pages)):
            mine = [t for t in observers[0].texts if t.startswith(f"poster {number} ")]
            assert mine == [f"poster {number} message {i}" for i in range(per_sender)]
    finally:
        await closed_all(*pages)


# --- 2. catch-up ---


async def test_messages_posted_between_render_and_connect_appear_once(start, people):
    first, second = start(), start()
    alice, bob = await people(first, second)
    slug = await open_room(alice)
    poster = await open_page(first, alice, slug, name="poster")
    reader = Page(second, bob, slug, name="reader")
    try:
        for number in range(3):
            await poster.post(f"before render {number}")
        await poster.until_seq(3)

        await reader.load()  # the page is rendered with messages 1..3 ...
        assert reader.seqs == [1, 2, 3] and reader.last_seq == 3
        for number in range(5):  # ... these are posted before its socket opens ...
            await poster.post(f"between {number}")
        await poster.until_seq(8)
        await reader.connect()  # ... and arrive once, in order, after the page's own.
        await reader.until_seq(8)
        await settle(poster, [poster, reader])
        assert_once_in_order(reader, 9)
        assert reader.texts == poster.texts
        assert reader.messages == await fresh_history(bob, slug)
    finally:
        await closed_all(poster, reader)


async def test_reconnect_with_last_seq_gets_exactly_the_missed_messages(start, people):
    first, second = start(), start()
    alice, bob = await people(first, second)
    slug = await open_room(alice)
    poster = await open_page(first, alice, slug, name="poster")
    reader = await open_page(second, bob, slug, name="reader")
    try:
        for number in range(3):
            await poster.post(f"seen live {number}")
        await reader.until_seq(3)
        opens = reader.opens

        for rounds, web in enumerate([second, first]):  # back to its process, then the other
            await reader.close()
            missed = [f"missed {rounds}.{number}" for number in range(4)]
            for text in missed:
                await poster.post(text)
            await poster.until_shows(missed[-1])
            position = reader.last_seq
            await reader.connect(web)
            await reader.until_shows(missed[-1])
            # Exactly the missed ones, in order, right after what it showed.
            assert reader.texts[-len(missed) :] == missed
            assert reader.seqs[-len(missed) :] == list(
                range(position + 1, position + len(missed) + 1)
            )

        await settle(poster, [poster, reader])
        assert reader.opens == opens + 2
        assert_once_in_order(reader, poster.last_seq)
        assert reader.messages == poster.messages == await fresh_history(bob, slug)
    finally:
        await closed_all(poster, reader)


# --- 3. idempotent send ---


async def test_the_same_composer_form_twice_stores_one_message(start, people):
    first, second = start(), start()
    alice, bob = await people(first, second)
    slug = await open_room(alice)
    alice_here = await open_page(first, alice, slug, name="alice on web.1")
    alice_there = await open_page(second, alice, slug, name="alice on web.2")
    watcher = await open_page(second, bob, slug, name="bob on web.2")
    pages = [alice_here, alice_there, watcher]
    try:
        # The same frame twice on one socket (a double click, the extension's resend queue).
        frame = alice_here.post_frame("sent twice", uuid.uuid4())
        await alice_here.send(frame)
        await alice_here.send(frame)
        await alice_here.until(lambda: len(alice_here.composers) >= 2)
        assert [c["error"] for c in alice_here.composers[-2:]] == [None, None]

        # The same frame at the same time through both processes.
        frame = alice_here.post_frame("sent through both processes", uuid.uuid4())
        await asyncio.gather(alice_here.send(frame), alice_there.send(frame))

        # A frame without a key is still accepted.
        await alice_there.post("sent without a key", client_key=None)
        await alice_there.until_shows("sent without a key")

        # The form posted without JavaScript, then re-POSTed with the same key.
        key = uuid.uuid4()
        for _ in range(2):
            status = await asyncio.to_thread(
                post_without_javascript, alice, slug, "posted without javascript", key
            )
            assert status == 200  # redirected back to the room

        await settle(watcher, pages)
        expected = [
            "sent twice",
            "sent through both processes",
            "sent without a key",
            "posted without javascript",
        ]
        stored = await fresh_history(bob, slug)
        assert texts(stored)[:-1] == expected
        for page in pages:
            assert page.messages == stored, page.name
            assert_once_in_order(page, len(stored))
    finally:
        await closed_all(*pages)


# --- 4. close codes ---


async def raw_close_code(url, *, origin, headers=None):
    """Open a socket and read until the server closes it; the close code received."""
    async with websockets.connect(url, origin=origin, additional_headers=headers or {}) as socket:
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(SLOW):
                while True:
                    await socket.recv()
    assert closed.value.rcvd is not None, "closed without a close frame (a browser sees 1006)"
    return closed.value.rcvd.code


async def test_refusals_close_with_4xxx_codes_the_extension_does_not_retry(start, people):
    web = start()
    (alice,) = await people(web)
    slug = await open_room(alice)
    room = f"{web.ws_url}/ws/chat/{slug}/"

    anonymous = HttpSession(web.url)
    assert await raw_close_code(room, origin=web.url, headers=anonymous.socket_headers()) == 4401
    assert (
        await raw_close_code(
            f"{web.ws_url}/ws/chat/{unique('no-such-room')}/",
            origin=web.url,
            headers=alice.socket_headers(),
        )
        == 4404
    )
    assert (
        await raw_close_code(room, origin="http://evil.example", headers=alice.socket_headers())
        == 4403
    )

    # A page that would reconnect on 1006/1011/1012/1013 stops after a refusal and says why.
    page = Page(web, anonymous, slug, name="signed-out page", auto_reconnect=True)
    await page.connect()
    await page.until(lambda: page._runner.done())
    assert page.closes == [4401] and page.opens == 1
    assert "Log in" in (page.status or "")
    await page.close()


async def test_server_shutdown_closes_sockets_with_a_code_the_extension_retries(
    start, people, record_property
):
    terminated, killed = start(), start()
    alice, bob = await people(terminated, killed)
    slug = await open_room(alice)
    on_terminated = await open_page(terminated, alice, slug, name="page on SIGTERMed process")
    on_killed = await open_page(killed, bob, slug, name="page on killed process")
    try:
        await asyncio.to_thread(terminated.kill, signal.SIGTERM)
        sigterm_code = await on_terminated.wait_closed(timeout=SLOW)
        await asyncio.to_thread(killed.kill, signal.SIGKILL)
        sigkill_code = await on_killed.wait_closed(timeout=SLOW)
        # SIGTERM drains with 1012 "Service Restart" (chat/realtime/shutdown.py); a
        # killed process sends nothing: 1006.
        record_property("close_code_on_sigterm", sigterm_code)
        record_property("close_code_on_sigkill", sigkill_code)
        assert sigterm_code == 1012, f"SIGTERM closed with {sigterm_code}"
        assert sigkill_code in RETRIED_CODES, f"kill -9 closed with {sigkill_code}"
    finally:
        await closed_all(on_terminated, on_killed)


# --- 5. a process killed with kill -9 ---


async def test_pages_of_a_killed_process_reconnect_when_it_is_back_and_catch_up(start, people):
    doomed, survivor = start(), start()
    alice, bob, carol = await people(doomed, doomed, survivor)
    slug = await open_room(carol)
    alice_page = await open_page(doomed, alice, slug, name="alice on doomed", auto_reconnect=True)
    bob_page = await open_page(doomed, bob, slug, name="bob on doomed", auto_reconnect=True)
    carol_page = await open_page(survivor, carol, slug, name="carol on survivor")
    pages = [alice_page, bob_page, carol_page]
    try:
        for number in range(3):
            await alice_page.post(f"before the kill {number}")
        for page in pages:
            await page.until_seq(3)

        await asyncio.to_thread(doomed.kill, signal.SIGKILL)
        for page in (alice_page, bob_page):
            await page.until(lambda page=page: page.closes and not page.connected)
            assert page.closes[0] in RETRIED_CODES
        missed = [f"while it was down {number}" for number in range(5)]
        for text in missed:
            await carol_page.post(text)
        await carol_page.until_shows(missed[-1])
        await alice_page.post("queued while down")  # the extension queues it until the open

        await asyncio.to_thread(doomed.start)  # same port: the pages find it again
        for page in pages:
            await page.until_shows("queued while down", timeout=SLOW)
        await settle(alice_page, pages, "live after the restart")

        stored = await fresh_history(carol, slug)
        assert texts(stored)[3:9] == [*missed, "queued while down"]
        for page in pages:
            assert page.messages == stored, page.name
            assert_once_in_order(page, len(stored))
        assert alice_page.opens >= 2 and bob_page.opens >= 2
    finally:
        await closed_all(*pages)


# --- 6. broker outage ---


async def outage_setup(start, people, **env):
    first, second = start(**env), start(**env)
    alice, bob, carol, dave = await people(first, second, first, second)
    slug = await open_room(alice)
    posters = [
        await open_page(first, alice, slug, name="alice on web.1"),
        await open_page(second, bob, slug, name="bob on web.2"),
    ]
    watchers = [
        await open_page(first, carol, slug, name="carol on web.1"),
        await open_page(second, dave, slug, name="dave on web.2"),
    ]
    return (first, second), (alice, bob), slug, posters, watchers


async def post_during_outage(posters, processes, slug, sessions):
    """Posting stores the message and its sender sees it (no error); pages still load."""
    posted = []
    for number, page in enumerate(posters):
        text = f"during the outage {number}"
        composers = len(page.composers)
        await page.post(text)
        await page.until(
            lambda page=page, composers=composers: len(page.composers) > composers, timeout=SLOW
        )
        assert page.composer["error"] is None, page.composer
        await page.until_shows(text, timeout=SLOW)  # the sender sees its message
        posted.append(text)
    for web, session in zip(processes, sessions, strict=True):
        html = await asyncio.to_thread(room_html, session, slug)  # asserts HTTP 200
        assert all(text in html for text in posted)
        assert web.process.poll() is None, f"{web.name} exited: {web.log_text()[-2000:]}"
    return posted


async def test_broker_outage_loses_nothing_and_delivery_resumes(start, people, private_redis):
    processes, sessions, slug, posters, watchers = await outage_setup(start, people)
    pages = posters + watchers
    try:
        await posters[0].post("before the outage")
        for page in pages:
            await page.until_shows("before the outage")

        await asyncio.to_thread(private_redis.stop)
        posted = await post_during_outage(posters, processes, slug, sessions)
        # Every page, on both processes, gets them (from the database) once, in order.
        for page in pages:
            await page.until(lambda page=page: set(posted) <= set(page.texts), timeout=SLOW)

        await asyncio.to_thread(private_redis.start)
        for page in posters:
            await settle(page, pages, f"after the outage from {page.name}")

        stored = await fresh_history(sessions[1], slug)
        assert texts(stored)[:3] == ["before the outage", *posted]
        for page in pages:
            assert page.messages == stored, page.name
            assert_once_in_order(page, len(stored))
        for web in processes:
            assert web.process.poll() is None, web.log_text()[-2000:]
    finally:
        await closed_all(*pages)


async def test_live_delivery_resumes_by_itself_after_the_broker_is_back(
    start, people, private_redis
):
    # No reconcile loop to help: only the channel layer (and gap filling) can deliver.
    processes, sessions, slug, posters, watchers = await outage_setup(
        start, people, CHAT_RECONCILE_SECONDS=3600
    )
    pages = posters + watchers
    try:
        await posters[0].post("before the outage")
        for page in pages:
            await page.until_shows("before the outage")

        await asyncio.to_thread(private_redis.stop)
        posted = await post_during_outage(posters, processes, slug, sessions)
        await asyncio.to_thread(private_redis.start)

        # Messages posted after the restart reach the other process live once the processes
        # have re-joined their groups by themselves; nothing here restarts or nudges them.
        probes = []

        def everywhere(page, text):
            return lambda: text in page.texts

        for attempt in range(30):
            probe = f"probe {attempt}"
            await posters[attempt % 2].post(probe)
            probes.append(probe)
            try:
                for page in pages:
                    await page.until(everywhere(page, probe), timeout=2)
                break
            except AssertionError:
                continue
        else:
            raise AssertionError("live delivery did not resume after the broker came back")

        await settle(posters[1], pages, "live again")
        stored = await fresh_history(sessions[0], slug)
        assert texts(stored)[:3] == ["before the outage", *posted]
        for page in pages:
            await page.until_seq(len(stored))
            assert page.messages == stored, page.name
            assert_once_in_order(page, len(stored))
    finally:
        await closed_all(*pages)


# --- 7. long-lived sockets ---


async def test_sockets_open_longer_than_the_group_expiry_keep_receiving(
    start, people, private_redis
):
    expiry = 3
    env = {"CHAT_GROUP_EXPIRY": expiry, "CHAT_RECONCILE_SECONDS": 3600}  # only the layer delivers
    first, second = start(**env), start(**env)
    alice, bob = await people(first, second)
    slug = await open_room(alice)
    alice_page = await open_page(first, alice, slug, name="alice on web.1")
    bob_page = await open_page(second, bob, slug, name="bob on web.2")
    pages = [alice_page, bob_page]
    try:
        await alice_page.post("at the start")
        await bob_page.until_shows("at the start")
        # The processes really use the short expiry: Redis drops the group after it.
        broker = redis.Redis.from_url(private_redis.url)
        (group,) = [key for key in broker.keys("*group:room-*")]
        assert 0 < broker.ttl(group) <= expiry

        await asyncio.sleep(expiry * 3 + 1)  # the point of the test: time passes

        await alice_page.post("long after the expiry, from web.1")
        await bob_page.until_shows("long after the expiry, from web.1")
        await bob_page.post("long after the expiry, from web.2")
        await alice_page.until_shows("long after the expiry, from web.2")
        for page in pages:
            await page.until_seq(3)
            assert_once_in_order(page, 3)
        broker.close()
    finally:
        await closed_all(*pages)
