"""Settings for the chat, all read from the environment (see README "Configuration").

With nothing set this runs on a laptop: DEBUG on, SQLite, the in-memory channel layer.
"""

import os
import re
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from chat.caching import redis_servers

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_int(name, default, *, minimum=0):
    value = os.environ.get(name, "")
    if value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {number}")
    return number


def env_seconds(name, default, *, minimum):
    value = os.environ.get(name, "")
    if value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number of seconds, not {value!r}") from None
    if not minimum <= number < float("inf"):
        raise ImproperlyConfigured(f"{name} must be at least {minimum} seconds, not {value!r}")
    return number


def env_list(name, default=""):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def parse_rate(value):
    """`N/S` (N messages per S seconds) or `off` -> (N, S) or None."""
    if value.strip().lower() == "off":
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value)
    if not match or int(match[1]) < 1 or int(match[2]) < 1:
        raise ImproperlyConfigured(
            f"CHAT_RATE_LIMIT must be N/S (e.g. 10/10) or off, not {value!r}"
        )
    return int(match[1]), int(match[2])


DEBUG = env_bool("DEBUG", default=False) if "DEBUG" in os.environ else "DYNO" not in os.environ
ON_PLATFORM = "DYNO" in os.environ  # Heroku-style platforms set DYNO; we then sit behind HTTPS.

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "django-insecure-local-development-only"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",  # first, so `runserver` serves ASGI (WebSockets included)
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.humanize",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "chat.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "chat.middleware.ReaderTimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"
ASGI_APPLICATION = "project.asgi.application"


def theme_dir(value):
    """CHAT_THEME_DIR: a folder whose templates/ and static/ take precedence over ours."""
    if not value:
        return None
    folder = Path(value).expanduser().resolve()
    if not folder.is_dir():
        raise ImproperlyConfigured(f"CHAT_THEME_DIR must be an existing folder, not {value!r}")
    if not (folder / "templates").is_dir() and not (folder / "static").is_dir():
        raise ImproperlyConfigured(
            f"CHAT_THEME_DIR {value!r} has neither a templates/ nor a static/ folder"
        )
    return folder


CHAT_THEME_DIR = theme_dir(os.environ.get("CHAT_THEME_DIR", ""))
THEME_TEMPLATES = [CHAT_THEME_DIR / "templates"] if CHAT_THEME_DIR else []
THEME_STATIC = (
    [CHAT_THEME_DIR / "static"] if CHAT_THEME_DIR and (CHAT_THEME_DIR / "static").is_dir() else []
)

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # A theme's templates first; one of the same name may {% extends %} ours.
        "DIRS": [*THEME_TEMPLATES, BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "chat.middleware.csp_nonce",
            ],
        },
    },
]

