"""Settings of the tutorial baseline: the official Channels tutorial's, made runnable here.

As in the tutorial: daphne and channels installed, `ASGI_APPLICATION`, and
`channels_redis.core.RedisChannelLayer` with its default capacity and expiry. Only the
Redis address comes from the environment (REDIS_URL), so the bench can give it a
database of its own, redis-py 8 needs its socket timeout switched off (see below), and
DEBUG is off, as for the project it is compared with.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("SECRET_KEY", "tutorial-baseline-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "daphne",
    "tutorialchat",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = None
ASGI_APPLICATION = "mysite.asgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("TUTORIAL_DB", str(BASE_DIR / "db.sqlite3")),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # The one change from the tutorial's ("127.0.0.1", 6379): redis-py 8 times reads
            # out after 5 s by default, as long as channels_redis's blocking BZPOPMIN, which
            # then fails and kills sockets (channels_redis#422); None restores redis-py 7's.
            "hosts": [
                {
                    "address": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
                    "socket_timeout": None,
                }
            ]
        },
    },
}
