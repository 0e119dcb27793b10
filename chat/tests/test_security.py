"""Refusals and bad input on the room socket, against the real Redis channel layer.

Every bad frame must end in a clear error in the sender's composer (text kept where the
frame held text), store nothing, leave the socket usable and other users untouched, and
log no error. Sockets are refused for a foreign Origin, without a session, and for a
room that does not exist. One user's flood is cut off by the rate limit while others
keep chatting.
"""

import asyncio
import json
import logging
import re
import time
import uuid
from html.parser import HTMLParser

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth.models import AnonymousUser
from django.test import Client

from chat.models import Message
from chat.protocol import CloseCode
from chat.routing import websocket_urlpatterns
from chat.tests.factories import make_room, make_user

pytestmark = pytest.mark.django_db(transaction=True)

router = URLRouter(websocket_urlpatterns)
GOOD_ORIGIN = b"http://localhost:8000"
HEADERS = {"HX-Request": "true", "HX-Trigger": "composer", "HX-Target": "composer"}


# --- a small HTML reader, enough to inspect fragments the way a browser would ---

VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}


class Node:
    def __init__(self, tag, attrs, parent=None):
        self.tag, self.attrs, self.parent, self.children = tag, dict(attrs), parent, []

    @property
    def classes(self):
        return (self.attrs.get("class") or "").split()

    def text(self):
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def walk(self):
        for child in self.children:
            if isinstance(child, Node):
                yield child
                yield from child.walk()

    def find_all(self, predicate):
        return [node for node in self.walk() if predicate(node)]

    def by_id(self, element_id):
        found = self.find_all(lambda node: node.attrs.get("id") == element_id)
        return found[0] if found else None


class _TreeBuilder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = self.current = Node("#root", {})

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.current)
        self.current.children.append(node)
        if tag not in VOID_TAGS:
            self.current = node

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(Node(tag, attrs, self.current))

    def handle_endtag(self, tag):
        node = self.current
        while node is not self.root and node.tag != tag:
            node = node.parent
        if node is not self.root:
            self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse_html(html):
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


# --- sockets ---


class Page:
    """One open socket of a page, keeping every frame it received.

    `expect` takes the first frame not taken yet that matches, so waiting for one kind
    of frame never throws away frames of another kind.
    """

    def __init__(self, communicator):
        self.communicator = communicator
        self.received = []  # every frame, in arrival order
        self.pending = []  # frames not taken by `expect` yet

    async def send(self, frame):
        """A text frame (str) or a binary frame (bytes), empty ones included."""
        key = "bytes" if isinstance(frame, bytes) else "text"
        await self.communicator.send_input({"type": "websocket.receive", key: frame})

    async def _receive(self, timeout):
        frame = await self.communicator.receive_from(timeout=timeout)
        frame.encode("utf-8")  # a text frame the server can actually send
        self.received.append(frame)
        self.pending.append(frame)

    async def expect(self, predicate, timeout=30):
        async with asyncio.timeout(timeout):
            while True:
                for index, frame in enumerate(self.pending):
                    if predicate(frame):
                        del self.pending[index]
                        return frame
                await self._receive(timeout)

    async def expect_composer(self, timeout=30):
        return Composer(await self.expect(is_composer, timeout))

    async def expect_message(self, text, timeout=30):
        """The fragment holding the message `text` (compared as the page shows it)."""
        return await self.expect(lambda frame: text in message_texts(frame), timeout)

    async def settle(self, quiet=0.3):
        """Read until the socket has been quiet for `quiet` seconds."""
        while not await self.communicator.receive_nothing(timeout=quiet):
            await self._receive(10)

    async def disconnect(self):
        await self.communicator.disconnect()


