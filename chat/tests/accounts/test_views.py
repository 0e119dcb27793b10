"""chat/accounts: signing up, logging in (throttled) and out, with CSRF on every form;
the settings page (display name, time zone, presence, password) and a person's page."""

import re
from datetime import UTC, datetime
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from chat.actions.profiles import profile_update
from chat.models import Message, Profile
from chat.tests.factories import make_message, make_room, make_user
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


# --- sign-up wording ---


def test_signup_speaks_to_people_not_in_djangos_stock_text(client):
    body = " ".join(
        parse_html(client.get("/accounts/signup/").content.decode())
        .text()
        .replace("\u2019", "'")
        .split()
    )
    for stock in (
        "Required. 150 characters or fewer",
        "Enter the same password as before, for verification",
        "Your password can't be too similar to your other personal information",
        "Password confirmation",
    ):
        assert stock not in body
    assert "How people mention you: letters, digits and @ . + - _ only." in body
    assert "You can pick a display name with spaces later." in body
    assert "At least 8 characters, not only digits, not a common password" in body
    assert "Password again" in body


def test_signup_fields_have_their_labels(client):
    tree = parse_html(client.get("/accounts/signup/").content.decode())
    labelled = {
        n.attrs["for"] for n in tree.find_all(lambda n: n.tag == "label" and "for" in n.attrs)
    }
    inputs = {
        n.attrs["name"]: n.attrs.get("id")
        for n in tree.find_all(lambda n: n.tag == "input" and n.attrs.get("type") != "hidden")
    }
    assert set(inputs) == {"username", "password1", "password2"}
    assert set(inputs.values()) <= labelled


def test_signup_starts_an_empty_profile(client):
    client.post(
        "/accounts/signup/", {"username": "fay", "password1": PASSWORD, "password2": PASSWORD}
    )
    user = get_user_model().objects.get(username="fay")
    assert Profile.objects.filter(user=user, display_name="", time_zone="").exists()


# --- settings ---


def settings_form(response):
    """{field name: value} of the settings page's profile form (checkbox: checked or not)."""
    tree = parse_html(response.content.decode())
    [form] = [
        f
        for f in tree.find_all(lambda n: n.tag == "form")
        if f.find_all(lambda n: n.attrs.get("name") == "display_name")
    ]
    fields = {}
    for node in form.walk():
        name = node.attrs.get("name")
        if node.tag == "input" and name and name != "csrfmiddlewaretoken":
            if node.attrs.get("type") == "checkbox":
                fields[name] = "checked" in node.attrs
            else:
                fields[name] = node.attrs.get("value", "")
    return fields


def field_errors(response):
    """[(id of the field it describes, error text)] of the page's field errors."""
    tree = parse_html(response.content.decode())
    described = {
        n.attrs["aria-describedby"]: n.attrs.get("name")
        for n in tree.find_all(lambda n: n.attrs.get("aria-invalid") == "true")
    }
    return [
        (described.get(n.attrs.get("id")), " ".join(n.text().split()))
        for n in tree.find_all(lambda n: "field-error" in n.classes)
    ]


def profile_of_user(user):
    profile = Profile.objects.filter(user=user).first()
    return (profile.display_name, profile.time_zone, profile.show_presence) if profile else None


@pytest.mark.parametrize("path", ["/accounts/settings/", "/people/alice/"])
def test_anonymous_visitors_are_sent_to_log_in(client, alice, path):
    for response in (client.get(path), client.post(path, {"display_name": "x"})):
        assert response.status_code == 302
        assert response["Location"] == f"/accounts/login/?next={path}"
    assert profile_of_user(alice) is None


def test_settings_page_has_the_documented_fields_filled_with_the_defaults(client, alice, settings):
    settings.TIME_ZONE = "Europe/Lisbon"
    client.force_login(alice)
    response = client.get("/accounts/settings/")
    assert response.status_code == 200
    assert settings_form(response) == {
        "display_name": "alice",
        "time_zone": "Europe/Lisbon",
        "show_presence": True,
        "email": "",
        "email_missed": True,  # on until turned off (issue 11's emails)
    }
    tree = parse_html(response.content.decode())
    names = {n.attrs.get("name") for n in tree.walk() if n.tag in ("input", "button")}
    assert {"old_password", "new_password1", "new_password2", "change_password"} <= names
    zones = {n.attrs["value"] for n in tree.find_all(lambda n: n.tag == "option")}
    assert {"Europe/Paris", "America/New_York", "Asia/Kolkata"} <= zones


