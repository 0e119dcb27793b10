"""chat/realtime/frames.py: every frame the socket receives (and every no-JS form the room
page posts) is checked here before anything acts on it.

One typed frame per kind, told apart by the field that names it (`KINDS`): catch-up,
edit, delete_message, react, and a post (`message`). Frame errors of a post (or of a
frame of no known kind) belong in the composer; those of the other kinds in the page's
notice.
"""

import json
import re
import uuid

import pytest
from django.test import override_settings

from chat.realtime.frames import (
    KINDS,
    MAX_EMOJI_LENGTH,
    CatchUpFrame,
    DeleteFrame,
    EditFrame,
    FrameError,
    PostFrame,
    ReactFrame,
    parse_fields,
    parse_frame,
)

KEY = "0b7d2a3e-5c1f-4d8e-9a6b-2f4c8e1d3a5b"
HEADERS = {"HX-Request": "true", "HX-Trigger": "composer", "HX-Target": "composer"}


def refused(frame, pattern, *, composer=None, text=None):
    """parse_frame refuses `frame` with a message matching `pattern` (case-insensitive).

    `composer`: where the error must be shown (True: the composer, False: the notice);
    `text`: what the error must keep of what was typed.
    """
    with pytest.raises(FrameError) as caught:
        parse_frame(frame if isinstance(frame, str) else json.dumps(frame))
    message = str(caught.value)
    assert re.search(pattern, message, re.IGNORECASE), message
    # The message is shown in the page: short, plain, and valid UTF-8.
    assert 0 < len(message) <= 200
    message.encode("utf-8")
    if composer is not None:
        assert caught.value.composer is composer, message
    if text is not None:
        assert caught.value.text == text
    return message


# --- good frames ---


def test_good_composer_form_as_htmx_sends_it():
    frame = parse_frame(
        json.dumps(
            {
                "csrfmiddlewaretoken": "token",
                "message": "hello there",
                "client_key": KEY,
                "HEADERS": HEADERS,
            }
        )
    )
    assert frame == PostFrame(text="hello there", client_key=uuid.UUID(KEY))


def test_good_message_without_key_or_headers():
    assert parse_frame('{"message": "hi"}') == PostFrame(text="hi", client_key=None)


def test_good_empty_client_key_means_none():
    frame = parse_frame(json.dumps({"message": "hi", "client_key": ""}))
    assert frame.client_key is None


def test_good_text_is_passed_on_unchanged_for_the_service_to_clean():
    # Blank text is a message-text rule (shared with the no-JS form), not a frame rule.
    assert parse_frame('{"message": "  "}') == PostFrame(text="  ", client_key=None)
    assert parse_frame('{"message": "a\\r\\nb"}').text == "a\r\nb"


def test_good_non_ascii_and_astral_text():
    text = "Grüße 👋🏽 日本語 \U0001f600"
    assert parse_frame(json.dumps({"message": text})).text == text
    assert parse_frame(json.dumps({"message": text}, ensure_ascii=False)).text == text
    # A surrogate PAIR escape is one real character, not a broken one.
    assert parse_frame('{"message": "\\ud83d\\ude00"}').text == "\U0001f600"


def test_good_catch_up_frame_as_the_page_sends_it():
    frame = parse_frame(json.dumps({"last_seq": "17", "HEADERS": HEADERS}))
    assert frame == CatchUpFrame(last_seq=17)


def test_good_catch_up_frame_with_a_number():
    assert parse_frame('{"last_seq": 0}') == CatchUpFrame(last_seq=0)


def test_good_whitespace_around_the_json_is_fine():
    assert parse_frame(' \n{"message": "hi"}\n ').text == "hi"


def test_good_frame_just_under_the_cap_parses():
    with override_settings(CHAT_MAX_FRAME_BYTES=2048):
        overhead = len(json.dumps({"message": ""}))
        frame = json.dumps({"message": "x" * (2048 - overhead)})
        assert len(frame.encode()) == 2048
        assert parse_frame(frame).text == "x" * (2048 - overhead)


# --- bad frames ---


