"""The room socket (chat/realtime/consumer.py) against the real Redis channel layer.

Pages are modelled by `ShownPage`, which applies event frames the way the htmx ws
extension does (each top-level element swapped out of band, by its hx-swap-oob or by
id), so a test can compare what two pages show, live or caught up, with a fresh load.
"""

import asyncio
import copy
import difflib
import itertools
import re
import uuid

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.test import Client

from chat.actions import messages as message_actions
from chat.models import Message, Reaction, Room, RoomEvent
from chat.realtime import feed as feed_module
from chat.realtime.frames import CloseCode
from chat.realtime.routing import websocket_urlpatterns
from chat.tests.factories import make_author, make_message, make_room
from chat.tests.test_security import (
    COMPOSER,
    EDIT_FORM,
    NOTICE,
    NOWHERE,
    TOO_LONG,
    Composer,
    Node,
    Page,
    _as_signed_in,
    change,
    expect_refusal,
    finish_background_tasks,  # noqa: F401 - an autouse fixture, in force here too
    is_connection_status,
    is_message,
    no_logged_errors,  # noqa: F401 - an autouse fixture, in force here too
    open_socket,
    parse_html,
    post,
)

pytestmark = pytest.mark.django_db(transaction=True)

application = URLRouter(websocket_urlpatterns)
WAIT = 30


@pytest.fixture(autouse=True)
def unlimited(settings):
    settings.CHAT_RATE_LIMIT = None  # many changes by one person in a few seconds


# --- what a page shows ---


def canonical(node):
    """A node as comparable text: attributes sorted, runs of whitespace as one space."""
    if isinstance(node, str):
        return re.sub(r"\s+", " ", node)
    attrs = "".join(f" {name}={value!r}" for name, value in sorted(node.attrs.items()))
    inner = "".join(canonical(child) for child in node.children)
    return f"<{node.tag}{attrs}>{inner.strip()}</{node.tag}>"


def _message_pk(node):
    return int(node.attrs["id"].removeprefix("message-"))


def _replace(root, matches, new):
    """Put `new` in place of every element under `root` that `matches`."""
    for node in [root, *root.walk()]:
        node.children = [
            new if isinstance(child, Node) and matches(child) else child for child in node.children
        ]


def is_event(frame):
    """A frame of the room's event stream: every event ends by recording its number."""
    return 'id="last-seq"' in frame


class ShownPage:
    """The #messages of one page, built only from the event frames it received."""

    def __init__(self):
        self.items = {}  # message pk -> its <li>, in list order
        self.applied = []  # the number of each event applied, in order
        self.missed = []  # replacements whose target the page did not have

    @property
    def last_seq(self):
        return self.applied[-1] if self.applied else 0

    def apply(self, frame):
        for node in parse_html(frame).children:
            if isinstance(node, Node):
                self._swap(node)

    def _swap(self, node):
        # htmx drops the attribute from what it swaps in.
        swap, element_id = node.attrs.pop("hx-swap-oob", None), node.attrs.get("id", "")
        if element_id == "messages":  # message.posted
            assert swap == "beforeend", node.attrs
            for item in node.children:
                if isinstance(item, Node):
                    assert _message_pk(item) not in self.items, "a message appended twice"
                    self.items[_message_pk(item)] = item
        elif node.tag == "li" and swap == "delete":  # message.deleted
            self.items.pop(_message_pk(node), None)
        elif node.tag == "li":  # message.edited: outerHTML by id
            if _message_pk(node) in self.items:
                self.items[_message_pk(node)] = node
            else:
                self.missed.append(element_id)
        elif element_id.endswith("-reactions"):  # reactions.changed
            pk = int(element_id.split("-")[1])
            if pk in self.items:
                _replace(self.items[pk], lambda n: n.attrs.get("id") == element_id, node)
            else:
                self.missed.append(element_id)
        elif "reply-quote" in node.classes:  # the quotes of a changed message
            assert swap.startswith("outerHTML:."), node.attrs
            quoted = swap.removeprefix("outerHTML:.")
            for item in self.items.values():
                _replace(item, lambda n, quoted=quoted: quoted in n.classes, node)
        elif element_id == "last-seq":
            self.applied.append(int(node.attrs["value"]))
        else:
            raise AssertionError(f"unexpected element in an event frame: {canonical(node)[:300]}")

    def snapshot(self):
        return [canonical(item) for item in self.items.values()]

    def item(self, pk):
        return self.items.get(pk)

    def text_of(self, pk):
        [body] = self.items[pk].find_all(lambda n: "message-text" in n.classes)
        return body.text().strip()


