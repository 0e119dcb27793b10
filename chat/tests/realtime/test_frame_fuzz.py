"""Hundreds of generated frames of every kind against one room socket on the real Redis
channel layer.

Each example sends one generated frame, then a "probe" frame that is always refused with
its own number in the error: when the probe's error arrives, the generated frame has been
dealt with (a socket's frames are handled in order). Frames are generated as

- valid posts, each carrying a unique marker: stored once, delivered once to every page;
- valid edits (of the sender's own messages, each new text with a marker), deletes (of
  the sender's own) and reactions (on or off, on any shown message), drawn from the room
  as it is: each that changes something is the room's next event, stored as sent;
- invalid by construction (mutations of a valid post or change, truncations, binary
  frames; another person's, a deleted or an unknown message; an emoji outside the set):
  one error where the sender looks, nothing stored, no event;
- junk (random text, random JSON, random edits of a valid frame): anything may happen,
  but whatever is stored must be valid.

Afterwards the database is re-validated, each page must have applied every event once, in
order, and show what a fresh load shows, and the room must still serve a fresh socket and
the other user.
"""

import asyncio
import itertools
import json
import logging
import re
import uuid
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from chat.actions.messages import clean_message_text
from chat.actions.reactions import REACTION_EMOJI
from chat.models import Message, Reaction, Room, RoomEvent
from chat.realtime.frames import DELETE_FIELDS, EDIT_FIELDS, POST_FIELDS, REACT_FIELDS
from chat.tests.factories import make_author, make_room
from chat.tests.realtime.test_consumer import ShownPage, assert_same_page, fresh_page, is_event
from chat.tests.test_security import (
    Composer,
    is_composer,
    is_edit_form,
    is_notice,
    logged_errors,
    message_texts,
    notice_text,
    open_socket,
    parse_html,
)

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = 650
HEADERS = {"HX-Request": "true", "HX-Trigger": "composer", "HX-Target": "composer"}
CONTROL = [chr(c) for c in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0)]]
SURROGATES = [chr(c) for c in (0xD800, 0xDBFF, 0xDC00, 0xDFFF, 0xDABC)]
NOWHERE = 987_654_321  # no message has this id


@dataclass
class Case:
    kind: str  # "valid", "invalid" or "junk"
    frame: str | bytes
    marker: str | None = None  # in the text of posts and edits built from a valid one
    text: str | None = None  # valid posts and edits: the text as it must be stored
    change: str = "post"  # what a valid frame does: post, edit, delete or react
    target: int | None = None  # the message a valid change names
    emoji: str | None = None
    on: bool | None = None
    changed: bool | None = None  # valid reactions: whether the room was not so already


@dataclass
class RoomNow:
    """The room as the sender's next frame finds it (read before each draw)."""

    mine: list  # ids of the sender's shown messages
    theirs: list  # ids of the other user's shown messages
    deleted: list  # ids of deleted messages

    @property
    def shown(self):
        return self.mine + self.theirs


# --- strategies ---

# Text a person may send: anything but control characters and lone surrogates, plus
# newlines and tabs (and CR, which is stored as a newline).
message_chars = st.one_of(
    st.characters(exclude_categories=("Cc", "Cs")), st.sampled_from("\n\t\r ")
)
message_text = st.text(message_chars, max_size=120)
markers = st.builds(lambda: f"fz{uuid.uuid4().hex[:16]}")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def _post(marker, rest, *, key=True, headers=True):
    frame = {"message": f"{marker} {rest}"}
    if key:
        frame["client_key"] = str(uuid.uuid4())
    if headers:
        frame["HEADERS"] = HEADERS
    return frame


@st.composite
def valid_posts(draw):
    marker, rest = draw(markers), draw(message_text)
    frame = _post(marker, rest, key=draw(st.booleans()), headers=draw(st.booleans()))
    if draw(st.booleans()):
        frame["csrfmiddlewaretoken"] = draw(st.text(max_size=64))
    text = json.dumps(frame, ensure_ascii=draw(st.booleans()))
    return Case("valid", text, marker, clean_message_text(frame["message"]))