@pytest.mark.parametrize(
    "frame",
    [
        "",
        " ",
        "hello",
        "{",
        '{"message": "hi"',
        '{"message": "hi"}}',
        "{'message': 'hi'}",
        '{"message": "hi",}',
        '{message: "hi"}',
        '{"message": "hi"} {"message": "again"}',
        '{"message": "hi\x00"}',  # a raw control character inside a JSON string
        '{"message": "line\nbreak"}',
        '{"message": "tab\there"}',
        '{"message": "\\x41"}',
        '{"message": "\\u12"}',
        "\ufeff{}",
        "<script>alert(1)</script>",
    ],
)
def test_not_json_is_refused(frame):
    refused(frame, r"not valid JSON")


@pytest.mark.parametrize(
    "frame", ["[]", '["message", "hi"]', "42", "-1.5e3", '"message"', "true", "false", "null"]
)
def test_json_that_is_not_an_object_is_refused(frame):
    refused(frame, r"not a JSON object")


@pytest.mark.parametrize(
    "frame",
    [
        "{}",
        '{"HEADERS": {}}',
        '{"client_key": "0b7d2a3e-5c1f-4d8e-9a6b-2f4c8e1d3a5b"}',
        '{"Message": "hi"}',
        '{"message ": "hi"}',
        '{"text": "hi"}',
    ],
)
def test_frame_without_a_message_field_is_refused(frame):
    refused(frame, r"needs a 'message' field")


@pytest.mark.parametrize("value", [None, 0, 12, 1.5, True, False, [], ["hi"], {}, {"text": "hi"}])
def test_message_that_is_not_text_is_refused(value):
    refused(json.dumps({"message": value}), r"'message' must be text")


@pytest.mark.parametrize("value", [1, 1.5, True, ["k"], {"k": 1}])
def test_client_key_that_is_not_text_is_refused(value):
    refused(json.dumps({"message": "hi", "client_key": value}), r"'client_key' must be text")


@pytest.mark.parametrize(
    "value",
    [
        "nope",
        "1234",
        KEY + "0",
        KEY[:-1],
        "\u0660" * 32,
        "<script>",
        " ",
    ],
)
def test_client_key_that_is_not_a_uuid_is_refused(value):
    refused(json.dumps({"message": "hi", "client_key": value}), r"'client_key' is not a valid key")


@pytest.mark.parametrize("value", ["x", 1, [], True, None])
def test_headers_that_are_not_an_object_are_refused(value):
    refused(json.dumps({"message": "hi", "HEADERS": value}), r"HEADERS must be an object")


@pytest.mark.parametrize(
    "value",
    [
        "-1",
        -1,
        "1.0",
        1.5,
        "1e3",
        1e3,
        "",
        " 1",
        "abc",
        "\u0663",
        "²",
        True,
        None,
        [],
        2**62,
        "9" * 19,
    ],
)
def test_last_seq_that_is_not_a_whole_number_is_refused(value):
    refused(json.dumps({"last_seq": value}), r"'last_seq' must be a whole number")


@pytest.mark.parametrize(
    ("frame", "names"),
    [
        ({"message": "hi", "evil": 1}, ["evil"]),
        ({"message": "hi", "hx-get": "/"}, ["hx-get"]),
        ({"message": "hi", "__proto__": {}}, ["__proto__"]),
        ({"message": "hi", "last_seq": "3"}, ["message"]),  # a catch-up frame with a message
        ({"last_seq": "3", "client_key": KEY}, ["client_key"]),
        ({"message": "hi", "b": 1, "a": 2}, ["a", "b"]),
    ],
)
def test_unknown_fields_are_refused_and_named(frame, names):
    message = refused(json.dumps(frame), r"Unexpected field")
    for name in names:
        assert repr(name) in message


def test_unknown_field_names_are_shown_short_and_escaped():
    frame = json.dumps({"message": "hi", "x" * 10_000: 1, "\x00\x1b<b>": 2})
    message = refused(frame, r"Unexpected field")
    assert "x" * 100 not in message
    assert "\x00" not in message and "\x1b" not in message


