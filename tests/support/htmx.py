"""What htmx 2 and its ws extension do to a page with a frame, in Python, for tests.

The model is small but follows the source shipped in django-htmx
(static/django_htmx/htmx-2.js and ext/hx-ws-2.js):

- ws extension, `message` listener: `makeFragment(response)` (the frame parsed inside a
  `<template>`), then for each TOP-LEVEL element of it (`fragment.children`; text
  between them is ignored) `oobSwap(getAttributeValue(child, 'hx-swap-oob') || 'true',
  child)`.
- `oobSwap(value, element)`: the selector is `#<the element's id>` and the style
  `outerHTML`; a value `"style:selector"` (first colon past position 0) names both, any
  other value only the style. `hx-swap-oob` is removed from the element first; then
  every element of the document matching the selector (`querySelectorAll`, taken before
  any swap) gets its own clone: the clone itself for `outerHTML` (the only "inline"
  swap), the clone's children for any other style. No match: the element is dropped.
- `swapWithStyle`: outerHTML (the element replaced by the new nodes; BODY: innerHTML),
  innerHTML, beforebegin, afterbegin, beforeend, afterend, delete (the target removed),
  none; any other style falls back to `htmx.config.defaultSwapStyle` (innerHTML).

What htmx does on the way that leaves no trace once settled (the `htmx-added` class,
attributes copied over and restored by `handleAttributes`, events, focus) is left out;
so are `hx-preserve` and extended selectors (`closest`, `find`, ...), which no page here
uses: asking for them raises instead of guessing.

`Document` holds a whole page (or the skeleton of one) as a tree; `normalised` turns its
`#messages` into a comparable list, so a page that applied frames can be compared with
one freshly loaded.
"""

import html as html_lib
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = frozenset(
    {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "source",
        "track",
        "wbr",
    }
)
# Start tags that close an open <p> (HTML's "close a p element" rule, the common ones).
CLOSES_P = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "details",
        "div",
        "dl",
        "fieldset",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "ul",
    }
)
SWAP_STYLES = frozenset(
    {
        "outerHTML",
        "innerHTML",
        "beforebegin",
        "afterbegin",
        "beforeend",
        "afterend",
        "delete",
        "none",
    }
)
DEFAULT_SWAP_STYLE = "innerHTML"  # htmx.config.defaultSwapStyle


# --- the tree ---


class Text:
    __slots__ = ("data", "parent")

    def __init__(self, data):
        self.data = data
        self.parent = None

    def clone(self):
        return Text(self.data)

    def __repr__(self):
        return f"Text({self.data!r})"


class Element:
    __slots__ = ("attrs", "children", "parent", "tag")

    def __init__(self, tag, attrs=None):
        self.tag = tag
        self.attrs = dict(attrs or {})
        self.children = []
        self.parent = None

    # --- reading ---

    @property
    def id(self):
        return self.attrs.get("id")

    @property
    def classes(self):
        return (self.attrs.get("class") or "").split()

    def get(self, name, default=None):
        return self.attrs.get(name, default)

    def elements(self):
        """This element and every element inside it, in document order."""
        stack = [self]
        while stack:
            element = stack.pop()
            yield element
            stack.extend(
                child for child in reversed(element.children) if isinstance(child, Element)
            )

    def select_all(self, selector):
        """Elements inside this one (not itself) matching a simple selector list."""
        matchers = parse_selector(selector)
        return [
            element
            for element in self.elements()
            if element is not self and any(matcher(element) for matcher in matchers)
        ]

    def select(self, selector):
        found = self.select_all(selector)
        return found[0] if found else None

    def text(self, *, br=""):
        """textContent (with `br` for each <br>)."""
        parts = []

        def walk(node):
            for child in node.children:
                if isinstance(child, Text):
                    parts.append(child.data)
                elif child.tag == "br":
                    parts.append(br)
                elif child.tag not in ("script", "style", "template"):
                    walk(child)

        walk(self)
        return "".join(parts)

    def html(self):
        """outerHTML, serialised the same way whatever path built the element."""
        parts = []
        _serialise(self, parts)
        return "".join(parts)

    def inner_html(self):
        parts = []
        for child in self.children:
            _serialise(child, parts)
        return "".join(parts)

    # --- changing (Document keeps its id index in step) ---

    def clone(self):
        copy = Element(self.tag, self.attrs)
        for child in self.children:
            child = child.clone()
            child.parent = copy
            copy.children.append(child)
        return copy

    def __repr__(self):
        return f"<{self.tag}{' #' + self.id if self.id else ''}{''.join('.' + c for c in self.classes)}>"