class LivePage:
    """An open socket and what its page shows."""

    def __init__(self, page, shown=None):
        self.page = page
        self.shown = shown or ShownPage()

    @classmethod
    async def open(cls, user, room, *, last_seq=None, shown=None):
        shown = shown or ShownPage()
        start = shown.last_seq if last_seq is None else last_seq
        return cls(await open_socket(user, room, last_seq=start), shown)

    async def send(self, frame):
        await self.page.send(frame)

    async def until(self, seq):
        """Apply event frames, in arrival order, until the page shows event `seq`."""
        async with asyncio.timeout(WAIT):
            while self.shown.last_seq < seq:
                self.shown.apply(await self.page.expect(is_event))
        return self.shown

    async def settle(self):
        await self.page.settle()
        for frame in [frame for frame in self.page.pending if is_event(frame)]:
            self.page.pending.remove(frame)
            self.shown.apply(frame)

    async def disconnect(self):
        await self.page.disconnect()


def assert_same_page(shown, expected):
    """Two lists of messages (canonical), with the first difference shown line by line."""
    if shown == expected:
        return
    pairs = itertools.zip_longest(shown, expected, fillvalue="")
    index, (left, right) = next((i, p) for i, p in enumerate(pairs) if p[0] != p[1])
    diff = difflib.unified_diff(
        left.replace("><", ">\n<").splitlines(),
        right.replace("><", ">\n<").splitlines(),
        "shown",
        "expected",
        lineterm="",
    )
    raise AssertionError(
        f"{len(shown)} messages shown, {len(expected)} expected; item {index} differs:\n"
        + "\n".join(diff)
    )


@database_sync_to_async
def fresh_page(user, room):
    """What a fresh load of the room page shows in #messages, as ShownPage would."""
    client = Client()
    client.force_login(user)
    response = client.get(room.get_absolute_url())
    assert response.status_code == 200
    listing = parse_html(response.content.decode()).by_id("messages")
    return [
        canonical(item)
        for item in listing.children
        if isinstance(item, Node) and "message" in item.classes
    ]


# --- the database, before and after ---


@database_sync_to_async
def room_state(room):
    """Everything a change could alter in a room: its number and every message's row."""
    rows = Message.objects.filter(room__pk=room.pk).order_by("seq")
    return {
        "last_seq": Room.objects.get(pk=room.pk).last_seq,
        "events": list(RoomEvent.objects.filter(room__pk=room.pk).values_list("seq", "kind")),
        "reactions": list(
            Reaction.objects.filter(message__room__pk=room.pk).values_list(
                "message_id", "user_id", "emoji"
            )
        ),
        "messages": list(
            rows.values_list(
                "pk", "seq", "text", "version", "edited_at", "deleted_at", "reactions", "reply_to"
            )
        ),
    }


@database_sync_to_async
def last_seq_of(room):
    return Room.objects.get(pk=room.pk).last_seq


@database_sync_to_async
def message_of(room, seq):
    return Message.objects.get(room__pk=room.pk, seq=seq)


@database_sync_to_async
def event_kinds(room, *, after_seq=0):
    events = RoomEvent.objects.filter(room__pk=room.pk, seq__gt=after_seq).order_by("seq")
    return list(events.values_list("kind", flat=True))


async def author(**fields):
    return await database_sync_to_async(make_author)(**fields)


async def a_room():
    return await database_sync_to_async(make_room)()


async def message_by(room, user, text, **options):
    return await database_sync_to_async(make_message)(room=room, author=user, text=text, **options)


