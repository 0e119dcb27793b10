"""A message's HTML: `chat/_message.html`, rendered once per message and kept.

Every path that shows a message (room page, older pages, broadcast, catch-up) takes its
fragment from here, so a page of 50 messages costs one cache read instead of 50 renders,
however long the history. The key carries a hash of the template's source: edit
`_message.html`, restart, and old fragments are no longer used.
"""

import functools
import hashlib
import logging

from django.template.loader import get_template, render_to_string
from django.utils.safestring import mark_safe

from chat.caching import shared_cache

logger = logging.getLogger(__name__)

MESSAGE_TEMPLATE = "chat/_message.html"
KEEP_SECONDS = 7 * 24 * 3600


@functools.cache
def _template_version():
    source = get_template(MESSAGE_TEMPLATE).template.source
    return hashlib.sha256(source.encode()).hexdigest()[:12]


def with_fragments(messages, *, new=False):
    """Set `message.fragment` (the rendered `_message.html`) on each message; return them.

    `new`: the messages were just saved, so there is nothing to look up, only to keep.
    """
    keys = {message.pk: f"message-html:{_template_version()}:{message.pk}" for message in messages}
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
