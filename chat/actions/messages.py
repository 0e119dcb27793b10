"""Posting, editing and deleting messages: the only code that writes them."""

import re
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from chat import events
from chat.actions import Done
from chat.actions.limits import rate_limit_check
from chat.models import Message
from chat.selectors import messages as message_selectors

# Unicode category Cc except tab and newline; and lone surrogates, which JSON can carry.
CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
SURROGATES = re.compile("[\ud800-\udfff]")
# Messages by one author closer than this share one name (a "group").
GROUP_GAP = timedelta(minutes=5)


def clean_message_text(text):
    """The text as it will be stored, or ValidationError saying what is wrong with it."""
    if not isinstance(text, str):
        raise ValidationError("A message must be text.", code="invalid")
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise ValidationError("Write something first.", code="blank")
    limit = settings.CHAT_MAX_MESSAGE_LENGTH
    if len(text) > limit:
        raise ValidationError(
            f"That is {len(text)} characters; the limit is {limit}.", code="too_long"
        )
    if SURROGATES.search(text):
        raise ValidationError("The text holds a broken character.", code="surrogate")
    if CONTROL_CHARACTERS.search(text):
        raise ValidationError("The text holds a control character.", code="control")
    return text


def may_change(user, message):
    """Authors change their own messages; staff change anyone's."""
    return user.is_authenticated and (message.author_id == user.pk or user.is_staff)


def message_post(*, room, author, text, client_key=None, reply_to_id=None):
    """Validate and store a message as the room's next event. Returns Done.

    The same composer form twice (same key, same text) is one message: the second call
    returns the first with `seq=None`.
    """
    text = clean_message_text(text)
    if client_key is not None:
        # Keyed by form AND text: the same form twice is one message, but new text sent
        # with a key the page did not get to replace yet is a new message.
        client_key = uuid.uuid5(client_key, text)
    rate_limit_check(author)
    try:
        with transaction.atomic():
            now = timezone.now()
            seq = events.take_next_seq(room.pk, posted_at=now)
            reply_to = _reply_target(room, reply_to_id) if reply_to_id else None
            previous = message_selectors.message_before(room, seq=seq)
            message = Message.objects.create(
                room=room,
                author=author,
                seq=seq,
                text=text,
                client_key=client_key,
                reply_to=reply_to,
                created_at=now,
                continues_group=_continues(previous, author, now),
                previous_at=previous.created_at if previous is not None else None,
            )
            message.author = author
            events.record(events.MESSAGE_POSTED, room_id=room.pk, seq=seq, message=message)
    except IntegrityError:
        # The same form raced itself in: the first copy won, and the number rolled back.
        earlier = message_selectors.message_with_key(author, client_key) if client_key else None
        if earlier is None:
            raise
        return Done(message=earlier, seq=None)
    return Done(message=message, seq=seq)


def message_edit(*, room, user, message_id, text):
    """Replace a message's text. Unchanged text changes nothing (seq None)."""
    text = clean_message_text(text)
    message = _changeable(room, user, message_id)
    if message.text == text:
        return Done(message=message, seq=None)
    rate_limit_check(user)
    try:
        with transaction.atomic():
            seq = events.take_next_seq(room.pk)  # the room's lock: changes to it queue here
            message = _changeable(room, user, message_id)
            if message.text == text:  # the same edit got here first, from another process
                raise _Unchanged
            return _save_edit(room, message, seq, text)
    except _Unchanged:
        return Done(message=message, seq=None)


class _Unchanged(Exception):
    """Raised inside the transaction to roll back the number it took."""


def _save_edit(room, message, seq, text):
    """Inside the edit's transaction: the new text, its event, the quotes that follow."""
    message.text = text
    message.edited_at = timezone.now()
    message.version = F("version") + 1
    message.save(update_fields=["text", "edited_at", "version"])
    message.refresh_from_db(fields=["version"])
    quoted = _bump_replies(message)
    events.record(
        events.MESSAGE_EDITED, room_id=room.pk, seq=seq, message=message, quotes_changed=quoted
    )
    return Done(message=message, seq=seq)


def message_delete(*, room, user, message_id):
    """Delete a message: its text, reactions and (later) files go; the row stays as a
    marker that events and replies point at."""
    message = _changeable(room, user, message_id)
    rate_limit_check(user)
    with transaction.atomic():
        seq = events.take_next_seq(room.pk)
        message = _changeable(room, user, message_id)
        message.reaction_set.all().delete()
        message.text = ""
        message.reactions = {}
        message.deleted_at = timezone.now()
        message.version = F("version") + 1
        message.save(update_fields=["text", "reactions", "deleted_at", "version"])
        message.refresh_from_db(fields=["version"])
        quoted = _bump_replies(message)
        events.record(
            events.MESSAGE_DELETED, room_id=room.pk, seq=seq, message=message, quotes_changed=quoted
        )
    return Done(message=message, seq=seq)


def _changeable(room, user, message_id):
    message = message_selectors.message_in_room(room, message_id)
    if message is None:
        raise ValidationError("That message does not exist in this room.", code="not_found")
    if message.is_deleted:
        raise ValidationError("That message was deleted.", code="deleted")
    if not may_change(user, message):
        raise ValidationError("You can only change your own messages.", code="forbidden")
    return message


def _reply_target(room, message_id):
    message = message_selectors.message_in_room(room, message_id)
    if message is None or message.is_deleted:
        raise ValidationError(
            "The message you replied to is not in this room any more.", code="reply_gone"
        )
    return message


def _bump_replies(message):
    """Kept replies quote the old text: give them a new version. True if there were any."""
    return Message.objects.filter(reply_to=message).update(version=F("version") + 1) > 0


def _continues(previous, author, now):
    return (
        previous is not None
        and previous.author_id == author.pk
        and now - previous.created_at < GROUP_GAP
        and not _starts_day(previous, now)
    )


def _starts_day(previous, now):
    if previous is None:
        return True
    return timezone.localdate(previous.created_at) != timezone.localdate(now)