@database_sync_to_async
def make_staff():
    user = make_author()
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return user


# --- connecting ---


async def test_the_connection_status_comes_first_and_then_with_every_beat(settings):
    settings.CHAT_HEARTBEAT_SECONDS = 0.5  # the shortest beat the settings allow
    alice, room = await author(), await a_room()
    page = await open_socket(alice, room, last_seq=None)
    try:
        # The page's "Reconnecting…" notice goes as soon as the socket is back ...
        first = await page.communicator.receive_from(timeout=WAIT)
        assert is_connection_status(first), first
        status = parse_html(first).by_id("connection-status")
        assert status.attrs.get("role") == "status" and "is-live" in status.classes
        # ... and a fresh copy keeps coming while it is alive (its CSS animation restarts).
        async with asyncio.timeout(WAIT):
            while sum(map(is_connection_status, page.ephemeral)) < 2:
                await page.settle(quiet=0.1)
        assert page.received == []  # and nothing else, unasked
    finally:
        await page.disconnect()


async def test_anonymous_socket_is_closed_with_a_final_code():
    room = await a_room()
    communicator = WebsocketCommunicator(application, f"/ws/chat/{room.slug}/")
    communicator.scope["user"] = AnonymousUser()
    connected, _ = await communicator.connect()
    assert connected  # accepted only to close with a code the extension does not retry
    frame = await communicator.receive_from()
    assert "signed out" in frame
    closed = await communicator.receive_output()
    assert closed == {"type": "websocket.close", "code": CloseCode.NOT_LOGGED_IN}
    await communicator.wait()


async def test_unknown_room_is_closed_with_a_final_code():
    alice = await author()
    communicator = WebsocketCommunicator(application, "/ws/chat/no-such-room/")
    communicator.scope["user"] = alice
    await communicator.connect()
    await communicator.receive_from()
    assert (await communicator.receive_output())["code"] == CloseCode.NO_SUCH_ROOM
    await communicator.wait()


# --- posting ---


async def test_message_reaches_every_socket_of_the_room_once():
    alice, bob, room = await author(), await author(), await a_room()
    sender, reader = await LivePage.open(alice, room), await LivePage.open(bob, room)
    try:
        await sender.send(post("hello <b>world</b>"))
        for page in (sender, reader):
            await page.until(1)
        message = await message_of(room, 1)
        assert reader.shown.text_of(message.pk) == "hello <b>world</b>"  # shown as text
        assert (await sender.page.expect_composer()).error is None
        await reader.settle()
        assert reader.shown.applied == [1]  # not a second copy
        assert reader.page.pending == []
    finally:
        await sender.disconnect()
        await reader.disconnect()


async def test_other_room_is_not_reached():
    alice = await author()
    here, elsewhere = await a_room(), await a_room()
    sender = await open_socket(alice, here)
    outsider = await open_socket(alice, elsewhere)
    try:
        await sender.send(post("only here"))
        await sender.expect_message("only here")
        await outsider.settle(quiet=0.5)
        assert outsider.received == []
    finally:
        await sender.disconnect()
        await outsider.disconnect()


async def test_catch_up_sends_what_the_page_missed_in_order():
    alice, room = await author(), await a_room()
    for number in range(1, 6):
        await message_by(room, alice, f"m{number}")
    page = await open_socket(alice, room, last_seq=2)
    try:
        frames = []
        while not frames or "m5" not in frames[-1]:
            frames.append(await page.expect(is_event))
        text = "".join(frames)
        assert "m1" not in text and "m2" not in text
        assert text.index("m3") < text.index("m4") < text.index("m5")
        assert 'id="last-seq" name="last_seq" value="5"' in text
    finally:
        await page.disconnect()


async def test_blank_message_is_refused_in_the_composer_and_the_socket_stays_usable():
    alice, room = await author(), await a_room()
    page = await open_socket(alice, room)
    try:
        await page.send(post("   "))
        composer = await page.expect_composer()
        assert composer.error == "Write something first." and composer.text == "   "
        await page.send(post("now with words"))
        await page.expect_message("now with words")
        assert await database_sync_to_async(Message.objects.count)() == 1
    finally:
        await page.disconnect()