def test_settings_save_the_email_address_and_whether_missed_messages_are_emailed(client, alice):
    client.force_login(alice)
    fields = {"display_name": "alice", "time_zone": "UTC", "email_missed": "on"}
    refused = client.post("/accounts/settings/", {**fields, "email": "not an address"})
    assert refused.status_code == 400
    assert "does not look like an email address" in refused.content.decode()
    alice.refresh_from_db()
    assert alice.email == ""
    client.post("/accounts/settings/", {**fields, "email": " alice@example.com "})
    alice.refresh_from_db()
    assert alice.email == "alice@example.com"
    assert settings_form(client.get("/accounts/settings/"))["email_missed"] is True
    # A form sent with the field emptied and the box unticked clears both.
    client.post("/accounts/settings/", {"display_name": "alice", "time_zone": "UTC"})
    form = settings_form(client.get("/accounts/settings/"))
    assert (form["email"], form["email_missed"]) == ("", False)


def test_settings_save_the_name_zone_and_presence(client, alice):
    client.force_login(alice)
    response = client.post(
        "/accounts/settings/", {"display_name": "  Alice   Liddell ", "time_zone": "Asia/Tokyo"}
    )
    assert response.status_code == 200
    assert "Saved." in response.content.decode()
    assert profile_of_user(alice) == ("Alice Liddell", "Asia/Tokyo", False)
    assert settings_form(client.get("/accounts/settings/")) == {
        "display_name": "Alice Liddell",
        "time_zone": "Asia/Tokyo",
        "show_presence": False,
        "email": "",
        "email_missed": False,  # a checkbox left unticked
    }
    client.post(
        "/accounts/settings/",
        {"display_name": "Alice Liddell", "time_zone": "Asia/Tokyo", "show_presence": "on"},
    )
    assert profile_of_user(alice) == ("Alice Liddell", "Asia/Tokyo", True)


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        (
            {"display_name": "Alice", "time_zone": "Mars/Olympus_Mons"},
            [("time_zone", "Pick a time zone from the list (an IANA name such as Europe/Paris).")],
        ),
        (
            {"display_name": "Alice", "time_zone": ""},
            [("time_zone", "Pick a time zone from the list (an IANA name such as Europe/Paris).")],
        ),
        (
            {"display_name": "   ", "time_zone": "UTC"},
            [("display_name", "Give a name people will see.")],
        ),
        (
            {"display_name": "A" * 51, "time_zone": "UTC"},
            [("display_name", "Names are at most 50 characters.")],
        ),
        (
            {"display_name": "Al\u202eice", "time_zone": "UTC"},
            [("display_name", "The name holds a character that cannot be shown.")],
        ),
        (
            {"display_name": "Al\x07ice", "time_zone": "UTC"},
            [("display_name", "The name holds a character that cannot be shown.")],
        ),
        (
            {"display_name": "Al\x00ice", "time_zone": "UTC"},
            [("display_name", "Null characters are not allowed.")],
        ),
        (
            {"display_name": "Bob", "time_zone": "UTC"},
            [("display_name", "That is someone else's username: pick a name that is yours.")],
        ),
        (
            {"display_name": "", "time_zone": "Nowhere"},
            [
                ("display_name", "Give a name people will see."),
                (
                    "time_zone",
                    "Pick a time zone from the list (an IANA name such as Europe/Paris).",
                ),
            ],
        ),
    ],
)
def test_settings_refuse_bad_values_clearly_and_change_nothing(client, alice, fields, errors):
    make_user(username="bob", password=None)
    client.force_login(alice)
    client.post(
        "/accounts/settings/",
        {"display_name": "Alice", "time_zone": "Europe/Paris", "show_presence": "on"},
    )
    message = make_message(room=make_room(), author=alice)
    version = Message.objects.get(pk=message.pk).version

    response = client.post("/accounts/settings/", fields)
    assert response.status_code == 400
    assert [(name, text.replace("&#x27;", "'")) for name, text in field_errors(response)] == errors
    assert "Saved." not in response.content.decode()
    assert profile_of_user(alice) == ("Alice", "Europe/Paris", True)
    assert Message.objects.get(pk=message.pk).version == version
    # The person's own words stay in the form, to be corrected.
    assert settings_form(response)["time_zone"] == fields["time_zone"]