async def open_socket(user, room, *, last_seq=0):
    """A logged-in page of `room` that has reported its position, as the page does."""
    communicator = WebsocketCommunicator(router, f"/ws/chat/{room.slug}/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    page = Page(communicator)
    if last_seq is not None:
        await page.send(json.dumps({"last_seq": str(last_seq)}))
    return page


def post(text, key=None, **extra):
    frame = {"message": text, "client_key": str(key or uuid.uuid4()), "HEADERS": HEADERS}
    frame.update(extra)
    return json.dumps(frame)


def is_composer(frame):
    return 'id="composer-fields"' in frame


def is_message(frame):
    return 'class="message"' in frame


def message_texts(frame):
    """The text of each message in a fragment, as the page shows it."""
    if not is_message(frame):
        return []
    tree = parse_html(frame)
    return [node.text() for node in tree.find_all(lambda node: "message-text" in node.classes)]


class Composer:
    """The OOB #composer-fields fragment the sender gets after each post."""

    def __init__(self, frame):
        tree = parse_html(frame)
        fields = tree.by_id("composer-fields")
        assert fields is not None, frame[:500]
        assert fields.attrs.get("hx-swap-oob") == "true", frame[:500]
        self.frame = frame
        errors = fields.find_all(lambda node: "composer-error" in node.classes)
        self.error = errors[0].text().strip() if errors else None
        textareas = fields.find_all(lambda node: node.tag == "textarea")
        assert len(textareas) == 1 and textareas[0].attrs.get("name") == "message", frame[:500]
        self.text = textareas[0].text()
        keys = fields.find_all(lambda node: node.attrs.get("name") == "client_key")
        self.client_key = keys[0].attrs.get("value") if keys else None


async def message_count(**filters):
    return await database_sync_to_async(Message.objects.filter(**filters).count)()


def logged_errors(records):
    """ERROR records, except asyncio's report of a task of an earlier test's closed loop."""
    return [
        record.getMessage()
        for record in records
        if record.levelno >= logging.ERROR
        and not (record.name == "asyncio" and "Task was destroyed" in record.getMessage())
    ]


@pytest.fixture(autouse=True)
def no_logged_errors(caplog):
    caplog.set_level(logging.INFO)
    yield
    errors = logged_errors(caplog.get_records("call"))
    assert not errors, errors


@pytest.fixture(autouse=True)
async def finish_background_tasks():
    """Let the tasks the sockets leave behind (the hub's, once cancelled) end in this loop.

    Otherwise the loop closes with them pending and asyncio logs an ERROR when they are
    garbage-collected, during whatever test runs next. (That they end at all is checked by
    test_closing_every_socket_leaves_no_hub_task_running.)
    """
    yield
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    if others:
        await asyncio.wait(others, timeout=3)


@pytest.fixture
def unlimited(settings):
    settings.CHAT_RATE_LIMIT = None
    return settings


async def two_users_in_a_room():
    alice = await database_sync_to_async(make_user)()
    bob = await database_sync_to_async(make_user)()
    room = await database_sync_to_async(make_room)()
    return alice, bob, room


# --- every kind of bad frame ---

LIMIT = django_settings.CHAT_MAX_MESSAGE_LENGTH
TOO_LONG = "y" * (LIMIT + 1)
NESTED = json.dumps({"message": "nested", "HEADERS": {"a": [[[[["deep"]]]]]}})
OVERSIZED = post("z" * (django_settings.CHAT_MAX_FRAME_BYTES + 10))

# (id, frame to send: str = text frame, bytes = binary frame, error pattern, text kept or None)
BAD_FRAMES = [
    ("binary", b'{"message": "hi"}', r"binary", None),
    ("binary junk", b"\x00\xff\xfe garbage", r"binary", None),
    ("empty binary", b"", r"binary", None),
    ("empty text frame", "", r"not valid JSON", None),
    ("whitespace text frame", " \r\n\t ", r"not valid JSON", None),
    ("not json", "hello there", r"not valid JSON", None),
    ("truncated json", post("cut off")[:-5], r"not valid JSON", None),
    ("json array", '["message", "hi"]', r"not a JSON object", None),
    ("json number", "42", r"not a JSON object", None),
    ("json null", "null", r"not a JSON object", None),
    ("missing message", json.dumps({"HEADERS": HEADERS}), r"'message' field", None),
    ("message is a number", json.dumps({"message": 5, "HEADERS": HEADERS}), r"must be text", None),
    ("message is a list", json.dumps({"message": ["hi"]}), r"must be text", None),
    ("blank", post(""), r"Write something", ""),
    ("whitespace only", post(" \n\t \u3000\u00a0 "), r"Write something", " \n\t \u3000\u00a0 "),
    (
        "over the length limit",
        post(TOO_LONG),
        rf"{LIMIT + 1} characters.*limit is {LIMIT}",
        TOO_LONG,
    ),
    (
        "control character",
        post("ring the bell\x07 now"),
        r"control character",
        "ring the bell\x07 now",
    ),
    ("nul character", post("nul\x00byte"), r"control character", "nul\x00byte"),
    ("escape sequence", post("\x1b[31mred\x1b[0m"), r"control character", "\x1b[31mred\x1b[0m"),
    ("lone surrogate", '{"message": "broken \\ud800 text"}', r"broken character|surrogate", None),
    (
        "reversed surrogate pair",
        '{"message": "\\ude00\\ud83d"}',
        r"broken character|surrogate",
        None,
    ),
    ("unknown field", post("keep me", evil="1"), r"Unexpected field.*'evil'", "keep me"),
    (
        "markup in an unknown field name",
        post("keep this", **{"<img src=x onerror=alert(1)>": 1}),
        r"Unexpected field.*<img src=x",
        "keep this",
    ),
    (
        "client_key not a uuid",
        post("keep me too", client_key="nope"),
        r"not a valid key",
        "keep me too",
    ),
    ("client_key not text", post("and me", client_key=7), r"client_key", "and me"),
    ("HEADERS not an object", post("me as well", HEADERS="x"), r"HEADERS", "me as well"),
    ("deeply nested", NESTED, r"nested too deeply", None),
    ("oversized frame", OVERSIZED, r"too large", None),
]


@pytest.mark.parametrize(
    ("frame", "error", "kept"),
    [case[1:] for case in BAD_FRAMES],
    ids=[case[0] for case in BAD_FRAMES],
)
async def test_bad_frame_is_refused_in_the_composer_and_harms_nobody(frame, error, kept, unlimited):
    alice, bob, room = await two_users_in_a_room()
    sender = await open_socket(alice, room)
    reader = await open_socket(bob, room)
    try:
        await sender.send(frame)
        composer = await sender.expect_composer()
        assert composer.error, composer.frame[:500]
        assert re.search(error, composer.error, re.IGNORECASE | re.DOTALL), composer.error
        assert len(composer.error) < 300
        if kept is not None:
            assert composer.text == kept
        # The error is text, never markup of the sender's making.
        assert "<img" not in composer.frame
        assert len(composer.frame) < 3 * (LIMIT + 1) + 2000  # nothing huge echoed back
        assert await message_count() == 0

        # The socket is still usable, and other users see nothing of the bad frame.
        await sender.send(post("after the bad frame"))
        composer = await sender.expect_composer()
        assert composer.error is None and composer.text == ""
        await sender.expect_message("after the bad frame")
        await reader.expect_message("after the bad frame")
        assert await message_count(author=alice) == 1

        await reader.send(post("bob is fine"))
        await sender.expect_message("bob is fine")
        assert (await reader.expect_composer()).error is None
        await reader.expect_message("bob is fine")
        for page in (sender, reader):
            await page.settle()
            assert page.pending == [], page.pending
        assert not any(is_message(f) for f in sender.received[:1])
        # Bob's page got the two good messages and his own composer, nothing else.
        assert len(reader.received) == 3, reader.received
    finally:
        await sender.disconnect()
        await reader.disconnect()


async def test_many_bad_frames_in_a_row_leave_the_socket_and_the_room_working(unlimited):
    alice, bob, room = await two_users_in_a_room()
    sender = await open_socket(alice, room)
    reader = await open_socket(bob, room)
    try:
        for _ in range(3):
            for _, frame, _, _ in BAD_FRAMES:
                await sender.send(frame)
        for _ in range(3 * len(BAD_FRAMES)):
            assert (await sender.expect_composer()).error
        await sender.send(post("still here"))
        assert (await sender.expect_composer()).error is None
        await sender.expect_message("still here")
        await reader.expect_message("still here")
        await reader.settle()
        assert len(reader.received) == 1, reader.received
        assert await message_count() == 1
    finally:
        await sender.disconnect()
        await reader.disconnect()


async def test_markup_in_a_message_is_escaped_in_the_broadcast(unlimited):
    alice, bob, room = await two_users_in_a_room()
    sender = await open_socket(alice, room)
    reader = await open_socket(bob, room)
    text = (
        '<script>alert(1)</script><img src=x onerror="alert(2)"> '
        '<a href="javascript:alert(3)">click</a> javascript:alert(4) '
        '<div hx-get="/" hx-trigger="load" hx-swap-oob="true" id="messages">x</div> '
        "<svg onload=alert(5)> https://example.com/a?b=1&c=2"
    )
    try:
        await sender.send(post(text))
        tree = parse_html(await reader.expect_message(text))
        [body] = tree.find_all(lambda node: "message-text" in node.classes)
        for node in body.walk():
            assert node.tag in {"a", "br"}, node.tag
            for name, value in node.attrs.items():
                assert not name.startswith(("on", "hx-", "ws-", "data-hx")), name
                if name == "href":
                    assert value.startswith(("http://", "https://")), value
        assert [n.attrs["href"] for n in body.find_all(lambda n: n.tag == "a")] == [
            "https://example.com/a?b=1&c=2"
        ]
        # The only swap instructions are the envelope's own.
        swaps = tree.find_all(lambda node: "hx-swap-oob" in node.attrs)
        assert [(n.tag, n.attrs.get("id")) for n in swaps] == [
            ("ol", "messages"),
            ("input", "last-seq"),
        ]
    finally:
        await sender.disconnect()
        await reader.disconnect()


async def test_closing_every_socket_leaves_no_hub_task_running(unlimited):
    """Connecting and leaving over and over must not pile up tasks in the server process.

    When a process's last socket closes, its hub stops; every connect to an idle process
    starts it again. A client that loops connect/close must not leave a reader behind each
    time (an easy way to exhaust a server).
    """
    alice = await database_sync_to_async(make_user)()
    room = await database_sync_to_async(make_room)()

    def hub_tasks():
        return [
            task
            for task in asyncio.all_tasks()
            if task.get_name().startswith("chat-hub") and not task.done()
        ]

    for number in range(6):
        page = await open_socket(alice, room)
        if number % 2:  # with and without traffic through the channel layer
            await page.send(post(f"hello {number}"))
            await page.expect_message(f"hello {number}")
        await page.disconnect()
    # Stopped tasks must end without needing a message to wake them.
    tasks = hub_tasks()
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    assert not hub_tasks(), hub_tasks()


# --- refused sockets ---


def _session_cookie(user):
    client = Client()
    client.force_login(user)
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value


async def project_socket(path, *, origin=GOOD_ORIGIN, user=None, cookie=None):
    """A socket through the whole project ASGI app: origin check, session, router."""
    from project.asgi import application

    headers = []
    if origin is not None:
        headers.append((b"origin", origin))
    if user is not None:
        cookie = await database_sync_to_async(_session_cookie)(user)
    if cookie is not None:
        headers.append((b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    return WebsocketCommunicator(application, path, headers=headers)


async def closed_with(communicator, code):
    """The socket is accepted, then closed with `code`; returns the frames sent before."""
    connected, _ = await communicator.connect(timeout=10)
    assert connected  # accepted, so the browser sees our close code and not 1006
    frames = []
    async with asyncio.timeout(10):
        while True:
            output = await communicator.receive_output(timeout=10)
            if output["type"] == "websocket.close":
                assert output.get("code") == code, (output, frames)
                assert type(output["code"]) is int  # autobahn refuses an IntEnum
                break
            frames.append(output.get("text", output.get("bytes")))
    await communicator.wait()
    return frames


async def test_logged_in_user_with_an_allowed_origin_is_served(unlimited):
    """The positive control for the refusals below."""
    alice = await database_sync_to_async(make_user)()
    room = await database_sync_to_async(make_room)()
    communicator = await project_socket(f"/ws/chat/{room.slug}/", user=alice)
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    page = Page(communicator)
    try:
        await page.send(json.dumps({"last_seq": "0"}))
        await page.send(post("through the whole stack"))
        await page.expect_message("through the whole stack")
    finally:
        await page.disconnect()


@pytest.mark.parametrize(
    "origin",
    [
        b"https://evil.example",
        b"http://localhost.evil.example",
        b"http://evil.example/localhost",
        b"http://evillocalhost",
        b"null",
        b"file://",
        b"",
        b"\xff\xfe",
        None,
    ],
)
async def test_socket_from_a_foreign_origin_is_closed_with_4403(origin):
    alice = await database_sync_to_async(make_user)()
    room = await database_sync_to_async(make_room)()
    await database_sync_to_async(Message.objects.create)(
        room=room, author=alice, seq=1, text="private history"
    )
    communicator = await project_socket(f"/ws/chat/{room.slug}/", origin=origin, user=alice)
    frames = await closed_with(communicator, CloseCode.FORBIDDEN)
    assert not any("private history" in (frame or "") for frame in frames)


async def test_socket_without_a_session_is_closed_with_4401():
    room = await database_sync_to_async(make_room)()
    frames = await closed_with(
        await project_socket(f"/ws/chat/{room.slug}/"), CloseCode.NOT_LOGGED_IN
    )
    assert any("signed out" in frame for frame in frames), frames


async def test_socket_with_a_forged_or_ended_session_is_closed_with_4401():
    room = await database_sync_to_async(make_room)()
    for cookie in ["not-a-session", "x" * 4000, "'; DROP TABLE chat_message; --"]:
        communicator = await project_socket(f"/ws/chat/{room.slug}/", cookie=cookie)
        await closed_with(communicator, CloseCode.NOT_LOGGED_IN)

    alice = await database_sync_to_async(make_user)()
    cookie = await database_sync_to_async(_session_cookie)(alice)
    from django.contrib.sessions.models import Session

    await database_sync_to_async(Session.objects.all().delete)()
    communicator = await project_socket(f"/ws/chat/{room.slug}/", cookie=cookie)
    await closed_with(communicator, CloseCode.NOT_LOGGED_IN)


async def test_session_of_a_changed_password_or_a_deactivated_user_is_closed_with_4401():
    room = await database_sync_to_async(make_room)()
    alice = await database_sync_to_async(make_user)()
    bob = await database_sync_to_async(make_user)()
    alice_cookie = await database_sync_to_async(_session_cookie)(alice)
    bob_cookie = await database_sync_to_async(_session_cookie)(bob)

    def change_password_and_deactivate():
        alice.set_password("a-completely-new-password")
        alice.save()
        bob.is_active = False
        bob.save()

    await database_sync_to_async(change_password_and_deactivate)()
    for cookie in (alice_cookie, bob_cookie):
        communicator = await project_socket(f"/ws/chat/{room.slug}/", cookie=cookie)
        await closed_with(communicator, CloseCode.NOT_LOGGED_IN)


async def test_anonymous_user_is_closed_with_4401_by_the_consumer():
    room = await database_sync_to_async(make_room)()
    communicator = WebsocketCommunicator(router, f"/ws/chat/{room.slug}/")
    communicator.scope["user"] = AnonymousUser()
    frames = await closed_with(communicator, CloseCode.NOT_LOGGED_IN)
    assert any("signed out" in frame for frame in frames), frames


async def test_unknown_room_is_closed_with_4404():
    alice = await database_sync_to_async(make_user)()
    communicator = await project_socket("/ws/chat/no-such-room/", user=alice)
    frames = await closed_with(communicator, CloseCode.NO_SUCH_ROOM)
    assert any("does not exist" in frame for frame in frames), frames


# --- flood control ---


def is_slow_down(composer):
    return bool(composer.error) and re.search(r"slow down", composer.error, re.IGNORECASE)


async def test_rate_limit_refuses_the_excess_and_spares_other_users(settings):
    settings.CHAT_RATE_LIMIT = (3, 60)
    settings.CHAT_RATE_LIMIT_EXEMPT = set()
    alice, bob, room = await two_users_in_a_room()
    flooder = await open_socket(alice, room)
    reader = await open_socket(bob, room)
    try:
        for number in range(1, 4):
            await flooder.send(post(f"alice {number}"))
            assert (await flooder.expect_composer()).error is None
        await flooder.send(post("alice 4: one too many"))
        composer = await flooder.expect_composer()
        assert is_slow_down(composer), composer.error
        assert composer.text == "alice 4: one too many"
        assert await message_count(author=alice) == 3

        # Alice keeps flooding; Bob's whole budget goes through meanwhile.
        for number in range(10):
            await flooder.send(post(f"flood {number}"))
            if number < 3:
                await reader.send(post(f"bob {number}"))
        for _ in range(10):
            composer = await flooder.expect_composer()
            assert is_slow_down(composer), composer.error
        for number in range(3):
            assert (await reader.expect_composer()).error is None
            await flooder.expect_message(f"bob {number}")
            await reader.expect_message(f"bob {number}")
        assert await message_count(author=alice) == 3
        assert await message_count(author=bob) == 3
        assert not await database_sync_to_async(
            Message.objects.filter(text__startswith="flood").exists
        )()
        await reader.settle()
        assert not any("flood" in text for f in reader.received for text in message_texts(f))
    finally:
        await flooder.disconnect()
        await reader.disconnect()


async def test_rate_limit_exempt_user_is_not_limited(settings):
    settings.CHAT_RATE_LIMIT = (3, 60)
    settings.CHAT_RATE_LIMIT_EXEMPT = {"bench-user"}
    bench = await database_sync_to_async(make_user)(username="bench-user")
    alice = await database_sync_to_async(make_user)()
    room = await database_sync_to_async(make_room)()
    exempt = await open_socket(bench, room)
    limited = await open_socket(alice, room)
    try:
        for number in range(8):
            await exempt.send(post(f"bench {number}"))
            await limited.send(post(f"alice {number}"))
        exempt_errors = [(await exempt.expect_composer()).error for _ in range(8)]
        limited_composers = [await limited.expect_composer() for _ in range(8)]
        assert exempt_errors == [None] * 8
        assert [c.error for c in limited_composers[:3]] == [None] * 3
        assert all(is_slow_down(c) for c in limited_composers[3:])
        assert await message_count(author=bench) == 8
        assert await message_count(author=alice) == 3
    finally:
        await exempt.disconnect()
        await limited.disconnect()


async def test_rate_limit_holds_across_a_clock_window_boundary(settings):
    """N/S means at most N messages in any S seconds, not N per tick of the clock.

    Three messages just before a multiple of S seconds and a fourth just after it are four
    messages within S seconds: the fourth must be refused.
    """
    seconds = 4
    settings.CHAT_RATE_LIMIT = (3, seconds)
    settings.CHAT_RATE_LIMIT_EXEMPT = set()
    room = await database_sync_to_async(make_room)()
    for _attempt in range(5):
        user = await database_sync_to_async(make_user)()
        page = await open_socket(user, room)
        try:
            # Start in the last second of a clock window of S seconds.
            await asyncio.sleep((seconds - 1.0 - time.time() % seconds) % seconds)
            started = time.time()
            for number in range(3):
                await page.send(post(f"{user.username} {number}"))
                assert (await page.expect_composer()).error is None
            boundary = (started // seconds + 1) * seconds
            await asyncio.sleep(max(0.0, boundary - time.time()) + 0.05)
            await page.send(post(f"{user.username} fourth"))
            composer = await page.expect_composer()
            if time.time() - started >= seconds:
                continue  # too slow a machine to tell: try again with a new user
            assert is_slow_down(composer), "a 4th message within the same 4 s was accepted"
            assert await message_count(author=user) == 3
            return
        finally:
            await page.disconnect()
    pytest.fail("could not send 4 messages within 4 s in 5 attempts")
