"""Refusals and bad input on the room socket, against the real Redis channel layer.

Every bad frame must end in a clear error where the sender looks: the composer for a
post or a frame of no known kind (text kept where the frame held text), the edit form
for an edit the action refuses, the page's #notice for the rest. It must store nothing,
leave the socket usable and other users untouched, and log no error. Sockets are refused for a foreign Origin, without a session, and for a
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
from django.contrib.auth import load_backend
from django.contrib.auth.models import AnonymousUser
from django.test import Client

from chat.formatting import ALLOWED_TAGS
from chat.models import Message, RoomEvent
from chat.realtime.frames import CloseCode
from chat.realtime.routing import websocket_urlpatterns
from chat.tests.factories import make_author, make_message, make_room, make_user

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
        self.received = []  # every frame, in arrival order, but the ephemeral ones
        self.pending = []  # frames not taken by `expect` yet
        # Heartbeats (#connection-status), who is here (#people), who is typing (#typing):
        # the state of the room now, kept apart from the answers and the event stream.
        self.ephemeral = []

    async def send(self, frame):
        """A text frame (str) or a binary frame (bytes), empty ones included."""
        key = "bytes" if isinstance(frame, bytes) else "text"
        await self.communicator.send_input({"type": "websocket.receive", key: frame})

    async def _receive(self, timeout):
        frame = await self.communicator.receive_from(timeout=timeout)
        frame.encode("utf-8")  # a text frame the server can actually send
        if is_ephemeral(frame):
            self.ephemeral.append(frame)
            return
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

    async def expect_notice(self, timeout=30):
        return notice_text(await self.expect(is_notice, timeout))

    async def expect_answer(self, timeout=30):
        """The sender's answer to a frame: a composer, a notice or an edit form."""
        return await self.expect(is_answer, timeout)

    async def expect_message(self, text, timeout=30):
        """The fragment holding the message `text` (compared as the page shows it)."""
        return await self.expect(lambda frame: text in message_texts(frame), timeout)

    async def settle(self, quiet=0.3):
        """Read until the socket has been quiet for `quiet` seconds."""
        while not await self.communicator.receive_nothing(timeout=quiet):
            await self._receive(10)

    async def disconnect(self):
        await self.communicator.disconnect()


def _as_signed_in(user):
    """`user` as the socket's session middleware loads it (profile and all)."""
    backend = load_backend(django_settings.AUTHENTICATION_BACKENDS[0])
    return backend.get_user(user.pk)


async def open_socket(user, room, *, last_seq=0):
    """A logged-in page of `room` that has reported its position, as the page does."""
    communicator = WebsocketCommunicator(router, f"/ws/chat/{room.slug}/")
    communicator.scope["user"] = await database_sync_to_async(_as_signed_in)(user)
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
    """The sender's composer fields, sent back after each post (either composer)."""
    return 'id="composer-fields"' in frame or 'id="composer-long-fields"' in frame


def is_message(frame):
    """A frame that shows a message: a new one, or a new version of one."""
    return re.search(r'<li class="message[ "]', frame) is not None


def is_notice(frame):
    return 'id="notice"' in frame


def is_edit_form(frame):
    return 'id="edit-form-' in frame


EPHEMERAL_START = re.compile(r'\s*<(?:div|ul|p) id="(connection-status|people|typing)"')


def is_ephemeral(frame):
    """A frame of the room's state now, which any page may get at any time: the heartbeat
    (on connect and every few seconds), who is here, who is typing."""
    found = EPHEMERAL_START.match(frame)
    return found is not None and "is-refused" not in frame[: found.end() + 60]


def is_connection_status(frame):
    """The heartbeat every page gets on connect and every few seconds after."""
    return '<div id="connection-status" class="connection-status is-live"' in frame


def is_answer(frame):
    return is_composer(frame) or is_notice(frame) or is_edit_form(frame)


def message_texts(frame):
    """The text of each message in a fragment, as the page shows it."""
    if not is_message(frame):
        return []
    tree = parse_html(frame)
    return [node.text() for node in tree.find_all(lambda node: "message-text" in node.classes)]


def notice_text(frame):
    """The text of the OOB #notice (role=alert) in a frame."""
    notice = parse_html(frame).by_id("notice")
    assert notice is not None, frame[:500]
    assert notice.attrs.get("hx-swap-oob") == "true" and notice.attrs.get("role") == "alert"
    return notice.text().strip()


