"""The load generator: many WebSocket clients in one room, posting and timing every delivery.

asyncio + `websockets` (uvloop when installed). Receiving sockets live in a few worker
processes (multiprocessing), so reading frames does not compete with the posting
clock in one event loop, and the 2 cores of a small machine are both used. The
coordinator (bench/run.py) posts from a handful of extra sockets in its own process.

Every posted text carries its step, a unique number and its send time:
`bm<step>-<number>-<monotonic microseconds>e ...`. Each receiver stamps each arrival with
the same system-wide monotonic clock, keeps one bit per number to count duplicates, and
for the project checks that `data-seq` only ever grows on a socket (in order, once).

Sockets connect the way a browser does: the page's Origin, the session cookie, and an
offer of permessage-deflate (websockets' default `compression="deflate"`); what the
server accepted is reported. Project sockets send the page's catch-up frame on open.
"""

import asyncio
import contextlib
import json
import multiprocessing
import os
import re
import resource
import time
import uuid
from array import array
from dataclasses import dataclass, field

from websockets.asyncio.client import connect

try:
    import uvloop
except ImportError:  # the bench still runs, with a slower load generator
    uvloop = None

MARK = re.compile(r"bm(\d+)-(\d+)-(\d+)e")
SEQ = re.compile(r'data-seq="(\d+)"')
COMPOSER_ERROR = 'class="composer-error"'
CONNECT_CONCURRENCY = 32  # handshakes in flight per worker process


def now_us():
    return time.monotonic_ns() // 1000  # CLOCK_MONOTONIC: one clock for every process


def message_text(step, number):
    return f"bm{step}-{number}-{now_us()}e Hello room, this is benchmark message {number}."


def raise_open_files_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = hard if hard != resource.RLIM_INFINITY else 65536
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def run_loop(coroutine):
    if uvloop is not None:
        return uvloop.run(coroutine)
    return asyncio.run(coroutine)


@dataclass(frozen=True)
class Target:
    """Where a socket connects and how it talks: `kind` "project" (htmx forms) or "json"."""

    url: str
    origin: str
    headers: tuple = ()
    kind: str = "json"
    page_url: str = ""

    def _htmx_headers(self, form_id):
        # What the htmx ws extension adds to every form it sends.
        return {
            "HX-Request": "true",
            "HX-Trigger": form_id,
            "HX-Trigger-Name": None,
            "HX-Target": form_id,
            "HX-Current-URL": self.page_url,
        }

    def opening_frames(self):
        if self.kind == "project":  # the page's hidden #catch-up form, sent on htmx:wsOpen
            return [json.dumps({"last_seq": "0", "HEADERS": self._htmx_headers("catch-up")})]
        return []

    def post_frame(self, text):
        if self.kind == "project":  # the composer form: message + a fresh client_key
            return json.dumps(
                {
                    "message": text,
                    "client_key": str(uuid.uuid4()),
                    "HEADERS": self._htmx_headers("composer"),
                }
            )
        return json.dumps({"message": text})  # the tutorial's frame


async def open_socket(target, *, compression):
    ws = await connect(
        target.url,
        origin=target.origin,
        additional_headers=list(target.headers),
        compression=compression,
        open_timeout=120,
        ping_interval=None,  # browsers do not ping; they answer the server's pings
        max_size=None,
        max_queue=None,  # a browser reads every frame as it comes
        close_timeout=5,
        proxy=None,
    )
    for frame in target.opening_frames():
        await ws.send(frame)
    return ws


def negotiated(ws):
    names = [extension.name for extension in ws.protocol.extensions]
    return ",".join(names) or "none"


# --- the receiving side, in worker processes ---


@dataclass
class StepStats:
    latencies_ms: array = field(default_factory=lambda: array("d"))
    first_us: int = 0
    last_us: int = 0


