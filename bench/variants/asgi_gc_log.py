"""Diagnostics: the project's ASGI application, logging every garbage collection over 2 ms.

Each line on the server's stderr (the bench keeps it in /tmp/chat-bench-<system>.<n>-<port>.log):
`<time> gc gen<N> <ms> ms collected <objects>`. How project/asgi.py's collector settings were chosen.
`--systems project-exp --exp-asgi bench.variants.asgi_gc_log:application`; with
`--exp-env GC_THRESHOLD=5000,10,10` it also replaces project/asgi.py's thresholds.
"""

import gc
import os
import sys
import time

from project.asgi import application

_started = []


def _log_slow_collections(phase, info):
    if phase == "start":
        _started.append(time.perf_counter())
        return
    took_ms = (time.perf_counter() - _started.pop()) * 1000
    if took_ms > 2:
        print(
            f"{time.strftime('%H:%M:%S')} gc gen{info['generation']} {took_ms:.1f} ms "
            f"collected {info['collected']}",
            file=sys.stderr,
        )


gc.callbacks.append(_log_slow_collections)
if os.environ.get("GC_THRESHOLD"):
    gc.set_threshold(*(int(part) for part in os.environ["GC_THRESHOLD"].split(",")))

__all__ = ["application"]
