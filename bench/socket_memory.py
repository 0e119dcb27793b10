"""What one idle room socket holds inside the process, by allocation site (tracemalloc).

    .venv/bin/python bench/socket_memory.py

Opens 200 room sockets in-process (Channels' WebsocketCommunicator, the in-memory
channel layer, a throwaway SQLite database), with presence and the person stream on, and
prints the memory the sockets after the first added, per socket, by the line that
allocated it. It shows the application's share (the consumer, its PageFeed, the hub's
presence and person-stream entries) beside Channels' and asyncio's; a daphne socket also
holds autobahn's protocol and Twisted's transport, which bench/run.py's RSS figure includes.
"""

import asyncio
import gc
import json
import os
import sys
import tempfile
import tracemalloc

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
DATABASE = os.path.join(tempfile.gettempdir(), f"chat-socket-memory-{os.getpid()}.sqlite3")
os.environ["DATABASE_URL"] = f"sqlite:///{DATABASE}"
os.environ["DEBUG"] = "0"  # no query log kept per request
os.environ.setdefault("SECRET_KEY", "bench-only")
os.environ["CHAT_RATE_LIMIT"] = "off"
os.environ.pop("REDIS_URL", None)
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
import django  # noqa: E402 - after the settings are chosen

django.setup()
from django.core.management import call_command  # noqa: E402 - after the settings are chosen

call_command("migrate", verbosity=0)
from channels.db import database_sync_to_async  # noqa: E402 - after the settings are chosen
from channels.testing import WebsocketCommunicator  # noqa: E402 - after the settings are chosen
from django.contrib.auth import get_user_model  # noqa: E402 - after the settings are chosen

from chat.actions import memberships  # noqa: E402 - after the settings are chosen
from chat.tests.test_security import _as_signed_in, router  # noqa: E402 - after the settings are chosen

N = 200


def setup():
    User = get_user_model()
    users = [User.objects.create_user(f"m{i}-{os.getpid()}") for i in range(N)]
    room, _ = memberships.room_open_or_create(user=users[0], name=f"Mem {os.getpid()}")
    return users, room


async def main():
    users, room = await database_sync_to_async(setup)()
    scoped = [await database_sync_to_async(_as_signed_in)(u) for u in users]
    # one socket first: the hub's own start-up is not per socket
    first = WebsocketCommunicator(router, f"/ws/chat/{room.slug}/")
    first.scope["user"] = scoped[0]
    await first.connect()
    await first.send_to(text_data=json.dumps({"last_seq": str(room.last_seq)}))
    await asyncio.sleep(0.5)
    gc.collect()
    tracemalloc.start(8)
    before = tracemalloc.take_snapshot()
    comms = []
    for user in scoped[1:]:
        c = WebsocketCommunicator(router, f"/ws/chat/{room.slug}/")
        c.scope["user"] = user
        connected, code = await c.connect()
        assert connected, code
        await c.send_to(text_data=json.dumps({"last_seq": str(room.last_seq)}))
        comms.append(c)
    await asyncio.sleep(1.0)
    for c in comms:  # drain what they were sent (presence lists, status)
        while not await c.receive_nothing(timeout=0.01):
            await c.receive_output()
    gc.collect()
    after = tracemalloc.take_snapshot()
    stats = after.compare_to(before, "lineno")
    total = sum(s.size_diff for s in stats)
    print(
        f"app-level memory per socket: {total / (N - 1) / 1024:.1f} KiB (incl. test communicator)"
    )
    for s in stats[:18]:
        print(
            f"{s.size_diff / (N - 1):8.0f} B/socket  {s.traceback[0].filename.split('site-packages/')[-1].replace('/work/main/', '')}:{s.traceback[0].lineno}"
        )
    for c in [*comms, first]:
        await c.disconnect()


try:
    asyncio.run(main())
finally:
    os.remove(DATABASE)