@st.composite
def invalid_posts(draw):
    """A valid post with one thing made wrong."""
    marker, rest = draw(markers), draw(message_text)
    frame = _post(marker, rest)
    how = draw(
        st.sampled_from(
            [
                "control",
                "surrogate",
                "unknown field",
                "message not text",
                "no message",
                "bad key",
                "key not text",
                "too long",
                "blank",
                "nested",
                "headers not object",
                "oversized",
            ]
        )
    )
    # Inside the marker: some control characters are whitespace that strip() would drop
    # from the ends (then the text is fine, and stored without them).
    at = draw(st.integers(1, len(marker) - 1))
    if how == "control":
        frame["message"] = (
            frame["message"][:at] + draw(st.sampled_from(CONTROL)) + frame["message"][at:]
        )
    elif how == "surrogate":
        frame["message"] = (
            frame["message"][:at] + draw(st.sampled_from(SURROGATES)) + frame["message"][at:]
        )
    elif how == "unknown field":
        name = draw(st.text(max_size=30).filter(lambda name: name not in POST_FIELDS))
        frame[name] = draw(json_values)
    elif how == "message not text":
        frame["message"] = draw(json_values.filter(lambda value: not isinstance(value, str)))
    elif how == "no message":
        del frame["message"]
    elif how == "bad key":
        frame["client_key"] = draw(
            st.text(max_size=40).filter(lambda key: key and not _is_uuid_text(key))
        )
    elif how == "key not text":
        frame["client_key"] = draw(
            json_values.filter(lambda value: not isinstance(value, str) and value is not None)
        )
    elif how == "too long":
        frame["message"] = marker + "x" * 4000
    elif how == "blank":
        frame["message"] = draw(st.text(st.sampled_from(" \n\t\r\u3000\u00a0\u2003"), max_size=20))
    elif how == "nested":
        depth = draw(st.integers(4, 50))
        frame["HEADERS"] = {"a": json.loads("[" * depth + "]" * depth)}
    elif how == "headers not object":
        frame["HEADERS"] = draw(json_values.filter(lambda value: not isinstance(value, dict)))
    elif how == "oversized":
        frame["message"] = marker + " " + "y" * 70_000
    return Case("invalid", json.dumps(frame), marker)


def _is_uuid_text(text):
    return re.fullmatch(r"[0-9a-fA-F]{8}-?(?:[0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}", text) is not None


@st.composite
def broken_json(draw):
    """A valid post cut short, or followed by something that is not whitespace."""
    valid = draw(valid_posts())
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(valid.frame) - 1))
        return Case("invalid", valid.frame[:cut], valid.marker)
    tail = draw(st.text(min_size=1, max_size=20).filter(lambda tail: tail.strip() != ""))
    return Case("invalid", valid.frame + tail, valid.marker)


@st.composite
def edited_posts(draw):
    """A valid post with characters inserted, deleted or replaced anywhere: junk."""
    frame = draw(valid_posts()).frame
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(frame)))
        edit = draw(st.sampled_from(["insert", "delete", "replace"]))
        char = draw(st.characters() | st.sampled_from([*SURROGATES, *CONTROL, *'{}[]":,\\']))
        if edit == "insert":
            frame = frame[:at] + char + frame[at:]
        elif edit == "delete":
            frame = frame[:at] + frame[at + 1 :]
        else:
            frame = frame[:at] + char + frame[at + 1 :]
    return Case("junk", frame)


random_text = st.text(max_size=200).map(lambda text: Case("junk", text))
binary_frames = st.binary(max_size=200).map(lambda data: Case("invalid", data))
random_json = json_values.map(lambda value: Case("junk", json.dumps(value)))
message_with_any_value = st.builds(
    lambda value, extra: Case("junk", json.dumps({**extra, "message": value})),
    json_values,
    st.dictionaries(
        st.sampled_from(sorted(POST_FIELDS)) | st.text(max_size=8), json_values, max_size=3
    ),
)
catch_ups = st.builds(
    lambda value: Case("junk", json.dumps({"last_seq": value, "HEADERS": HEADERS})),
    st.integers(-3, 3) | st.sampled_from(["0", "1", "x", "", "-1", "1.5", None, True]),
)