@pytest.mark.parametrize(
    "frame",
    [
        '{"message": "hi", "HEADERS": {"a": {"b": {"c": {"d": {}}}}}}',
        '{"message": "hi", "HEADERS": {"a": [[[[1]]]]}}',
        '{"message": [[[[["hi"]]]]]}',
        "[" * 5 + "]" * 5,
        "[" * 1000 + "]" * 1000,
        "{" * 20_000,
        '{"a":' * 10_000 + "1" + "}" * 10_000,
        "[" * 60_000,
    ],
)
def test_deeply_nested_json_is_refused_before_it_is_parsed(frame):
    refused(frame, r"nested too deeply")


def test_brackets_inside_strings_do_not_count_as_nesting():
    text = '[[[[[{{{{{ \\" [[[[[ '
    assert parse_frame(json.dumps({"message": text})).text == text


@pytest.mark.parametrize(
    "frame",
    [
        "x" * (65536 + 1),
        json.dumps({"message": "x" * 70_000}),
        # Under the cap in characters, over it in UTF-8 bytes.
        json.dumps({"message": "é" * 33_000}, ensure_ascii=False),
        json.dumps({"message": "\U0001f600" * 17_000}, ensure_ascii=False),
        "[" * 70_000,
        " " * 70_000 + '{"message": "hi"}',
    ],
)
def test_frames_above_the_byte_cap_are_refused(frame):
    with override_settings(CHAT_MAX_FRAME_BYTES=65536):
        message = refused(frame, r"too large")
    assert "65536" in message


def test_byte_cap_follows_the_setting():
    frame = json.dumps({"message": "x" * 2000})
    assert parse_frame(frame).text == "x" * 2000
    with override_settings(CHAT_MAX_FRAME_BYTES=1024):
        refused(frame, r"too large.*1024")


@pytest.mark.parametrize(
    "frame",
    [
        '{"message": "\\ud800"}',
        '{"message": "broken \\udfff here"}',
        '{"message": "\\ude00\\ud83d"}',  # a pair in the wrong order is two lone halves
        '{"message": "end \\ud83d"}',
        '{"message": "hi", "HEADERS": {"HX-Trigger": "\\ud800"}}',
        '{"message": "hi", "HEADERS": {"\\udc00": "x"}}',
        '{"last_seq": "1", "HEADERS": {"x": "\\ud800"}}',
    ],
)
def test_lone_surrogates_are_refused(frame):
    # A lone surrogate is not a character: it cannot be stored (PostgreSQL refuses it) nor
    # sent back in a UTF-8 text frame. The frame is refused as a whole, with a clear reason.
    refused(frame, r"broken character|surrogate")


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x85"])
def test_control_characters_outside_the_text_are_refused(char):
    refused(json.dumps({"message": "hi", "client_key": KEY[:-1] + char}), r"client_key")
    refused(json.dumps({"last_seq": "1" + char}), r"last_seq")


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1b", "\x1f"])
def test_raw_control_characters_in_json_strings_are_refused(char):
    refused('{"message": "a' + char + 'b"}', r"not valid JSON")


# --- the kinds: one field names each, checked in order ---


def test_kinds_are_told_apart_by_their_field_in_a_fixed_order():
    fields = [field for field, _ in KINDS]
    assert {"last_seq", "edit", "delete_message", "react", "message"} <= set(fields)
    # An edit carries 'message' too, so it must be recognised before a post.
    assert fields.index("edit") < fields.index("message")
    assert fields[-1] == "message"


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ({"last_seq": "4"}, CatchUpFrame(last_seq=4)),
        ({"edit": "4", "message": "new"}, EditFrame(message_id=4, text="new")),
        ({"delete_message": "4"}, DeleteFrame(message_id=4)),
        ({"react": "4 👍 on"}, ReactFrame(message_id=4, emoji="👍", on=True)),
        ({"message": "new"}, PostFrame(text="new", client_key=None)),
    ],
)
def test_parse_fields_gives_the_same_frames_as_the_socket(frame, expected):
    # The no-JavaScript forms POST these fields; the socket sends them as JSON.
    assert parse_fields(frame) == expected
    assert parse_frame(json.dumps(frame)) == expected