class Composer:
    """The OOB composer fields the sender gets after each post: #composer-fields (the
    one-line composer) or #composer-long-fields (the longer one)."""

    def __init__(self, frame):
        tree = parse_html(frame)
        fields = tree.by_id("composer-fields")
        self.long = fields is None
        if self.long:
            fields = tree.by_id("composer-long-fields")
        assert fields is not None, frame[:500]
        assert fields.attrs.get("hx-swap-oob") == "true", frame[:500]
        self.frame = frame
        errors = fields.find_all(lambda node: "composer-error" in node.classes)
        self.error = errors[0].text().strip() if errors else None
        inputs = fields.find_all(
            lambda node: node.tag in ("input", "textarea") and node.attrs.get("name") == "message"
        )
        assert len(inputs) == 1, frame[:500]
        field = inputs[0]
        assert field.tag == ("textarea" if self.long else "input"), frame[:500]
        self.text = field.text() if field.tag == "textarea" else field.attrs.get("value", "")
        keys = fields.find_all(lambda node: node.attrs.get("name") == "client_key")
        self.client_key = keys[0].attrs.get("value") if keys else None
        replies = fields.find_all(lambda node: node.attrs.get("name") == "reply_to")
        self.reply_to = replies[0].attrs.get("value") if replies else None


class EditForm:
    """The OOB #edit-form-<pk> the editor gets back when an edit is refused."""

    def __init__(self, frame, message_id):
        form = parse_html(frame).by_id(f"edit-form-{message_id}")
        assert form is not None, frame[:500]
        assert form.attrs.get("hx-swap-oob") == "true", frame[:500]
        self.frame = frame
        errors = form.find_all(lambda node: "field-error" in node.classes)
        self.error = errors[0].text().strip() if errors else None
        [field] = form.find_all(lambda node: node.attrs.get("name") == "message")
        self.text = field.text() if field.tag == "textarea" else field.attrs.get("value", "")
        [edit] = form.find_all(lambda node: node.attrs.get("name") == "edit")
        assert edit.attrs.get("value") == str(message_id)


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
    # Sockets take the user from the scope: no password (and no second of hashing) needed.
    alice = await database_sync_to_async(make_author)()
    bob = await database_sync_to_async(make_author)()
    room = await database_sync_to_async(make_room)()
    return alice, bob, room


# --- every kind of bad frame ---

LIMIT = django_settings.CHAT_MAX_MESSAGE_LENGTH
TOO_LONG = "y" * (LIMIT + 1)
NESTED = json.dumps({"message": "nested", "HEADERS": {"a": [[[[["deep"]]]]]}})
OVERSIZED = post("z" * (django_settings.CHAT_MAX_FRAME_BYTES + 10))
NOWHERE = 987_654_321  # no message has this id


def change(**fields):
    """An edit, delete or reaction frame as the page's forms send it."""
    return json.dumps({"csrfmiddlewaretoken": "token", **fields, "HEADERS": HEADERS})


# Where the sender is told: COMPOSER (text kept: the last column), NOTICE, EDIT_FORM (of
# message NOWHERE, text kept), or ANY of them (a frame refused before its kind is known).
COMPOSER, NOTICE, EDIT_FORM, ANY = "composer", "notice", "edit form", "any"

