"""Experiments: the project's ASGI application with tracemalloc, for memory per socket.

`kill -USR1 <pid>` writes a snapshot to $TMPDIR/bench-tracemalloc-<pid>-<n>.pickle; compare two
(no sockets, N idle sockets) with `snapshot.compare_to(other, "traceback")`.
"""

import itertools
import os
import signal
import tempfile
import tracemalloc

if not tracemalloc.is_tracing():
    tracemalloc.start(12)

if os.environ.get("DJANGO_SETTINGS_MODULE", "project.settings") == "project.settings":
    from project.asgi import application

_counter = itertools.count()


def _snapshot(signum, frame):
    path = os.path.join(
        tempfile.gettempdir(), f"bench-tracemalloc-{os.getpid()}-{next(_counter)}.pickle"
    )
    tracemalloc.take_snapshot().dump(path)


signal.signal(signal.SIGUSR1, _snapshot)

__all__ = ["application"]
