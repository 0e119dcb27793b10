"""The HTTP side: lobby, room page, no-JS composer, accounts, CSRF, CSP and escaping."""

import re

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from chat.models import Message, Room
from chat.tests.factories import make_message, make_room, make_user
from chat.tests.test_security import parse_html

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-test-password"
STATIC_PREFIX = "/" + django_settings.STATIC_URL.lstrip("/")


@pytest.fixture
def alice():
    return make_user(username="alice")


@pytest.fixture
def client_alice(client, alice):
    client.force_login(alice)
    return client


def bulk_messages(room, author, count, *, text="message {}"):
    """`count` messages with sequence numbers 1..count, fast (no rate limit, one query)."""
    Message.objects.bulk_create(
        Message(room=room, author=author, seq=n, text=text.format(n)) for n in range(1, count + 1)
    )
    Room.objects.filter(pk=room.pk).update(last_seq=count)
    room.refresh_from_db()


def error_text(response, element_id):
    node = parse_html(response.content.decode()).by_id(element_id)
    assert node is not None, f"no #{element_id} in the page"
    return " ".join(node.text().split())


# --- lobby ---


def test_lobby_lists_rooms_and_has_the_room_form(client_alice):
    make_room(name="General")
    response = client_alice.get("/")
    assert response.status_code == 200
    tree = parse_html(response.content.decode())
    [form] = [
        f
        for f in tree.find_all(lambda n: n.tag == "form")
        if f.find_all(lambda n: n.attrs.get("name") == "name")
    ]
    assert form.attrs["method"] == "post" and form.attrs["action"] == "/"
    assert tree.find_all(lambda n: n.tag == "a" and n.attrs.get("href") == "/chat/general/")


def test_lobby_creates_a_room_and_redirects_to_it(client_alice):
    response = client_alice.post("/", {"name": "  Tea   Time  "})
    assert response.status_code == 302 and response["Location"] == "/chat/tea-time/"
    room = Room.objects.get()
    assert (room.name, room.slug) == ("Tea Time", "tea-time")


def test_lobby_joins_an_existing_room(client_alice):
    room = make_room(name="Tea Time")
    response = client_alice.post("/", {"name": "Tea Time"})
    assert response.status_code == 302 and response["Location"] == room.get_absolute_url()
    response = client_alice.post("/", {"name": "tea time"})  # the same slug
    assert response.status_code == 302 and response["Location"] == room.get_absolute_url()
    assert Room.objects.count() == 1


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "Give the room a name."),
        ("   \t ", "Give the room a name."),
        ("x" * 81, "at most 80 characters"),
        ("!!!", "Use some letters or digits in the room name."),
        ("<>&'\"", "Use some letters or digits in the room name."),
    ],
    ids=["blank", "whitespace", "too long", "punctuation", "markup only"],
)
def test_lobby_refuses_unusable_names_clearly(client_alice, name, message):
    response = client_alice.post("/", {"name": name})
    assert response.status_code == 400
    assert message in error_text(response, "room-error")
    assert Room.objects.count() == 0


def test_lobby_keeps_a_refused_name_escaped(client_alice):
    name = '"><script>alert(1)</script>' + "x" * 80
    response = client_alice.post("/", {"name": name})
    assert response.status_code == 400
    body = response.content.decode()
    assert "<script>alert(1)" not in body
    field = parse_html(body).by_id("id_name")
    assert field.attrs["value"] == name