def test_settings_need_a_csrf_token(alice):
    client = csrf_client(alice)
    fields = {"display_name": "Mallory", "time_zone": "UTC"}
    assert client.post("/accounts/settings/", fields).status_code == 403
    assert profile_of_user(alice) in (None, ("", "", True))
    token = csrf_token_of(client, "/accounts/settings/")
    response = client.post("/accounts/settings/", {**fields, "csrfmiddlewaretoken": token})
    assert response.status_code == 200
    assert profile_of_user(alice) == ("Mallory", "UTC", False)


# --- the display name, everywhere ---


def authors(response):
    """[(message text, author name shown)] of a room page, in order."""
    tree = parse_html(response.content.decode())
    return [
        (
            " ".join(node.find_all(lambda n: "message-text" in n.classes)[0].text().split()),
            node.find_all(lambda n: "message-author" in n.classes)[0].text().strip(),
        )
        for node in tree.find_all(lambda n: n.tag == "li" and "message" in n.classes)
    ]


def quote_authors(response):
    tree = parse_html(response.content.decode())
    return [n.text().strip() for n in tree.find_all(lambda n: "quote-author" in n.classes)]


def whoami(response):
    tree = parse_html(response.content.decode())
    [link] = tree.find_all(lambda n: "whoami" in n.classes)
    return " ".join(link.text().split())


def test_the_display_name_shows_in_pages_and_in_old_and_new_messages(client, alice):
    bob = make_user(username="bob", password=None)
    room = make_room(name="Names")
    make_message(room=room, author=alice, text="before the rename")
    client.force_login(alice)
    page = client.get(room.get_absolute_url())  # keeps the fragment with the old name
    assert authors(page) == [("before the rename", "alice")]
    assert whoami(page) == "alice"

    client.post("/accounts/settings/", {"display_name": "Alice Liddell", "time_zone": "UTC"})
    response = client.post(
        f"/chat/{room.slug}/send/", {"message": "after the rename", "client_key": str(uuid4())}
    )
    assert response.status_code == 302
    make_message(room=room, author=bob, text="from bob")

    page = client.get(room.get_absolute_url())
    assert authors(page) == [
        ("before the rename", "Alice Liddell"),
        ("after the rename", "Alice Liddell"),
        ("from bob", "bob"),
    ]
    assert whoami(page) == "Alice Liddell"
    assert whoami(client.get("/")) == "Alice Liddell"
    # Bob sees it too, and the initials of the avatar follow the name.
    bobs = Client()
    bobs.force_login(bob)
    page = bobs.get(room.get_absolute_url())
    assert authors(page)[0] == ("before the rename", "Alice Liddell")
    initials = {
        n.attrs["data-initials"]
        for n in message_node_of(page, "before the rename").walk()
        if "avatar" in n.classes
    }
    assert initials == {"AL"}


def message_node_of(response, text):
    tree = parse_html(response.content.decode())
    for node in tree.find_all(lambda n: n.tag == "li" and "message" in n.classes):
        if text in node.text():
            return node
    raise AssertionError(f"no message {text!r}")


def test_a_reply_quotes_the_authors_current_name(client, alice):
    bob = make_user(username="bob", password=None)
    room = make_room(name="Quotes")
    original = make_message(room=room, author=alice, text="the original")
    make_message(room=room, author=bob, text="the reply", reply_to=original)
    client.force_login(alice)
    assert quote_authors(client.get(room.get_absolute_url())) == ["alice"]
    client.post("/accounts/settings/", {"display_name": "Alice Liddell", "time_zone": "UTC"})
    assert quote_authors(client.get(room.get_absolute_url())) == ["Alice Liddell"]


# --- the password ---


def change_password(client, old, new, again=None):
    return client.post(
        "/accounts/settings/",
        {
            "old_password": old,
            "new_password1": new,
            "new_password2": new if again is None else again,
            "change_password": "1",
        },
    )


def test_changing_the_password_keeps_the_session_and_the_profile(client, alice):
    client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    client.post("/accounts/settings/", {"display_name": "Alice", "time_zone": "Asia/Tokyo"})
    new = "another-long-password-7"
    response = change_password(client, PASSWORD, new)
    assert response.status_code == 200
    assert "Your password is changed." in response.content.decode()
    # Still logged in, on this session, after the session hash changed.
    assert logged_in_as(client) == str(alice.pk)
    assert client.get("/accounts/settings/").status_code == 200
    assert profile_of_user(alice) == ("Alice", "Asia/Tokyo", False)
    # The new password logs in; the old one no longer does.
    assert Client().login(username="alice", password=new)
    assert not Client().login(username="alice", password=PASSWORD)