# --- changes, drawn from the room as it is ---
#
# The room changes between examples, and Hypothesis wants the same draws to make the same
# choices: so a message is picked by a drawn number (modulo the candidates), never by
# sampling the candidates, and each strategy draws alike whatever the room holds.


def _pick(draw, ids):
    number = draw(st.integers(0, 2**16))
    return ids[number % len(ids)] if ids else None


def _form(draw, frame):
    """The fields every form of the page adds, or not; as compact or escaped JSON."""
    if draw(st.booleans()):
        frame["csrfmiddlewaretoken"] = draw(st.text(max_size=64))
    if draw(st.booleans()):
        frame["HEADERS"] = {**HEADERS, "HX-Trigger": draw(st.sampled_from(["", "x", "composer"]))}
    return json.dumps(frame, ensure_ascii=draw(st.booleans()))


def _id(draw, pk):
    return draw(st.sampled_from([pk, str(pk)]))


@st.composite
def valid_edits(draw, room, *, delete=False):
    """An edit of one of the sender's messages (or with `delete`, its deletion, while
    the sender has more than two). Without any message of the sender's: a post."""
    pk, marker, rest = _pick(draw, room.mine), draw(markers), draw(message_text)
    text = f"{marker} {rest}"
    if delete and len(room.mine) > 2:
        frame = _form(draw, {"delete_message": _id(draw, pk)})
        return Case("valid", frame, change="delete", target=pk)
    if pk is None:
        frame = _form(draw, {"message": text})
        return Case("valid", frame, marker, clean_message_text(text))
    frame = _form(draw, {"edit": _id(draw, pk), "message": text})
    return Case("valid", frame, marker, clean_message_text(text), "edit", pk)


def valid_deletes(room):
    return valid_edits(room, delete=True)


@st.composite
def valid_reactions(draw, room):
    pk, emoji, on = _pick(draw, room.shown), draw(emojis), draw(st.booleans())
    frame = _form(draw, {"react": f"{pk} {emoji} {'on' if on else 'off'}"})
    return Case("valid", frame, change="react", target=pk, emoji=emoji, on=on)


emojis = st.sampled_from(REACTION_EMOJI)
not_offered = st.text(
    st.characters(exclude_categories=("Cs", "Zs", "Cc")), min_size=1, max_size=4
).filter(lambda text: text not in REACTION_EMOJI and " " not in text)
bad_ids = st.one_of(
    st.sampled_from(["", "0", "-1", "1.5", "1e3", " 7", "x", "9" * 19, "\u0663", "+7"]),
    st.sampled_from([0, -1, 1.5, True, None, [], {}, 2**62]),
)