# (id, frame to send: str = text frame, bytes = binary frame, where, error pattern, text
# kept or None)
BAD_FRAMES = [
    ("binary", b'{"message": "hi"}', COMPOSER, r"binary", None),
    ("binary junk", b"\x00\xff\xfe garbage", COMPOSER, r"binary", None),
    ("empty binary", b"", COMPOSER, r"binary", None),
    ("empty text frame", "", COMPOSER, r"not valid JSON", None),
    ("whitespace text frame", " \r\n\t ", COMPOSER, r"not valid JSON", None),
    ("not json", "hello there", COMPOSER, r"not valid JSON", None),
    ("truncated json", post("cut off")[:-5], COMPOSER, r"not valid JSON", None),
    ("json array", '["message", "hi"]', COMPOSER, r"not a JSON object", None),
    ("json number", "42", COMPOSER, r"not a JSON object", None),
    ("json null", "null", COMPOSER, r"not a JSON object", None),
    ("missing message", json.dumps({"HEADERS": HEADERS}), COMPOSER, r"'message' field", None),
    (
        "message is a number",
        json.dumps({"message": 5, "HEADERS": HEADERS}),
        COMPOSER,
        r"must be text",
        None,
    ),
    ("message is a list", json.dumps({"message": ["hi"]}), COMPOSER, r"must be text", None),
    ("blank", post(""), COMPOSER, r"Write something", ""),
    (
        "whitespace only",
        post(" \n\t \u3000\u00a0 "),
        COMPOSER,
        r"Write something",
        " \n\t \u3000\u00a0 ",
    ),
    (
        "over the length limit",
        post(TOO_LONG),
        COMPOSER,
        rf"{LIMIT + 1} characters.*limit is {LIMIT}",
        TOO_LONG,
    ),
    (
        "control character",
        post("ring the bell\x07 now"),
        COMPOSER,
        r"control character",
        "ring the bell\x07 now",
    ),
    ("nul character", post("nul\x00byte"), COMPOSER, r"control character", "nul\x00byte"),
    (
        "escape sequence",
        post("\x1b[31mred\x1b[0m"),
        COMPOSER,
        r"control character",
        "\x1b[31mred\x1b[0m",
    ),
    (
        "lone surrogate",
        '{"message": "broken \\ud800 text"}',
        COMPOSER,
        r"broken character|surrogate",
        None,
    ),
    (
        "reversed surrogate pair",
        '{"message": "\\ude00\\ud83d"}',
        COMPOSER,
        r"broken character|surrogate",
        None,
    ),
    ("unknown field", post("keep me", evil="1"), COMPOSER, r"Unexpected field.*'evil'", "keep me"),
    (
        "markup in an unknown field name",
        post("keep this", **{"<img src=x onerror=alert(1)>": 1}),
        COMPOSER,
        r"Unexpected field.*<img src=x",
        "keep this",
    ),
    (
        "client_key not a uuid",
        post("keep me too", client_key="nope"),
        COMPOSER,
        r"not a valid key",
        "keep me too",
    ),
    ("client_key not text", post("and me", client_key=7), COMPOSER, r"client_key", "and me"),
    (
        "HEADERS not an object",
        post("me as well", HEADERS="x"),
        COMPOSER,
        r"HEADERS",
        "me as well",
    ),
    ("deeply nested", NESTED, COMPOSER, r"nested too deeply", None),
    ("oversized frame", OVERSIZED, COMPOSER, r"too large", None),
    (
        "reply to no message",
        post("a reply", reply_to=str(NOWHERE)),
        COMPOSER,
        r"not in this room",
        "a reply",
    ),
    ("reply_to not an id", post("a reply too", reply_to="x"), COMPOSER, r"reply_to", "a reply too"),
    # --- catch-up ---
    (
        "catch-up: not a number",
        json.dumps({"last_seq": "x", "HEADERS": HEADERS}),
        NOTICE,
        r"'last_seq' must be a whole",
        None,
    ),
    (
        "catch-up: unknown field",
        json.dumps({"last_seq": "0", "evil": 1}),
        NOTICE,
        r"Unexpected.*'evil'",
        None,
    ),
    # --- edit ---
    (
        "edit: unknown field",
        change(edit="5", message="x", evil=1),
        NOTICE,
        r"Unexpected field.*'evil'",
        None,
    ),
    ("edit: no new text", change(edit="5"), NOTICE, r"needs the new text", None),
    (
        "edit: id not a number",
        change(edit="five", message="x"),
        NOTICE,
        r"'edit' must be a whole",
        None,
    ),
    ("edit: id zero", change(edit="0", message="x"), NOTICE, r"'edit' must name a message", None),
    ("edit: id negative", change(edit=-5, message="x"), NOTICE, r"'edit' must be a whole", None),
    ("edit: text not text", change(edit="5", message=["x"]), NOTICE, r"must be text", None),
    (
        "edit: unknown message",
        change(edit=NOWHERE, message="new"),
        EDIT_FORM,
        r"does not exist",
        "new",
    ),
    ("edit: blank", change(edit=NOWHERE, message=" \n "), EDIT_FORM, r"Write something", " \n "),
    (
        "edit: over the length limit",
        change(edit=NOWHERE, message=TOO_LONG),
        EDIT_FORM,
        rf"{LIMIT + 1} characters",
        TOO_LONG,
    ),
    (
        "edit: control character",
        change(edit=NOWHERE, message="bell\x07"),
        EDIT_FORM,
        r"control character",
        "bell\x07",
    ),
    (
        "edit: markup",
        change(edit=NOWHERE, message="<img src=x onerror=alert(1)>"),
        EDIT_FORM,
        r"does not exist",
        "<img src=x onerror=alert(1)>",
    ),
    (
        "edit: oversized",
        change(edit="5", message="z" * (django_settings.CHAT_MAX_FRAME_BYTES + 10)),
        ANY,
        r"too large",
        None,
    ),
    (
        "edit: lone surrogate",
        '{"edit": "5", "message": "half \\ud800"}',
        NOTICE,
        r"broken character",
        None,
    ),
    # --- delete ---
    ("delete: unknown message", change(delete_message=NOWHERE), NOTICE, r"does not exist", None),
    ("delete: id not a number", change(delete_message="x"), NOTICE, r"whole number", None),
    ("delete: id too large", change(delete_message="9" * 30), NOTICE, r"whole number", None),
    ("delete: id a list", change(delete_message=[5]), NOTICE, r"whole number", None),
    (
        "delete: unknown field",
        change(delete_message="5", message="x"),
        NOTICE,
        r"Unexpected field.*'message'",
        None,
    ),
    ("delete: the wrong name", change(delete="5"), COMPOSER, r"'message' field", None),
    ("delete: nested", change(delete_message=[[[[["5"]]]]]), ANY, r"nested too deeply", None),
    # --- react ---
    ("react: unknown message", change(react=f"{NOWHERE} 👍 on"), NOTICE, r"does not exist", None),
    ("react: emoji outside the set", change(react=f"{NOWHERE} 💩 on"), NOTICE, r"not one of", None),
    ("react: markup for an emoji", change(react="5 <b>x</b> on"), NOTICE, r"not one of", None),
    ("react: no on or off", change(react="5 👍"), NOTICE, r"'react' must be", None),
    ("react: toggle", change(react="5 👍 toggle"), NOTICE, r"'react' must be", None),
    ("react: not text", change(react=5), NOTICE, r"'react' must be", None),
    ("react: id not a number", change(react="x 👍 on"), NOTICE, r"whole number", None),
    (
        "react: unknown field",
        change(react="5 👍 on", user="1"),
        NOTICE,
        r"Unexpected.*'user'",
        None,
    ),
    ("react: lone surrogate", '{"react": "5 \\ud83d on"}', NOTICE, r"broken character", None),
]


