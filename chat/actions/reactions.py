"""Reactions: a small set of emoji, each set or unset by a person on a message."""

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F

from chat import events
from chat.actions import Done
from chat.actions.limits import rate_limit_check
from chat.actions.memberships import may_post
from chat.models import Reaction
from chat.selectors import messages as message_selectors

REACTION_EMOJI = ("👍", "❤️", "😂", "🎉", "😮", "🙏")


class _Unchanged(Exception):
    """Raised inside the transaction to roll back the number it took."""


def reaction_set(*, room, user, message_id, emoji, on):
    """Set (`on`) or unset `emoji` by `user` on a message. Already so: nothing changes.

    The form says which state it wants, not "toggle", so the same form twice, or two
    tabs pressing the same button, end in one state.
    """
    if emoji not in REACTION_EMOJI:
        raise ValidationError("That reaction is not one of the offered emoji.", code="emoji")
    message = _reactable(room, user, message_id)
    if _has(message, user, emoji) == on:
        return Done(message=message, seq=None)
    rate_limit_check(user)
    try:
        with transaction.atomic():
            seq = events.take_next_seq(room.pk)
            message = _reactable(room, user, message_id)
            if on:
                Reaction.objects.create(message=message, user=user, emoji=emoji)
            elif not Reaction.objects.filter(message=message, user=user, emoji=emoji).delete()[0]:
                raise _Unchanged
            message.reactions = message_selectors.reaction_summary(message)
            message.version = F("version") + 1
            message.save(update_fields=["reactions", "version"])
            message.refresh_from_db(fields=["version"])
            events.record(events.REACTIONS_CHANGED, room_id=room.pk, seq=seq, message=message)
    except (_Unchanged, IntegrityError):  # another tab got there first
        return Done(message=message, seq=None)
    return Done(message=message, seq=seq)


def _reactable(room, user, message_id):
    may_post(room, user)
    message = message_selectors.message_in_room(room, message_id)
    if message is None or not message.is_text:
        raise ValidationError("That message does not exist in this room.", code="not_found")
    if message.is_deleted:
        raise ValidationError("That message was deleted.", code="deleted")
    return message


def _has(message, user, emoji):
    return any(user_id == user.pk for user_id, _ in message.reactions.get(emoji, ()))