@st.composite
def invalid_changes(draw, room):
    """A change that must be refused, with one clear error, changing nothing."""
    marker = draw(markers)
    # Junk may have deleted all of the sender's messages: then the unknown one will do
    # (each of these is refused before the message is looked up).
    mine = _pick(draw, room.mine) or NOWHERE
    theirs, gone = _pick(draw, room.theirs), _pick(draw, room.deleted)
    how = draw(
        st.sampled_from(
            [
                "edit theirs",
                "edit deleted",
                "edit unknown",
                "edit blank",
                "edit too long",
                "edit control",
                "edit surrogate",
                "edit no text",
                "edit text not text",
                "edit bad id",
                "edit unknown field",
                "delete theirs",
                "delete deleted",
                "delete unknown",
                "delete bad id",
                "delete unknown field",
                "react not offered",
                "react deleted",
                "react unknown",
                "react bad value",
                "react bad id",
                "react unknown field",
            ]
        )
    )
    text = f"{marker} {draw(message_text)}"
    frame = {
        "edit theirs": {"edit": theirs, "message": text},
        "edit deleted": {"edit": gone, "message": text},
        "edit unknown": {"edit": NOWHERE, "message": text},
        "edit blank": {
            "edit": mine,
            "message": draw(st.text(st.sampled_from(" \n\t\r"), max_size=9)),
        },
        "edit too long": {"edit": mine, "message": marker + "x" * 4000},
        "edit control": {
            "edit": mine,
            "message": marker[:3] + draw(st.sampled_from(CONTROL)) + marker[3:],
        },
        "edit surrogate": {"edit": mine, "message": marker + draw(st.sampled_from(SURROGATES))},
        "edit no text": {"edit": mine},
        "edit text not text": {
            "edit": mine,
            "message": draw(json_values.filter(lambda value: not isinstance(value, str))),
        },
        "edit bad id": {"edit": draw(bad_ids), "message": text},
        "edit unknown field": {"edit": mine, "message": text, draw(unknown(EDIT_FIELDS)): 1},
        "delete theirs": {"delete_message": theirs},
        "delete deleted": {"delete_message": gone},
        "delete unknown": {"delete_message": NOWHERE},
        "delete bad id": {"delete_message": draw(bad_ids)},
        "delete unknown field": {"delete_message": mine, draw(unknown(DELETE_FIELDS)): 1},
        "react not offered": {"react": f"{mine} {draw(not_offered)} on"},
        "react deleted": {"react": f"{gone} {draw(emojis)} on"},
        "react unknown": {"react": f"{NOWHERE} {draw(emojis)} off"},
        "react bad value": {
            "react": draw(
                st.sampled_from(
                    [f"{mine} 👍", f"{mine} 👍 toggle", f"{mine}  👍 on", f"👍 {mine} on", "", 7]
                )
            )
        },
        "react bad id": {"react": f"{draw(bad_ids)} 👍 on"},
        "react unknown field": {"react": f"{mine} 👍 on", draw(unknown(REACT_FIELDS)): 1},
    }[how]
    return Case("invalid", _form(draw, frame), marker, change=how)


def unknown(fields):
    # Not a field of any kind: one would make it a frame of that kind.
    known = POST_FIELDS | EDIT_FIELDS | DELETE_FIELDS | REACT_FIELDS | {"last_seq", "typing"}
    return st.text(max_size=12).filter(lambda name: name not in known | fields)


@st.composite
def edited_changes(draw, room):
    """A valid change with characters inserted, deleted or replaced anywhere: junk."""
    frame = draw(st.one_of(valid_edits(room), valid_deletes(room), valid_reactions(room))).frame
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, 2**16)) % (len(frame) + 1)  # the frame's length varies
        char = draw(st.characters() | st.sampled_from([*SURROGATES, *CONTROL, *'{}[]":,\\ ']))
        frame = frame[:at] + char + frame[at + draw(st.integers(0, 1)) :]
    return Case("junk", frame)


def cases(room):
    choices = [
        valid_posts(),
        valid_posts(),
        valid_reactions(room),
        valid_reactions(room),
        invalid_posts(),
        invalid_changes(room),
        invalid_changes(room),
        broken_json(),
        edited_posts(),
        edited_changes(room),
        random_text,
        binary_frames,
        random_json,
        message_with_any_value,
        catch_ups,
        valid_edits(room),
        valid_edits(room),
        valid_deletes(room),
        valid_deletes(room),
        valid_deletes(room),
    ]
    return st.one_of(*choices)


# --- the room, read between frames ---


def room_now(room, alice):
    rows = Message.objects.filter(room=room).values_list("pk", "author_id", "deleted_at")
    mine = [pk for pk, author, deleted in rows if author == alice.pk and deleted is None]
    theirs = [pk for pk, author, deleted in rows if author != alice.pk and deleted is None]
    return RoomNow(mine, theirs, [pk for pk, _, deleted in rows if deleted is not None])