class Receivers:
    """The sockets of one worker process and what they saw."""

    def __init__(self):
        self.groups = {}  # tag -> [(ws, reader task)]
        self.steps = {}  # step -> StepStats
        self.duplicates = 0
        self.disorder = 0
        self.closed = {}  # close code -> count, for sockets the server closed

    async def connect(self, tag, targets, indexes, compression):
        semaphore = asyncio.Semaphore(CONNECT_CONCURRENCY)
        failures = []
        extensions = set()

        async def one(index):
            target = targets[index % len(targets)]
            async with semaphore:
                try:
                    ws = await open_socket(target, compression=compression)
                except Exception as error:
                    failures.append(f"{type(error).__name__}: {error}"[:200])
                    return None
            extensions.add(negotiated(ws))
            task = asyncio.create_task(self._read(ws, check_seq=target.kind == "project"))
            return ws, task

        opened = [item for item in await asyncio.gather(*map(one, indexes)) if item]
        self.groups.setdefault(tag, []).extend(opened)
        return {
            "opened": len(opened),
            "failed": len(failures),
            "errors": failures[:3],
            "extensions": sorted(extensions),
        }

    async def _read(self, ws, *, check_seq):
        seen = bytearray(4096)  # one byte per message number: delivered here already?
        last_seq = 0
        steps = self.steps
        try:
            async for frame in ws:
                arrived = now_us()
                if not isinstance(frame, str):
                    continue
                for match in MARK.finditer(frame):
                    number = int(match[2])
                    if number >= len(seen):
                        seen.extend(bytes(number + 4096 - len(seen)))
                    elif seen[number]:
                        self.duplicates += 1
                        continue
                    seen[number] = 1
                    step = int(match[1])
                    stats = steps.get(step)
                    if stats is None:
                        stats = steps[step] = StepStats(first_us=arrived)
                    stats.latencies_ms.append((arrived - int(match[3])) / 1000.0)
                    stats.last_us = arrived
                if check_seq:
                    for match in SEQ.finditer(frame):
                        seq = int(match[1])
                        if seq <= last_seq:
                            self.disorder += 1
                        last_seq = max(seq, last_seq)
        except Exception:  # a dropped connection: counted below through its close code
            self.closed["error"] = self.closed.get("error", 0) + 1
        if ws.close_code is not None and ws.close_code not in (1000, 1001):
            self.closed[ws.close_code] = self.closed.get(ws.close_code, 0) + 1

    async def count(self, step):
        stats = self.steps.get(step)
        return len(stats.latencies_ms) if stats else 0

    async def collect(self, step):
        stats = self.steps.pop(step, None) or StepStats()
        return {
            "latencies_ms": stats.latencies_ms.tobytes(),
            "first_us": stats.first_us,
            "last_us": stats.last_us,
            "duplicates": self.duplicates,
            "disorder": self.disorder,
            "closed": dict(self.closed),
            "open": sum(1 for group in self.groups.values() for ws, _ in group),
        }

    async def close(self, tag):
        group = self.groups.pop(tag, [])
        # Closing thousands at once would flood a server with handshakes; a few at a time.
        semaphore = asyncio.Semaphore(64)

        async def one(ws, task):
            async with semaphore:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 10)
            task.cancel()

        await asyncio.gather(*(one(ws, task) for ws, task in group))
        return len(group)

    async def reset(self):
        self.steps.clear()
        self.duplicates = self.disorder = 0
        self.closed.clear()
        return True


def worker_main(connection):
    raise_open_files_limit()
    run_loop(_serve(connection))


async def _serve(connection):
    loop = asyncio.get_running_loop()
    receivers = Receivers()
    while True:
        command, args = await loop.run_in_executor(None, connection.recv)
        if command == "stop":
            for tag in list(receivers.groups):
                await receivers.close(tag)
            connection.send(("ok", None))
            return
        try:
            result = await getattr(receivers, command)(*args)
        except Exception as error:
            connection.send(("error", f"{type(error).__name__}: {error}"))
        else:
            connection.send(("ok", result))