def test_lobby_needs_a_login(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/?next=/"
    response = client.post("/", {"name": "sneaky"})
    assert response.status_code == 302 and Room.objects.count() == 0


# --- room page ---


def test_room_page_shows_the_latest_50_in_order_with_stable_ids(client_alice, alice):
    room = make_room(name="busy")
    bulk_messages(room, alice, 60)
    response = client_alice.get(room.get_absolute_url())
    assert response.status_code == 200
    tree = parse_html(response.content.decode())
    container = tree.by_id("messages")
    assert container is not None
    items = container.find_all(lambda n: "message" in n.classes)
    expected = list(Message.objects.filter(room=room, seq__gt=10).order_by("seq"))
    assert [n.attrs["id"] for n in items] == [f"message-{m.pk}" for m in expected]
    assert [n.attrs["data-seq"] for n in items] == [str(m.seq) for m in expected]
    texts = [n.find_all(lambda c: "message-text" in c.classes)[0].text() for n in items]
    assert texts == [f"message {n}" for n in range(11, 61)]
    # A link to the older ones works without JavaScript.
    older = [a for a in container.find_all(lambda n: n.tag == "a") if "before=" in a.attrs["href"]]
    assert older and older[0].attrs["href"] == f"{room.get_absolute_url()}?before=11"


def test_older_page_shows_the_50_before(client_alice, alice):
    room = make_room(name="busy")
    bulk_messages(room, alice, 120)
    response = client_alice.get(f"{room.get_absolute_url()}?before=61")
    assert response.status_code == 200
    tree = parse_html(response.content.decode())
    seqs = [n.attrs["data-seq"] for n in tree.find_all(lambda n: "message" in n.classes)]
    assert seqs == [str(n) for n in range(11, 61)]
    # The htmx request gets the fragment alone.
    response = client_alice.get(f"{room.get_absolute_url()}?before=11", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" not in body
    assert re.findall(r'data-seq="(\d+)"', body) == [str(n) for n in range(1, 11)]


def test_room_page_has_the_composer_form(client_alice):
    room = make_room(name="General")
    response = client_alice.get(room.get_absolute_url())
    tree = parse_html(response.content.decode())
    form = tree.by_id("composer")
    assert form is not None and form.tag == "form"
    assert "ws-send" in form.attrs
    assert form.attrs["method"] == "post"
    assert form.attrs["action"] == f"/chat/{room.slug}/send/"
    [textarea] = form.find_all(lambda n: n.tag == "textarea")
    assert textarea.attrs["name"] == "message"
    assert form.find_all(lambda n: n.attrs.get("name") == "csrfmiddlewaretoken")
    assert form.find_all(lambda n: n.tag == "button" and n.attrs.get("type") == "submit")


def test_room_page_needs_a_login(client):
    room = make_room(name="General")
    response = client.get(room.get_absolute_url())
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next=/chat/{room.slug}/"


def test_unknown_room_is_a_404_page_with_a_way_back(client_alice):
    response = client_alice.get("/chat/no-such-room/")
    assert response.status_code == 404
    tree = parse_html(response.content.decode())
    assert tree.find_all(lambda n: n.tag == "a" and n.attrs.get("href") == "/")
    assert "does not exist" in response.content.decode()


@pytest.mark.parametrize("before", ["abc", "-1", "1e3", "9" * 40, "%00", "1; DROP TABLE"])
def test_bad_before_values_are_harmless(client_alice, alice, before):
    room = make_room(name="General")
    bulk_messages(room, alice, 3)
    response = client_alice.get(room.get_absolute_url(), {"before": before})
    assert response.status_code in (200, 400)


# --- the composer without JavaScript ---


def test_no_js_send_saves_and_redirects(client_alice, alice):
    room = make_room(name="General")
    response = client_alice.post(f"/chat/{room.slug}/send/", {"message": "  hello there \r\n"})
    assert response.status_code == 302
    assert response["Location"].startswith(room.get_absolute_url())
    message = Message.objects.get()
    assert (message.text, message.author, message.seq) == ("hello there", alice, 1)
    page = client_alice.get(room.get_absolute_url()).content.decode()
    assert f'id="message-{message.pk}"' in page


def test_no_js_send_with_the_same_key_twice_stores_one_message(client_alice):
    room = make_room(name="General")
    key = "0b7d2a3e-5c1f-4d8e-9a6b-2f4c8e1d3a5b"
    for _ in range(2):
        response = client_alice.post(
            f"/chat/{room.slug}/send/", {"message": "once", "client_key": key}
        )
        assert response.status_code == 302
    assert Message.objects.count() == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"Write something first\."),
        (" \r\n\t ", r"Write something first\."),
        ("x" * 4001, r"That is 4001 characters; the limit is 4000\."),
        ("bell\x07 rings", "control character"),
        ("nul\x00here", "(control|null) character"),
    ],
    ids=["empty", "whitespace", "too long", "control", "nul"],
)
def test_no_js_send_refuses_bad_text_and_keeps_it(client_alice, text, message):
    room = make_room(name="General")
    response = client_alice.post(f"/chat/{room.slug}/send/", {"message": text})
    assert response.status_code == 400
    assert re.search(message, error_text(response, "composer-error"), re.IGNORECASE)
    [textarea] = (
        parse_html(response.content.decode())
        .by_id("composer")
        .find_all(lambda n: n.tag == "textarea")
    )
    assert textarea.text() == text
    assert Message.objects.count() == 0


