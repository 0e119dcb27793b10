"""A message's HTML: `chat/messages/_message.html`, rendered once per version and kept.

Every path that shows a message (room page, older pages, broadcast, catch-up) takes its
fragment from here, so a page of 50 messages costs one cache read instead of 50 renders,
however long the history; pages read only each message's (pk, seq, version) from the
database (`shown_messages`), and whole rows, with authors, only for fragments not kept
yet. The key carries the message's version, bumped by every edit, delete and reaction,
so an old version is never served; and a hash of the template's source: edit
`_message.html`, restart, and old fragments are no longer used.
"""

import functools
import hashlib
import logging
from dataclasses import dataclass

from django.template.loader import get_template, render_to_string
from django.utils import timezone
from django.utils.safestring import mark_safe

from chat.caching import shared_cache
from chat.localtime import localise, operator_clock
from chat.selectors import messages as message_selectors

logger = logging.getLogger(__name__)

MESSAGE_TEMPLATE = "chat/messages/_message.html"
TEMPLATES_IN_A_FRAGMENT = (
    MESSAGE_TEMPLATE,
    "chat/messages/_quote.html",
    "chat/messages/_reactions.html",
    "chat/messages/_editor.html",
    "chat/messages/_room_line.html",
    "chat/people/_avatar.html",
)
# Also part of every fragment's HTML: chat/localtime.py writes its <time> elements.
KEEP_SECONDS = 7 * 24 * 3600


@functools.cache
def _template_version():
    digest = hashlib.sha256()
    for name in TEMPLATES_IN_A_FRAGMENT:
        digest.update(get_template(name).template.source.encode())
    return digest.hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class ShownMessage:
    """What a page's list needs of a message: its numbers and its rendered HTML."""

    pk: int
    seq: int
    fragment: str


def shown_messages(positions):
    """[ShownMessage] for [(pk, seq, version)] in that order: one cache read for all of
    them, and one query (and a render) only for those the cache does not have yet."""
    keys = {pk: _key(pk, version) for pk, _, version in positions}
    try:
        found = shared_cache().get_many(list(keys.values()))
    except Exception:
        logger.warning("message fragment cache unavailable; rendering", exc_info=True)
        found = {}
    missing = [pk for pk, _, _ in positions if keys[pk] not in found]
    if missing:
        for message in with_fragments(message_selectors.messages_by_pk(missing), new=True):
            # A newer version than the positions said: shown as it is now.
            found[keys[message.pk]] = message.fragment
    zone = timezone.get_current_timezone_name()  # the reader's (chat.middleware)
    return [
        ShownMessage(pk, seq, mark_safe(localise(found[keys[pk]], zone)))  # noqa: S308
        for pk, seq, _ in positions
        if keys[pk] in found  # deleted (in the admin) since the positions were read
    ]


def _key(pk, version):
    return f"message-html:{_template_version()}:{pk}:{version}"


def with_fragments(messages, *, new=False):
    """Set `message.fragment` (the rendered `_message.html`) on each message; return them.

    `new`: nothing to look up (just saved, or known to be missing), only to render and keep.
    """
    keys = {message.pk: _key(message.pk, message.version) for message in messages}
    try:
        found = {} if new else shared_cache().get_many(list(keys.values()))
    except Exception:
        logger.warning("message fragment cache unavailable; rendering", exc_info=True)
        found = None
    rendered = {}
    for message in messages:
        html = found.get(keys[message.pk]) if found is not None else None
        if html is None:
            with operator_clock():  # kept and shared: the same for every reader
                html = render_to_string(MESSAGE_TEMPLATE, {"message": message})
            rendered[keys[message.pk]] = html
        message.fragment = mark_safe(html)  # noqa: S308 - our autoescaped template's output
    if rendered and found is not None:
        try:
            if len(rendered) == 1:  # a new message: a plain SET, no pipeline
                shared_cache().set(*rendered.popitem(), timeout=KEEP_SECONDS)
            else:
                shared_cache().set_many(rendered, timeout=KEEP_SECONDS)
        except Exception:
            logger.warning("could not keep rendered message fragments", exc_info=True)
    return messages
