"""Writes: the one place that validates, saves, renders and publishes a message.

Both the socket consumer and the no-JavaScript HTTP view call `message_post`
(`amessage_post` from async code), so a message is checked the same way, stored the
same way, rendered once from `chat/_message.html` and fanned out the same way.
"""

import logging
import re
import time
import uuid
from dataclasses import dataclass

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.text import slugify

from chat.caching import shared_cache
from chat.models import Message, Room
from chat.rendering import with_fragments

logger = logging.getLogger(__name__)

ROOM_NAME_MAX_LENGTH = Room._meta.get_field("name").max_length
# Unicode category Cc except tab and newline; and lone surrogates, which JSON can carry.
CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
SURROGATES = re.compile("[\ud800-\udfff]")


class RateLimited(Exception):
    def __init__(self, retry_after):
        self.retry_after = retry_after
        super().__init__(f"Slow down: you can send again in {retry_after} s.")


@dataclass(frozen=True)
class Posted:
    message: Message
    html: str  # the broadcast fragment, rendered once
    created: bool  # False when the same composer form arrived before


# --- rooms ---


def room_get_or_create(*, name):
    """Open the room called `name`, creating it if new. Returns (room, created)."""
    name = " ".join((name or "").split())
    if not name:
        raise ValidationError("Give the room a name.", code="blank")
    if len(name) > ROOM_NAME_MAX_LENGTH:
        raise ValidationError(
            f"Room names are at most {ROOM_NAME_MAX_LENGTH} characters.", code="too_long"
        )
    slug = slugify(name)[:ROOM_NAME_MAX_LENGTH].strip("-")
    if not slug:
        raise ValidationError("Use some letters or digits in the room name.", code="unusable")
    try:
        with transaction.atomic():
            return Room.objects.get_or_create(slug=slug, defaults={"name": name})
    except IntegrityError:  # two people created it at the same instant, or a name clash
        room = Room.objects.filter(slug=slug).first()
        if room is None:
            raise ValidationError("That name is taken by another room.", code="taken") from None
        return room, False


# --- messages ---


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


def rate_limit_check(user):
    """Count one message for `user`; raise RateLimited past CHAT_RATE_LIMIT (N per S seconds).

    Counted in the cache, which is Redis when REDIS_URL is set, so every process shares
    one budget per user. A sliding window: the previous S-second window counts for the
    part of it that still lies within the last S seconds, so no burst of 2N fits across
    a window boundary. If the cache is down, messages go through (and it is logged).
    """
    rate = settings.CHAT_RATE_LIMIT
    if rate is None or user.get_username() in settings.CHAT_RATE_LIMIT_EXEMPT:
        return
    limit, seconds = rate
    now = time.time()
    window = int(now // seconds)
    key, previous_key = f"rate:{user.pk}:{window}", f"rate:{user.pk}:{window - 1}"
    try:
        cache = shared_cache()
        cache.add(key, 0, timeout=2 * seconds + 1)
        count = cache.incr(key)
        previous = cache.get(previous_key, 0)
        overlap = 1 - (now - window * seconds) / seconds
        if count + previous * overlap <= limit:
            return
        cache.decr(key)  # a refused message uses up no budget
    except Exception:
        logger.warning(
            "rate limit not checked for user %s: cache unavailable", user.pk, exc_info=True
        )
        return
    # Budget frees up as the previous window slides out, or at the latest when this one ends.
    raise RateLimited(retry_after=max(1, int((window + 1) * seconds - now) + 1))


def message_render(message, *, new=False):
    """The broadcast fragment of one message: `_message.html` in its append envelope."""
    return messages_render_each([message], new=new)[0]


def messages_render_each(messages, *, new=False):
    """The broadcast fragment of each message, with one cache read for all of them."""
    return [
        render_to_string("chat/_messages_append.html", {"messages": [message]})
        for message in with_fragments(messages, new=new)
    ]


def message_save(*, room, author, text, client_key=None):
    """Validate and store a message with the room's next sequence number. Returns Posted."""
    text = clean_message_text(text)
    if client_key is not None:
        # Keyed by form AND text: the same form twice is one message, but new text sent
        # with a key the page did not get to replace yet is a new message.
        client_key = uuid.uuid5(client_key, text)
    rate_limit_check(author)
    try:
        with transaction.atomic():
            # The UPDATE takes the room's row lock until commit: concurrent posters to
            # one room (in any process) get consecutive numbers in commit order.
            seq = _room_next_seq(room.pk, timezone.now())
            message = Message.objects.create(
                room=room, author=author, seq=seq, text=text, client_key=client_key
            )
    except IntegrityError:
        # The same form raced itself in: the first copy won, and the number rolled back.
        earlier = _message_with_key(author, client_key) if client_key else None
        if earlier is None:
            raise
        return Posted(message=earlier, html=message_render(earlier), created=False)
    message.author = author
    return Posted(message=message, html=message_render(message, new=True), created=True)


def _room_next_seq(room_id, now):
    """Bump the room's last_seq and return it in one statement (UPDATE ... RETURNING)."""
    table = connection.ops.quote_name(Room._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET last_seq = last_seq + 1, last_message_at = %s "  # noqa: S608
            "WHERE id = %s RETURNING last_seq",
            [connection.ops.adapt_datetimefield_value(now), room_id],
        )
        return cursor.fetchone()[0]


def _message_with_key(author, client_key):
    message = Message.objects.filter(author=author, client_key=client_key).first()
    if message is not None:
        message.author = author  # what the fragment needs, without a join
    return message


async def message_publish(posted):
    """Send a newly saved message to every open page of its room, in every process."""
    from chat.fanout import get_hub  # the hub imports this module

    if posted.created:
        message = posted.message
        await get_hub().publish(message.room_id, message.seq, posted.html)


async def amessage_post(*, room, author, text, client_key=None):
    """Save, render once, publish. For async callers (the consumer)."""
    # Not thread-sensitive: saves from different sockets run side by side in the loop's
    # executor (each thread has its own connection) instead of queueing for one thread.
    posted = await database_sync_to_async(message_save, thread_sensitive=False)(
        room=room, author=author, text=text, client_key=client_key
    )
    await message_publish(posted)
    return posted


def message_post(*, room, author, text, client_key=None):
    """Save, render once, publish. For sync callers (the no-JavaScript HTTP view)."""
    posted = message_save(room=room, author=author, text=text, client_key=client_key)
    async_to_sync(message_publish)(posted)
    return posted
