"""The project's settings, with every database query of the process counted (bench only).

For `bench/storm.py`: the same Procfile command with DJANGO_SETTINGS_MODULE pointed here.
Each database connection the process opens (one per thread of the database pool) gets an
`execute_wrapper` that counts its queries by the first table they name (`FROM`, `INTO`,
`UPDATE`, `JOIN` of the statement) and by a normalised statement (numbers and quoted
literals replaced), and by where it comes from (the outermost and innermost function of
`chat/` or `channels/` on the stack). `kill -USR2 <pid>` writes the counts so far as JSON to
`$CHAT_QUERY_COUNT_FILE` (default `$TMPDIR/chat-query-count-<pid>.json`); the file is
replaced atomically, so a reader sees one whole snapshot.
"""

import collections
import json
import os
import re
import signal
import sys
import tempfile
import threading

from django.db.backends.signals import connection_created

from project.settings import *  # noqa: F403

_TABLE = re.compile(r'\b(?:FROM|INTO|UPDATE|JOIN)\s+"?([A-Za-z_][A-Za-z0-9_]*)"?', re.IGNORECASE)
_LITERALS = re.compile(r"'(?:[^']|'')*'|\b\d+\b")
_lock = threading.Lock()
_tables = collections.Counter()  # first table named -> queries
_statements = collections.Counter()  # normalised SQL (first 200 chars) -> queries
_sites = collections.Counter()  # "entry function > innermost project function" -> queries
_total = [0]
_PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_CODE = (os.path.join(_PROJECT, "chat") + os.sep, os.sep + "channels" + os.sep)


def _site():
    """Where a query comes from: the outermost project (chat/) or channels function on the
    thread's stack (what database_sync_to_async ran) and the innermost one."""
    names = []
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        for prefix in _CODE:
            at = filename.find(prefix)
            if at >= 0:
                package = prefix.strip(os.sep).rsplit(os.sep, 1)[-1]
                short = f"{package}/{filename[at + len(prefix) :].removesuffix('.py')}"
                if short != "channels/db":  # database_sync_to_async's thread handler
                    names.append(f"{short}:{frame.f_code.co_name}")
                break
        frame = frame.f_back
    if not names:
        return "?"
    return names[-1] if len(names) == 1 else f"{names[-1]} > {names[0]}"


def _count(execute, sql, params, many, context):
    text = sql if isinstance(sql, str) else str(sql)
    found = _TABLE.search(text)
    flat = _LITERALS.sub("?", " ".join(text.split()))
    key = flat if len(flat) <= 300 else f"{flat[:100]} ... {flat[-200:]}"
    site = _site()
    with _lock:
        _sites[site] += 1
        _total[0] += 1
        _tables[found.group(1) if found else text.split(None, 1)[0].upper()] += 1
        _statements[key] += 1
    return execute(sql, params, many, context)


def _wrap(sender, connection, **kwargs):
    if _count not in connection.execute_wrappers:
        connection.execute_wrappers.append(_count)


def _path():
    default = os.path.join(tempfile.gettempdir(), f"chat-query-count-{os.getpid()}.json")
    return os.environ.get("CHAT_QUERY_COUNT_FILE") or default


def _write(signum=None, frame=None):
    with _lock:
        snapshot = {
            "pid": os.getpid(),
            "total": _total[0],
            "tables": dict(_tables),
            "statements": dict(_statements),
            "sites": dict(_sites),
        }
    path = _path()
    temporary = f"{path}.tmp"
    with open(temporary, "w") as file:
        json.dump(snapshot, file)
    os.replace(temporary, path)


connection_created.connect(_wrap, weak=False)
signal.signal(signal.SIGUSR2, _write)

# Experiment only (`bench/storm.py --ws-max-message BYTES`): daphne caps every WebSocket
# message, sent or received, at 1 MiB (`Server.websocket_max_message_size`, autobahn's
# maxMessagePayloadSize) and its command line has no option for it. With
# CHAT_BENCH_WS_MAX_MESSAGE set (0: no limit) the factory gets that limit instead.
if os.environ.get("CHAT_BENCH_WS_MAX_MESSAGE"):
    from daphne.ws_protocol import WebSocketFactory

    _limit = int(os.environ["CHAT_BENCH_WS_MAX_MESSAGE"])
    _set_options = WebSocketFactory.setProtocolOptions

    def _set_options_with_limit(self, *args, **options):
        if "maxMessagePayloadSize" in options:
            options["maxMessagePayloadSize"] = _limit
            options["maxFramePayloadSize"] = _limit
        return _set_options(self, *args, **options)

    WebSocketFactory.setProtocolOptions = _set_options_with_limit
