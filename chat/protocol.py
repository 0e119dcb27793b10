"""What travels over the socket: frame parsing and close codes.

The htmx ws extension sends a form as a JSON object of its fields plus `HEADERS`.
Two forms talk to the server: the composer (`message`, `client_key`) and the hidden
catch-up form the page sends on every (re)connect (`last_seq`).
"""

import json
import re
from dataclasses import dataclass
from enum import IntEnum
from uuid import UUID

from django.conf import settings


class CloseCode(IntEnum):
    """The htmx ws extension reconnects after 1006, 1011, 1012 and 1013, and stops after 4xxx.

    A stopped or killed process drops its sockets (1006): pages come back and catch up.
    """

    NOT_LOGGED_IN = 4401
    FORBIDDEN = 4403  # an Origin not in ALLOWED_HOSTS
    NO_SUCH_ROOM = 4404


class FrameError(ValueError):
    """A frame the server will not act on; str() is shown to the sender, with `text` kept."""

    def __init__(self, message, text=""):
        super().__init__(message)
        self.text = text


@dataclass(frozen=True)
class PostFrame:
    text: str
    client_key: UUID | None


@dataclass(frozen=True)
class CatchUpFrame:
    last_seq: int


POST_FIELDS = {"message", "client_key", "csrfmiddlewaretoken", "HEADERS"}
CATCH_UP_FIELDS = {"last_seq", "HEADERS"}
MAX_JSON_DEPTH = 4
SURROGATE = re.compile("[\ud800-\udfff]")
UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}-?(?:[0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}")


def parse_frame(text):
    """Turn one text frame into a PostFrame or a CatchUpFrame, or raise FrameError."""
    if len(text) > settings.CHAT_MAX_FRAME_BYTES or len(text.encode("utf-8", "surrogatepass")) > (
        settings.CHAT_MAX_FRAME_BYTES
    ):
        raise FrameError(
            f"That was too large to send (over {settings.CHAT_MAX_FRAME_BYTES} bytes)."
        )
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _nesting_depth(text) > MAX_JSON_DEPTH:
        raise FrameError("That frame is nested too deeply.")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise FrameError("That frame was not valid JSON.") from None
    if not isinstance(data, dict):
        raise FrameError("That frame was not a JSON object.")
    if ("\\u" in text or SURROGATE.search(text)) and _holds_lone_surrogate(data):
        # Valid JSON may escape half a character; it could be neither stored nor sent back.
        text = data.get("message") if isinstance(data.get("message"), str) else ""
        raise FrameError("The text holds a broken character.", text=SURROGATE.sub("\ufffd", text))
    if "HEADERS" in data and not isinstance(data["HEADERS"], dict):
        message = data.get("message")
        raise FrameError(
            "HEADERS must be an object.", text=message if isinstance(message, str) else ""
        )
    if "last_seq" in data:
        _reject_unknown(data, CATCH_UP_FIELDS)
        return CatchUpFrame(last_seq=_sequence_number(data["last_seq"]))
    if "message" in data:
        text = _string(data, "message")
        try:
            _reject_unknown(data, POST_FIELDS)
            return PostFrame(text=text, client_key=_client_key(data))
        except FrameError as error:
            raise FrameError(str(error), text=text) from None
    raise FrameError("A message frame needs a 'message' field.")


def _nesting_depth(text):
    # Measured before json.loads so a hostile frame cannot make the parser recurse deeply.
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _holds_lone_surrogate(value):
    if isinstance(value, str):
        return SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_holds_lone_surrogate(k) or _holds_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_lone_surrogate(item) for item in value)
    return False


def _reject_unknown(data, allowed):
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise FrameError(f"Unexpected field: {', '.join(repr(name)[:40] for name in unknown[:3])}.")


def _string(data, name):
    value = data[name]
    if not isinstance(value, str):
        raise FrameError(f"'{name}' must be text.")
    return value


def _client_key(data):
    value = data.get("client_key")
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise FrameError("'client_key' must be text.")
    if not UUID_TEXT.fullmatch(value):
        raise FrameError("'client_key' is not a valid key.")
    return UUID(value)


def _sequence_number(value):
    if isinstance(value, bool):
        raise FrameError("'last_seq' must be a whole number.")
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 19:
        value = int(value)
    if not isinstance(value, int) or not 0 <= value < 2**62:
        raise FrameError("'last_seq' must be a whole number.")
    return value