# SQLite in IMMEDIATE mode takes the write lock at BEGIN, so two processes assigning a
# room's next sequence number queue up instead of failing with "database is locked".
DATABASES = {
    "default": dj_database_url.parse(
        # An empty DATABASE_URL means "not set", as for every other variable here.
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# One Redis server or several, separated by commas (shards of the channel layer; the
# first also keeps the cache and presence), each redis://, rediss://, unix:// or a
# Sentinel-watched master, redis+sentinel://host:26379,host:26379/mymaster[/db]
# (chat/caching.py). Every process must be given the same list in the same order.
REDIS_URL = os.environ.get("REDIS_URL", "").strip()
redis_servers(REDIS_URL)  # refuses a bad value now, naming REDIS_URL

# How long Redis keeps a group membership without renewal. Each process renews its own
# memberships every third of this, so a socket open for days keeps receiving.
CHAT_GROUP_EXPIRY = env_int("CHAT_GROUP_EXPIRY", 86400, minimum=3)


def channel_layers_and_caches(redis_url, prefix="chat"):
    """Redis for both when a URL is given; in-process stand-ins for one laptop process.

    Several servers: the channel layer shards across all of them (channels_redis hashes
    each group and each process's channel to one), while the cache (rate limits, login
    lockout, fragments) stays on the first: counts must be read where they are written.
    """
    servers = redis_servers(redis_url)
    if not servers:
        return (
            {
                "default": {
                    "BACKEND": "channels.layers.InMemoryChannelLayer",
                    "CONFIG": {"group_expiry": CHAT_GROUP_EXPIRY, "capacity": 5000},
                }
            },
            {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        )
    connection = {
        # redis-py 8 reads with a 5 s socket timeout by default, exactly as long as
        # channels_redis blocks in BZPOPMIN: give the blocking read room to finish.
        "socket_timeout": 15,
        "socket_connect_timeout": 5,
        # redis-py's pool refuses (not waits) past 100 connections; a busy process has
        # more publishes than that in flight.
        "max_connections": 1000,
    }
    return (
        {
            "default": {
                # channels_redis's, sending to a process's channel on the shard it reads.
                "BACKEND": "chat.caching.RedisChannelLayer",
                "CONFIG": {
                    "hosts": [server.layer_host(**connection) for server in servers],
                    "group_expiry": CHAT_GROUP_EXPIRY,
                    # One channel per process carries every room it serves: give it room.
                    "capacity": 5000,
                    "expiry": 60,
                    "prefix": prefix,
                },
            }
        },
        {
            "default": {
                "BACKEND": "chat.caching.RedisCache",
                "LOCATION": servers[0].url,
                "KEY_PREFIX": prefix,
            }
        },
    )


CHANNEL_LAYERS, CACHES = channel_layers_and_caches(REDIS_URL)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Ours loads the person's profile with them (one query, not two); Django's stays second
# so sessions it started remain valid.
AUTHENTICATION_BACKENDS = [
    "chat.accounts.backends.ProfileModelBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "lobby"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = os.environ.get("STATIC_ROOT") or BASE_DIR / "staticfiles"
STATICFILES_DIRS = [*THEME_STATIC, BASE_DIR / "static"]  # the first file found wins
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- The chat's own limits (README "Security") ---
CHAT_MAX_MESSAGE_LENGTH = env_int("CHAT_MAX_MESSAGE_LENGTH", 4000, minimum=1)
CHAT_MAX_FRAME_BYTES = env_int("CHAT_MAX_FRAME_BYTES", 64 * 1024, minimum=1024)
CHAT_RATE_LIMIT = parse_rate(os.environ.get("CHAT_RATE_LIMIT", "10/10"))
# Usernames that CHAT_RATE_LIMIT does not apply to (the benchmark's users, for one).
CHAT_RATE_LIMIT_EXEMPT = set(env_list("CHAT_RATE_LIMIT_EXEMPT"))
# One INFO line per post with the time from frame received to broadcast published.
CHAT_TIMING_LOG = env_bool("CHAT_TIMING_LOG", default=False)
CHAT_PAGE_SIZE = env_int("CHAT_PAGE_SIZE", 50, minimum=1)
# Every process checks the database this often for messages the channel layer did not
# bring (a broker outage, a dropped group message) and delivers them.
CHAT_RECONCILE_SECONDS = env_seconds("CHAT_RECONCILE_SECONDS", 2.0, minimum=0.05)
# Every open page hears from its socket this often; after 2.5 beats of silence it shows
# "Reconnecting…" (the CSS animation delay in chat.css is 2.5 x the default, 3 s).
CHAT_HEARTBEAT_SECONDS = env_seconds("CHAT_HEARTBEAT_SECONDS", 3.0, minimum=0.5)
# Presence ("People here", chat/realtime/hub/presence.py): each process's record of who it
# serves in a room lives this long in Redis unless renewed (every third of it). A killed
# process's people leave the list within about 1.3 x this; a Redis restarted empty is
# whole again within a third of it.
CHAT_PRESENCE_TTL_SECONDS = env_seconds("CHAT_PRESENCE_TTL_SECONDS", 30.0, minimum=1.0)
# "alice is typing…" (chat/realtime/hub/typing.py) goes this long after her last typing
# frame: a page sends one at most every 2 s while she types, and no "stopped" frame.
CHAT_TYPING_SECONDS = env_seconds("CHAT_TYPING_SECONDS", 5.0, minimum=1.0)
# Each page's socket also carries its person's stream (rooms, unread and mention counts,
# live). Off only to measure what it costs (bench/run.py --person-stream).
CHAT_PERSON_STREAM = env_bool("CHAT_PERSON_STREAM", default=True)
CHAT_LOGIN_FAILURE_LIMIT = env_int("CHAT_LOGIN_FAILURE_LIMIT", 5, minimum=1)
CHAT_LOGIN_LOCKOUT_SECONDS = env_int("CHAT_LOGIN_LOCKOUT_SECONDS", 900, minimum=1)
# Someone mentioned or written to directly who has not read it this many seconds later
# gets one email listing what they missed (the `worker:` process sends it).
CHAT_MENTION_EMAIL_DELAY = env_seconds("CHAT_MENTION_EMAIL_DELAY", 600.0, minimum=0.0)

# --- Email (the `worker:` process sends what people missed; chat/notifications.py) ---
# SMTP when EMAIL_HOST is set; otherwise emails are printed to the worker's output (a laptop).
EMAIL_HOST = os.environ.get("EMAIL_HOST", "").strip()
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=False)  # STARTTLS, usually port 587
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", default=False)  # TLS from the start, usually 465
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("Set EMAIL_USE_TLS or EMAIL_USE_SSL, not both")
EMAIL_PORT = env_int(
    "EMAIL_PORT", 465 if EMAIL_USE_SSL else 587 if EMAIL_USE_TLS else 25, minimum=1
)
if EMAIL_PORT > 65535:
    raise ImproperlyConfigured(f"EMAIL_PORT must be a port number (1-65535), not {EMAIL_PORT}")
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
if EMAIL_HOST_PASSWORD and not EMAIL_HOST_USER:
    raise ImproperlyConfigured("EMAIL_HOST_PASSWORD is set but EMAIL_HOST_USER is not")
# A mail server that stops answering must not hold the worker (and the rows it locked).
EMAIL_TIMEOUT = env_seconds("EMAIL_TIMEOUT", 30.0, minimum=1.0)
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "").strip() or "chat@localhost"
if "@" not in DEFAULT_FROM_EMAIL or any(c in DEFAULT_FROM_EMAIL for c in "\r\n"):
    raise ImproperlyConfigured(
        f"DEFAULT_FROM_EMAIL must be an address (chat@example.com or Chat <chat@example.com>), not {DEFAULT_FROM_EMAIL!r}"
    )
# The site's address as people reach it, for the links in emails (no request to ask).
CHAT_SITE_URL = os.environ.get("CHAT_SITE_URL", "").strip().rstrip("/") or "http://127.0.0.1:8000"
if not re.fullmatch(r"https?://[^/\s?#]+(/[^\s?#]*)?", CHAT_SITE_URL):
    raise ImproperlyConfigured(
        f"CHAT_SITE_URL must start with http:// or https:// and name a host, not {CHAT_SITE_URL!r}"
    )
# How often the worker looks for emails that are due.
CHAT_WORKER_POLL_SECONDS = env_seconds("CHAT_WORKER_POLL_SECONDS", 5.0, minimum=0.1)

# --- HTTPS hardening behind a Procfile platform's router ---
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True  # no script of ours reads it; forms carry the token
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if ON_PLATFORM:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "chat": {"level": os.environ.get("CHAT_LOG_LEVEL", "INFO")},
        # Says "N of M channels over capacity in group room-<pk>" when it drops a message.
        "channels_redis": {"level": "INFO"},
    },
}