def test_no_js_send_is_rate_limited_like_the_socket(client_alice, settings):
    settings.CHAT_RATE_LIMIT = (2, 60)
    room = make_room(name="General")
    for n in range(2):
        assert (
            client_alice.post(f"/chat/{room.slug}/send/", {"message": f"m{n}"}).status_code == 302
        )
    response = client_alice.post(f"/chat/{room.slug}/send/", {"message": "one too many"})
    assert response.status_code in (400, 429)
    assert "slow down" in error_text(response, "composer-error").lower()
    assert "one too many" in response.content.decode()
    assert Message.objects.count() == 2


def test_no_js_send_needs_a_login_and_a_real_room(client, client_alice):
    room = make_room(name="General")
    assert client_alice.post("/chat/nope/send/", {"message": "hi"}).status_code == 404
    anonymous = Client()
    response = anonymous.post(f"/chat/{room.slug}/send/", {"message": "hi"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert client_alice.get(f"/chat/{room.slug}/send/").status_code == 405
    assert Message.objects.count() == 0


# --- CSRF on every POST ---


def csrf_client(user=None):
    client = Client(enforce_csrf_checks=True)
    if user is not None:
        client.force_login(user)
    return client


def csrf_token_of(client, path):
    page = client.get(path).content.decode()
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]


def test_lobby_post_needs_a_csrf_token(alice):
    client = csrf_client(alice)
    assert client.post("/", {"name": "forged"}).status_code == 403
    assert Room.objects.count() == 0
    token = csrf_token_of(client, "/")
    assert client.post("/", {"name": "real", "csrfmiddlewaretoken": token}).status_code == 302


def test_no_js_send_needs_a_csrf_token(alice):
    room = make_room(name="General")
    client = csrf_client(alice)
    assert client.post(f"/chat/{room.slug}/send/", {"message": "forged"}).status_code == 403
    assert Message.objects.count() == 0
    token = csrf_token_of(client, room.get_absolute_url())
    response = client.post(
        f"/chat/{room.slug}/send/", {"message": "real", "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302 and Message.objects.count() == 1


def test_signup_needs_a_csrf_token():
    client = csrf_client()
    fields = {"username": "mallory", "password1": PASSWORD, "password2": PASSWORD}
    assert client.post("/accounts/signup/", fields).status_code == 403
    assert not get_user_model().objects.filter(username="mallory").exists()


def test_login_needs_a_csrf_token(alice):
    client = csrf_client()
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


def test_logout_needs_a_csrf_token(alice):
    client = csrf_client(alice)
    assert client.post("/accounts/logout/").status_code == 403
    assert client.session.get("_auth_user_id") == str(alice.pk)


# --- accounts ---


def test_login_works(client, alice):
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(alice.pk)


def test_login_is_locked_after_repeated_failures(client, alice, settings):
    settings.CHAT_LOGIN_FAILURE_LIMIT = 3
    for _ in range(3):
        response = client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
        assert response.status_code == 200
        assert "_auth_user_id" not in client.session
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert "_auth_user_id" not in client.session
    body = " ".join(parse_html(response.content.decode()).text().split())
    assert "Too many failed attempts" in body
    assert re.search(r"Try again in \d+ minutes?", body)
    # Another account is not locked by someone guessing at Alice's.
    make_user(username="bob")
    response = client.post("/accounts/login/", {"username": "bob", "password": PASSWORD})
    assert response.status_code == 302


def test_login_lockout_is_not_bypassed_by_changing_the_case_or_spacing(client, alice, settings):
    settings.CHAT_LOGIN_FAILURE_LIMIT = 2
    for username in ("alice", "ALICE"):
        client.post("/accounts/login/", {"username": username, "password": "wrong"})
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert "_auth_user_id" not in client.session
    assert "Too many failed attempts" in response.content.decode()


def test_signup_creates_and_logs_in(client):
    response = client.post(
        "/accounts/signup/", {"username": "carol", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.session["_auth_user_id"] == str(get_user_model().objects.get(username="carol").pk)


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("password123", "This password is too common."),
        ("xk3!", "This password is too short."),
        ("83749261538", "This password is entirely numeric."),
        ("carolcarol1", "The password is too similar to the username."),
    ],
)
def test_signup_refuses_weak_passwords(client, password, message):
    response = client.post(
        "/accounts/signup/",
        {"username": "carolcarol", "password1": password, "password2": password},
    )
    assert response.status_code == 400
    assert message in response.content.decode().replace("&#x27;", "'")
    assert not get_user_model().objects.filter(username="carolcarol").exists()


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example/",
        "//evil.example/",
        "///evil.example/",
        "http:evil.example",
        "javascript:alert(1)",
        "\\\\evil.example",
        "/\\evil.example",
    ],
)
def test_signup_does_not_redirect_to_another_site(client, next_url):
    response = client.post(
        "/accounts/signup/?next=" + next_url,
        {"username": "dave", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 302 and response["Location"] == "/"


def test_signup_follows_a_local_next(client):
    response = client.post(
        "/accounts/signup/?next=/chat/general/",
        {"username": "erin", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 302 and response["Location"] == "/chat/general/"


@pytest.mark.parametrize("next_url", ["https://evil.example/", "//evil.example/"])
def test_login_does_not_redirect_to_another_site(client, alice, next_url):
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": PASSWORD, "next": next_url}
    )
    assert response.status_code == 302 and "evil.example" not in response["Location"]


# --- Content-Security-Policy and the pages' markup ---


def csp(response):
    header = response.headers.get("Content-Security-Policy")
    assert header, "no Content-Security-Policy header"
    directives = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0].lower()] = words[1:]
    return directives


def pages(client_alice, alice):
    room = make_room(name="General")
    make_message(room=room, author=alice, text="hello")
    anonymous = Client()
    return {
        "lobby": client_alice.get("/"),
        "room": client_alice.get(room.get_absolute_url()),
        "older": client_alice.get(room.get_absolute_url() + "?before=2"),
        "refused send": client_alice.post(f"/chat/{room.slug}/send/", {"message": ""}),
        "404": client_alice.get("/chat/nothing/"),
        "login": anonymous.get("/accounts/login/"),
        "signup": anonymous.get("/accounts/signup/"),
    }


def test_pages_send_a_csp_that_allows_only_our_own_scripts(client_alice, alice):
    for name, response in pages(client_alice, alice).items():
        directives = csp(response)
        scripts = directives.get("script-src", directives.get("default-src"))
        assert scripts == ["'self'"], (name, scripts)
        assert directives.get("default-src") == ["'self'"], name
        styles = directives.get("style-src", directives.get("default-src"))
        assert "'unsafe-inline'" not in styles and "'unsafe-eval'" not in styles, name
        assert all(s == "'self'" or s.startswith("'nonce-") for s in styles), (name, styles)
        assert directives.get("object-src") == ["'none'"], name
        assert directives.get("base-uri") in (["'none'"], ["'self'"]), name
        assert directives.get("frame-ancestors") == ["'none'"], name


def test_pages_have_no_inline_script_and_no_event_handler_attributes(client_alice, alice):
    for name, response in pages(client_alice, alice).items():
        body = response.content.decode()
        tree = parse_html(body)
        scripts = tree.find_all(lambda n: n.tag == "script")
        for script in scripts:
            assert script.attrs.get("src", "").startswith(STATIC_PREFIX), (name, script.attrs)
            assert script.text().strip() == "", (name, script.attrs)
        for node in tree.walk():
            for attribute, value in node.attrs.items():
                assert not attribute.startswith("on"), (name, node.tag, attribute)
                assert not attribute.startswith(("hx-on", "data-hx-on")), (name, attribute)
                assert "javascript:" not in (value or "").lower(), (name, attribute, value)
                assert attribute != "style", (name, node.tag)  # blocked by the CSP anyway
        sources = csp(response).get("style-src") or []
        nonces = [s.removeprefix("'nonce-").rstrip("'") for s in sources if s.startswith("'nonce-")]
        for style in tree.find_all(lambda n: n.tag == "style"):
            assert style.attrs.get("nonce") in nonces, (name, style.attrs)


def test_the_style_nonce_is_new_for_every_response(client_alice):
    room = make_room(name="General")
    first, second = (csp(client_alice.get(room.get_absolute_url())) for _ in range(2))
    assert first["style-src"] != second["style-src"]


def test_htmx_is_served_from_our_own_origin(client_alice):
    room = make_room(name="General")
    tree = parse_html(client_alice.get(room.get_absolute_url()).content.decode())
    sources = [n.attrs.get("src", "") for n in tree.find_all(lambda n: n.tag == "script")]
    assert any("htmx" in src for src in sources), sources
    assert all(src.startswith("/") and not src.startswith("//") for src in sources), sources


# --- escaping ---

HOSTILE = (
    "<b>bold</b> <script>alert(1)</script> <img src=x onerror=alert(2)> "
    '<a href="javascript:alert(3)">x</a> javascript:alert(4) JaVaScRiPt:alert(5) '
    '<div hx-get="/" hx-trigger="load">htmx</div> <svg onload=alert(6)> '
    "https://example.com/x?a=1&b=2 www.example.org data:text/html,<script>alert(7)</script>\n"
    "second line"
)


def test_message_markup_is_escaped_and_links_are_safe(client_alice, alice):
    room = make_room(name="General")
    make_message(room=room, author=alice, text=HOSTILE)
    response = client_alice.get(room.get_absolute_url())
    tree = parse_html(response.content.decode())
    [body] = tree.find_all(lambda n: "message-text" in n.classes)
    for node in body.walk():
        assert node.tag in {"a", "br"}, node.tag
        for attribute in node.attrs:
            assert attribute in {"href", "rel"}, (node.tag, attribute)
    links = [a.attrs["href"] for a in body.find_all(lambda n: n.tag == "a")]
    assert links == ["https://example.com/x?a=1&b=2", "http://www.example.org"]
    assert len(body.find_all(lambda n: n.tag == "br")) == 1
    # What the reader sees is exactly what was typed.
    assert body.text().replace("\n", "") == HOSTILE.replace("\n", "")


def test_room_names_are_escaped_everywhere(client_alice, alice):
    name = "<img src=x onerror=alert(1)> & co"
    response = client_alice.post("/", {"name": name})
    room = Room.objects.get()
    assert room.name == name
    for path in ["/", room.get_absolute_url()]:
        body = client_alice.get(path).content.decode()
        assert "<img src=x" not in body
        assert "&lt;img src=x onerror=alert(1)&gt; &amp; co" in body
    assert response.status_code == 302


def test_admin_escapes_message_text_and_room_names(client, alice):
    admin = get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)
    client.force_login(admin)
    room = make_room(name="<b>room</b>")
    make_message(room=room, author=alice, text="<script>alert(1)</script>")
    for path in ["/admin/chat/message/", "/admin/chat/room/"]:
        body = client.get(path).content.decode()
        assert "<script>alert(1)</script>" not in body and "<b>room</b>" not in body
        assert "&lt;b&gt;room&lt;/b&gt;" in body


# --- constant query counts, however long the history (issue 5, item 3) ---


def count_queries(client, path, **headers):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path, **headers)
    assert response.status_code == 200
    return len(captured)


