"""What travels over the socket: one typed frame per kind, and close codes.

The htmx ws extension sends a form as a JSON object of its fields plus `HEADERS`. Each
kind of frame is told apart by the one field that names it (`KINDS`, checked in order);
the no-JavaScript forms post the same fields over HTTP and go through `parse_fields` too,
so both paths validate alike. A frame's `perform` calls its action (chat/actions).
"""

import json
import re
from dataclasses import dataclass
from enum import IntEnum
from uuid import UUID

from django.conf import settings

from chat.actions import messages, reactions


class CloseCode(IntEnum):
    """The htmx ws extension reconnects after 1006, 1011, 1012 and 1013, and stops after 4xxx.

    A stopped or killed process drops its sockets (1006): pages come back and catch up.
    """

    NOT_LOGGED_IN = 4401
    FORBIDDEN = 4403  # an Origin not in ALLOWED_HOSTS
    NO_SUCH_ROOM = 4404  # or one the person may not read: the same, so nothing leaks
    REVOKED = 4410  # removed from the room, account deactivated, password changed


class FrameError(ValueError):
    """A frame the server will not act on; str() is shown to the sender, with `text` kept.

    `composer`: whether the error belongs in the composer (a post, or a frame of no known
    kind) or in the page's notice (a change to a message, a catch-up).
    """

    def __init__(self, message, text="", *, composer=True):
        super().__init__(message)
        self.text = text
        self.composer = composer


@dataclass(frozen=True)
class CatchUpFrame:
    """The hidden #catch-up form, sent on every (re)connect: the page shows up to here."""

    last_seq: int


@dataclass(frozen=True)
class PostFrame:
    text: str
    client_key: UUID | None
    reply_to: int | None = None
    form: str = "composer"  # which composer sent it (#composer or #composer-long)

    def perform(self, *, room, user):
        return messages.message_post(
            room=room,
            author=user,
            text=self.text,
            client_key=self.client_key,
            reply_to_id=self.reply_to,
        )


@dataclass(frozen=True)
class EditFrame:
    message_id: int
    text: str

    def perform(self, *, room, user):
        return messages.message_edit(
            room=room, user=user, message_id=self.message_id, text=self.text
        )


@dataclass(frozen=True)
class DeleteFrame:
    message_id: int

    def perform(self, *, room, user):
        return messages.message_delete(room=room, user=user, message_id=self.message_id)


@dataclass(frozen=True)
class ReactFrame:
    message_id: int
    emoji: str
    on: bool

    def perform(self, *, room, user):
        return reactions.reaction_set(
            room=room, user=user, message_id=self.message_id, emoji=self.emoji, on=self.on
        )


@dataclass(frozen=True)
class TypingFrame:
    """The hidden #typing-signal form: the person is typing (at most one every 2 s, with
    no draft text). Ephemeral: it changes what pages show, and nothing is stored."""


FORM_FIELDS = {"csrfmiddlewaretoken", "HEADERS"}
CATCH_UP_FIELDS = {"last_seq", "HEADERS"}
POST_FIELDS = {"message", "client_key", "reply_to"} | FORM_FIELDS
EDIT_FIELDS = {"edit", "message"} | FORM_FIELDS
# Not "delete": htmx reads form values through a proxy of FormData, whose own `delete`
# method would shadow a field of that name.
DELETE_FIELDS = {"delete_message"} | FORM_FIELDS
REACT_FIELDS = {"react"} | FORM_FIELDS
TYPING_FIELDS = {"typing"} | FORM_FIELDS
MAX_JSON_DEPTH = 4
MAX_EMOJI_LENGTH = 16
SURROGATE = re.compile("[\ud800-\udfff]")
UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}-?(?:[0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}")


def parse_frame(text):
    """Turn one text frame into a typed frame, or raise FrameError."""
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
    # Errors found before the kind is known still go where that kind's errors go.
    composer = not any(field in data for field, _ in KINDS if field != "message")
    if ("\\u" in text or SURROGATE.search(text)) and _holds_lone_surrogate(data):
        # Valid JSON may escape half a character; it could be neither stored nor sent back.
        text = data.get("message") if isinstance(data.get("message"), str) else ""
        raise FrameError(
            "The text holds a broken character.",
            text=SURROGATE.sub("\ufffd", text),
            composer=composer,
        )
    if "HEADERS" in data and not isinstance(data["HEADERS"], dict):
        message = data.get("message")
        raise FrameError(
            "HEADERS must be an object.",
            text=message if isinstance(message, str) else "",
            composer=composer,
        )
    return parse_fields(data)


def parse_fields(data):
    """A frame from a dict of form fields (a socket frame's JSON, or an HTTP POST)."""
    for field, parse in KINDS:
        if field in data:
            try:
                return parse(data)
            except FrameError as error:
                if field == "message":
                    raise
                raise FrameError(str(error), error.text, composer=False) from None
    raise FrameError("A message frame needs a 'message' field.")


def _catch_up(data):
    _reject_unknown(data, CATCH_UP_FIELDS)
    return CatchUpFrame(last_seq=_sequence_number(data["last_seq"], "last_seq"))


def _edit(data):
    text = _string(data, "message") if "message" in data else ""
    try:
        _reject_unknown(data, EDIT_FIELDS)
        if "message" not in data:
            raise FrameError("An edit needs the new text in 'message'.")
        return EditFrame(message_id=_message_id(data["edit"], "edit"), text=text)
    except FrameError as error:
        raise FrameError(str(error), text=text) from None


def _delete(data):
    _reject_unknown(data, DELETE_FIELDS)
    return DeleteFrame(message_id=_message_id(data["delete_message"], "delete_message"))


def _react(data):
    _reject_unknown(data, REACT_FIELDS)
    value = data["react"]
    parts = value.split(" ") if isinstance(value, str) else ()
    if len(parts) != 3 or parts[2] not in ("on", "off") or len(parts[1]) > MAX_EMOJI_LENGTH:
        raise FrameError("'react' must be '<message id> <emoji> on|off'.")
    return ReactFrame(
        message_id=_message_id(parts[0], "react"), emoji=parts[1], on=parts[2] == "on"
    )


def _typing(data):
    _reject_unknown(data, TYPING_FIELDS)
    if data["typing"] != "1":
        raise FrameError("'typing' must be '1'.")
    return TypingFrame()


def _post(data):
    text = _string(data, "message")
    try:
        _reject_unknown(data, POST_FIELDS)
        reply_to = data.get("reply_to")
        return PostFrame(
            text=text,
            client_key=_client_key(data),
            reply_to=None if reply_to in (None, "") else _message_id(reply_to, "reply_to"),
            form="composer-long" if _trigger(data) == "composer-long" else "composer",
        )
    except FrameError as error:
        raise FrameError(str(error), text=text) from None


# The field that names each kind, checked in this order (an edit also has 'message').
KINDS = (
    ("last_seq", _catch_up),
    ("edit", _edit),
    ("delete_message", _delete),
    ("react", _react),
    ("typing", _typing),
    ("message", _post),
)


def _trigger(data):
    headers = data.get("HEADERS")
    return headers.get("HX-Trigger") if isinstance(headers, dict) else None


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


def _sequence_number(value, name):
    if isinstance(value, bool):
        raise FrameError(f"'{name}' must be a whole number.")
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 19:
        value = int(value)
    if not isinstance(value, int) or not 0 <= value < 2**62:
        raise FrameError(f"'{name}' must be a whole number.")
    return value


def _message_id(value, name):
    value = _sequence_number(value, name)
    if value == 0:
        raise FrameError(f"'{name}' must name a message.")
    return value