def test_a_frame_of_no_known_kind_is_a_composer_error():
    # "delete" is not a kind: htmx reads form fields through FormData, whose own
    # `delete` method would shadow a field of that name.
    refused({"delete": "4"}, r"needs a 'message' field", composer=True)
    refused({"Edit": "4", "message": "x"}, r"Unexpected field.*'Edit'", composer=True)


# --- posts: reply_to and the two composers ---


def test_good_reply_carries_the_quoted_message_id():
    frame = parse_frame(json.dumps({"message": "yes", "client_key": KEY, "reply_to": "12"}))
    assert frame == PostFrame(text="yes", client_key=uuid.UUID(KEY), reply_to=12)
    assert parse_frame(json.dumps({"message": "yes", "reply_to": 12})).reply_to == 12


@pytest.mark.parametrize("value", ["", None])
def test_empty_reply_to_is_no_reply(value):
    assert parse_frame(json.dumps({"message": "hi", "reply_to": value})).reply_to is None


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        ("0", r"'reply_to' must name a message"),
        (0, r"'reply_to' must name a message"),
        ("-3", r"'reply_to' must be a whole number"),
        ("3.0", r"'reply_to' must be a whole number"),
        ("abc", r"'reply_to' must be a whole number"),
        ("\u0663", r"'reply_to' must be a whole number"),
        (True, r"'reply_to' must be a whole number"),
        ([3], r"'reply_to' must be a whole number"),
        ("9" * 19, r"'reply_to' must be a whole number"),
    ],
)
def test_bad_reply_to_is_refused_in_the_composer_with_the_text_kept(value, pattern):
    refused(
        {"message": "keep me", "reply_to": value, "HEADERS": HEADERS},
        pattern,
        composer=True,
        text="keep me",
    )


def test_the_long_composer_is_named_by_its_trigger():
    def form(headers):
        return parse_frame(json.dumps({"message": "x", "HEADERS": headers})).form

    assert form({**HEADERS, "HX-Trigger": "composer-long"}) == "composer-long"
    assert form(HEADERS) == "composer"
    assert form({}) == "composer"
    # Anything else (another form, a forged header) answers in the one-line composer.
    assert form({"HX-Trigger": "catch-up"}) == "composer"
    assert form({"HX-Trigger": ["composer-long"]}) == "composer"
    assert form({"HX-Trigger": None}) == "composer"
    assert parse_frame('{"message": "x"}').form == "composer"


# --- edit ---


def test_good_edit_as_htmx_sends_it():
    frame = {
        "csrfmiddlewaretoken": "token",
        "edit": "42",
        "message": "fixed the typo",
        "HEADERS": {**HEADERS, "HX-Trigger": "edit-form-42"},
    }
    assert parse_frame(json.dumps(frame)) == EditFrame(message_id=42, text="fixed the typo")


def test_good_edit_text_is_passed_on_unchanged_for_the_action_to_clean():
    assert parse_frame('{"edit": 7, "message": "  "}') == EditFrame(message_id=7, text="  ")
    assert parse_frame('{"edit": "7", "message": "a\\r\\nb"}').text == "a\r\nb"


def test_edit_without_new_text_is_refused_in_the_notice():
    refused({"edit": "7"}, r"edit needs the new text", composer=False, text="")


@pytest.mark.parametrize("value", [None, 5, True, ["x"], {"t": "x"}])
def test_edit_text_that_is_not_text_is_refused(value):
    refused({"edit": "7", "message": value}, r"'message' must be text", composer=False)