def last_seq(room):
    return Room.objects.get(pk=room.pk).last_seq


def reacted(pk, user, emoji):
    return Reaction.objects.filter(message_id=pk, user=user, emoji=emoji).exists()


def is_answer(frame):
    """What only the sender gets: its composer, the notice, an edit form or its editor."""
    if is_event(frame):
        return False
    return is_composer(frame) or is_notice(frame) or is_edit_form(frame) or "-editor" in frame


def error_of(frame):
    if is_composer(frame):
        return Composer(frame).error
    if is_notice(frame):
        return notice_text(frame) or None
    if is_edit_form(frame):
        errors = parse_html(frame).find_all(lambda node: "field-error" in node.classes)
        return errors[0].text().strip() if errors else None
    return None


# --- the test ---


def test_generated_frames_of_every_kind_change_only_what_they_may(settings, caplog):
    settings.CHAT_RATE_LIMIT = None
    settings.CHAT_PAGE_SIZE = 10_000  # a fresh load shows the whole room
    caplog.set_level(logging.INFO)
    alice, bob, carol = make_author(), make_author(), make_author()
    room = make_room()
    loop = asyncio.new_event_loop()

    def run(coroutine, timeout=60):
        return loop.run_until_complete(asyncio.wait_for(coroutine, timeout))

    sender = run(open_socket(alice, room))
    reader = run(open_socket(bob, room))
    numbers = itertools.count(1)
    sent = []

    async def exchange(case, number):
        await sender.send(case.frame)
        await sender.send(json.dumps({"message": "probe", f"probe-{number}-end": 1}))
        probe = await sender.expect(lambda frame: f"probe-{number}-end" in frame)
        assert is_composer(probe)
        # What arrived before the probe's answer, for the sender alone, answers this frame.
        answers = [frame for frame in sender.pending if is_answer(frame)]
        sender.pending = []
        return answers

    def check(case, answers, before):
        after = last_seq(room)
        errors = [error_of(frame) for frame in answers]
        if case.kind == "invalid":
            assert len(answers) == 1 and errors[0], (case, answers)
            assert after == before, case  # nothing changed
            return
        if case.kind == "junk":
            assert len(answers) <= 1, case
            return
        event = RoomEvent.objects.filter(room=room, seq=after).select_related("message").first()
        if case.change == "post":
            assert errors == [None] and Composer(answers[0]).text == "", (case, errors)
            assert after == before + 1 and event.kind == "message.posted", case
            assert event.message.text == case.text and event.message.author_id == alice.pk
        elif case.change == "edit":
            assert answers == [], (case, errors)
            assert after == before + 1 and event.kind == "message.edited", case
            assert event.message_id == case.target and event.message.text == case.text
        elif case.change == "delete":
            assert answers == [], (case, errors)
            assert after == before + 1 and event.kind == "message.deleted", case
            assert event.message_id == case.target and event.message.is_deleted
        else:
            assert answers == [], (case, errors)
            assert reacted(case.target, alice, case.emoji) is case.on, case
            if after == before:  # it was so already: the same form again changes nothing
                assert case.changed is False, case
            else:
                assert after == before + 1 and event.kind == "reactions.changed", case
                assert event.message_id == case.target

    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def one_frame(data):
        now = room_now(room, alice)
        case = data.draw(cases(now))
        if case.change == "react" and case.kind == "valid":
            case.changed = reacted(case.target, alice, case.emoji) is not case.on
        number = next(numbers)
        sent.append(case)
        before = last_seq(room)
        check(case, run(exchange(case, number)), before)

    try:
        # Messages of each kind first: the sender's, the other user's, a deleted one; and
        # enough of them that catch-up frames (last_seq <= 3) never claim a position ahead
        # of the page.
        for page, text in [
            (sender, "warm-up 1"),
            (sender, "warm-up 2"),
            (sender, "warm-up 3"),
            (reader, "bob 1"),
            (reader, "bob 2"),
            (sender, "soon gone"),
        ]:
            run(page.send(json.dumps({"message": text})))
            # The sender's own message may come before or after its composer: await both.
            assert run(page.expect_composer()).error is None
            for each in (sender, reader):
                run(each.expect_message(text))
        gone = Message.objects.get(room=room, text="soon gone")
        run(sender.send(json.dumps({"delete_message": gone.pk})))
        run(reader.expect(lambda frame: f'id="message-{gone.pk}" hx-swap-oob="delete"' in frame))
        reader.pending = []
        run(sender.settle())
        sender.pending = []
        warmed_up = len(reader.received)  # Bob's own composers were answers to Bob
        one_frame()
        assert len(sent) >= 600, f"only {len(sent)} frames were generated"

        # Both pages have received everything by the time a last message reaches them.
        run(sender.send(json.dumps({"message": "the last word"})))
        for page in (sender, reader):
            run(page.expect_message("the last word"))
            run(page.settle())

        # The database holds only valid text: each valid post and edit as sent, nothing
        # invalid; deleted messages hold no text.
        stored = list(Message.objects.filter(room=room).order_by("seq"))
        for message in stored:
            if message.is_deleted:
                assert message.text == "" and message.reactions == {}
            else:
                assert clean_message_text(message.text) == message.text, repr(message.text)
            assert message.author_id in (alice.pk, bob.pk)
        valid = [case for case in sent if case.kind == "valid"]
        kinds = {
            kind: sum(case.kind == kind for case in sent) for kind in ("valid", "invalid", "junk")
        }
        changes = {
            change: sum(case.change == change for case in valid)
            for change in ("post", "edit", "delete", "react")
        }
        assert kinds["valid"] > 100 and kinds["invalid"] > 100 and kinds["junk"] > 100, kinds
        assert all(count > 10 for count in changes.values()), changes
        for case in sent:
            if case.kind == "invalid" and case.marker:
                assert not [m.text for m in stored if case.marker in m.text], case
        for case in valid:
            if case.change == "post":
                holding = [m for m in stored if m.text.startswith(case.marker)]
                # Posted once; then maybe edited or deleted by a later valid frame.
                assert len(holding) <= 1, (case, holding)
        events = list(RoomEvent.objects.filter(room=room).order_by("seq"))
        assert [event.seq for event in events] == list(range(1, last_seq(room) + 1))
        assert [m.seq for m in stored] == [e.seq for e in events if e.kind == "message.posted"]

        # Every page applied every event once, in order, and shows what a fresh load shows;
        # Bob saw no one's errors.
        expected = run(fresh_page(bob, room))
        for page in (sender, reader):
            shown = ShownPage()
            for frame in page.received:
                if is_event(frame):
                    shown.apply(frame)
            assert shown.applied == [event.seq for event in events]
            assert_same_page(shown.snapshot(), expected)
        assert not [frame for frame in reader.received[warmed_up:] if is_answer(frame)]
        shown_texts = [text for frame in reader.received for text in message_texts(frame)]
        for case in valid:
            if case.change == "post":
                assert sum(text.startswith(case.marker) for text in shown_texts) >= 1, case

        # The room still works: a fresh page and the other user both chat.
        fresh = run(open_socket(carol, room, last_seq=last_seq(room)))
        try:
            run(fresh.send(json.dumps({"message": "carol joins", "client_key": str(uuid.uuid4())})))
            for page in (fresh, sender, reader):
                run(page.expect_message("carol joins"))
            run(reader.send(json.dumps({"message": "bob answers"})))
            for page in (fresh, sender, reader):
                run(page.expect_message("bob answers"))
            run(sender.send(json.dumps({"message": "alice too"})))
            for page in (fresh, reader):
                run(page.expect_message("alice too"))
        finally:
            run(fresh.disconnect())
    finally:
        for page in (sender, reader):
            run(page.disconnect())

        async def finish():
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if others:
                await asyncio.wait(others, timeout=10)

        run(finish())
        loop.close()

    errors = logged_errors(caplog.records)
    assert not errors, errors
