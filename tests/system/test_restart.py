"""Graceful restart (issue 13): SIGTERM to a `web:` process started as the Procfile starts
it closes its sockets with 1012, refuses new connections, lets work in flight finish and
exits within 10 s (chat/realtime/shutdown.py); pages reconnect elsewhere and lose nothing.

Pages are `tests.system.clients.Page`s. A `Router` stands in for the platform's router: it
sends each new connection to a process that is up and not being restarted.
"""

import asyncio
import base64
import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import time
from collections import Counter

import psycopg
import pytest

from chat.models import Room
from tests.support.accounts import HttpSession
from tests.system.clients import Page, history, open_page
from tests.system.test_delivery import settle, unique

pytestmark = [pytest.mark.system, pytest.mark.timeout(240)]

SLOW = 60  # seconds: generous, the machine is shared
EXIT_BOUND = 10  # seconds from SIGTERM to exit: the promise
SERVICE_RESTART = 1012


class Router:
    """Round robin over the processes that are in; a restarted one is taken out first."""

    def __init__(self, webs):
        self.webs = list(webs)
        self.out = set()
        self.turn = 0

    def take_out(self, web):
        self.out.add(web.name)

    def put_back(self, web):
        self.out.discard(web.name)

    def live(self):
        return [web for web in self.webs if web.name not in self.out]

    @property
    def ws_url(self):
        """Where a page's next socket goes."""
        live = self.live()
        self.turn += 1
        return live[self.turn % len(live)].ws_url

    @property
    def url(self):
        """The site's address, for the Origin header and HX-Current-URL."""
        return self.live()[0].url


@pytest.fixture(scope="module")
def accounts(system_env):
    """Cookie jars of the users signed up for this module, reused by its tests (slow)."""
    return []


@pytest.fixture
def people(accounts):
    """await people(web, web, ...) -> one logged-in session per process given, each of
    a different user (as in test_delivery, but within this module)."""

    async def people(*webs):
        while len(accounts) < len(webs):
            fresh = await asyncio.to_thread(HttpSession(webs[0].url).sign_up, unique("user"))
            accounts.append(fresh.jar)
        sessions = []
        for web, jar in zip(webs, accounts, strict=False):
            session = HttpSession(web.url)
            for cookie in jar:
                session.jar.set_cookie(cookie)
            sessions.append(session)
        return sessions

    return people


@contextlib.contextmanager
def room_locked(database_url, slug):
    """Hold the lock every change to the room takes first (chat/events.py, take_next_seq),
    so a post in the room waits until the block ends; nothing is written."""
    if database_url.startswith("sqlite:///"):
        connection = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")  # the database's one write lock
            yield
            connection.execute("ROLLBACK")
        finally:
            connection.close()
        return
    with psycopg.connect(database_url) as connection:
        connection.execute(
            f'SELECT id FROM "{Room._meta.db_table}" WHERE slug = %s FOR UPDATE',  # noqa: S608
            [slug],
        )
        yield
        connection.rollback()


