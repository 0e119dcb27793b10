"""Delivery through failures, in real Chromium (issue 3): no reload, every message once, in order.

The htmx ws extension reconnects by itself with a jittered backoff (up to ~64 s between
tries) after close code 1006, so waits for a reconnect are long; they end as soon as the
page shows what it should.
"""

import pytest
import redis
from playwright.sync_api import expect

from tests.e2e.conftest import (
    enter_room,
    expect_messages,
    open_room,
    send,
    shown,
    sign_up,
    unique,
    wait_until,
)

pytestmark = pytest.mark.e2e

RECONNECT_MS = 90_000  # the extension's backoff with full jitter, on a busy machine


def mark_page(page):
    """Leave a mark in the page's JS state: it survives anything but a reload."""
    page.evaluate("() => { window.e2eNotReloaded = true; }")


def assert_not_reloaded(page):
    assert page.evaluate("() => window.e2eNotReloaded === true"), "the page was reloaded"


def assert_history_matches(pages, texts):
    """Every page shows `texts` once each, in order, and the same after a reload."""
    live = [shown(page) for page in pages]
    assert [text for _, _, text in live[0]] == texts
    seqs = [seq for seq, _, _ in live[0]]
    assert seqs == sorted(set(seqs)), seqs
    for page, seen in zip(pages, live, strict=True):
        assert seen == live[0]
        page.reload()
        expect_messages(page, texts)
        assert shown(page) == live[0]


def test_a_page_on_a_killed_process_catches_up_once_it_is_back(start_web, browse):
    first, second = start_web(), start_web()
    alice, bob = browse(), browse()
    slug = open_room(sign_up(bob, second.url), second.url, unique("Crash"))
    sign_up(alice, first.url)
    alice_page = enter_room(alice, first.url, slug)
    bob_page = enter_room(bob, second.url, slug, page=bob.context.pages[0])
    sent = ["Before the crash"]
    send(bob_page, sent[0])
    for page in (alice_page, bob_page):
        expect_messages(page, sent)
    mark_page(alice_page)
    socket = alice.sockets_of(alice_page)[-1]
    assert socket.url.startswith(first.ws_url)

    first.kill()  # SIGKILL: no close frame, the page sees 1006 and retries
    wait_until(alice_page, lambda: socket.closed, what="the page to notice its socket died")
    for number in range(1, 4):
        sent.append(f"While web.1 is down, number {number}")
        send(bob_page, sent[-1])
        expect_messages(bob_page, sent)
    # Alice types while disconnected: the extension queues the form until it reconnects.
    send(alice_page, "Typed while disconnected", wait=False)
    sent.append("Typed while disconnected")
    expect_messages(alice_page, sent[:1])

    sockets_before = len(alice.sockets_of(alice_page))
    first.start()  # the same port: the page's retries find it again
    expect_messages(alice_page, sent, timeout=RECONNECT_MS)
    expect_messages(bob_page, sent)
    assert len(alice.sockets_of(alice_page)) > sockets_before
    expect(alice_page.locator("#message")).to_have_value("")
    assert_not_reloaded(alice_page)

    # Live again, both ways.
    for page, text in [(bob_page, "Welcome back"), (alice_page, "Thanks, all caught up")]:
        send(page, text)
        sent.append(text)
        for reader in (alice_page, bob_page):
            expect_messages(reader, sent)
    assert_history_matches([alice_page, bob_page], sent)


def test_pages_get_what_was_posted_during_a_broker_outage(start_web, browse, private_redis):
    """Redis down: messages are stored, other processes deliver them from the database."""
    # A short reconcile period only makes the test quicker; the default 2 s works the same.
    env = {"REDIS_URL": private_redis.url, "CHAT_RECONCILE_SECONDS": 0.5}
    first, second = start_web(**env), start_web(**env)
    alice, bob = browse(), browse()
    slug = open_room(sign_up(alice, first.url), first.url, unique("Outage"))
    sign_up(bob, second.url)
    alice_page = enter_room(alice, first.url, slug, page=alice.context.pages[0])
    bob_page = enter_room(bob, second.url, slug)
    sent = ["Redis is still up"]
    send(alice_page, sent[0])
    for page in (alice_page, bob_page):
        expect_messages(page, sent)
    for page in (alice_page, bob_page):
        mark_page(page)

    private_redis.stop()
    for page, text in [
        (alice_page, "Posted on web.1 while Redis is down"),
        (alice_page, "A second one from web.1"),
        (bob_page, "And one from web.2"),
    ]:
        send(page, text)
        sent.append(text)
        expect(page.locator("#message")).to_have_value("")  # accepted, not refused
        for reader in (alice_page, bob_page):
            expect_messages(reader, sent, timeout=30_000)
    # Pages still load during the outage.
    carol = browse()
    sign_up(carol, second.url)
    carol_page = enter_room(carol, second.url, slug)
    expect_messages(carol_page, sent)

    private_redis.start()
    for page, text in [
        (bob_page, "Redis is back"),
        (alice_page, "Live again from web.1"),
        (carol_page, "Hello from the newcomer"),
    ]:
        send(page, text)
        sent.append(text)
        for reader in (alice_page, bob_page, carol_page):
            expect_messages(reader, sent, timeout=30_000)
    for page in (alice_page, bob_page):
        assert_not_reloaded(page)
    assert_history_matches([alice_page, bob_page, carol_page], sent)


def process_group_members(redis_url):
    """{group key: member count} of the channel layer's groups in this Redis."""
    client = redis.Redis.from_url(redis_url)
    try:
        return {key: client.zcard(key) for key in client.scan_iter(match="*:group:room-*")}
    finally:
        client.close()


def test_live_delivery_through_redis_resumes_after_it_restarts_empty(
    start_web, browse, private_redis
):
    """With the database poll out of the way, only the channel layer can deliver.

    Redis restarts without its data, so every process must join its room's group again
    by itself; the first live message then also brings what was posted during the outage
    (the gap is filled from the database), once each, in order.
    """
    env = {"REDIS_URL": private_redis.url, "CHAT_RECONCILE_SECONDS": 3600}
    first, second = start_web(**env), start_web(**env)
    alice, bob = browse(), browse()
    slug = open_room(sign_up(alice, first.url), first.url, unique("Restart"))
    sign_up(bob, second.url)
    alice_page = enter_room(alice, first.url, slug, page=alice.context.pages[0])
    bob_page = enter_room(bob, second.url, slug)
    sent = ["Before Redis restarts"]
    send(alice_page, sent[0])
    for page in (alice_page, bob_page):
        expect_messages(page, sent)
    assert list(process_group_members(private_redis.url).values()) == [2]

    private_redis.stop()
    sent.append("Stored during the outage")
    send(alice_page, sent[-1])
    expect_messages(alice_page, sent)
    expect(alice_page.locator("#message")).to_have_value("")

    private_redis.start()
    wait_until(
        bob_page,
        lambda: list(process_group_members(private_redis.url).values()) == [2],
        timeout=30_000,
        what="both processes to join the room's group in the restarted Redis",
    )
    sent.append("Live through Redis again")
    send(alice_page, sent[-1])
    for page in (alice_page, bob_page):
        expect_messages(page, sent)
    sent.append("And back the other way")
    send(bob_page, sent[-1])
    for page in (alice_page, bob_page):
        expect_messages(page, sent)
    assert_history_matches([alice_page, bob_page], sent)