async def test_same_composer_form_twice_stores_one_message():
    alice, room = await author(), await a_room()
    page = await open_socket(alice, room)
    key = uuid.uuid4()
    try:
        await page.send(post("once", key))
        await page.send(post("once", key))
        await page.expect_message("once")
        await page.settle(quiet=0.5)
        assert sum(is_message(frame) for frame in page.received) == 1
        assert await database_sync_to_async(Message.objects.count)() == 1
    finally:
        await page.disconnect()


LONG = {"HX-Request": "true", "HX-Trigger": "composer-long", "HX-Target": "composer-long"}


async def test_the_long_composer_is_answered_in_itself_and_the_short_one_kept():
    alice, room = await author(), await a_room()
    page = await open_socket(alice, room)
    try:
        await page.send(post("first line\nsecond line", HEADERS=LONG))
        answer = await page.expect_composer()
        assert (answer.long, answer.error, answer.text) == (True, None, "")
        message = await page.expect_message("first line\nsecond line")
        assert "<br" in message  # the line break is kept
        await page.send(post(TOO_LONG, HEADERS=LONG))
        refused = await page.expect_composer()
        assert refused.long and "limit" in refused.error and refused.text == TOO_LONG
        await page.settle()
        # The one-line composer keeps its draft: it is never replaced for the other's sake.
        assert not any('id="composer-fields"' in frame for frame in page.received)
    finally:
        await page.disconnect()


async def test_the_same_text_from_each_composer_is_two_messages():
    alice, room = await author(), await a_room()
    page = await open_socket(alice, room)
    try:
        await page.send(post("short"))
        short = await page.expect_composer()
        await page.send(post("a long one\nindeed", HEADERS=LONG))
        long = await page.expect_composer()
        assert not short.long and long.long
        assert short.client_key != long.client_key  # each composer its own key
        await page.send(post("ok", short.client_key))
        await page.send(post("ok", long.client_key, HEADERS=LONG))
        for _ in range(2):
            assert (await page.expect_composer()).error is None
        await page.settle()
        assert await database_sync_to_async(Message.objects.filter(text="ok").count)() == 2
    finally:
        await page.disconnect()


async def test_a_reply_shows_the_quote_and_the_composer_forgets_it():
    alice, bob, room = await author(), await author(), await a_room()
    original = await message_by(room, alice, "the question")
    sender = await LivePage.open(bob, room, last_seq=1)
    reader = await LivePage.open(alice, room, last_seq=1)
    try:
        await sender.send(post("the answer", reply_to=str(original.pk)))
        composer = await sender.page.expect_composer()
        assert composer.error is None and composer.reply_to is None
        for page in (sender, reader):
            await page.until(2)
        reply = await message_of(room, 2)
        assert reply.reply_to_id == original.pk
        [quote] = reader.shown.item(reply.pk).find_all(lambda n: "reply-quote" in n.classes)
        assert f"quote-of-{original.pk}" in quote.classes
        assert quote.attrs["href"] == f"/messages/{original.pk}/"
        assert "the question" in quote.text()
    finally:
        await sender.disconnect()
        await reader.disconnect()


# --- every kind of change, over the socket ---


