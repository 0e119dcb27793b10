"""Message text as people type it in Slack, made into safe HTML.

markdown-it-py parses (CommonMark with raw HTML off, plus strikethrough and bare links);
nh3 (the Rust sanitizer ammonia) then keeps only the tags and attributes below, so even
a parser bug could not let markup through. Links open in a new tab without telling the
target where they came from. Images are not rendered from text: files come as
attachments.
"""

import functools
import html

import nh3
from markdown_it import MarkdownIt

ALLOWED_TAGS = {
    "p", "br", "strong", "em", "s", "del", "code", "pre", "blockquote",
    "ul", "ol", "li", "a", "hr",
}  # fmt: skip
# "*": no attribute on every tag (not even nh3's default title and lang).
ALLOWED_ATTRIBUTES = {"*": set(), "a": {"href"}, "ol": {"start"}}
LINK_SCHEMES = {"http", "https", "mailto"}


@functools.cache
def _parser():
    parser = MarkdownIt("commonmark", {"html": False, "linkify": True, "breaks": True})
    parser.enable(["linkify", "strikethrough"])
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


def message_html(text):
    """The HTML of a message's text: formatted, sanitised, safe to put in a page."""
    return _cleaner().clean(_parser().render(text)).strip()


def excerpt(text, length=90):
    """A one-line plain-text taste of a message, for reply quotes: its words as shown,
    without the formatting marks."""
    shown = html.unescape(nh3.clean(message_html(text), tags=set()))
    line = " ".join(shown.split())
    return line if len(line) <= length else line[: length - 1].rstrip() + "…"
