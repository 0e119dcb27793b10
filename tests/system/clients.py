"""A room page without a browser: what the htmx page does over its socket, in Python.

`Page` loads `/chat/<slug>/` over HTTP like a browser and keeps the whole page as a tree
(tests/support/htmx.py), reads the `ws-connect` URL, then opens the socket with the
page's Origin and session cookie and, like the hidden `#catch-up` form on every
`htmx:wsOpen`, sends `{"last_seq": "<#last-seq>"}` first. Every incoming frame is applied
as the htmx ws extension applies it: each top-level element is swapped out of band
(messages appended to `#messages`, replaced when edited, removed when deleted, their
reactions and the quotes of them in replies replaced, `#last-seq`, `#composer-fields`,
`#connection-status` and `#notice` replaced). What the page shows (`messages`,
`last_seq`, `composer`, `status`, `notice`, `normalised`) is read from that tree.

The page's forms are sent as the extension sends them, JSON of their fields plus
`HEADERS`: the composer (`post`, with `reply_to` for a reply), the edit form (`edit`) and
the one `#message-actions` form that the Delete and reaction buttons submit
(`delete_message`, `react`). While the socket is down frames are queued and sent after
the catch-up frame, as the extension queues them. With `auto_reconnect`, a close with
1006/1011/1012/1013 is retried with a short backoff, keeping the page, exactly as the
extension retries.

Nothing here sleeps to synchronise: tests await conditions with `Page.until`.
"""

import asyncio
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field

import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tests.support import htmx

RETRIED_CODES = frozenset({1006, 1011, 1012, 1013})  # the htmx ws extension reconnects
ABNORMAL = 1006  # what a browser reports when no close frame arrived
DEFAULT_TIMEOUT = 30
# What a socket client that never loaded the page holds: the elements frames swap.
SKELETON = (
    '<section id="room"><div id="connection-status"></div><div id="notice"></div>'
    '<ol id="messages"></ol><input type="hidden" id="last-seq" name="last_seq" value="0">'
    '<div id="composer-fields"></div></section>'
)


@dataclass(frozen=True)
class Shown:
    """One message element as it appears in #messages."""

    seq: int
    id: str
    text: str

    @property
    def pk(self):
        return message_pk(self.id)


@dataclass
class Fragment:
    """What one HTML document holds for a page."""

    messages: list = field(default_factory=list)  # [Shown] in document order
    last_seq: int | None = None  # value of #last-seq
    ws_connect: str | None = None
    composer: dict | None = None  # {"text", "client_key", "error"} of #composer-fields
    status: str | None = None  # text of #connection-status
    csrf: str | None = None


def message_pk(dom_id):
    return int(dom_id.removeprefix("message-"))


def shown_message(element):
    """Shown for an `li.message` element: its number, id and text (<br> as a newline)."""
    body = element.select(".message-text")
    text = body.text(br="\n").strip() if body is not None else ""
    return Shown(seq=int(element.get("data-seq")), id=element.id, text=text)


def composer_of(element):
    """{"text", "client_key", "error"} of a #composer-fields element."""
    if element is None:
        return None
    field_ = element.select("input[name=message]") or element.select("textarea")
    if field_ is None:
        text = ""
    elif field_.tag == "textarea":
        text = field_.text()
    else:
        text = field_.get("value", "")
    key = element.select("input[name=client_key]")
    error = element.select(".composer-error")
    return {
        "text": text,
        "client_key": key.get("value", "") if key is not None else None,
        "error": error.text() if error is not None else None,
    }


def status_of(document):
    element = document.by_id("connection-status")
    return " ".join(element.text().split()) if element is not None else None


def csrf_of(document):
    element = document.select("input[name=csrfmiddlewaretoken]")
    return element.get("value") if element is not None else None