@pytest.mark.parametrize(
    ("query", "headers"),
    [("", {}), ("?before=40", {}), ("?before=40", {"HTTP_HX_REQUEST": "true"})],
    ids=["latest", "older page", "older fragment"],
)
def test_room_page_queries_do_not_grow_with_history(
    client_alice, alice, query, headers, django_assert_num_queries
):
    small, large = make_room(name="small"), make_room(name="large")
    authors = [alice, *(make_user() for _ in range(5))]
    for room, count in ((small, 60), (large, 600)):
        Message.objects.bulk_create(
            Message(room=room, author=authors[n % len(authors)], seq=n, text=f"m{n}")
            for n in range(1, count + 1)
        )
        Room.objects.filter(pk=room.pk).update(last_seq=count)
    expected = count_queries(client_alice, small.get_absolute_url() + query, **headers)
    with django_assert_num_queries(expected):
        client_alice.get(large.get_absolute_url() + query, **headers)
    # And not one per message or per author.
    assert expected <= 8


def test_lobby_queries_do_not_grow_with_the_number_of_rooms(client_alice, alice):
    for n in range(3):
        make_message(room=make_room(name=f"few {n}"), author=alice)
    few = count_queries(client_alice, "/")
    for n in range(30):
        Room.objects.create(name=f"many {n}", slug=f"many-{n}")
    assert count_queries(client_alice, "/") == few
