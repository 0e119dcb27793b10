"""Real Chromium against real `web:` processes: one browser for all of them, one context per person.

Every person gets a `Visitor`: a fresh browser context that records what its pages did
(dialogs, requests, console errors, WebSocket frames), so tests can assert that nothing
ran and nothing was fetched. People sign up through the real /accounts/signup/ page.
Waits are on conditions (Playwright's `expect`, or `wait_until` for recorded events).
"""

import json
import re
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.support.servers import WebProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "a-long-test-password-1"
TIMEOUT_MS = 20_000  # a shared 2-core machine: generous, but every wait is on a condition
ARTIFACTS = Path(tempfile.gettempdir()) / "e2e-artifacts"

expect.set_options(timeout=TIMEOUT_MS)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="package")
def browser():
    """One Chromium for all browser tests (the Debian package; no downloaded browsers).

    Scoped to this package rather than the session: between its calls the sync Playwright
    API leaves its event loop marked as running, which pytest-asyncio then refuses for the
    async tests that run after these.
    """
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="package")
def shared_webs(system_env):
    """Two `web:` processes shared by the browser tests that neither stop nor tune them.

    Tests that kill, restart or configure a process start their own with `start_web`.
    """
    processes = [WebProcess(system_env, name=f"web.shared.{number}") for number in (1, 2)]
    try:
        yield tuple(process.start() for process in processes)
    finally:
        for process in processes:
            process.kill()


@dataclass
class Socket:
    """One WebSocket a page opened, with the frames that crossed it."""

    page: Page
    url: str
    sent: list = field(default_factory=list)
    received: list = field(default_factory=list)
    closed: bool = False


class Visitor:
    """A person's own browser context and what happened in it."""

    def __init__(self, context):
        self.context = context
        self.username = None
        self.password = PASSWORD
        self.dialogs = []
        self.requests = []
        self.console_errors = []
        self.page_errors = []
        self.sockets = []
        context.set_default_timeout(TIMEOUT_MS)
        context.on("dialog", self._on_dialog)
        context.on("request", lambda request: self.requests.append(request))
        context.on("console", self._on_console)
        context.on("weberror", lambda error: self.page_errors.append(str(error.error)))
        context.on("page", self._on_page)

    def _on_dialog(self, dialog):
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def _on_console(self, message):
        source = message.location.get("url", "")
        # Chromium asks every origin for /favicon.ico by itself; the pages do not.
        if message.type == "error" and not source.endswith("/favicon.ico"):
            self.console_errors.append(f"{message.text} ({source})")

    def _on_page(self, page):
        page.on("websocket", lambda websocket: self._on_socket(page, websocket))

    def _on_socket(self, page, websocket):
        socket = Socket(page=page, url=websocket.url)
        websocket.on("framesent", lambda payload: socket.sent.append(payload))
        websocket.on("framereceived", lambda payload: socket.received.append(payload))
        websocket.on("close", lambda _: setattr(socket, "closed", True))
        self.sockets.append(socket)

    def new_page(self):
        return self.context.new_page()

    def sockets_of(self, page):
        return [socket for socket in self.sockets if socket.page == page]

    def frames_sent(self, page, field=None):
        """The JSON frames `page` sent over its sockets, as dicts; with `field`, only
        the frames that carry it (e.g. "message", "edit", "react", "typing")."""
        frames = [json.loads(frame) for socket in self.sockets_of(page) for frame in socket.sent]
        return [frame for frame in frames if field is None or field in frame]


@pytest.fixture
def browse(browser, request):
    """browse(**context options) -> a Visitor in a fresh context, closed after the test.

    A failed test leaves a screenshot and the HTML of every open page in $TMPDIR/e2e-artifacts.
    """
    visitors = []

    def new(**options):
        options.setdefault("viewport", {"width": 1000, "height": 760})
        visitor = Visitor(browser.new_context(**options))
        visitors.append(visitor)
        return visitor

    yield new
    failed = any(
        getattr(getattr(request.node, f"report_{when}", None), "failed", False)
        for when in ("setup", "call")
    )
    for number, visitor in enumerate(visitors):
        if failed:
            _save_artifacts(request.node.name, number, visitor)
        visitor.context.close()