def _serialise(node, parts):
    if isinstance(node, Text):
        parts.append(html_lib.escape(node.data, quote=False))
        return
    parts.append(f"<{node.tag}")
    for name, value in node.attrs.items():
        parts.append(f' {name}="{html_lib.escape(value, quote=True)}"')
    parts.append(">")
    if node.tag in VOID:
        return
    for child in node.children:
        _serialise(child, parts)
    parts.append(f"</{node.tag}>")


class _TreeBuilder(HTMLParser):
    """html.parser events to a tree, with the end-tag rules these templates rely on."""

    def __init__(self, root):
        super().__init__(convert_charrefs=True)
        self.stack = [root]

    @property
    def current(self):
        return self.stack[-1]

    def _append(self, node):
        node.parent = self.current
        self.current.children.append(node)

    def handle_starttag(self, tag, attrs):
        if tag == "li":
            self._close_implied("li", scope=("ol", "ul", "menu"))
        if tag in CLOSES_P:
            self._close_implied("p", scope=("button",))
        values = {}
        for name, value in attrs:
            values.setdefault(name, "" if value is None else value)  # the first one counts
        element = Element(tag, values)
        self._append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)  # HTML ignores the "/" of a non-void element

    def handle_endtag(self, tag):
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return
        # An end tag with nothing open to close: ignored.

    def _close_implied(self, tag, *, scope):
        for depth in range(len(self.stack) - 1, 0, -1):
            open_tag = self.stack[depth].tag
            if open_tag == tag:
                del self.stack[depth:]
                return
            if open_tag in scope or open_tag in ("div", "section", "template", "td"):
                return

    def handle_data(self, data):
        children = self.current.children
        if children and isinstance(children[-1], Text):
            children[-1].data += data
        else:
            self._append(Text(data))


def parse_into(root, markup):
    builder = _TreeBuilder(root)
    builder.feed(markup)
    builder.close()
    return root


def parse_fragment(markup):
    """`makeFragment` for a partial response: the nodes of `markup` parsed as the content
    of a <template> (so an <li> or <input> needs no parent)."""
    return parse_into(Element("template"), markup).children


# --- selectors (the simple ones oob swaps use) ---

_COMPOUND = re.compile(
    r"""(?P<tag>[a-zA-Z][a-zA-Z0-9-]*|\*)?
        (?P<rest>(?:\#[\w-]+|\.[\w-]+|\[[\w-]+(?:="[^"]*"|='[^']*'|=[\w-]+)?\])*)$""",
    re.VERBOSE,
)
_PART = re.compile(r"""\#([\w-]+)|\.([\w-]+)|\[([\w-]+)(?:=(?:"([^"]*)"|'([^']*)'|([\w-]+)))?\]""")


def parse_selector(selector):
    """Matchers for a selector list of compound selectors: tag, #id, .class, [attr],
    [attr=value]. Anything else (combinators, pseudo-classes, htmx's extended
    selectors) is not modelled and raises ValueError."""
    matchers = []
    for part in selector.split(","):
        part = part.strip()
        found = _COMPOUND.match(part)
        if not part or found is None or not (found["tag"] or found["rest"]):
            raise ValueError(f"selector not modelled: {selector!r}")
        tag = found["tag"] if found["tag"] != "*" else None
        ids, classes, attrs = [], [], []
        for piece in _PART.finditer(found["rest"]):
            element_id, class_name, attr = piece[1], piece[2], piece[3]
            if element_id:
                ids.append(element_id)
            elif class_name:
                classes.append(class_name)
            else:
                value = next((v for v in piece.groups()[3:] if v is not None), None)
                attrs.append((attr, value))
        matchers.append(_matcher(tag, ids, classes, attrs))
    return matchers


def _matcher(tag, ids, classes, attrs):
    def matches(element):
        if tag and element.tag != tag.lower():
            return False
        if any(element.id != element_id for element_id in ids):
            return False
        own = element.classes
        if any(name not in own for name in classes):
            return False
        return all(
            name in element.attrs and (value is None or element.attrs[name] == value)
            for name, value in attrs
        )

    return matches


# --- the page ---


