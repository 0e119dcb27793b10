"""Settings from the environment, checked in fresh processes as a deploy would start them."""

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION = {
    "DYNO": "web.1",
    "ALLOWED_HOSTS": "chat.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://chat.example.com",
    "DATABASE_URL": "postgres://chat:secret@db.example.com:5432/chat",
    "REDIS_URL": "redis://redis.example.com:6379/0",
}


def environment(**variables):
    """A clean environment: nothing of this test run's own settings leaks in."""
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(Path.home()),
        "LANG": "C.UTF-8",
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.update({name: value for name, value in variables.items() if value is not None})
    return env


def strong_key():
    return secrets.token_urlsafe(64)


def run(args, **variables):
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=environment(**variables),
        capture_output=True,
        text=True,
        timeout=180,
    )


def manage(*args, **variables):
    return run(["manage.py", *args], **variables)


PRINT_SETTINGS = """
import json, django
from django.conf import settings
django.setup()
names = {names!r}
print(json.dumps({{name: getattr(settings, name, None) for name in names}}, default=sorted))
"""


def read_settings(names, **variables):
    result = run(["-c", PRINT_SETTINGS.format(names=list(names))], **variables)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def deploy_check(**variables):
    return manage("check", "--deploy", "--fail-level", "WARNING", **variables)


# --- check --deploy ---


@pytest.mark.parametrize("debug", [None, "false", "0"], ids=["DEBUG unset", "false", "0"])
def test_deploy_check_is_clean_with_the_documented_production_variables(debug):
    result = deploy_check(**PRODUCTION, SECRET_KEY=strong_key(), DEBUG=debug)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("variables", "check_id"),
    [
        ({"DEBUG": "true"}, "security.W018"),
        ({"SECRET_KEY": "too-short"}, "security.W009"),
        ({"SECURE_SSL_REDIRECT": "false"}, "security.W008"),
    ],
    ids=["debug on", "weak secret key", "no ssl redirect"],
)
def test_deploy_check_fails_on_an_unsafe_production_setting(variables, check_id):
    """The check is only worth something if it fails when it should."""
    result = deploy_check(**{**PRODUCTION, "SECRET_KEY": strong_key(), **variables})
    assert result.returncode != 0
    assert check_id in result.stdout + result.stderr


# --- SECRET_KEY ---


@pytest.mark.parametrize(
    "variables",
    [{"DEBUG": "false"}, {"DYNO": "web.1"}, {"DYNO": "web.1", "SECRET_KEY": ""}],
    ids=["DEBUG=false", "on the platform", "empty"],
)
def test_missing_secret_key_fails_clearly_when_debug_is_off(variables):
    result = manage("check", **{"ALLOWED_HOSTS": "chat.example.com", **variables})
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured"), result.stderr
    assert "SECRET_KEY" in last_line


def test_laptop_defaults_need_nothing_set():
    result = manage("check")
    assert result.returncode == 0, result.stderr[-3000:]
    values = read_settings(["DEBUG", "SESSION_COOKIE_SECURE", "CHAT_RATE_LIMIT"])
    assert values == {"DEBUG": True, "SESSION_COOKIE_SECURE": False, "CHAT_RATE_LIMIT": [10, 10]}


# --- bad values fail at start-up, naming the variable ---


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CHAT_RATE_LIMIT", "ten"),
        ("CHAT_RATE_LIMIT", "0/5"),
        ("CHAT_RATE_LIMIT", "5/0"),
        ("CHAT_RATE_LIMIT", "10/"),
        ("CHAT_RATE_LIMIT", "-1/10"),
        ("CHAT_RATE_LIMIT", "1.5/10"),
        ("CHAT_MAX_MESSAGE_LENGTH", "abc"),
        ("CHAT_MAX_MESSAGE_LENGTH", "0"),
        ("CHAT_MAX_MESSAGE_LENGTH", "-5"),
        ("CHAT_MAX_FRAME_BYTES", "lots"),
        ("CHAT_LOGIN_FAILURE_LIMIT", "0"),
        ("CHAT_LOGIN_LOCKOUT_SECONDS", "soon"),
        ("CHAT_GROUP_EXPIRY", "x"),
        ("CHAT_RECONCILE_SECONDS", "abc"),
        ("CHAT_RECONCILE_SECONDS", "-1"),
        ("CHAT_RECONCILE_SECONDS", "0"),
        ("REDIS_URL", "http://localhost:6379"),
        ("REDIS_URL", "localhost:6379"),
        ("DEBUG", "maybe"),
    ],
)
def test_bad_values_fail_clearly(name, value):
    result = manage("check", **{name: value})
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured"), result.stderr[
        -2000:
    ]
    assert name in last_line, last_line