async def test_every_change_reaches_every_page_in_order_exactly_once():
    alice, bob, room = await author(), await author(), await a_room()
    a, b = await LivePage.open(alice, room), await LivePage.open(bob, room)
    pages = (a, b)

    async def step(page, frame, seq):
        await page.send(frame)
        for each in pages:
            await each.until(seq)

    try:
        await step(a, post("first"), 1)
        first = await message_of(room, 1)
        await step(b, post("a reply", reply_to=str(first.pk)), 2)
        reply = await message_of(room, 2)
        await step(a, change(edit=first.pk, message="first, **edited**"), 3)
        for page in pages:
            item = page.shown.item(first.pk)
            assert page.shown.text_of(first.pk) == "first, edited"
            assert item.find_all(lambda n: n.tag == "strong")
            assert item.find_all(lambda n: "edited" in n.classes)
            [quote] = page.shown.item(reply.pk).find_all(lambda n: "reply-quote" in n.classes)
            assert "first, edited" in quote.text()  # an excerpt of the words as shown

        await step(b, change(react=f"{first.pk} 👍 on"), 4)
        await step(a, change(react=f"{first.pk} 👍 on"), 5)
        await step(a, change(react=f"{first.pk} 🎉 on"), 6)
        for page in pages:
            reactions = page.shown.item(first.pk).by_id(f"message-{first.pk}-reactions")
            counted = {
                n.attrs["aria-label"]: n.text().split()[-1]
                for n in reactions.find_all(lambda n: "reaction-on" in n.classes)
            }
            assert counted == {"React with 👍": "2", "React with 🎉": "1"}
            chosen = reactions.find_all(lambda n: "has-count" in n.classes)
            assert [n.attrs["data-reactors"].split() for n in chosen] == [
                [f"u{bob.pk}", f"u{alice.pk}"],
                [f"u{alice.pk}"],
            ]
        await step(b, change(react=f"{first.pk} 👍 off"), 7)
        await step(a, change(delete_message=first.pk), 8)
        for page in pages:
            assert page.shown.item(first.pk) is None
            [quote] = page.shown.item(reply.pk).find_all(lambda n: "reply-quote" in n.classes)
            assert quote.text().strip() == "Original message deleted"

        for page in pages:
            await page.settle()
            assert page.shown.applied == list(range(1, 9)), page.shown.applied
            assert page.shown.missed == []
            assert_same_page(page.shown.snapshot(), await fresh_page(alice, room))
        # The changes' senders got no composer, notice or form back: the event says it all.
        for page in pages:  # each one composer: of its post
            assert [Composer(frame).error for frame in page.page.pending] == [None]
        assert await event_kinds(room) == [
            "message.posted",
            "message.posted",
            "message.edited",
            "reactions.changed",
            "reactions.changed",
            "reactions.changed",
            "reactions.changed",
            "message.deleted",
        ]
        deleted = await message_of(room, 1)
        assert deleted.text == "" and deleted.reactions == {} and deleted.deleted_at
        assert not await database_sync_to_async(Reaction.objects.filter(message=deleted).exists)()
    finally:
        for page in pages:
            await page.disconnect()


async def test_staff_may_edit_and_delete_anyones_message():
    alice, staff, room = await author(), await make_staff(), await a_room()
    message = await message_by(room, alice, "by alice")
    moderator = await LivePage.open(staff, room, last_seq=1)
    owner = await LivePage.open(alice, room, last_seq=0)
    try:
        await moderator.send(change(edit=message.pk, message="moderated"))
        await owner.until(2)
        assert owner.shown.text_of(message.pk) == "moderated"
        await moderator.send(change(delete_message=message.pk))
        await owner.until(3)
        assert owner.shown.item(message.pk) is None
    finally:
        await moderator.disconnect()
        await owner.disconnect()


# --- changes that are refused ---


@database_sync_to_async
def _scene():
    """A room with a message of each kind a change could name, and another room."""
    room, elsewhere = make_room(), make_room()
    alice, bob = make_author(), make_author()
    mine = make_message(room=room, author=alice, text="mine")
    theirs = make_message(room=room, author=bob, text="theirs")
    gone = make_message(room=room, author=alice, text="gone soon")
    message_actions.message_delete(room=room, user=alice, message_id=gone.pk)
    far = make_message(room=elsewhere, author=alice, text="in another room")
    room.refresh_from_db()
    ids = {"mine": mine.pk, "theirs": theirs.pk, "gone": gone.pk, "far": far.pk}
    return room, alice, bob, ids