def _save_artifacts(test_name, number, visitor):
    folder = ARTIFACTS / re.sub(r"[^\w.-]+", "_", test_name)
    folder.mkdir(parents=True, exist_ok=True)
    frames = [
        f"{socket.url} closed={socket.closed}\n"
        + "".join(f"  sent: {frame}\n" for frame in socket.sent)
        + "".join(f"  received: {frame}\n" for frame in socket.received)
        for socket in visitor.sockets
    ]
    (folder / f"visitor{number}-sockets.txt").write_text("\n".join(frames))
    for index, page in enumerate(visitor.context.pages):
        stem = folder / f"visitor{number}-page{index}"
        try:
            page.screenshot(path=f"{stem}.png", full_page=True, timeout=5_000)
            Path(f"{stem}.html").write_text(page.content())
        except Exception as error:  # a crashed page: keep what we can
            Path(f"{stem}.txt").write_text(f"{page.url}\n{error}")


# --- people and pages ---


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def sign_up(visitor, base_url, username=None):
    """Create an account through the real sign-up page; returns the page, now in the lobby."""
    username = username or unique("user")
    page = visitor.new_page()
    page.goto(f"{base_url}/accounts/signup/")
    page.fill("#id_username", username)
    page.fill("#id_password1", visitor.password)
    page.fill("#id_password2", visitor.password)
    page.click("form.stacked button[type=submit]")
    expect(page).to_have_url(f"{base_url}/")
    visitor.username = username
    return page


def open_room(page, base_url, name):
    """Create or join a room through the lobby form; returns its slug."""
    page.goto(f"{base_url}/")
    page.fill("input[name=name]", name)
    page.click("form.inline-form button[type=submit]")
    expect(page).to_have_url(re.compile(re.escape(base_url) + r"/chat/[^/]+/$"))
    return page.url.rstrip("/").rsplit("/", 1)[-1]


def enter_room(visitor, base_url, slug, page=None):
    """Open a room page; with JavaScript on, wait until its socket asked to catch up."""
    page = page or visitor.new_page()
    page.goto(f"{base_url}/chat/{slug}/")
    expect(page.locator("#messages")).to_be_attached()
    if _javascript_enabled(page):
        wait_for_catch_up(visitor, page)
    return page


def wait_for_catch_up(visitor, page, *, after=0, timeout=TIMEOUT_MS):
    """Wait until a socket of `page` (the `after`-th one or later) sent its catch-up frame."""

    def caught_up():
        sockets = visitor.sockets_of(page)[after:]
        return any(
            not socket.closed and any('"last_seq"' in str(frame) for frame in socket.sent)
            for socket in sockets
        )

    wait_until(page, caught_up, timeout=timeout, what="the page's socket to open and catch up")


def _javascript_enabled(page):
    # Pages of a context with JavaScript off cannot evaluate; htmx marks nothing then.
    try:
        return page.evaluate("() => true")
    except Exception:
        return False


def send(page, text, *, wait=True, enter=False):
    """Type a message in the composer and press Send (over the socket or as a plain POST).

    `enter=True` presses Enter in the field instead of clicking Send.

    With JavaScript on, waits until the server answered by replacing the composer (emptied,
    or with an error), so the next `send` cannot type into a composer about to be replaced.
    `wait=False` for a send the extension has to queue while its socket is down.
    """
    page.fill("#message", text)
    live = wait and _javascript_enabled(page)
    if live:
        page.eval_on_selector("#message", "element => { element.e2eBeforeSend = true; }")
    if enter:
        page.press("#message", "Enter")
    else:
        page.click("#composer button.send")
    if live:
        page.wait_for_function(
            "() => { const m = document.querySelector('#message'); return m && !m.e2eBeforeSend; }"
        )


def message_texts(page):
    return page.locator("#messages .message .message-text")


def shown(page):
    """[(seq, author, text)] of the messages the page shows, top to bottom."""
    return page.eval_on_selector_all(
        "#messages .message",
        """items => items.map(item => [
            Number(item.dataset.seq),
            item.querySelector('.message-author').textContent,
            item.querySelector('.message-text').textContent,
        ])""",
    )


def expect_messages(page, texts, *, timeout=TIMEOUT_MS):
    """The page shows exactly these message texts, in this order (each once)."""
    expect(message_texts(page)).to_have_text(texts, timeout=timeout)


def wait_until(page, condition, *, timeout=TIMEOUT_MS, what="a condition"):
    """Poll a condition on recorded browser events, letting Playwright deliver them meanwhile."""
    deadline = time.monotonic() + timeout / 1000
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} ms waiting for {what}")
        page.wait_for_timeout(50)  # hands control to Playwright's event loop; not a sync point