@dataclass(frozen=True)
class Swap:
    """One out-of-band swap a frame made: its element, style and how many targets."""

    element: Element
    style: str
    selector: str
    targets: int


class Document:
    """A page as the browser holds it, changed only as htmx changes it."""

    def __init__(self, markup):
        self.root = Element("#document")
        self._ids = {}  # id -> [elements attached to the document with that id]
        self.version = 0  # bumped by every change: lets readers cache what they derive
        parse_into(self.root, markup)
        self._index(self.root)

    # --- reading ---

    def by_id(self, element_id):
        found = self._ids.get(element_id)
        return found[0] if found else None

    def all_by_id(self, element_id):
        """querySelectorAll('#id'): every element with that id (ids can repeat)."""
        found = self._ids.get(element_id, [])
        if len(found) < 2:
            return list(found)
        order = {id(element): n for n, element in enumerate(self.root.elements())}
        return sorted(found, key=lambda element: order[id(element)])

    def select_all(self, selector):
        if re.fullmatch(r"#[\w-]+", selector.strip()):
            return self.all_by_id(selector.strip()[1:])
        return self.root.select_all(selector)

    def select(self, selector):
        found = self.select_all(selector)
        return found[0] if found else None

    @property
    def messages(self):
        """The `li.message` children of #messages, in order."""
        container = self.by_id("messages")
        if container is None:
            return []
        return [
            child
            for child in container.children
            if isinstance(child, Element) and child.tag == "li" and "message" in child.classes
        ]

    @property
    def last_seq(self):
        element = self.by_id("last-seq")
        value = element.get("value") if element is not None else None
        return int(value) if value else None

    # --- what the ws extension does with a frame ---

    def apply(self, frame):
        """Apply one ws frame; the swaps made, in order."""
        if isinstance(frame, bytes):
            frame = frame.decode()
        swaps = []
        for node in parse_fragment(frame):
            if isinstance(node, Element):
                value = _attribute_value(node, "hx-swap-oob") or "true"
                swaps.append(self.oob_swap(value, node))
        return swaps

    def oob_swap(self, value, element):
        """htmx's `oobSwap(oobValue, oobElement)` against this document."""
        selector = None  # None: '#' + the element's id
        style = "outerHTML"
        if value == "true":
            pass
        elif value.find(":") > 0:
            style, selector = value[: value.index(":")], value[value.index(":") + 1 :]
        else:
            style = value
        element.attrs.pop("hx-swap-oob", None)
        element.attrs.pop("data-hx-swap-oob", None)
        if selector is None:
            # CSS.escape(getRawAttribute(el, 'id')): an element without an id looks for "#null".
            targets = self.all_by_id(element.id if element.id is not None else "null")
            selector = f"#{element.id}"
        else:
            targets = self.select_all(selector)
        for target in targets:
            copy = element.clone()
            nodes = [copy] if style == "outerHTML" else _take_children(copy)
            self._swap(style, target, nodes)
        return Swap(element=element, style=style, selector=selector, targets=len(targets))

    def _swap(self, style, target, nodes):
        if style not in SWAP_STYLES:
            style = DEFAULT_SWAP_STYLE  # no extension here handles other styles
        if style == "none":
            return
        if style == "outerHTML" and target.tag == "body":
            style = "innerHTML"
        if style == "outerHTML":
            if target.parent is None:
                return
            self._insert(target.parent, nodes, before=target)
            self._remove(target)
        elif style == "innerHTML":
            old = list(target.children)
            self._insert(target, nodes, before=target.children[0] if old else None)
            for child in old:
                self._remove(child)
        elif style == "beforeend":
            self._insert(target, nodes, before=None)
        elif style == "afterbegin":
            self._insert(target, nodes, before=target.children[0] if target.children else None)
        elif style in ("beforebegin", "afterend") and target.parent is not None:
            siblings = target.parent.children
            if style == "beforebegin":
                before = target
            else:
                index = siblings.index(target) + 1
                before = siblings[index] if index < len(siblings) else None
            self._insert(target.parent, nodes, before=before)
        elif style == "delete":
            self._remove(target)

    # --- changes, keeping the id index in step ---

    def _insert(self, parent, nodes, *, before):
        index = len(parent.children) if before is None else _position(parent, before)
        for node in nodes:
            node.parent = parent
        parent.children[index:index] = nodes
        if self._attached(parent):
            for node in nodes:
                if isinstance(node, Element):
                    self._index(node)
        self.version += 1

    def _remove(self, node):
        parent = node.parent
        if parent is None:
            return
        attached = self._attached(node)
        del parent.children[_position(parent, node)]
        node.parent = None
        if attached and isinstance(node, Element):
            self._unindex(node)
        self.version += 1

    def _attached(self, node):
        while node is not None:
            if node is self.root:
                return True
            node = node.parent
        return False

    def _index(self, element):
        for each in element.elements():
            if each.id is not None:
                self._ids.setdefault(each.id, []).append(each)

    def _unindex(self, element):
        for each in element.elements():
            if each.id is not None:
                found = self._ids.get(each.id, [])
                found[:] = [other for other in found if other is not each]
                if not found:
                    self._ids.pop(each.id, None)