@pytest.mark.parametrize(
    ("frame", "names"),
    [
        ({"edit": "7", "message": "x", "client_key": KEY}, ["client_key"]),
        ({"edit": "7", "message": "x", "reply_to": "3"}, ["reply_to"]),
        ({"edit": "7", "message": "x", "delete_message": "7"}, ["delete_message"]),
        ({"edit": "7", "message": "x", "react": "7 👍 on"}, ["react"]),
        ({"edit": "7", "message": "x", "author": "2"}, ["author"]),
        ({"edit": "7", "message": "x", "room": "other"}, ["room"]),
    ],
)
def test_unknown_fields_of_an_edit_are_refused_with_the_text_kept(frame, names):
    message = refused(frame, r"Unexpected field", composer=False, text="x")
    for name in names:
        assert repr(name) in message


# --- delete_message ---


def test_good_delete_as_htmx_sends_it():
    frame = {"csrfmiddlewaretoken": "t", "delete_message": "42", "HEADERS": HEADERS}
    assert parse_frame(json.dumps(frame)) == DeleteFrame(message_id=42)
    assert parse_frame('{"delete_message": 42}') == DeleteFrame(message_id=42)


@pytest.mark.parametrize(
    ("frame", "names"),
    [
        ({"delete_message": "7", "message": "x"}, ["message"]),
        ({"delete_message": "7", "react": "7 👍 on"}, ["react"]),
        ({"delete_message": "7", "client_key": KEY}, ["client_key"]),
        ({"delete_message": "7", "everyone": "yes"}, ["everyone"]),
    ],
)
def test_unknown_fields_of_a_delete_are_refused_in_the_notice(frame, names):
    message = refused(frame, r"Unexpected field", composer=False)
    for name in names:
        assert repr(name) in message


# --- react ---


@pytest.mark.parametrize("emoji", ["👍", "❤️", "😂", "🎉", "😮", "🙏"])
def test_good_reaction_on_and_off(emoji):
    frame = {"csrfmiddlewaretoken": "t", "react": f"42 {emoji} on", "HEADERS": HEADERS}
    assert parse_frame(json.dumps(frame)) == ReactFrame(message_id=42, emoji=emoji, on=True)
    assert parse_frame(json.dumps({"react": f"42 {emoji} off"})) == ReactFrame(
        message_id=42, emoji=emoji, on=False
    )


def test_an_emoji_outside_the_set_is_left_for_the_action_to_refuse():
    # One validation path: which emoji are offered is the action's rule (and its error).
    assert parse_frame('{"react": "42 x on"}') == ReactFrame(message_id=42, emoji="x", on=True)


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        ("", r"'react' must be"),
        ("42", r"'react' must be"),
        ("42 👍", r"'react' must be"),
        ("42 👍 on extra", r"'react' must be"),
        ("42  👍 on", r"'react' must be"),
        ("42 👍 On", r"'react' must be"),
        ("42 👍 toggle", r"'react' must be"),
        ("42 👍 true", r"'react' must be"),
        ("42\t👍\ton", r"'react' must be"),
        (" 42 👍 on", r"'react' must be|whole number"),
        (f"42 {'👍' * (MAX_EMOJI_LENGTH + 1)} on", r"'react' must be"),
        (42, r"'react' must be"),
        (None, r"'react' must be"),
        (["42", "👍", "on"], r"'react' must be"),
        ({"message": 42}, r"'react' must be"),
        ("👍 42 on", r"'react' must be a whole number"),
        ("0 👍 on", r"'react' must name a message"),
        ("-4 👍 on", r"'react' must be a whole number"),
        ("4.0 👍 on", r"'react' must be a whole number"),
        (f"{2**62} 👍 on", r"'react' must be a whole number"),
    ],
)
def test_bad_react_values_are_refused_in_the_notice(value, pattern):
    refused({"react": value}, pattern, composer=False)


@pytest.mark.parametrize(
    ("frame", "names"),
    [
        ({"react": "7 👍 on", "message": "x"}, ["message"]),
        ({"react": "7 👍 on", "user": "3"}, ["user"]),
        ({"react": "7 👍 on", "client_key": KEY}, ["client_key"]),
    ],
)
def test_unknown_fields_of_a_reaction_are_refused_in_the_notice(frame, names):
    message = refused(frame, r"Unexpected field", composer=False)
    for name in names:
        assert repr(name) in message


# --- ids that are not message ids, for every kind that names a message ---

