"""Message text as people type it in Slack, made into safe HTML.

markdown-it-py parses (CommonMark with raw HTML off, plus strikethrough and bare links);
nh3 (the Rust sanitizer ammonia) then keeps only the tags and attributes below, so even
a parser bug could not let markup through. Links open in a new tab without telling the
target where they came from. Images are not rendered from text: files come as
attachments.
"""

import functools
import html
import re

import nh3
from django.urls import reverse
from markdown_it import MarkdownIt
from markdown_it.token import Token

ALLOWED_TAGS = {
    "p", "br", "strong", "em", "s", "del", "code", "pre", "blockquote",
    "ul", "ol", "li", "a", "hr",
}  # fmt: skip
# "*": no attribute on every tag (not even nh3's default title and lang).
ALLOWED_ATTRIBUTES = {"*": set(), "a": {"href", "class", "data-mention"}, "ol": {"start"}}
LINK_SCHEMES = {"http", "https", "mailto"}


# @username: Django's default username characters, not ending in a dot (end of sentence).
MENTION = re.compile(r"(?<![\w@.+-])@([\w.@+-]*[\w@+-])")


@functools.cache
def _parser():
    parser = MarkdownIt("commonmark", {"html": False, "linkify": True, "breaks": True})
    parser.enable(["linkify", "strikethrough"])
    parser.core.ruler.push("mentions", _link_mentions)
    # Headings, images and tables do not belong in a chat line; they stay as typed. So do
    # character references: someone who types &lt;b&gt; sees &lt;b&gt;, not <b>.
    parser.disable(["heading", "lheading", "image", "entity"])
    return parser


@functools.cache
def _cleaner():
    return nh3.Cleaner(
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=LINK_SCHEMES,
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
    )


def message_html(text, mentions=()):
    """The HTML of a message's text: formatted, sanitised, safe to put in a page.

    `mentions`: [[user id, username], ...] the message mentions: each @username among
    them becomes a link to the person's page, marked for per-reader highlighting."""
    env = {"mentions": {username.lower(): (pk, username) for pk, username in mentions}}
    return _cleaner().clean(_parser().render(text, env)).strip()


def mentioned_usernames(text):
    """Every @username in the text as people read it (not in code, not inside links)."""
    found = []
    for token in _parser().parse(text):
        in_link = 0
        for child in token.children or ():
            in_link += {"link_open": 1, "link_close": -1}.get(child.type, 0)
            if child.type == "text" and not in_link:
                found.extend(MENTION.findall(child.content))
    return found


def _link_mentions(state):
    """A core rule: split text tokens at @username (of a known mention) into links."""
    known = state.env.get("mentions") if isinstance(state.env, dict) else None
    if not known:
        return
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        children, in_link = [], 0
        for token in block.children:
            in_link += {"link_open": 1, "link_close": -1}.get(token.type, 0)
            if token.type != "text" or in_link or "@" not in token.content:
                children.append(token)
                continue
            children.extend(_split_mentions(state, token, known))
        block.children = children


def _split_mentions(state, token, known):
    pieces, position = [], 0
    for match in MENTION.finditer(token.content):
        person = known.get(match.group(1).lower())
        if person is None:
            continue
        pk, username = person
        if match.start() > position:
            pieces.append(_text(state, token.content[position : match.start()]))
        opening = Token("link_open", "a", 1)
        opening.attrs = {
            "href": reverse("person", args=[username]),
            "class": "mention",
            "data-mention": f"u{pk}",
        }
        pieces += [opening, _text(state, match.group(0)), Token("link_close", "a", -1)]
        position = match.end()
    if position == 0:
        return [token]
    if position < len(token.content):
        pieces.append(_text(state, token.content[position:]))
    return pieces


def _text(state, content):
    token = Token("text", "", 0)
    token.content = content
    return token


def excerpt(text, length=90):
    """A one-line plain-text taste of a message, for reply quotes: its words as shown,
    without the formatting marks."""
    shown = html.unescape(nh3.clean(message_html(text), tags=set()))
    line = " ".join(shown.split())
    return line if len(line) <= length else line[: length - 1].rstrip() + "…"