def silent_socket(web, session, slug):
    """A socket opened by hand that then never reads: it will not answer the close, as a
    page on a phone that went offline cannot."""
    connection = socket.create_connection(("127.0.0.1", web.port), timeout=15)
    key = base64.b64encode(os.urandom(16)).decode()
    headers = {
        "Host": f"127.0.0.1:{web.port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Version": "13",
        "Origin": web.url,
        **session.socket_headers(),
    }
    request = f"GET /ws/chat/{slug}/ HTTP/1.1\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers.items()
    )
    connection.sendall(f"{request}\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += connection.recv(4096)
    assert answer.startswith(b"HTTP/1.1 101"), answer[:200]
    return connection


def assert_shows_once_in_order(page, stored):
    """The page shows what a fresh page shows: each message once, in the room's order."""
    assert page.messages == stored, page.name
    assert page.seqs == sorted(set(page.seqs)), page.name
    assert len({message.id for message in page.messages}) == len(stored), page.name


def refuses_connections(web):
    try:
        socket.create_connection(("127.0.0.1", web.port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


async def exit_status(web, signalled_at):
    """The exit status of a signalled process; fails if it is not gone EXIT_BOUND s after."""
    left = max(signalled_at + EXIT_BOUND - time.monotonic(), 0)
    try:
        status = await asyncio.to_thread(web.process.wait, left)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"{web.name} still running {EXIT_BOUND} s after SIGTERM: {web.log_text()[-2000:]}"
        ) from None
    web.kill()  # forget the exited process, close its log: it may be started again
    return status


async def test_sigterm_closes_sockets_with_1012_refuses_new_connections_and_exits(
    start_web, system_env, people
):
    restarted, other = start_web(), start_web()
    alice, bob, carol = await people(restarted, restarted, other)
    slug = await asyncio.to_thread(alice.open_room, unique("restart"))
    alice_page = await open_page(restarted, alice, slug, name="alice on the restarted process")
    bob_page = await open_page(restarted, bob, slug, name="bob on the restarted process")
    carol_page = await open_page(other, carol, slug, name="carol on the other process")
    pages = [alice_page, bob_page, carol_page]
    try:
        await alice_page.post("before the restart")
        for page in pages:
            await page.until_shows("before the restart")

        with room_locked(system_env["DATABASE_URL"], slug):
            # Alice's post waits for the lock in her consumer while SIGTERM arrives: the
            # process cannot have finished its drain until the lock is released.
            await alice_page.post("in flight at SIGTERM")
            signalled_at = time.monotonic()
            restarted.send_signal(signal.SIGTERM)
            assert await alice_page.wait_closed(timeout=SLOW) == SERVICE_RESTART
            assert await bob_page.wait_closed(timeout=SLOW) == SERVICE_RESTART
            assert await asyncio.to_thread(refuses_connections, restarted)
            assert restarted.process.poll() is None, "exited before its post was saved"
        assert await exit_status(restarted, signalled_at) == 0
        assert "Traceback" not in restarted.log_text()  # answering a closed socket is no error
        assert carol_page.closes == []  # the other process's sockets stay open

        # The page reconnects elsewhere, as the extension does after 1012, and catches up.
        await alice_page.connect(other)
        await bob_page.connect(other)
        await settle(carol_page, pages, "after the restart")
        stored = await asyncio.to_thread(history, carol, slug)
        assert [m.text for m in stored][:2] == ["before the restart", "in flight at SIGTERM"]
        for page in pages:
            assert_shows_once_in_order(page, stored)
    finally:
        await asyncio.gather(*(page.close() for page in pages))


async def test_a_page_that_never_answers_the_close_does_not_hold_the_exit(start_web, people):
    web = start_web()
    (alice,) = await people(web)
    slug = await asyncio.to_thread(alice.open_room, unique("silent"))
    silent = await asyncio.to_thread(silent_socket, web, alice, slug)
    try:
        signalled_at = time.monotonic()
        web.send_signal(signal.SIGTERM)
        assert await exit_status(web, signalled_at) == 0
    finally:
        silent.close()


async def test_restarting_two_processes_one_after_the_other_loses_nothing(start_web, people):
    webs = [start_web(), start_web()]
    router = Router(webs)
    sessions = await people(*webs, *webs)
    slug = await asyncio.to_thread(sessions[0].open_room, unique("restarts"))
    # Two tabs on each process (the router alternates), all reconnecting as the extension.
    pages = [
        Page(router, session, slug, name=f"tab {number}", auto_reconnect=True)
        for number, session in enumerate(sessions)
    ]
    for page in pages:
        await page.load()
        await page.connect()
    posters = pages[:2]
    posted = []
    posting = True

    async def keep_posting(page):
        number = 0
        while posting:
            text = f"{page.name} message {number}"
            await page.post(text)  # sent, or queued until the socket is open again
            posted.append(text)
            number += 1
            await asyncio.sleep(0.05)  # a steady stream of messages, not synchronisation

    def everyone_shows(count):
        return [page.until(lambda page=page: len(page.messages) >= count) for page in pages]

    streams = [asyncio.create_task(keep_posting(page)) for page in posters]
    try:
        for web in webs:
            await asyncio.gather(*everyone_shows(len(posted) + 5))
            before = len(posted)
            router.take_out(web)
            signalled_at = time.monotonic()
            web.send_signal(signal.SIGTERM)
            assert await exit_status(web, signalled_at) == 0, web.log_text()[-2000:]
            assert "Traceback" not in web.log_text(), web.log_text()[-3000:]
            await asyncio.to_thread(web.start)
            router.put_back(web)
            assert len(posted) > before, "nothing was posted during the restart"
        await asyncio.gather(*everyone_shows(len(posted) + 5))
        posting = False
        await asyncio.gather(*streams)
        for page in pages:
            await page.until(lambda page=page: page.connected and not page.queue, timeout=SLOW)
        await settle(posters[0], pages, "after both restarts")

        stored = await asyncio.to_thread(history, sessions[1], slug)
        counts = Counter(message.text for message in stored)
        assert [text for text in posted if counts[text] != 1] == []
        assert len(stored) == len(posted) + 1
        for page in pages:
            assert_shows_once_in_order(page, stored)
        # Every tab moved at least once, and every socket that closed was closed by a
        # restart, with the code the extension retries.
        assert all(page.opens >= 2 for page in pages), [page.opens for page in pages]
        closes = [code for page in pages for code in page.closes]
        assert set(closes) == {SERVICE_RESTART}, closes
    finally:
        posting = False
        for stream in streams:
            stream.cancel()
        await asyncio.gather(*(page.close() for page in pages))