def parse(html):
    """Read messages, #last-seq, ws-connect, #composer-fields and #connection-status."""
    document = htmx.Document(html)
    room = document.select("[ws-connect]")
    return Fragment(
        messages=[shown_message(element) for element in document.messages],
        last_seq=document.last_seq,
        ws_connect=room.get("ws-connect") if room is not None else None,
        composer=composer_of(document.by_id("composer-fields")),
        status=status_of(document),
        csrf=csrf_of(document),
    )


def seqs(shown):
    return [message.seq for message in shown]


def texts(shown):
    return [message.text for message in shown]


# --- plain HTTP, as a browser without JavaScript ---


def room_html(session, slug, query=""):
    status, body = session.get(f"/chat/{slug}/{query}")
    assert status == 200, body[-1000:]
    return body


def room_document(session, slug, query=""):
    """A freshly loaded room page, as htmx holds it (tests/support/htmx.Document)."""
    return htmx.Document(room_html(session, slug, query))


def history(session, slug):
    """Every message of the room as pages show it: the room page, then ?before= pages."""
    page = parse(room_html(session, slug))
    shown = list(page.messages)
    while shown:
        older = parse(room_html(session, slug, f"?before={shown[0].seq}")).messages
        if not older:
            break
        shown = older + shown
    return shown


def post_without_javascript(session, slug, text, client_key):
    """Submit the composer form as a browser without JavaScript does. Returns the status."""
    token = parse(room_html(session, slug)).csrf
    assert token, "the room page has no CSRF token"
    data = {"csrfmiddlewaretoken": token, "message": text, "client_key": str(client_key)}
    request = urllib.request.Request(
        f"{session.base_url}/chat/{slug}/send/",
        data=urllib.parse.urlencode(data).encode(),
        headers={"Referer": f"{session.base_url}/chat/{slug}/"},
    )
    try:
        with session.opener.open(request, timeout=15) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


# --- the live page ---