class WorkerPool:
    """Receiving processes, driven from the coordinator by commands over pipes."""

    def __init__(self, size):
        context = multiprocessing.get_context("spawn")
        self.connections = []
        self.processes = []
        for _ in range(size):
            parent, child = context.Pipe()
            process = context.Process(target=worker_main, args=(child,), daemon=True)
            process.start()
            self.connections.append(parent)
            self.processes.append(process)

    @property
    def pids(self):
        return [process.pid for process in self.processes]

    def _call(self, command, args_per_worker):
        for connection, args in zip(self.connections, args_per_worker, strict=True):
            connection.send((command, args))
        results = []
        for connection in self.connections:
            status, result = connection.recv()
            if status != "ok":
                raise RuntimeError(f"load generator worker: {result}")
            results.append(result)
        return results

    async def call(self, command, *args):
        return await asyncio.to_thread(self._call, command, [args] * len(self.connections))

    async def connect(self, tag, targets, count, compression):
        """Open `count` sockets, socket i to targets[i % len(targets)], spread over workers."""
        size = len(self.connections)
        args = [(tag, targets, list(range(w, count, size)), compression) for w in range(size)]
        results = await asyncio.to_thread(self._call, "connect", args)
        return {
            "opened": sum(r["opened"] for r in results),
            "failed": sum(r["failed"] for r in results),
            "errors": [e for r in results for e in r["errors"]][:3],
            "extensions": sorted({e for r in results for e in r["extensions"]}),
        }

    async def count(self, step):
        return sum(await self.call("count", step))

    async def collect(self, step):
        results = await self.call("collect", step)
        latencies = array("d")
        for result in results:
            latencies.frombytes(result["latencies_ms"])
        firsts = [r["first_us"] for r in results if r["first_us"]]
        closed = {}
        for result in results:
            for code, number in result["closed"].items():
                closed[code] = closed.get(code, 0) + number
        return {
            "latencies_ms": latencies,
            "first_us": min(firsts) if firsts else 0,
            "last_us": max(r["last_us"] for r in results),
            "duplicates": sum(r["duplicates"] for r in results),
            "disorder": sum(r["disorder"] for r in results),
            "closed": closed,
            "open": sum(r["open"] for r in results),
        }

    async def close(self, tag):
        return sum(await self.call("close", tag))

    async def reset(self):
        await self.call("reset")

    def stop(self):
        for connection in self.connections:
            with contextlib.suppress(Exception):
                connection.send(("stop", ()))
        for connection, process in zip(self.connections, self.processes, strict=True):
            with contextlib.suppress(Exception):
                if connection.poll(30):
                    connection.recv()
            process.join(10)
            if process.is_alive():
                process.kill()


# --- the posting side, in the coordinator ---


class Posters:
    """A few sockets that post into the room on a schedule; they are not counted as receivers."""

    def __init__(self, targets, count, compression):
        self.targets = targets
        self.count = count
        self.compression = compression
        self.sockets = []
        self.drains = []
        self.number = 0  # every posted message gets the next number
        self.rejected = 0  # composer errors sent back (rate limit, validation)

    async def open(self):
        for index in range(self.count):
            target = self.targets[index % len(self.targets)]
            ws = await open_socket(target, compression=self.compression)
            self.sockets.append((ws, target))
            self.drains.append(asyncio.create_task(self._drain(ws)))

    async def _drain(self, ws):
        with contextlib.suppress(Exception):
            async for frame in ws:
                if isinstance(frame, str) and COMPOSER_ERROR in frame:
                    self.rejected += 1

    async def post(self, step, rate, duration):
        """Post `rate` messages per second for `duration` seconds; returns what was sent."""
        interval = 1.0 / rate
        start = time.monotonic()
        sent = 0
        first = last = 0
        while sent * interval < duration:
            delay = start + sent * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.number += 1
            ws, target = self.sockets[sent % len(self.sockets)]
            text = message_text(step, self.number)
            await ws.send(target.post_frame(text))
            last = now_us()
            first = first or last
            sent += 1
        return {"sent": sent, "first_us": first, "last_us": last}

    async def close(self):
        for ws, _ in self.sockets:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 10)
        for task in self.drains:
            task.cancel()
        self.sockets, self.drains = [], []


def worker_pids_cpu_seconds(pids):
    """CPU seconds (user + system) used so far by these processes, all threads included."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def machine_busy_seconds():
    """CPU seconds all cores spent busy so far (from /proc/stat), whoever used them."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total
