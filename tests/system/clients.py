"""A room page without a browser: what the htmx page does over its socket, in Python.

`Page` loads `/chat/<slug>/` over HTTP like a browser, reads the messages it shows, the
`#last-seq` value and the `ws-connect` URL, then opens the socket with the page's Origin
and session cookie and, like the hidden `#catch-up` form on every `htmx:wsOpen`, sends
`{"last_seq": "<#last-seq>"}` first. Incoming frames are applied the way the htmx ws
extension applies them (out-of-band swaps): messages appended to `#messages` are
recorded in order as (seq, message id, text), `#last-seq` is replaced, and so are
`#composer-fields` and `#connection-status`. Posts are the composer form's JSON; while
the socket is down they are queued and sent after the catch-up frame, as the extension
queues them. With `auto_reconnect`, a close with 1006/1011/1012/1013 is retried with a
short backoff, keeping the page's position, exactly as the extension retries.

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
from html.parser import HTMLParser

import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake

RETRIED_CODES = frozenset({1006, 1011, 1012, 1013})  # the htmx ws extension reconnects
ABNORMAL = 1006  # what a browser reports when no close frame arrived
DEFAULT_TIMEOUT = 30
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta"})


@dataclass(frozen=True)
class Shown:
    """One message element as it appears in #messages."""

    seq: int
    id: str
    text: str


@dataclass
class Fragment:
    """What one HTML document or frame holds for a page."""

    messages: list = field(default_factory=list)  # [Shown] in document order
    last_seq: int | None = None  # value of #last-seq
    ws_connect: str | None = None
    composer: dict | None = None  # {"text", "client_key", "error"} of #composer-fields
    status: str | None = None  # text of #connection-status
    csrf: str | None = None


class _Parser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.result = Fragment()
        self._stack = []  # (tag, role) of open non-void elements
        self._message = None  # [attrs, text parts] of the li.message being read
        self._text_depth = None  # stack depth of the open .message-text element
        self._composer = None
        self._status = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        element_id = attrs.get("id")
        if "ws-connect" in attrs:
            self.result.ws_connect = attrs["ws-connect"]
        if tag == "input" and element_id == "last-seq":
            self.result.last_seq = int(attrs["value"]) if attrs.get("value") else None
        if tag == "input" and attrs.get("name") == "csrfmiddlewaretoken":
            self.result.csrf = attrs.get("value")
        if tag == "input" and attrs.get("name") == "client_key" and self._composer is not None:
            self._composer["client_key"] = attrs.get("value") or ""
        if tag == "br" and self._text_depth is not None:
            self._message[1].append("\n")
        if tag in _VOID:
            return
        role = None
        if tag == "li" and "message" in classes:
            self._message = [attrs, []]
            role = "message"
        elif "message-text" in classes and self._message is not None:
            self._text_depth = len(self._stack)
        elif element_id == "composer-fields":
            self._composer = {"text": "", "client_key": None, "error": None}
            role = "composer"
        elif tag == "textarea" and self._composer is not None:
            role = "composer-text"
        elif "composer-error" in classes and self._composer is not None:
            self._composer["error"] = ""
            role = "composer-error"
        elif element_id == "connection-status":
            self._status = []
            role = "status"
        self._stack.append((tag, role))

    def handle_endtag(self, tag):
        if tag in _VOID:
            return
        # Pop to the matching open element (tolerates a missing end tag inside).
        while self._stack:
            open_tag, role = self._stack.pop()
            if self._text_depth is not None and len(self._stack) == self._text_depth:
                self._text_depth = None
            if role == "message":
                attrs, parts = self._message
                self.result.messages.append(
                    Shown(
                        seq=int(attrs["data-seq"]),
                        id=attrs["id"],
                        text="".join(parts).strip(),
                    )
                )
                self._message = None
            elif role == "composer":
                self.result.composer = self._composer
                self._composer = None
            elif role == "status":
                self.result.status = " ".join("".join(self._status).split())
                self._status = None
            if open_tag == tag:
                break

    def handle_data(self, data):
        if self._text_depth is not None:
            self._message[1].append(data)
        if self._status is not None:
            self._status.append(data)
        role = self._stack[-1][1] if self._stack else None
        if role == "composer-text":
            self._composer["text"] += data
        elif role == "composer-error":
            self._composer["error"] += data


