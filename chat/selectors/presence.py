"""Who has a room open now: the presence store's layout, and the reads pages make.

Each server process keeps one record per room it serves: the ids of the people whose
sockets it holds there (chat/realtime/hub/presence.py writes them). With Redis
(REDIS_URL), under the cache's KEY_PREFIX:

    <prefix>:presence:<room>:procs      set of the ids of processes serving the room
    <prefix>:presence:<room>:p:<proc>   "<user id> <user id> ...", expiring after
                                        CHAT_PRESENCE_TTL_SECONDS unless its process renews it

Who is in a room is the union of its live records: a killed process's record expires,
and a reader drops its id from the set. Without Redis (one process, the laptop default)
the same records live in `MEMORY`, in this process.

Presence is never in the database. The database only says who chose to hide it
(Profile.show_presence): they are left out when records are read, so a change in
settings shows at the next re-read, without reconnecting.
"""

import functools
import logging
import threading
import time

import redis
from django.conf import settings

from chat.caching import first_server
from chat.models import Profile
from chat.selectors.people import display_name, people_by_id

logger = logging.getLogger(__name__)


# --- the layout ---


def key_prefix():
    return f"{settings.CACHES['default'].get('KEY_PREFIX', '')}:presence"


def processes_key(room_id):
    return f"{key_prefix()}:{room_id}:procs"


def record_key(room_id, process_id):
    return f"{key_prefix()}:{room_id}:p:{process_id}"


def encode_users(user_ids):
    return " ".join(str(user_id) for user_id in sorted(user_ids))


def decode_users(value):
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return {int(part) for part in (value or "").split() if part.isdigit()}


def decode_ids(values):
    return sorted(value.decode() if isinstance(value, bytes) else value for value in values)


class MemoryRecords:
    """The records of one process without Redis: {room: {process: (users, expires_at)}}.

    Read by page views (threads) and written by the hub (the event loop): one lock.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.rooms = {}

    def save(self, room_id, process_id, user_ids, ttl):
        with self.lock:
            records = self.rooms.setdefault(room_id, {})
            if user_ids:
                records[process_id] = (frozenset(user_ids), time.monotonic() + ttl)
            else:
                records.pop(process_id, None)
                if not records:
                    del self.rooms[room_id]

    def users(self, room_ids):
        """{room: set of user ids} from the live records."""
        now = time.monotonic()
        found = {}
        with self.lock:
            for room_id in room_ids:
                records = self.rooms.get(room_id, {})
                for process_id, (users, expires_at) in list(records.items()):
                    if expires_at <= now:
                        del records[process_id]
                    else:
                        found.setdefault(room_id, set()).update(users)
        return {room_id: found.get(room_id, set()) for room_id in room_ids}

    def clear(self):
        with self.lock:
            self.rooms.clear()


MEMORY = MemoryRecords()


def record_keys(room_ids, processes):
    """The record of every (room, process) listed, in order: one MGET reads them all."""
    return [
        record_key(room_id, process_id)
        for room_id, ids in zip(room_ids, processes, strict=True)
        for process_id in ids
    ]


def users_in_records(room_ids, processes, values):
    """({room id: set of user ids}, [(room id, process id) whose record expired]) from
    the values of `record_keys(room_ids, processes)`: shared by the sync and async reads."""
    values = iter(values)
    found, gone = {}, []
    for room_id, ids in zip(room_ids, processes, strict=True):
        users = found[room_id] = set()
        for process_id in ids:
            value = next(values)
            if value is None:
                gone.append((room_id, process_id))  # its process stopped renewing
            else:
                users |= decode_users(value)
    return found, gone


@functools.cache
def _client(url):
    # The first server of REDIS_URL keeps every room's records (chat/caching.py), so one
    # round trip reads them all, whatever the number of shards.
    return first_server(url).client(socket_timeout=5, socket_connect_timeout=2)


def present_user_ids(room_ids):
    """{room id: set of user ids with the room open}, for all rooms at once.

    With Redis: two round trips whatever the number of rooms (the process sets, then
    every record), and one more to forget processes whose record expired.
    """
    room_ids = list(room_ids)
    if not room_ids:
        return {}
    if not settings.REDIS_URL:
        return MEMORY.users(room_ids)
    client = _client(settings.REDIS_URL)
    with client.pipeline(transaction=False) as pipe:
        for room_id in room_ids:
            pipe.smembers(processes_key(room_id))
        processes = [decode_ids(members) for members in pipe.execute()]
    keys = record_keys(room_ids, processes)
    found, gone = users_in_records(room_ids, processes, client.mget(keys) if keys else ())
    if gone:
        with client.pipeline(transaction=False) as pipe:
            for room_id, process_id in gone:
                pipe.srem(processes_key(room_id), process_id)
            pipe.execute()
    return found


# --- what pages show ---


def shown_people(user_ids):
    """The users of `user_ids` who show their presence, in the order the list shows them:
    one query."""
    people = people_by_id(user_ids).values()
    visible = [person for person in people if _shows_presence(person)]
    return sorted(visible, key=lambda person: (display_name(person).casefold(), person.pk))


def people_here(room_id, *, viewer=None):
    """The people with the room open now, as its page lists them.

    `viewer`: the person loading the live page, listed even before their socket opens
    (unless they hide their presence), so the list is right when the page appears.
    If the store cannot be read, the list is empty (the socket sends it when it opens).
    """
    try:
        user_ids = present_user_ids([room_id])[room_id]
    except redis.RedisError:
        logger.warning("could not read who is in room %s", room_id, exc_info=True)
        user_ids = set()
    if viewer is not None and viewer.is_authenticated:
        user_ids.add(viewer.pk)
    return shown_people(user_ids) if user_ids else []


def people_counts(room_ids):
    """{room id: how many people show as here}, for the lobby: one store read for all
    rooms, one query for who hides their presence."""
    room_ids = list(room_ids)
    try:
        present = present_user_ids(room_ids)
    except redis.RedisError:
        logger.warning("could not read who is in the rooms", exc_info=True)
        return {}
    everyone = set().union(*present.values()) if present else set()
    hidden = _hidden(everyone) if everyone else set()
    return {room_id: len(users - hidden) for room_id, users in present.items()}


def _shows_presence(user):
    try:
        return user.profile.show_presence
    except Profile.DoesNotExist:  # never opened their settings: shown
        return True


def _hidden(user_ids):
    return set(
        Profile.objects.filter(user_id__in=user_ids, show_presence=False).values_list(
            "user_id", flat=True
        )
    )