@pytest.mark.parametrize(
    ("value", "expected"),
    [("off", None), ("OFF", None), (" 5 / 10 ", [5, 10]), ("100/60", [100, 60])],
)
def test_good_rate_limit_values(value, expected):
    values = read_settings(["CHAT_RATE_LIMIT"], CHAT_RATE_LIMIT=value)
    assert values == {"CHAT_RATE_LIMIT": expected}


def test_rate_limit_exempt_is_a_list_of_usernames():
    values = read_settings(["CHAT_RATE_LIMIT_EXEMPT"], CHAT_RATE_LIMIT_EXEMPT=" bench , load-1,,")
    assert sorted(values["CHAT_RATE_LIMIT_EXEMPT"]) == ["bench", "load-1"]


# --- HTTPS hardening on the platform ---

HARDENING = [
    "DEBUG",
    "SESSION_COOKIE_SECURE",
    "SESSION_COOKIE_HTTPONLY",
    "CSRF_COOKIE_SECURE",
    "SECURE_SSL_REDIRECT",
    "SECURE_PROXY_SSL_HEADER",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_CONTENT_TYPE_NOSNIFF",
    "X_FRAME_OPTIONS",
]


def test_platform_settings_are_hardened():
    values = read_settings(HARDENING, **PRODUCTION, SECRET_KEY=strong_key())
    assert values == {
        "DEBUG": False,
        "SESSION_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SECURE_HSTS_SECONDS": values["SECURE_HSTS_SECONDS"],
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
        "X_FRAME_OPTIONS": "DENY",
    }
    assert values["SECURE_HSTS_SECONDS"] >= 31536000


RESPONSES = """
import json, django
django.setup()
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
call_command("migrate", verbosity=0)
call_command("collectstatic", interactive=False, verbosity=0)  # pages name hashed files
get_user_model().objects.create_user("alice", password="a-long-test-password")
client = Client()
plain = client.get("/accounts/login/")
https = {"X-Forwarded-Proto": "https"}
page = client.get("/accounts/login/", headers=https)
token = page.cookies["csrftoken"].value
login = client.post(
    "/accounts/login/",
    {"username": "alice", "password": "a-long-test-password", "csrfmiddlewaretoken": token},
    headers={**https, "Referer": "https://testserver/accounts/login/"},
)
def cookies(response):
    return {name: dict(morsel.items()) for name, morsel in response.cookies.items()}
print(json.dumps({
    "plain_status": plain.status_code,
    "plain_location": plain.get("Location"),
    "status": page.status_code,
    "hsts": page.get("Strict-Transport-Security"),
    "page_cookies": cookies(page),
    "login_status": login.status_code,
    "login_cookies": cookies(login),
}))
"""


def test_platform_responses_redirect_to_https_and_send_secure_httponly_cookies(tmp_path):
    result = run(
        ["-c", RESPONSES],
        **{
            **PRODUCTION,
            "ALLOWED_HOSTS": "testserver",
            "DATABASE_URL": "sqlite://:memory:",
            "REDIS_URL": None,  # the login throttle uses the cache: keep it in memory here
            "SECRET_KEY": strong_key(),
            "STATIC_ROOT": str(tmp_path / "static"),
        },
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["plain_status"] == 301
    assert seen["plain_location"] == "https://testserver/accounts/login/"
    assert seen["status"] == 200
    assert int(seen["hsts"].split("max-age=")[1].split(";")[0]) >= 31536000
    csrf = seen["page_cookies"]["csrftoken"]
    assert csrf["secure"] is True and csrf["httponly"] is True
    assert csrf["samesite"].lower() in ("lax", "strict")
    assert seen["login_status"] == 302, seen
    session = seen["login_cookies"]["sessionid"]
    assert session["secure"] is True and session["httponly"] is True
    assert session["samesite"].lower() in ("lax", "strict")