# (id, frame from the ids of the scene, where the error shows, error pattern, text kept,
# the message the edit form is of)
REFUSED = [
    (
        "edit another person's message",
        lambda ids: change(edit=ids["theirs"], message="mine now"),
        EDIT_FORM,
        r"only change your own",
        "mine now",
        "theirs",
    ),
    (
        "delete another person's message",
        lambda ids: change(delete_message=ids["theirs"]),
        NOTICE,
        r"only change your own",
        None,
        None,
    ),
    (
        "edit an unknown message",
        lambda ids: change(edit=NOWHERE, message="new"),
        EDIT_FORM,
        r"does not exist",
        "new",
        NOWHERE,
    ),
    (
        "delete an unknown message",
        lambda ids: change(delete_message=NOWHERE),
        NOTICE,
        r"does not exist",
        None,
        None,
    ),
    (
        "react to an unknown message",
        lambda ids: change(react=f"{NOWHERE} 👍 on"),
        NOTICE,
        r"does not exist",
        None,
        None,
    ),
    (
        "edit a deleted message",
        lambda ids: change(edit=ids["gone"], message="back"),
        EDIT_FORM,
        r"was deleted",
        "back",
        "gone",
    ),
    (
        "delete a deleted message",
        lambda ids: change(delete_message=ids["gone"]),
        NOTICE,
        r"was deleted",
        None,
        None,
    ),
    (
        "react to a deleted message",
        lambda ids: change(react=f"{ids['gone']} 👍 on"),
        NOTICE,
        r"was deleted",
        None,
        None,
    ),
    (
        "react with an emoji outside the set",
        lambda ids: change(react=f"{ids['theirs']} 💩 on"),
        NOTICE,
        r"not one of the offered",
        None,
        None,
    ),
    (
        "react with a look-alike emoji",
        lambda ids: change(react=f"{ids['theirs']} \u2764 on"),  # ❤ without its variation
        NOTICE,
        r"not one of the offered",
        None,
        None,
    ),
    (
        "take back a reaction never made",
        lambda ids: change(react=f"{ids['theirs']} 😮 maybe"),
        NOTICE,
        r"'react' must be",
        None,
        None,
    ),
    (
        "edit a message of another room",
        lambda ids: change(edit=ids["far"], message="here now"),
        EDIT_FORM,
        r"does not exist in this room",
        "here now",
        "far",
    ),
    (
        "delete a message of another room",
        lambda ids: change(delete_message=ids["far"]),
        NOTICE,
        r"does not exist in this room",
        None,
        None,
    ),
    (
        "react to a message of another room",
        lambda ids: change(react=f"{ids['far']} 👍 on"),
        NOTICE,
        r"does not exist in this room",
        None,
        None,
    ),
    (
        "reply to a message of another room",
        lambda ids: post("a stray reply", reply_to=str(ids["far"])),
        COMPOSER,
        r"not in this room",
        "a stray reply",
        None,
    ),
    (
        "reply to a deleted message",
        lambda ids: post("too late", reply_to=str(ids["gone"])),
        COMPOSER,
        r"not in this room",
        "too late",
        None,
    ),
    (
        "edit to blank",
        lambda ids: change(edit=ids["mine"], message=" \n "),
        EDIT_FORM,
        r"Write something",
        " \n ",
        "mine",
    ),
    (
        "edit past the length limit",
        lambda ids: change(edit=ids["mine"], message=TOO_LONG),
        EDIT_FORM,
        r"limit",
        TOO_LONG,
        "mine",
    ),
    (
        "edit with a control character",
        lambda ids: change(edit=ids["mine"], message="bell\x07"),
        EDIT_FORM,
        r"control character",
        "bell\x07",
        "mine",
    ),
    (
        "a forged id in a reaction",
        lambda ids: change(react=f"{ids['mine']}; DROP TABLE chat_message 👍 on"),
        NOTICE,
        r"'react' must be",
        None,
        None,
    ),
    (
        "a stale edit: the id as text with a sign",
        lambda ids: change(edit=f"+{ids['mine']}", message="x"),
        NOTICE,
        r"whole number",
        None,
        None,
    ),
]