def _attribute_value(element, name):
    """htmx's getAttributeValue: `name` or `data-name`."""
    value = element.get(name)
    return value if value is not None else element.get(f"data-{name}")


def _take_children(element):
    nodes = element.children
    element.children = []
    for node in nodes:
        node.parent = None
    return nodes


def _position(parent, child):
    for index, each in enumerate(parent.children):
        if each is child:
            return index
    raise ValueError(f"{child!r} is not a child of {parent!r}")


# --- a comparable form of #messages ---


@dataclass(frozen=True)
class Quote:
    of: int  # pk of the quoted message (its class quote-of-<pk>)
    text: str  # what the quote says, whitespace collapsed
    deleted: bool


@dataclass(frozen=True)
class Reactions:
    emoji: str
    count: int
    reactors: tuple  # ("u3", "u5") from data-reactors
    names: str  # the title: who reacted


@dataclass(frozen=True)
class NormalMessage:
    """One message of #messages, as a person sees it."""

    id: str | None
    seq: int | None  # data-seq (None: not a message element at all)
    author: str | None  # data-author
    name: str | None  # the author's name shown (None when the message continues a group)
    text: str  # the formatted body's text
    edited: str | None  # the "(edited)" mark's title, None when not edited
    quote: Quote | None
    reactions: tuple  # (Reactions, ...) with a count, in the offered order
    # The whole element, serialised: two pages agree to the attribute, not only to the text.
    html: str = field(repr=False)


# Children of #messages that are not messages: the links that load older or newer pages.
# Page furniture, not messages: links to more, and the "New messages" line of one reader.
NAVIGATION = frozenset({"older", "newer", "unread-line"})


def normalised(messages):
    """[NormalMessage] of a Document's #messages (or of an #messages element, or a list
    of its children). Every element child counts, save the older/newer links: a stray
    element (an emptied message, say) shows up instead of passing unseen."""
    if isinstance(messages, Document):
        messages = messages.by_id("messages")
        if messages is None:
            return []
    if isinstance(messages, Element):
        messages = messages.children
    return [
        normal_message(element)
        for element in messages
        if isinstance(element, Element) and not NAVIGATION & set(element.classes)
    ]


def normal_message(element):
    body = element.select(".message-text")
    edited = element.select(".edited")
    author = element.select(".message-author")
    return NormalMessage(
        id=element.id,
        seq=int(element.get("data-seq")) if element.get("data-seq") else None,
        author=element.get("data-author"),
        name=" ".join(author.text().split()) if author is not None else None,
        text=body.text(br="\n").strip() if body is not None else "",
        edited=edited.get("title", "") if edited is not None else None,
        quote=_quote(element.select(".reply-quote")),
        reactions=tuple(
            _reactions(span)
            for span in element.select_all(".reaction")
            if span.select(".reaction-count") is not None
        ),
        html=element.html(),
    )


def _quote(element):
    if element is None:
        return None
    of = next(
        (
            int(name.removeprefix("quote-of-"))
            for name in element.classes
            if name.startswith("quote-of-")
        ),
        None,
    )
    return Quote(
        of=of, text=" ".join(element.text().split()), deleted="is-deleted" in element.classes
    )


def _reactions(span):
    button = span.select(".reaction-on") or span.select("button")
    count = span.select(".reaction-count")
    label = (button.get("aria-label") or "") if button is not None else ""
    return Reactions(
        emoji=label.removeprefix("React with ").strip(),
        count=int(count.text().strip()),
        reactors=tuple((span.get("data-reactors") or "").split()),
        names=button.get("title", "") if button is not None else "",
    )