async def expect_refusal(page, where, pattern, kept, *, message_id=NOWHERE):
    """The sender's answer to a refused frame: where it must be, and its error text."""
    answer = await page.expect_answer()
    if where == ANY:
        where = COMPOSER if is_composer(answer) else NOTICE if is_notice(answer) else EDIT_FORM
    if where == COMPOSER:
        form = Composer(answer)
        error = form.error
    elif where == NOTICE:
        assert is_notice(answer), answer[:500]
        error, form = notice_text(answer), None
    else:
        form = EditForm(answer, message_id)
        error = form.error
    assert error, answer[:500]
    assert re.search(pattern, error, re.IGNORECASE | re.DOTALL), error
    assert len(error) < 300
    if kept is not None:
        assert form.text == kept
    # The error is text, never markup of the sender's making.
    assert "<img" not in answer and "<b>" not in answer
    assert len(answer) < 3 * (LIMIT + 1) + 4000  # nothing huge echoed back
    return answer


@pytest.mark.parametrize(
    ("frame", "where", "error", "kept"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_FRAMES],
)
async def test_bad_frame_is_refused_where_the_sender_looks_and_harms_nobody(
    frame, where, error, kept, unlimited
):
    alice, bob, room = await two_users_in_a_room()
    sender = await open_socket(alice, room)
    reader = await open_socket(bob, room)
    try:
        await sender.send(frame)
        await expect_refusal(sender, where, error, kept)
        assert await message_count() == 0
        assert await database_sync_to_async(RoomEvent.objects.count)() == 0

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
            for _, frame, _, _, _ in BAD_FRAMES:
                await sender.send(frame)
        for _ in range(3):
            for _, _, where, error, kept in BAD_FRAMES:
                await expect_refusal(sender, where, error, kept)
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