@pytest.mark.parametrize(
    ("make_frame", "where", "pattern", "kept", "form_of"),
    [pytest.param(*case[1:], id=case[0]) for case in REFUSED],
)
async def test_a_refused_change_says_why_changes_nothing_and_harms_nobody(
    make_frame, where, pattern, kept, form_of
):
    room, alice, bob, ids = await _scene()
    before = await room_state(room)
    sender = await LivePage.open(alice, room, last_seq=room.last_seq)
    reader = await LivePage.open(bob, room, last_seq=room.last_seq)
    try:
        await sender.send(make_frame(ids))
        form_id = ids.get(form_of, form_of) if form_of is not None else NOWHERE
        await expect_refusal(sender.page, where, pattern, kept, message_id=form_id)
        assert await room_state(room) == before  # nothing changed

        # The socket still works, for a change and a post; the other person saw nothing
        # of the refusal, and still chats.
        await sender.send(change(react=f"{ids['theirs']} 🙏 on"))
        await sender.send(post("still here"))
        await reader.until(room.last_seq + 2)
        assert reader.shown.applied == [room.last_seq + 1, room.last_seq + 2]
        await reader.send(post("bob is fine"))
        await sender.until(room.last_seq + 3)
        assert (await reader.page.expect_composer()).error is None
        await reader.settle()
        assert reader.page.pending == [] and reader.shown.applied[-1] == room.last_seq + 3
        await sender.settle()
        assert [Composer(frame).error for frame in sender.page.pending] == [None]
    finally:
        await sender.disconnect()
        await reader.disconnect()


# --- the same form twice ---


async def test_the_same_change_twice_changes_things_once():
    alice, bob, room = await author(), await author(), await a_room()
    message = await message_by(room, alice, "typo")
    sender = await LivePage.open(alice, room, last_seq=1)
    reader = await LivePage.open(bob, room, last_seq=1)
    edit = change(edit=message.pk, message="fixed")
    react = change(react=f"{message.pk} 🎉 on")
    delete = change(delete_message=message.pk)
    try:
        for frame in (edit, edit, react, react):
            await sender.send(frame)
        await reader.until(3)
        await sender.send(delete)
        await sender.send(delete)
        # The second delete finds the message gone: said in the notice, nothing changes.
        assert re.search(r"was deleted", await sender.page.expect_notice())
        await sender.send(post("after"))
        await reader.until(5)
        await reader.settle()
        assert reader.shown.applied == [2, 3, 4, 5]
        assert await event_kinds(room, after_seq=1) == [
            "message.edited",
            "reactions.changed",
            "message.deleted",
            "message.posted",
        ]
        # The second edit changed nothing: its sender's editor just closes.
        await sender.settle()
        editors = [
            frame
            for frame in sender.page.pending
            if not is_event(frame) and f'id="message-{message.pk}-editor"' in frame
        ]
        assert len(editors) == 1
    finally:
        await sender.disconnect()
        await reader.disconnect()


async def test_two_tabs_pressing_the_same_reaction_end_in_one_state():
    alice, bob, room = await author(), await author(), await a_room()
    message = await message_by(room, bob, "react to me")
    tabs = [await LivePage.open(alice, room, last_seq=1) for _ in range(2)]
    reader = await LivePage.open(bob, room, last_seq=1)
    try:
        for on, expected_seq in (("on", 2), ("off", 3)):
            frame = change(react=f"{message.pk} ❤️ {on}")
            await asyncio.gather(*(tab.send(frame) for tab in tabs))
            # A socket's frames are handled in order: a refused probe after the press
            # says that both tabs are done with it.
            for tab in tabs:
                await tab.send(change(react="probe"))
                assert "'react' must be" in await tab.page.expect_notice()
            await reader.until(expected_seq)
        await reader.send(post("done"))
        for page in (*tabs, reader):
            await page.until(4)
            await page.settle()
        assert reader.shown.applied == [2, 3, 4]
        assert await event_kinds(room, after_seq=1) == [
            "reactions.changed",
            "reactions.changed",
            "message.posted",
        ]
        assert (await message_of(room, 1)).reactions == {}
        for tab in tabs:  # neither tab was told anything but the event
            assert [frame for frame in tab.page.pending if not is_event(frame)] == []
    finally:
        for page in (*tabs, reader):
            await page.disconnect()