def parse(html):
    """Read messages, #last-seq, ws-connect, #composer-fields and #connection-status."""
    parser = _Parser()
    parser.feed(html)
    parser.close()
    return parser.result


def seqs(shown):
    return [message.seq for message in shown]


def texts(shown):
    return [message.text for message in shown]


# --- plain HTTP, as a browser without JavaScript ---


def room_html(session, slug, query=""):
    status, body = session.get(f"/chat/{slug}/{query}")
    assert status == 200, body[-1000:]
    return body


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
        self.messages = []  # [Shown] in the order they were added to #messages
        self.last_seq = None  # #last-seq, what the catch-up form sends
        self.ws_connect = f"/ws/chat/{slug}/"
        self.composer = None  # the newest #composer-fields
        self.composers = []  # every #composer-fields replacement, in order
        self.status = None  # the newest #connection-status text
        self.closes = []  # close codes as a browser reports them, in order
        self.opens = 0  # how many times the socket opened
        self.queue = []  # frames posted while the socket was down
        self._socket = None
        self._runner = None
        self._closing = False
        self._closes_at_open = 0
        self._changed = asyncio.Condition()

    # --- the page ---

    async def load(self):
        """GET the room page, as a browser does before the socket opens."""
        html = await asyncio.to_thread(room_html, self.session, self.slug)
        page = parse(html)
        assert page.ws_connect, "the room page has no ws-connect"
        self.ws_connect = page.ws_connect
        self.messages = list(page.messages)
        self.last_seq = page.last_seq
        self.composer = page.composer
        return self

    @property
    def seqs(self):
        return seqs(self.messages)

    @property
    def texts(self):
        return texts(self.messages)

    @property
    def connected(self):
        return self._socket is not None

    # --- the socket ---

    async def connect(self, web=None, *, timeout=DEFAULT_TIMEOUT):
        """Open the socket (to `web` if given) and wait until it is open."""
        if web is not None:
            self.web = web
        if self.last_seq is None:
            self.last_seq = 0
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
                await socket.send(json.dumps({"last_seq": str(self.last_seq), "HEADERS": {}}))
                while self.queue:
                    await socket.send(self.queue[0])
                    self.queue.pop(0)
            except ConnectionClosed:
                pass  # closed at once (a refusal): still read what it sent before closing
            self._socket = socket
            await self._notify("opens")
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
        if isinstance(frame, bytes):
            frame = frame.decode()
        fragment = parse(frame)
        self.messages.extend(fragment.messages)
        if fragment.last_seq is not None:
            self.last_seq = fragment.last_seq
        if fragment.composer is not None:
            self.composer = fragment.composer
            self.composers.append(fragment.composer)
        if fragment.status is not None:
            self.status = fragment.status
        await self._notify()

    # --- the composer ---

    def post_frame(self, text, client_key="new"):
        """The JSON the composer form sends: `client_key` "new" = a fresh key, None = none."""
        frame = {
            "message": text,
            "HEADERS": {
                "HX-Request": "true",
                "HX-Trigger": "composer",
                "HX-Trigger-Name": None,
                "HX-Target": "composer",
                "HX-Current-URL": f"{self.web.url}/chat/{self.slug}/",
            },
        }
        if client_key == "new":
            client_key = uuid.uuid4()
        if client_key is not None:
            frame["client_key"] = str(client_key)
        return json.dumps(frame)

    async def send(self, frame):
        """Send a frame now, or queue it until the socket is open again."""
        if self._socket is None:
            self.queue.append(frame)
            return
        try:
            await self._socket.send(frame)
        except ConnectionClosed:
            self.queue.append(frame)

    async def post(self, text, client_key="new"):
        await self.send(self.post_frame(text, client_key))

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