MARKUP = (
    '<script>alert(1)</script><img src=x onerror="alert(2)"> '
    '<a href="javascript:alert(3)">click</a> javascript:alert(4) '
    '<div hx-get="/" hx-trigger="load" hx-swap-oob="true" id="messages">x</div> '
    "<svg onload=alert(5)> [six](javascript:alert(6)) https://example.com/a?b=1&c=2"
)


def assert_only_formatting(tree):
    """The message's body holds only the formatter's tags; links are safe and open apart."""
    [body] = tree.find_all(lambda node: "message-text" in node.classes)
    for node in body.walk():
        assert node.tag in ALLOWED_TAGS, node.tag
        for name, value in node.attrs.items():
            assert not name.startswith(("on", "hx-", "ws-", "data-hx")), name
            if name == "href":
                assert value.startswith(("http://", "https://")), value
    links = body.find_all(lambda n: n.tag == "a")
    assert [n.attrs["href"] for n in links] == ["https://example.com/a?b=1&c=2"]
    assert all(
        n.attrs.get("rel") == "noopener noreferrer" and n.attrs.get("target") == "_blank"
        for n in links
    )


async def test_markup_in_a_message_is_escaped_in_the_broadcast(unlimited):
    alice, bob, room = await two_users_in_a_room()
    sender = await open_socket(alice, room)
    reader = await open_socket(bob, room)
    try:
        await sender.send(post(MARKUP))
        tree = parse_html(await reader.expect_message(MARKUP))
        assert_only_formatting(tree)
        # The only swap instructions are the envelope's own.
        swaps = tree.find_all(lambda node: "hx-swap-oob" in node.attrs)
        assert [(n.tag, n.attrs.get("id")) for n in swaps] == [
            ("ol", "messages"),
            ("input", "last-seq"),
        ]
    finally:
        await sender.disconnect()
        await reader.disconnect()


async def test_markup_in_an_edit_is_escaped_in_the_broadcast(unlimited):
    alice, bob, room = await two_users_in_a_room()
    message = await database_sync_to_async(make_message)(room=room, author=alice, text="plain")
    sender = await open_socket(alice, room, last_seq=1)
    reader = await open_socket(bob, room, last_seq=1)
    try:
        await sender.send(change(edit=message.pk, message=MARKUP))
        for page in (sender, reader):
            tree = parse_html(await page.expect_message(MARKUP))
            assert_only_formatting(tree)
            # The new version replaces the message by its id; no other swap is made.
            [item] = [node for node in tree.children if isinstance(node, Node) and node.tag == "li"]
            assert item.attrs["id"] == f"message-{message.pk}"
            assert "hx-swap-oob" not in item.attrs
            swaps = tree.find_all(lambda node: "hx-swap-oob" in node.attrs)
            assert [(n.tag, n.attrs.get("id")) for n in swaps] == [("input", "last-seq")]
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


async def test_rate_limit_counts_changes_too_and_spares_other_users(settings):
    settings.CHAT_RATE_LIMIT = (3, 60)
    settings.CHAT_RATE_LIMIT_EXEMPT = set()
    alice, bob, room = await two_users_in_a_room()
    message = await database_sync_to_async(make_message)(room=room, text="react to me")
    flooder = await open_socket(alice, room, last_seq=1)
    reader = await open_socket(bob, room, last_seq=1)
    try:
        # Three changes go through; each "off" after them would be a change too.
        for state in ("on", "off", "on", "off", "off", "off"):
            await flooder.send(change(react=f"{message.pk} 👍 {state}"))
        await flooder.send(change(edit=message.pk, message="not mine anyway"))
        notices = [await flooder.expect_notice() for _ in range(3)]
        assert all(re.search(r"slow down", notice, re.IGNORECASE) for notice in notices)
        # The edit of another person's message is refused for what it is, not the budget.
        refused = EditForm(await flooder.expect(is_edit_form), message.pk)
        assert "only change your own" in refused.error
        assert await database_sync_to_async(RoomEvent.objects.count)() == 1 + 3

        await reader.send(post("bob is not limited"))
        assert (await reader.expect_composer()).error is None
        await flooder.expect_message("bob is not limited")
        await flooder.send(post("alice is, for now"))
        assert is_slow_down(await flooder.expect_composer())
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