class Page:
    """One open room page of one user (see the module docstring)."""

    def __init__(self, web, session, slug, *, name=None, auto_reconnect=False):
        self.web = web  # the process serving this page (has .url and .ws_url)
        self.session = session
        self.slug = slug
        self.name = name or session.base_url
        self.auto_reconnect = auto_reconnect
        self.document = htmx.Document(SKELETON)  # the page as htmx holds it
        self.ws_connect = f"/ws/chat/{slug}/"
        self.composers = []  # every #composer-fields replacement, in order
        self.notices = []  # every #notice replacement's text, in order
        self.frames = 0  # frames applied
        self.closes = []  # close codes as a browser reports them, in order
        self.opens = 0  # how many times the socket opened
        self.queue = []  # frames posted while the socket was down
        self._socket = None
        self._runner = None
        self._closing = False
        self._closes_at_open = 0
        self._changed = asyncio.Condition()
        self._shown = (None, None, [])  # (document, its version, [Shown]) last read

    # --- the page ---

    async def load(self):
        """GET the room page, as a browser does before the socket opens."""
        html = await asyncio.to_thread(room_html, self.session, self.slug)
        document = htmx.Document(html)
        room = document.select("[ws-connect]")
        assert room is not None, "the room page has no ws-connect"
        self.ws_connect = room.get("ws-connect")
        self.document = document
        return self

    @property
    def messages(self):
        """[Shown] of #messages, in order."""
        document, version, messages = self._shown
        if document is not self.document or version != self.document.version:
            messages = [shown_message(element) for element in self.document.messages]
            self._shown = (self.document, self.document.version, messages)
        return messages

    @property
    def normalised(self):
        """#messages as tests/support/htmx.normalised reads it."""
        return htmx.normalised(self.document)

    @property
    def last_seq(self):
        """#last-seq: what the catch-up form sends."""
        return self.document.last_seq

    @property
    def composer(self):
        """The current #composer-fields: {"text", "client_key", "error"}."""
        return composer_of(self.document.by_id("composer-fields"))

    @property
    def status(self):
        """The text of #connection-status."""
        return status_of(self.document)

    @property
    def notice(self):
        """The text of #notice (errors of the Delete and reaction buttons)."""
        element = self.document.by_id("notice")
        return " ".join(element.text().split()) if element is not None else None

    @property
    def csrf(self):
        return csrf_of(self.document)

    @property
    def seqs(self):
        return seqs(self.messages)

    @property
    def texts(self):
        return texts(self.messages)

    def find(self, text):
        """The Shown message with this text (the newest, if several)."""
        for message in reversed(self.messages):
            if message.text == text:
                return message
        raise LookupError(f"{self.name} does not show {text!r}")

    @property
    def connected(self):
        return self._socket is not None

    # --- the socket ---

    async def connect(self, web=None, *, timeout=DEFAULT_TIMEOUT):
        """Open the socket (to `web` if given) and wait until it is open."""
        if web is not None:
            self.web = web
        self._closing = False
        opens = self.opens
        self._runner = asyncio.create_task(self._run(), name=f"page {self.name}")
        await self.until(lambda: self.opens > opens or self._runner.done(), timeout=timeout)
        if self._runner.done():
            self._runner.result()  # raises what went wrong
        return self

    async def close(self):
        """Close the socket and stop reconnecting (the tab is closed)."""
        self._closing = True
        socket = self._socket
        if socket is not None:
            await socket.close()
        if self._runner is not None:
            try:
                async with asyncio.timeout(DEFAULT_TIMEOUT):
                    await asyncio.shield(self._runner)
            except TimeoutError:
                self._runner.cancel()
            except Exception:  # noqa: S110 - a failed socket has nothing more to close
                pass
        self._runner = None

    async def wait_closed(self, *, timeout=DEFAULT_TIMEOUT):
        """The close code of the socket that opened last, once it has closed."""
        await self.until(lambda: len(self.closes) > self._closes_at_open, timeout=timeout)
        return self.closes[self._closes_at_open]

    async def _run(self):
        backoff = 0.1
        while True:
            try:
                await self._session()
                backoff = 0.1
            except (OSError, InvalidHandshake, TimeoutError):
                await self._record_close(ABNORMAL)  # a browser sees a failed open as 1006
            if self._closing or not self.auto_reconnect or self.closes[-1] not in RETRIED_CODES:
                return
            await asyncio.sleep(backoff)  # the extension's backoff, not synchronisation
            backoff = min(backoff * 2, 1.0)

    async def _session(self):
        url = self.web.ws_url + self.ws_connect
        async with websockets.connect(
            url,
            origin=self.web.url,
            additional_headers=self.session.socket_headers(),
            open_timeout=15,
            max_size=2**24,
        ) as socket:
            self._closes_at_open = len(self.closes)
            try:
                # htmx:wsOpen: the catch-up form goes first, then whatever was queued.
                await socket.send(json.dumps({"last_seq": str(self.last_seq or 0), "HEADERS": {}}))
                while self.queue:
                    await socket.send(self.queue[0])
                    self.queue.pop(0)
            except ConnectionClosed:
                pass  # closed at once (a refusal): still read what it sent before closing
            self._socket = socket
            await self._notify("opens")
            if self._closing:  # the tab was closed while this socket was opening
                await socket.close()
            try:
                async for frame in socket:
                    await self._apply(frame)
            except ConnectionClosed:
                pass
            finally:
                self._socket = None
            await self._record_close(int(socket.close_code or ABNORMAL))

    async def _record_close(self, code):
        self.closes.append(code)
        await self._notify()

    async def _notify(self, counter=None):
        async with self._changed:
            if counter:
                setattr(self, counter, getattr(self, counter) + 1)
            self._changed.notify_all()

    async def _apply(self, frame):
        """What the ws extension does with a frame (tests/support/htmx.py)."""
        for swap in self.document.apply(frame):
            if swap.element.id == "composer-fields":
                self.composers.append(composer_of(swap.element))
            elif swap.element.id == "notice":
                self.notices.append(" ".join(swap.element.text().split()))
        self.frames += 1
        await self._notify()

    # --- the forms ---

    def _frame(self, fields, trigger):
        """A form's fields as the extension sends them: JSON, plus HEADERS."""
        frame = dict(fields)
        if self.csrf:
            frame["csrfmiddlewaretoken"] = self.csrf
        frame["HEADERS"] = {
            "HX-Request": "true",
            "HX-Trigger": trigger,
            "HX-Trigger-Name": None,
            "HX-Target": trigger,
            "HX-Current-URL": f"{self.web.url}/chat/{self.slug}/",
        }
        return json.dumps(frame)

    def post_frame(self, text, client_key="new", *, reply_to=None):
        """The composer's JSON: `client_key` "new" = a fresh key, None = none;
        `reply_to`: the pk of the message replied to (the composer's hidden field)."""
        fields = {"message": text}
        if client_key == "new":
            client_key = uuid.uuid4()
        if client_key is not None:
            fields["client_key"] = str(client_key)
        if reply_to is not None:
            fields["reply_to"] = str(reply_to)
        return self._frame(fields, "composer")

    def edit_frame(self, message_id, text):
        """The edit form of a message, saved."""
        return self._frame({"edit": str(message_id), "message": text}, f"edit-form-{message_id}")

    def delete_frame(self, message_id):
        """The Delete confirmation button: it submits #message-actions."""
        return self._frame({"delete_message": str(message_id)}, "message-actions")

    def react_frame(self, message_id, emoji, on=True):
        """A reaction button (pressed to set, or to unset): it submits #message-actions."""
        state = "on" if on else "off"
        return self._frame({"react": f"{message_id} {emoji} {state}"}, "message-actions")

    async def send(self, frame):
        """Send a frame now, or queue it until the socket is open again."""
        if self._socket is None:
            self.queue.append(frame)
            return
        try:
            await self._socket.send(frame)
        except ConnectionClosed:
            self.queue.append(frame)

    async def post(self, text, client_key="new", *, reply_to=None):
        await self.send(self.post_frame(text, client_key, reply_to=reply_to))

    async def reply(self, message_id, text):
        await self.post(text, reply_to=message_id)

    async def edit(self, message_id, text):
        await self.send(self.edit_frame(message_id, text))

    async def delete_message(self, message_id):
        await self.send(self.delete_frame(message_id))

    async def react(self, message_id, emoji, on=True):
        await self.send(self.react_frame(message_id, emoji, on))

    # --- waiting ---

    async def until(self, predicate, *, timeout=DEFAULT_TIMEOUT):
        """Wait until predicate() is true; it is re-checked whenever a frame arrives."""
        deadline = time.monotonic() + timeout
        async with self._changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{self.name}: condition not met in {timeout} s; shows seqs "
                        f"{self.seqs[-20:]} (last_seq {self.last_seq}), closes {self.closes}"
                    )
                try:
                    async with asyncio.timeout(min(left, 0.5)):
                        await self._changed.wait()
                except TimeoutError:
                    pass

    async def until_shows(self, text, *, timeout=DEFAULT_TIMEOUT):
        await self.until(lambda: text in self.texts, timeout=timeout)

    async def until_seq(self, seq, *, timeout=DEFAULT_TIMEOUT):
        await self.until(lambda: (self.last_seq or 0) >= seq, timeout=timeout)


async def open_page(web, session, slug, **options):
    """Load the room page and open its socket, as a browser tab does."""
    page = Page(web, session, slug, **options)
    await page.load()
    return await page.connect()


async def until(predicate, *, timeout=DEFAULT_TIMEOUT, what="condition"):
    """Poll a condition that no page frame signals (e.g. a database state)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met in {timeout} s")
        await asyncio.sleep(0.05)
