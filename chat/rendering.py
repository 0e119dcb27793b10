"""A message's HTML: `chat/_message.html`, rendered once per message and kept.

Every path that shows a message (room page, older pages, broadcast, catch-up) takes its
fragment from here, so a page of 50 messages costs one cache read instead of 50 renders,
however long the history; pages read only each message's (pk, seq) from the database
(`shown_messages`), and whole rows, with authors, only for fragments not kept yet. The key
carries a hash of the template's source: edit `_message.html`, restart, and old fragments
are no longer used.
"""

import functools
import hashlib
import logging
from dataclasses import dataclass

from django.template.loader import get_template, render_to_string
from django.utils.safestring import mark_safe

from chat import selectors
from chat.caching import shared_cache

logger = logging.getLogger(__name__)

MESSAGE_TEMPLATE = "chat/_message.html"
KEEP_SECONDS = 7 * 24 * 3600


@functools.cache
def _template_version():
    source = get_template(MESSAGE_TEMPLATE).template.source
    return hashlib.sha256(source.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class ShownMessage:
    """What a page's list needs of a message: its numbers and its rendered HTML."""

    pk: int
    seq: int
    fragment: str


def shown_messages(positions):
    """[ShownMessage] for [(pk, seq)] in that order: one cache read for all of them, and
    one query (and a render) only for those the cache does not have yet."""
    keys = {pk: _key(pk) for pk, _ in positions}
    try:
        found = shared_cache().get_many(list(keys.values()))
    except Exception:
        logger.warning("message fragment cache unavailable; rendering", exc_info=True)
        found = {}
    missing = [pk for pk, _ in positions if keys[pk] not in found]
    if missing:
        for message in with_fragments(selectors.messages_by_pk(missing), new=True):
            found[keys[message.pk]] = message.fragment
    return [
        ShownMessage(pk, seq, mark_safe(found[keys[pk]]))  # noqa: S308 - our template's output
        for pk, seq in positions
        if keys[pk] in found  # deleted (in the admin) since the positions were read
    ]


def _key(pk):
    return f"message-html:{_template_version()}:{pk}"


def with_fragments(messages, *, new=False):
    """Set `message.fragment` (the rendered `_message.html`) on each message; return them.

    `new`: nothing to look up (just saved, or known to be missing), only to render and keep.
    """
    keys = {message.pk: _key(message.pk) for message in messages}
    try:
        found = {} if new else shared_cache().get_many(list(keys.values()))
    except Exception:
        logger.warning("message fragment cache unavailable; rendering", exc_info=True)
        found = None
    rendered = {}
    for message in messages:
        html = found.get(keys[message.pk]) if found is not None else None
        if html is None:
            html = rendered[keys[message.pk]] = render_to_string(
                MESSAGE_TEMPLATE, {"message": message}
            )
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