def test_another_session_is_logged_out_by_a_password_change(client, alice):
    elsewhere = Client()
    elsewhere.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert elsewhere.get("/accounts/settings/").status_code == 200
    client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert change_password(client, PASSWORD, "another-long-password-7").status_code == 200
    response = elsewhere.get("/accounts/settings/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize(
    ("old", "new", "again", "error"),
    [
        ("wrong", "another-long-password-7", None, "Your old password was entered incorrectly"),
        (PASSWORD, "another-long-password-7", "different-long-password-8", "didn't match"),
        (PASSWORD, "short", None, "This password is too short."),
        (PASSWORD, "password123", None, "This password is too common."),
    ],
)
def test_a_refused_password_change_says_why_and_changes_nothing(
    client, alice, old, new, again, error
):
    client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    response = change_password(client, old, new, again)
    assert response.status_code == 400
    tree = parse_html(response.content.decode())
    errors = " ".join(
        " ".join(n.text().split())
        for n in tree.find_all(lambda n: {"field-error", "form-error"} & set(n.classes))
    )
    assert error in errors.replace("\u2019", "'")
    assert "Your password is changed." not in response.content.decode()
    assert logged_in_as(client) == str(alice.pk)
    assert Client().login(username="alice", password=PASSWORD)


def test_a_password_change_does_not_touch_the_profile_form(client, alice):
    client.force_login(alice)
    client.post("/accounts/settings/", {"display_name": "Alice", "time_zone": "Asia/Tokyo"})
    # The password form sends none of the profile's fields: they must not be "blank".
    change_password(client, "wrong", "another-long-password-7")
    assert profile_of_user(alice) == ("Alice", "Asia/Tokyo", False)


# --- a person's page ---


def test_a_persons_page_shows_their_name_username_local_time_and_member_since(client, alice):
    bob = make_user(username="bob", password=None)
    get_user_model().objects.filter(pk=bob.pk).update(
        date_joined=datetime(2024, 2, 29, 12, 0, tzinfo=UTC)
    )
    profile_update(
        user=bob, display_name="Robert Tables", time_zone="Pacific/Kiritimati", show_presence=True
    )
    profile_update(
        user=alice, display_name="alice", time_zone="America/Los_Angeles", show_presence=True
    )
    client.force_login(alice)
    zone = ZoneInfo("Pacific/Kiritimati")  # UTC+14: another day than Los Angeles, often
    before = timezone.now().astimezone(zone)
    response = client.get("/people/bob/")
    after = timezone.now().astimezone(zone)
    assert response.status_code == 200
    tree = parse_html(response.content.decode())
    assert tree.find_all(lambda n: n.tag == "h1")[0].text().strip() == "Robert Tables"
    facts = {
        " ".join(dt.text().split()): dd
        for dt, dd in zip(
            tree.find_all(lambda n: n.tag == "dt"),
            tree.find_all(lambda n: n.tag == "dd"),
            strict=True,
        )
    }
    assert facts["Username"].text().strip() == "@bob"
    [local] = facts["Local time"].find_all(lambda n: n.tag == "time")
    shown = {before.strftime("%H:%M"), after.strftime("%H:%M")}
    assert local.text().strip() in shown
    assert local.attrs["datetime"].endswith("+14:00")
    assert "(Pacific/Kiritimati)" in facts["Local time"].text()
    assert " ".join(facts["Member since"].text().split()) == "29 February 2024"
    assert '<title id="page-title">Robert Tables · Chat</title>' in response.content.decode()


def test_a_person_without_a_zone_is_on_the_operators_clock(client, alice, settings):
    settings.TIME_ZONE = "Asia/Kolkata"
    make_user(username="carol", password=None)
    client.force_login(alice)
    tree = parse_html(client.get("/people/carol/").content.decode())
    [local] = tree.find_all(lambda n: n.tag == "time" and "+05:30" in n.attrs.get("datetime", ""))
    assert "(Asia/Kolkata)" in local.parent.text()
    assert tree.find_all(lambda n: n.tag == "h1")[0].text().strip() == "carol"


def test_message_authors_link_to_their_page(client, alice):
    room = make_room(name="Links")
    make_message(room=room, author=alice, text="hi")
    client.force_login(alice)
    node = message_node_of(client.get(room.get_absolute_url()), "hi")
    [link] = [n for n in node.walk() if "message-author" in n.classes]
    assert link.attrs["href"] == "/people/alice/"


def test_an_unknown_person_is_not_found(client, alice):
    client.force_login(alice)
    assert client.get("/people/nobody/").status_code == 404
