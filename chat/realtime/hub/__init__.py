"""One hub per server process (per event loop): chat/realtime/hub/hub.py.

`publish_from_thread` is where committed events enter it: chat/events.py calls it after
commit, from the thread that ran the action (ChatConfig.ready connects the two).
"""

import asyncio
import weakref

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import get_channel_layer

from chat import metrics
from chat.realtime.hub.hub import CATCH_UP_LIMIT, MAX_FRAME_CHARS, RoomHub

__all__ = [
    "CATCH_UP_LIMIT",
    "MAX_FRAME_CHARS",
    "RoomHub",
    "get_hub",
    "publish_from_thread",
    "tell_people_from_thread",
]

_hubs = weakref.WeakKeyDictionary()
metrics.watch_hubs(lambda: _hubs.values())  # /metrics reads sockets and failures from them


def get_hub():
    """The hub of the running event loop (one per server process)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = RoomHub(get_channel_layer())
    return hub


def publish_from_thread(room_id, seq, html, **details):
    """Hand a committed event to the hub of the event loop that awaits this thread.

    Actions run in worker threads (`database_sync_to_async`, or Django's thread for a
    sync view). The hand-off is queued on the loop before the action's result is, so
    the hub knows the event by the time the caller resumes; the loop then publishes it
    without holding the worker thread. Called with no loop (a management command, a
    test), it publishes and waits.
    """
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if loop is not None and loop.is_running():
        loop.call_soon_threadsafe(_publish_on_loop, room_id, seq, html, details)
    else:
        async_to_sync(_publish_and_wait)(room_id, seq, html, details)


def tell_people_from_thread(user_ids, reason):
    """Person notices after commit (chat.events.person_changed, person_revoked), handed
    to the loop's hub like `publish_from_thread`."""
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if loop is not None and loop.is_running():
        loop.call_soon_threadsafe(_tell_on_loop, user_ids, reason)
    else:
        async_to_sync(_tell_and_wait)(user_ids, reason)


def _publish_on_loop(room_id, seq, html, details):
    get_hub().publish_soon(room_id, seq, html, **details)


async def _publish_and_wait(room_id, seq, html, details):
    await get_hub().publish(room_id, seq, html, **details)


def _tell_on_loop(user_ids, reason):
    hub = get_hub()
    hub._spawn(hub.tell_people(user_ids, reason))


async def _tell_and_wait(user_ids, reason):
    await get_hub().tell_people(user_ids, reason)
