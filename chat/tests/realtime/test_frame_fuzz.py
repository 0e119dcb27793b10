"""Hundreds of generated frames against one room socket on the real Redis channel layer.

Each example sends one generated frame, then a "probe" frame that is always refused with
its own number in the error: when the probe's error arrives, the generated frame has been
dealt with (a socket's frames are handled in order). Frames are generated as

- valid posts, each carrying a unique marker: stored once, delivered once to every page;
- invalid by construction (mutations of a valid post, truncations, binary frames): a
  composer error, nothing stored;
- junk (random text, random JSON, random edits of a valid post): anything may happen,
  but whatever is stored must be valid text.

Afterwards the database is re-validated, every page is checked for what it received, and
the room must still serve a fresh socket and the other user.
"""

import asyncio
import itertools
import json
import logging
import uuid
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from chat.models import Message
from chat.protocol import POST_FIELDS
from chat.services import clean_message_text
from chat.tests.factories import make_room, make_user
from chat.tests.test_security import (
    Composer,
    is_composer,
    is_message,
    logged_errors,
    message_texts,
    open_socket,
)

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = 520
HEADERS = {"HX-Request": "true", "HX-Trigger": "composer", "HX-Target": "composer"}
CONTROL = [chr(c) for c in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0)]]
SURROGATES = [chr(c) for c in (0xD800, 0xDBFF, 0xDC00, 0xDFFF, 0xDABC)]


@dataclass
class Case:
    kind: str  # "valid", "invalid" or "junk"
    frame: str | bytes
    marker: str | None = None  # in the text of posts built from a valid one
    text: str | None = None  # valid posts: the text as it must be stored


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
    import re

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

cases = st.one_of(
    valid_posts(),
    valid_posts(),
    invalid_posts(),
    invalid_posts(),
    broken_json(),
    edited_posts(),
    random_text,
    binary_frames,
    random_json,
    message_with_any_value,
    catch_ups,
)


# --- the test ---


def test_generated_frames_store_only_valid_text_and_leave_the_room_working(settings, caplog):
    settings.CHAT_RATE_LIMIT = None
    caplog.set_level(logging.INFO)
    alice, bob, carol = make_user(), make_user(), make_user()
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
        # Composers that arrived before the probe's are this frame's answer.
        answers = [frame for frame in sender.pending if is_composer(frame)]
        sender.pending = [frame for frame in sender.pending if not is_composer(frame)]
        return [Composer(frame) for frame in answers]

    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def one_frame(case):
        number = next(numbers)
        sent.append(case)
        composers = run(exchange(case, number))
        if case.kind == "valid":
            assert [c.error for c in composers] == [None], (case, [c.error for c in composers])
            assert composers[0].text == ""
        elif case.kind == "invalid":
            assert len(composers) == 1 and composers[0].error, (case, composers)
        else:
            assert len(composers) <= 1, case

    try:
        # Three messages first, so that catch-up frames (last_seq <= 3) never claim a
        # position ahead of the page.
        for number in range(1, 4):
            run(sender.send(json.dumps({"message": f"warm-up {number}"})))
            # The sender's own message may come before or after its composer: await both.
            assert run(sender.expect_composer()).error is None
            for page in (sender, reader):
                run(page.expect_message(f"warm-up {number}"))
        sender.pending = []
        one_frame()
        assert len(sent) >= 500, f"only {len(sent)} frames were generated"

        # Both pages have received everything by the time a last message reaches them.
        run(sender.send(json.dumps({"message": "the last word"})))
        for page in (sender, reader):
            run(page.expect_message("the last word"))
            run(page.settle())

        # The database holds only valid text: each valid post once, nothing invalid.
        stored = list(Message.objects.filter(room=room).order_by("seq"))
        for message in stored:
            assert clean_message_text(message.text) == message.text, repr(message.text)
            assert message.author_id in (alice.pk, bob.pk)
        valid = [case for case in sent if case.kind == "valid"]
        kinds = {
            kind: sum(case.kind == kind for case in sent) for kind in ("valid", "invalid", "junk")
        }
        assert kinds["valid"] > 50 and kinds["invalid"] > 100 and kinds["junk"] > 100, kinds
        for case in valid:
            holding = [m.text for m in stored if case.marker in m.text]
            assert holding == [case.text], (case, holding)
        for case in sent:
            if case.kind == "invalid" and case.marker:
                assert not [m.text for m in stored if case.marker in m.text], case
        assert [m.seq for m in stored] == list(range(1, len(stored) + 1))

        # Every page got every stored message once, in order, and Bob saw no one's errors.
        for page in (sender, reader):
            shown = [text for frame in page.received for text in message_texts(frame)]
            assert len(shown) == len(stored)
            for case in valid:
                assert sum(case.marker in text for text in shown) == 1, case
        assert not [frame for frame in reader.received if is_composer(frame)]
        seqs = [
            int(part.split('"', 1)[0])
            for frame in reader.received
            if is_message(frame)
            for part in frame.split('data-seq="')[1:]
        ]
        assert seqs == [m.seq for m in stored]

        # The room still works: a fresh page and the other user both chat.
        fresh = run(open_socket(carol, room, last_seq=stored[-1].seq))
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