# --- catch-up after a reconnect ---


async def test_catch_up_replays_every_kind_of_change_to_the_same_page_as_live():
    alice, bob, carol, room = await author(), await author(), await author(), await a_room()
    actor = await LivePage.open(alice, room)
    helper = await LivePage.open(bob, room)
    live = await LivePage.open(carol, room)
    away = await LivePage.open(carol, room)
    pages = [actor, helper, live, away]

    async def step(page, frame):
        seq = await last_seq_of(room) + 1
        await page.send(frame)
        for each in pages:
            await each.until(seq)
        return seq

    try:
        await step(actor, post("one"))
        await step(helper, post("two"))
        one, two = await message_of(room, 1), await message_of(room, 2)
        await step(helper, change(react=f"{one.pk} 👍 on"))
        shown_when_away = copy.deepcopy(away.shown)
        await away.disconnect()
        pages.remove(away)

        # While the page is away: one of each kind, and changes to what it already shows.
        await step(actor, change(edit=one.pk, message="one, edited"))
        await step(helper, change(react=f"{two.pk} ❤️ on"))
        await step(helper, post("a reply to one", reply_to=str(one.pk)))
        await step(actor, change(react=f"{one.pk} 🎉 on"))
        await step(helper, change(react=f"{one.pk} 👍 off"))
        await step(helper, change(delete_message=two.pk))
        await step(actor, change(edit=one.pk, message="one, edited twice"))
        await step(actor, post("three"))
        three = await message_of(room, await last_seq_of(room))
        await step(actor, change(delete_message=three.pk))
        newest = await last_seq_of(room)

        # Back: the page reports where it was, and gets the rest, once, in order.
        away = await LivePage.open(carol, room, shown=away.shown)
        pages.append(away)
        await away.until(newest)
        await away.settle()
        assert shown_when_away.last_seq == 3
        assert away.shown.applied == list(range(1, newest + 1))
        expected = await fresh_page(carol, room)
        assert_same_page(live.shown.snapshot(), expected)
        assert_same_page(away.shown.snapshot(), expected)
        assert "one, edited twice" in away.shown.text_of(one.pk)

        # A page that starts from nothing replays the whole stream to the same page, from
        # memory while the process serves the room ...
        blank = await LivePage.open(carol, room, last_seq=0)
        pages.append(blank)
        await blank.until(newest)
        assert_same_page(blank.shown.snapshot(), expected)
    finally:
        for page in pages:
            await page.disconnect()

    # ... and from the database once no page of the room is open (each event rendered
    # from the message's state now), for a page that was away and for a blank one.
    for shown in (shown_when_away, ShownPage()):
        page = await LivePage.open(carol, room, shown=shown)
        try:
            await page.until(newest)
            await page.settle()
            assert page.shown.applied == list(range(1, newest + 1))
            assert_same_page(page.shown.snapshot(), expected)
        finally:
            await page.disconnect()


async def test_a_page_that_never_says_where_it_is_gets_what_follows_its_url(monkeypatch):
    monkeypatch.setattr(feed_module, "CATCH_UP_WAIT_SECONDS", 0.2)
    alice, room = await author(), await a_room()
    for number in range(1, 4):
        await message_by(room, alice, f"m{number}")
    communicator = WebsocketCommunicator(application, f"/ws/chat/{room.slug}/?after=1")
    communicator.scope["user"] = await database_sync_to_async(_as_signed_in)(alice)
    connected, _ = await communicator.connect(timeout=WAIT)
    assert connected
    page = LivePage(Page(communicator))
    page.shown.applied = [1]
    try:
        await page.until(3)  # without a catch-up frame, after the wait
        assert page.shown.applied == [1, 2, 3]
        assert [page.shown.text_of(pk) for pk in page.shown.items] == ["m2", "m3"]
    finally:
        await page.disconnect()
