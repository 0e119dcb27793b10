"""Log lines as JSON (chat/logs.py) and the settings of issue 13 (CHAT_LOG_FORMAT,
CHAT_METRICS), the latter checked in fresh processes as a deploy starts them."""

import json
import logging
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from chat.logs import JsonFormatter
from chat.tests.test_settings import run, strong_key
from project.settings import parse_metrics

LOG_ONE_EVENT = """
import django, logging
django.setup()
logging.getLogger("chat.events.published").info(
    "event published room=%s seq=%s kind=%s", 7, 42, "message.posted",
    extra={"room": 7, "seq": 42, "kind": "message.posted"},
)
"""


def record(message, *args, exc_info=None, **extra):
    return logging.getLogger("chat.test").makeRecord(
        "chat.test", logging.WARNING, __file__, 1, message, args, exc_info, extra=extra
    )


def test_a_json_line_carries_the_message_and_the_extra_fields():
    line = json.loads(JsonFormatter().format(record("room %s is %s", 3, "busy", room=3, seq=9)))
    assert line["message"] == "room 3 is busy"
    assert (line["level"], line["logger"]) == ("WARNING", "chat.test")
    assert (line["room"], line["seq"]) == (3, 9)
    assert line["time"].endswith("+00:00")
    assert "args" not in line and "msg" not in line  # LogRecord's own attributes stay out


def test_a_json_line_holds_a_traceback_and_values_json_cannot():
    try:
        raise ValueError("bad")
    except ValueError:
        failed = record("it failed", exc_info=sys.exc_info(), path=object())
    text = JsonFormatter().format(failed)
    assert "\n" not in text  # one line, however long the traceback
    line = json.loads(text)
    assert "ValueError: bad" in line["exception"]
    assert line["path"].startswith("<object object")


def test_chat_log_format_json_makes_every_line_json():
    done = run(
        ["-c", LOG_ONE_EVENT], SECRET_KEY=strong_key(), DEBUG="false", CHAT_LOG_FORMAT="json"
    )
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stderr.strip().splitlines()[-1])
    assert (line["room"], line["seq"], line["kind"]) == (7, 42, "message.posted")
    assert line["message"] == "event published room=7 seq=42 kind=message.posted"


def test_the_plain_log_format_stays_the_default():
    done = run(["-c", LOG_ONE_EVENT], SECRET_KEY=strong_key(), DEBUG="false")
    assert done.returncode == 0, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.endswith(
        "INFO chat.events.published event published room=7 seq=42 kind=message.posted"
    )


def test_an_unknown_log_format_stops_the_process_naming_the_variable():
    done = run(["manage.py", "check"], SECRET_KEY=strong_key(), CHAT_LOG_FORMAT="yaml")
    assert done.returncode != 0
    assert "CHAT_LOG_FORMAT must be plain or json" in done.stderr


# --- CHAT_METRICS ---


@pytest.mark.parametrize(
    ("value", "debug", "expected"),
    [
        ("", True, (True, None)),  # a laptop
        ("", False, (False, None)),  # a deployment: off until asked for
        ("off", True, (False, None)),
        ("on", False, (True, None)),
        ("  ON ", False, (True, None)),
        ("s3cret-Token_with.chars~+/0123==", False, (True, "s3cret-Token_with.chars~+/0123==")),
    ],
)
def test_chat_metrics_is_off_on_or_a_bearer_token(value, debug, expected):
    assert parse_metrics(value, debug=debug) == expected


@pytest.mark.parametrize("value", ["maybe", "short-token", "a token with spaces in it", "tök" * 8])
def test_chat_metrics_refuses_what_is_neither_a_switch_nor_a_usable_token(value):
    with pytest.raises(ImproperlyConfigured, match="CHAT_METRICS must be off, on, or a bearer"):
        parse_metrics(value, debug=False)