WHOLE, NAMES = "must be a whole number", "must name a message"
BAD_IDS = [
    ("", WHOLE),
    ("-1", WHOLE),
    (-1, WHOLE),
    ("1.5", WHOLE),
    (1.5, WHOLE),
    ("1e3", WHOLE),
    (" 7", WHOLE),
    ("7 ", WHOLE),
    ("0x10", WHOLE),
    ("\u0663", WHOLE),
    ("²", WHOLE),
    ("9" * 19, WHOLE),
    (2**62, WHOLE),
    (True, WHOLE),
    (None, WHOLE),
    ([7], WHOLE),
    ({"id": 7}, WHOLE),
    ("<b>7</b>", WHOLE),
    ("0", NAMES),
    (0, NAMES),
]


def _frames_naming(value):
    return {
        "edit": {"edit": value, "message": "kept"},
        "delete_message": {"delete_message": value},
    }


@pytest.mark.parametrize(("value", "pattern"), BAD_IDS, ids=[repr(v) for v, _ in BAD_IDS])
def test_bad_message_ids_are_refused_in_the_notice(value, pattern):
    for field, frame in _frames_naming(value).items():
        message = refused(frame, rf"'{field}' {pattern}", composer=False)
        assert "<b>" not in message


def test_the_largest_ids_are_accepted_and_larger_ones_are_not():
    # Numbers below 2**62 (the database's bigint holds them); text of up to 18 digits.
    assert parse_frame(json.dumps({"delete_message": 2**62 - 1})).message_id == 2**62 - 1
    assert parse_frame(json.dumps({"delete_message": "9" * 18})).message_id == int("9" * 18)
    refused({"delete_message": 2**62}, WHOLE, composer=False)
    refused({"delete_message": "9" * 19}, WHOLE, composer=False)


# --- frame-wide checks apply to every kind ---


@pytest.mark.parametrize(
    "frame",
    [
        {"edit": "7", "message": "x" * 70_000},
        {"delete_message": "7", "csrfmiddlewaretoken": "t" * 70_000},
        {"react": "7 👍 on", "HEADERS": {"HX-Trigger": "é" * 40_000}},
        {"last_seq": "7", "HEADERS": {"x": "y" * 70_000}},
    ],
    ids=["edit", "delete", "react", "catch-up"],
)
def test_oversized_frames_of_every_kind_are_refused(frame):
    with override_settings(CHAT_MAX_FRAME_BYTES=65536):
        refused(json.dumps(frame, ensure_ascii=False), r"too large.*65536")


@pytest.mark.parametrize(
    "frame",
    [
        {"edit": "7", "message": "hi", "HEADERS": {"a": [[[[1]]]]}},
        {"delete_message": [[[[["7"]]]]]},
        {"react": {"a": {"b": {"c": {"d": "7 👍 on"}}}}},
    ],
)
def test_deeply_nested_frames_of_every_kind_are_refused(frame):
    refused(json.dumps(frame), r"nested too deeply")


@pytest.mark.parametrize(
    "frame",
    [
        '{"delete_message": "7", "HEADERS": {"HX-Trigger": "\\ud800"}}',
        '{"react": "7 \\ud83d on"}',
    ],
)
def test_lone_surrogates_in_changes_are_refused(frame):
    refused(frame, r"broken character")


@pytest.mark.parametrize(
    "frame",
    [
        '{"edit": "7", "message": "half \\ud800 a character"}',
        '{"edit": "7", "message": "new text", "HEADERS": "x"}',
        '{"delete_message": "7", "HEADERS": {"x": "\\udfff"}}',
        '{"react": "7 \\ud83d on"}',
        '{"react": "7 👍 on", "HEADERS": []}',
        '{"last_seq": "7", "HEADERS": 1}',
    ],
)
def test_frame_wide_errors_of_changes_go_to_the_notice_not_the_composer(frame):
    # Found before the kind is known, but a change's errors go where that kind's go: an
    # edit's text must not land in the composer, nor a draft there be replaced.
    refused(frame, r"broken character|HEADERS", composer=False)
