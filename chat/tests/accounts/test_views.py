"""chat/accounts: signing up, logging in (throttled) and out, with CSRF on every form."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from chat.tests.factories import make_user
from chat.tests.test_security import parse_html

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-test-password"


@pytest.fixture
def alice():
    return make_user(username="alice", password=PASSWORD)


def csrf_client(user=None):
    client = Client(enforce_csrf_checks=True)
    if user is not None:
        client.force_login(user)
    return client


def csrf_token_of(client, path):
    page = client.get(path).content.decode()
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]


def logged_in_as(client):
    return client.session.get("_auth_user_id")


# --- logging in ---


def test_login_page_has_the_documented_fields(client):
    tree = parse_html(client.get("/accounts/login/").content.decode())
    [form] = [
        f for f in tree.find_all(lambda n: n.tag == "form") if f.attrs.get("method") == "post"
    ]
    names = {n.attrs.get("name") for n in form.walk() if n.tag == "input"}
    assert {"username", "password", "csrfmiddlewaretoken"} <= names


def test_login_works(client, alice):
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert logged_in_as(client) == str(alice.pk)


def test_a_wrong_password_says_so_and_logs_nobody_in(client, alice):
    response = client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    assert response.status_code == 200
    assert logged_in_as(client) is None
    body = " ".join(parse_html(response.content.decode()).text().split())
    assert "correct username and password" in body


def test_login_is_locked_after_repeated_failures(client, alice, settings):
    settings.CHAT_LOGIN_FAILURE_LIMIT = 3
    for _ in range(3):
        response = client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
        assert response.status_code == 200
        assert logged_in_as(client) is None
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert logged_in_as(client) is None  # even the right password, while locked
    body = " ".join(parse_html(response.content.decode()).text().split())
    assert "Too many failed attempts" in body
    assert re.search(r"Try again in \d+ minutes?", body)
    # Another account is not locked by someone guessing at Alice's.
    make_user(username="bob", password=PASSWORD)
    response = client.post("/accounts/login/", {"username": "bob", "password": PASSWORD})
    assert response.status_code == 302


def test_the_lock_is_per_address(alice, settings):
    settings.CHAT_LOGIN_FAILURE_LIMIT = 2
    guesser = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(2):
        guesser.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    assert (
        "Too many failed attempts"
        in guesser.post(
            "/accounts/login/", {"username": "alice", "password": PASSWORD}
        ).content.decode()
    )
    elsewhere = Client(REMOTE_ADDR="198.51.100.7")
    response = elsewhere.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302 and logged_in_as(elsewhere) == str(alice.pk)


def test_login_lockout_is_not_bypassed_by_changing_the_case_or_spacing(client, alice, settings):
    settings.CHAT_LOGIN_FAILURE_LIMIT = 2
    for username in ("alice", " ALICE "):
        client.post("/accounts/login/", {"username": username, "password": "wrong"})
    response = client.post("/accounts/login/", {"username": "Alice", "password": PASSWORD})
    assert logged_in_as(client) is None
    assert "Too many failed attempts" in response.content.decode()


@pytest.mark.parametrize("next_url", ["https://evil.example/", "//evil.example/"])
def test_login_does_not_redirect_to_another_site(client, alice, next_url):
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": PASSWORD, "next": next_url}
    )
    assert response.status_code == 302 and "evil.example" not in response["Location"]


def test_login_follows_a_local_next(client, alice):
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": PASSWORD, "next": "/chat/general/"}
    )
    assert response.status_code == 302 and response["Location"] == "/chat/general/"


def test_logout_logs_out(client, alice):
    client.force_login(alice)
    response = client.post("/accounts/logout/")
    assert response.status_code == 302 and logged_in_as(client) is None


# --- signing up ---


def test_signup_creates_and_logs_in(client):
    response = client.post(
        "/accounts/signup/", {"username": "carol", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 302 and response["Location"] == "/"
    assert logged_in_as(client) == str(get_user_model().objects.get(username="carol").pk)


def test_signup_refuses_a_taken_name(client, alice):
    response = client.post(
        "/accounts/signup/", {"username": "alice", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 400
    assert "already exists" in response.content.decode()
    assert get_user_model().objects.filter(username="alice").count() == 1


def test_signup_refuses_passwords_that_differ(client):
    response = client.post(
        "/accounts/signup/",
        {"username": "dana", "password1": PASSWORD, "password2": PASSWORD + "x"},
    )
    assert response.status_code == 400
    assert not get_user_model().objects.filter(username="dana").exists()


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


def test_signup_when_logged_in_goes_to_the_lobby(client, alice):
    client.force_login(alice)
    response = client.get("/accounts/signup/")
    assert response.status_code == 302 and response["Location"] == "/"


# --- CSRF on every form ---


def test_signup_needs_a_csrf_token():
    client = csrf_client()
    fields = {"username": "mallory", "password1": PASSWORD, "password2": PASSWORD}
    assert client.post("/accounts/signup/", fields).status_code == 403
    assert not get_user_model().objects.filter(username="mallory").exists()
    token = csrf_token_of(client, "/accounts/signup/")
    assert (
        client.post("/accounts/signup/", {**fields, "csrfmiddlewaretoken": token}).status_code
        == 302
    )


def test_login_needs_a_csrf_token(alice):
    client = csrf_client()
    fields = {"username": "alice", "password": PASSWORD}
    assert client.post("/accounts/login/", fields).status_code == 403
    assert logged_in_as(client) is None
    token = csrf_token_of(client, "/accounts/login/")
    assert (
        client.post("/accounts/login/", {**fields, "csrfmiddlewaretoken": token}).status_code == 302
    )
    assert logged_in_as(client) == str(alice.pk)


def test_logout_needs_a_csrf_token(alice):
    client = csrf_client(alice)
    assert client.post("/accounts/logout/").status_code == 403
    assert logged_in_as(client) == str(alice.pk)
