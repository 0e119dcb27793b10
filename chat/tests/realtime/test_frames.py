"""parse_frame: every frame the socket receives is checked here before anything acts on it."""

import json
import re
import uuid

import pytest
from django.test import override_settings

from chat.protocol import CatchUpFrame, FrameError, PostFrame, parse_frame

KEY = "0b7d2a3e-5c1f-4d8e-9a6b-2f4c8e1d3a5b"
HEADERS = {"HX-Request": "true", "HX-Trigger": "composer", "HX-Target": "composer"}


def refused(frame, pattern):
    """parse_frame refuses `frame` with a message matching `pattern` (case-insensitive)."""
    with pytest.raises(FrameError) as caught:
        parse_frame(frame)
    message = str(caught.value)
    assert re.search(pattern, message, re.IGNORECASE), message
    # The message is shown in the page: short, plain, and valid UTF-8.
    assert 0 < len(message) <= 200
    message.encode("utf-8")
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
