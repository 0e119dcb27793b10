"""Create bench users and a logged-in session for each, for bench/people.py.

Run with the server's environment (same DATABASE_URL and SECRET_KEY), as
`python bench/people_users.py PREFIX COUNT [PREFIX COUNT ...]`; prints JSON
{prefix: [session key, ...]}. Signing up thousands of people over HTTP would spend
minutes hashing passwords; here the users get unusable passwords and a session each,
written as django.contrib.auth.login would write it (the session cookie is all a
socket needs). Usernames are PREFIX0, PREFIX1, ...
"""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

import django

django.setup()

from django.contrib.auth import (  # noqa: E402
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
)
from django.contrib.sessions.backends.db import SessionStore  # noqa: E402
from django.contrib.sessions.models import Session  # noqa: E402
from django.db import transaction  # noqa: E402

BACKEND = "chat.accounts.backends.ProfileModelBackend"


def main(argv):
    User = get_user_model()
    out = {}
    pairs = list(zip(argv[::2], map(int, argv[1::2]), strict=True))
    with transaction.atomic():
        for prefix, count in pairs:
            names = [f"{prefix}{i}" for i in range(count)]
            users = []
            for name in names:
                user = User(username=name)
                user.set_unusable_password()
                users.append(user)
            User.objects.bulk_create(users, batch_size=500)
            by_name = {u.username: u for u in User.objects.filter(username__in=names)}
            sessions, keys = [], []
            store = SessionStore()
            for name in names:
                user = by_name[name]
                key = store._get_new_session_key()
                data = {
                    SESSION_KEY: str(user.pk),
                    BACKEND_SESSION_KEY: BACKEND,
                    HASH_SESSION_KEY: user.get_session_auth_hash(),
                }
                sessions.append(
                    Session(
                        session_key=key,
                        session_data=store.encode(data),
                        expire_date=store.get_expiry_date(),
                    )
                )
                keys.append(key)
            Session.objects.bulk_create(sessions, batch_size=500)
            out[prefix] = keys
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
