"""Posting, editing and deleting messages: the only code that writes them."""

import re
import uuid
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from chat import events, formatting, notifications
from chat.actions import Done
from chat.actions.limits import rate_limit_check
from chat.actions.memberships import ARCHIVED, may_post
from chat.models import Mention, Message
from chat.selectors import messages as message_selectors

# Unicode category Cc except tab and newline; and lone surrogates, which JSON can carry.
CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
SURROGATES = re.compile("[\ud800-\udfff]")
# Messages by one author closer than this share one name (a "group").
GROUP_GAP = timedelta(minutes=5)
MAX_MENTIONS = 20


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
    may_post(room, author)
    if client_key is not None:
        # Keyed by form AND text: the same form twice is one message, but new text sent
        # with a key the page did not get to replace yet is a new message.
        client_key = uuid.uuid5(client_key, text)
    rate_limit_check(author)
    try:
        with transaction.atomic():
            now = timezone.now()
            seq = _take_seq_to_post(room, author, now)
            reply_to = _reply_target(room, reply_to_id) if reply_to_id else None
            previous = message_selectors.message_before(room, seq=seq)
            mentioned = _mentioned(room, author, text)
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
                mentions=[[person.pk, person.get_username()] for person in mentioned],
            )
            message.author = author
            _count_mentions(message, mentioned)
            notifications.missed_email_queue(room, message, mentioned)
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
    mentioned = _mentioned(room, message.author, text)
    message.text = text
    message.edited_at = timezone.now()
    message.version = F("version") + 1
    message.mentions = [[person.pk, person.get_username()] for person in mentioned]
    message.save(update_fields=["text", "edited_at", "version", "mentions"])
    Mention.objects.filter(message=message).delete()
    _count_mentions(message, mentioned)
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
        Mention.objects.filter(message=message).delete()
        message.text = ""
        message.reactions = {}
        message.mentions = []
        message.deleted_at = timezone.now()
        message.version = F("version") + 1
        message.save(update_fields=["text", "reactions", "mentions", "deleted_at", "version"])
        message.refresh_from_db(fields=["version"])
        quoted = _bump_replies(message)
        events.record(
            events.MESSAGE_DELETED, room_id=room.pk, seq=seq, message=message, quotes_changed=quoted
        )
    return Done(message=message, seq=seq)


def _changeable(room, user, message_id):
    may_post(room, user)
    message = message_selectors.message_in_room(room, message_id)
    if message is None or not message.is_text:
        raise ValidationError("That message does not exist in this room.", code="not_found")
    if message.is_deleted:
        raise ValidationError("That message was deleted.", code="deleted")
    if not may_change(user, message):
        raise ValidationError("You can only change your own messages.", code="forbidden")
    return message


def _take_seq_to_post(room, author, now):
    """The room's next number, under its lock, if the author may still post: a removal
    or an archive that committed meanwhile holds the same lock, so nothing of a removed
    member's is ever numbered after their removal."""
    try:
        seq = events.take_next_seq(room.pk, posted_at=now, open_only=True)
    except events.RoomClosed:
        raise ValidationError(ARCHIVED, code="archived") from None
    if not room.is_public:
        may_post(room, author)  # membership, read after the lock: as it is now
    return seq


def _mentioned(room, author, text):
    """The people the text @mentions who may read the room (at most MAX_MENTIONS):
    anyone active for a public room, members otherwise. Unknown names stay plain text."""
    if "@" not in text:
        return []
    names = {name.lower() for name in formatting.mentioned_usernames(text)}
    if not names:
        return []
    matches = Q()
    for name in list(names)[:MAX_MENTIONS]:
        matches |= Q(username__iexact=name)
    people = get_user_model().objects.filter(matches, is_active=True)
    if not room.is_public:
        people = people.filter(chat_memberships__room=room)
    return list(people.order_by("username")[:MAX_MENTIONS])


def _count_mentions(message, mentioned):
    """A Mention per person mentioned (not the author): counted until they read it."""
    Mention.objects.bulk_create(
        Mention(message=message, user=person, room_id=message.room_id, seq=message.seq)
        for person in mentioned
        if person.pk != message.author_id
    )


def _reply_target(room, message_id):
    message = message_selectors.message_in_room(room, message_id)
    if message is None or message.is_deleted or not message.is_text:
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
        and previous.kind == Message.TEXT
        and previous.author_id == author.pk
        and now - previous.created_at < GROUP_GAP
        and not _starts_day(previous, now)
    )


def _starts_day(previous, now):
    if previous is None:
        return True
    return timezone.localdate(previous.created_at) != timezone.localdate(now)
