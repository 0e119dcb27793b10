"""The email about missed mentions (issue 11), end to end: a `web:` process and two
`worker:` processes started as the Procfile starts them, on the same database and Redis,
and a real SMTP server (aiosmtpd) started here.

People sign up, join a room and post over HTTP as a browser without JavaScript does. Bob,
mentioned and away, gets one email listing the message with a link that opens it; Carol,
mentioned too, opens the room before the email is due and gets none. Two workers poll at
once: nobody is emailed twice. SIGTERM stops a worker cleanly.
"""

import asyncio
import email
import email.policy
import sqlite3
import threading
import time
import uuid

import psycopg
import pytest
from aiosmtpd.controller import Controller
from django.contrib.auth import get_user_model

from chat.models import MissedEmail
from tests.support.accounts import HttpSession
from tests.support.redis import free_port
from tests.support.servers import WorkerProcess
from tests.system.clients import parse, post_without_javascript, room_html, until

pytestmark = [pytest.mark.system, pytest.mark.timeout(180)]

DELAY = 2  # seconds: CHAT_MENTION_EMAIL_DELAY, long enough for Carol to open the room first
SLOW = 60  # seconds: generous, the machine is shared


class Inbox:
    """What the SMTP server was handed: [(recipients, parsed message)]."""

    def __init__(self):
        self.received = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's handler hook
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.received.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def to(self, address):
        with self._lock:
            return [message for recipients, message in self.received if address in recipients]


@pytest.fixture
def inbox():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield inbox, controller.port
    controller.stop()


@pytest.fixture
def start_worker(system_env):
    started = []

    def start(**overrides):
        env = {**system_env, **{key: str(value) for key, value in overrides.items()}}
        worker = WorkerProcess(env, name=f"worker.{len(started) + 1}")
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.kill()


def execute(database_url, sql, params=()):
    """One statement on the database the processes use; returns its rows."""
    if database_url.startswith("sqlite:///"):
        connection = sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=20)
        try:
            with connection:
                return connection.execute(sql.replace("%s", "?"), params).fetchall()
        finally:
            connection.close()
    with psycopg.connect(database_url) as connection:
        cursor = connection.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def text_of(message):
    return message.get_body(preferencelist=("plain",)).get_content()


async def test_a_mention_still_unread_when_due_is_emailed_once_and_one_read_in_time_is_not(
    system_env, start_web, start_worker, inbox
):
    inbox, smtp_port = inbox
    web = await asyncio.to_thread(start_web, CHAT_MENTION_EMAIL_DELAY=DELAY)
    email_env = {
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": smtp_port,
        "DEFAULT_FROM_EMAIL": "Chat <chat@example.com>",
        "CHAT_SITE_URL": web.url,
        "CHAT_MENTION_EMAIL_DELAY": DELAY,
        "CHAT_WORKER_POLL_SECONDS": 0.5,
    }
    workers = await asyncio.gather(
        asyncio.to_thread(start_worker, **email_env), asyncio.to_thread(start_worker, **email_env)
    )
    tag = uuid.uuid4().hex[:6]
    names = {who: f"{who}-{tag}" for who in ("alice", "bob", "carol")}
    alice, bob, carol = await asyncio.gather(
        *(asyncio.to_thread(HttpSession(web.url).sign_up, name) for name in names.values())
    )
    users = get_user_model()._meta.db_table
    for name in names.values():
        execute(
            system_env["DATABASE_URL"],
            f"UPDATE {users} SET email = %s WHERE username = %s",  # noqa: S608
            (f"{name}@example.com", name),
        )
    slug = await asyncio.to_thread(alice.open_room, f"Plans {tag}")
    for person in (bob, carol):
        await asyncio.to_thread(person.open_room, f"Plans {tag}")

    text = f"lunch at noon, @{names['bob']} and @{names['carol']}?"
    posted = time.monotonic()
    status = await asyncio.to_thread(post_without_javascript, alice, slug, text, uuid.uuid4())
    assert status == 200
    page = parse(await asyncio.to_thread(room_html, carol, slug))  # Carol reads it in time
    assert time.monotonic() - posted < DELAY, "too slow to read in time: the test proves nothing"
    [message] = [shown for shown in page.messages if shown.text == text]

    bob_address = f"{names['bob']}@example.com"
    await until(lambda: inbox.to(bob_address), timeout=SLOW, what="bob's email")
    queue = MissedEmail._meta.db_table
    # This message's rows only: other tests of the session queue rows due much later.
    unsent = f"SELECT id FROM {queue} WHERE sent_at IS NULL AND message_id = %s"  # noqa: S608
    await until(
        lambda: not execute(system_env["DATABASE_URL"], unsent, (message.pk,)),
        timeout=SLOW,
        what="every due row handled",
    )
    await asyncio.sleep(1.5)  # three more polls of each worker: time for a second email

    [sent] = inbox.to(bob_address)
    assert [recipients for recipients, _ in inbox.received] == [[bob_address]]
    assert sent["From"] == "Chat <chat@example.com>"
    assert sent["Subject"] == f"You missed 1 message in Plans {tag}"
    body = text_of(sent)
    assert f"{names['alice']}: {text}" in body
    link = f"{web.url}/messages/{message.pk}/"
    assert link in body
    # The link opens the message, in its room, for Bob.
    status, page = await asyncio.to_thread(bob.get, link.removeprefix(web.url))
    assert status == 200
    assert text in [shown.text for shown in parse(page).messages]

    logs = "".join(worker.log_text() for worker in workers)
    assert logs.count("missed email sent to user") == 1
    statuses = await asyncio.gather(*(asyncio.to_thread(worker.stop) for worker in workers))
    assert statuses == [0, 0]
    assert all("chat worker stopped" in worker.log_text() for worker in workers)