# --- Health, metrics and logs (issue 13) ---
# /healthz, /readyz and /metrics (chat/views/health.py) are answered ahead of every other
# middleware: platforms probe over plain HTTP with a Host of their own (a pod's address),
# which ALLOWED_HOSTS would refuse (400) and SECURE_SSL_REDIRECT would redirect (301).
MIDDLEWARE = ["chat.views.health.probe_middleware", *MIDDLEWARE]


def parse_metrics(value, *, debug):
    """CHAT_METRICS -> (enabled, bearer token or None).

    `off`; `on` (anyone who reaches /metrics reads it: a private network only); or a
    token of 16+ characters that scrapers send as `Authorization: Bearer <token>`.
    Unset: on with DEBUG (a laptop), off without.
    """
    value = value.strip()
    if not value:
        return debug, None
    if value.lower() in {"0", "false", "no", "off"}:
        return False, None
    if value.lower() in {"1", "true", "yes", "on"}:
        return True, None
    if not re.fullmatch(r"[A-Za-z0-9._~+/-]{16,}=*", value):
        raise ImproperlyConfigured(
            "CHAT_METRICS must be off, on, or a bearer token of at least 16 letters, "
            "digits or ._~+/- characters"
        )
    return True, value


CHAT_METRICS_ENABLED, CHAT_METRICS_TOKEN = parse_metrics(
    os.environ.get("CHAT_METRICS", ""), debug=DEBUG
)

# `plain` lines for a terminal, or `json`: one object a line with fields for collectors.
CHAT_LOG_FORMAT = os.environ.get("CHAT_LOG_FORMAT", "").strip().lower() or "plain"
if CHAT_LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"CHAT_LOG_FORMAT must be plain or json, not {CHAT_LOG_FORMAT!r}")
if CHAT_LOG_FORMAT == "json":
    LOGGING["formatters"]["json"] = {"()": "chat.logs.JsonFormatter"}
    LOGGING["handlers"]["console"]["formatter"] = "json"
