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

The mixed workload (`Posters(mix=...)`, the `project-mix` system) also reacts to and edits
messages posted earlier. An edit's new text carries a marker as a post does; a reaction
carries none, so in the mix every delivery is counted by the event number that ends it
(`<input id="last-seq" value="...">`): each receiver stamps each number's arrival, checks
that numbers only grow (in order) and come once, and `MixLedger`, fed by one posting
socket, learns which number each operation got, so arrivals are matched to send times.
"""

import asyncio
import contextlib
import dataclasses
import json
import multiprocessing
import os
import random
import re
import resource
import threading
import time
import uuid
from array import array
from collections import deque
from dataclasses import dataclass, field

from websockets.asyncio.client import connect

try:
    import uvloop
except ImportError:  # the bench still runs, with a slower load generator
    uvloop = None

MARK = re.compile(r"bm(\d+)-(\d+)-(\d+)e")
SEQ = re.compile(r'data-seq="(\d+)"')
COMPOSER_ERROR = 'class="composer-error"'
# Frames of presence and typing (templates/chat/events/people.html, typing.html) start so.
PEOPLE, TYPING = '<ul id="people"', '<p id="typing"'
CONNECT_CONCURRENCY = 32  # handshakes in flight per worker process

# --- the mixed workload (project only) ---
# What ends every event of the room's stream (templates/chat/events/_position.html).
LAST_SEQ = re.compile(r'id="last-seq" name="last_seq" value="(\d+)"')
EVENT_END = re.compile(r'<input type="hidden" id="last-seq" name="last_seq" value="(\d+)"[^>]*>')
MESSAGE_ID = re.compile(r'id="message-(\d+)"')
REACTIONS_ID = re.compile(r'id="message-(\d+)-reactions"')
# The reader's own reactions are the emoji with a "reaction-on" button (only the bench user
# reacts, so a count > 0 means the bench user's reaction is on).
REACTED = re.compile(r'class="reaction-on"[^>]*? value="\d+ (\S+) off"')
# An answer to the sender saying an operation was refused: the composer's error, the edit
# form's error, or a non-empty #notice (reactions and deletes).
SENDER_ERROR = re.compile(r'class="(?:composer|field)-error"|id="notice"[^>]*>\s*[^<\s]')
REACTION_EMOJI = ("👍", "❤️", "😂", "🎉", "😮", "🙏")  # chat/actions/reactions.py's set
POST, REACTION, EDIT = 0, 1, 2
KIND_NAMES = ("post", "reaction", "edit")
TARGET_POOL = 200  # reactions and edits go to the newest this many messages seen posted


def now_us():
    return time.monotonic_ns() // 1000  # CLOCK_MONOTONIC: one clock for every process


def message_text(step, number, sent_us=None):
    sent_us = now_us() if sent_us is None else sent_us
    return f"bm{step}-{number}-{sent_us}e Hello room, this is benchmark message {number}."


def edit_text(step, number, sent_us):
    return f"bm{step}-{number}-{sent_us}e Hello room, this is benchmark message, edited."


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
    count_events: bool = False  # mixed workload: count deliveries by event number
    last_seq: int = 0  # what the page has shown: ?after= and the catch-up frame

    def opened_at(self, seq):
        """The same socket, for a page rendered when the room was at `seq` (churn)."""
        url = re.sub(r"after=\d+", f"after={seq}", self.url)
        return dataclasses.replace(self, url=url, last_seq=seq)

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
            return [
                json.dumps(
                    {"last_seq": str(self.last_seq), "HEADERS": self._htmx_headers("catch-up")}
                )
            ]
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

    def react_frame(self, pk, emoji, on):
        # A reaction button of the page's one #message-actions form (name "react").
        state = "on" if on else "off"
        return json.dumps(
            {"react": f"{pk} {emoji} {state}", "HEADERS": self._htmx_headers("message-actions")},
            ensure_ascii=False,
        )

    def typing_frame(self):
        # The page's hidden #typing-signal form: no draft text, at most one per 2 s.
        return json.dumps({"typing": "1", "HEADERS": self._htmx_headers("typing-signal")})

    def edit_frame(self, pk, text):
        # The message's edit form (#edit-form-<pk>): its hidden "edit" field and the text.
        return json.dumps(
            {"edit": str(pk), "message": text, "HEADERS": self._htmx_headers(f"edit-form-{pk}")}
        )


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
        self.arrivals = {}  # mixed workload: event number -> arrival stamps (µs), all sockets
        self.latest_seq = 0  # the highest data-seq any socket here has seen (churn opens there)
        self.ephemeral = dict.fromkeys(("people", "people_bytes", "typing", "typing_bytes"), 0)

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
            if target.count_events:
                task = asyncio.create_task(self._read_events(ws))
            else:
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
                head = frame[:80]  # "People here" or "... is typing" (not counted as messages)
                kind = "people" if PEOPLE in head else "typing" if TYPING in head else None
                if kind:
                    self.ephemeral[kind] += 1
                    self.ephemeral[f"{kind}_bytes"] += len(frame)
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
                    self.latest_seq = max(self.latest_seq, last_seq)
        except Exception:  # a dropped connection: counted below through its close code
            self.closed["error"] = self.closed.get("error", 0) + 1
        if ws.close_code is not None and ws.close_code not in (1000, 1001):
            self.closed[ws.close_code] = self.closed.get(ws.close_code, 0) + 1

    async def _read_events(self, ws):
        """Mixed workload: every event once, in order, stamped by its number.

        An edit re-sends a message with its old data-seq, and a reaction carries no text,
        so neither data-seq nor markers can count them; the number each event ends with
        can. A socket that sees a number twice counts a duplicate; one lower than the
        highest it has seen counts as out of order.
        """
        seen = bytearray(4096)
        last_seq = 0
        arrivals = self.arrivals
        try:
            async for frame in ws:
                arrived = now_us()
                if not isinstance(frame, str) or "last-seq" not in frame:
                    continue
                for match in LAST_SEQ.finditer(frame):
                    seq = int(match[1])
                    if seq >= len(seen):
                        seen.extend(bytes(seq + 4096 - len(seen)))
                    elif seen[seq]:
                        self.duplicates += 1
                        continue
                    seen[seq] = 1
                    if seq < last_seq:
                        self.disorder += 1
                    else:
                        last_seq = seq
                    stamps = arrivals.get(seq)
                    if stamps is None:
                        stamps = arrivals[seq] = array("q")
                    stamps.append(arrived)
        except Exception:
            self.closed["error"] = self.closed.get("error", 0) + 1
        if ws.close_code is not None and ws.close_code not in (1000, 1001):
            self.closed[ws.close_code] = self.closed.get(ws.close_code, 0) + 1

    async def count(self, step):
        stats = self.steps.get(step)
        return len(stats.latencies_ms) if stats else 0

    async def count_events(self, seqs):
        arrivals = self.arrivals
        return sum(len(arrivals.get(seq, ())) for seq in seqs)

    async def collect_events(self, sent):
        """Latencies of the events `sent` names ({seq: (send µs, kind)}), by kind.

        Stamps of those events are dropped once collected, and so are those of any
        older number (the catch-up of earlier history, warm-up traffic).
        """
        by_kind = [array("d") for _ in KIND_NAMES]
        first = last = 0
        for seq, (sent_us, kind) in sent.items():
            stamps = self.arrivals.pop(seq, None)
            if not stamps:
                continue
            latencies = by_kind[kind]
            for arrived in stamps:
                latencies.append((arrived - sent_us) / 1000.0)
            low, high = min(stamps), max(stamps)
            first = low if not first else min(first, low)
            last = max(last, high)
        top = max(sent, default=0)
        for seq in [seq for seq in self.arrivals if seq <= top]:
            del self.arrivals[seq]
        return {
            "by_kind": [latencies.tobytes() for latencies in by_kind],
            "first_us": first,
            "last_us": last,
            "duplicates": self.duplicates,
            "disorder": self.disorder,
            "closed": dict(self.closed),
            "open": sum(1 for group in self.groups.values() for ws, _ in group),
        }

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

    # --- people: typing and churn (bench/people.py) ---

    async def typing_start(self, tag, frame, interval):
        """Every socket of `tag` sends `frame` every `interval` s, staggered, until stopped."""
        sockets = [ws for ws, _ in self.groups.get(tag, [])]
        self.typing_sent = getattr(self, "typing_sent", 0)

        async def one(index, ws):
            await asyncio.sleep(interval * index / max(len(sockets), 1))
            start = time.monotonic()
            beat = 0
            while True:
                with contextlib.suppress(Exception):
                    await ws.send(frame)
                    self.typing_sent += 1
                beat += 1
                await asyncio.sleep(max(0.0, start + beat * interval - time.monotonic()))

        self.typists = [asyncio.create_task(one(i, ws)) for i, ws in enumerate(sockets)]
        return len(sockets)

    async def typing_stop(self):
        for task in getattr(self, "typists", []):
            task.cancel()
        self.typists = []
        return getattr(self, "typing_sent", 0)

    async def churn(self, targets, indexes, rate, duration, hold, compression):
        """Open a socket every 1/rate s for `duration` s (socket i as targets[indexes[i]]),
        each held `hold` s, then closed. Its frames are read and dropped: churn sockets
        are not counted as receivers. Returns what happened."""
        interval = 1.0 / rate
        start = time.monotonic()
        opened = failed = closed = 0
        open_ms = array("d")
        errors = []

        async def one(number):
            nonlocal opened, failed, closed
            # A page just loaded: it shows the room as it is, and catches up from there.
            target = targets[indexes[number % len(indexes)] % len(targets)]
            target = target.opened_at(self.latest_seq)
            began = time.monotonic()
            try:
                ws = await open_socket(target, compression=compression)
            except Exception as error:
                failed += 1
                errors.append(f"{type(error).__name__}: {error}"[:200])
                return
            open_ms.append((time.monotonic() - began) * 1000)
            opened += 1

            async def drop():
                with contextlib.suppress(Exception):
                    async for _ in ws:
                        pass

            reader = asyncio.create_task(drop())
            await asyncio.sleep(hold)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 10)
                closed += 1
            reader.cancel()

        tasks = []
        number = 0
        while number * interval < duration:
            delay = start + number * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(number)))
            number += 1
        await asyncio.gather(*tasks)
        ordered = sorted(open_ms)
        return {
            "started": number,
            "opened": opened,
            "failed": failed,
            "closed": closed,
            "errors": errors[:3],
            "elapsed_s": time.monotonic() - start,
            "open_ms": list(ordered),
        }

    async def ephemeral_counts(self):
        """Frames of #people and #typing received since the last call (then reset)."""
        counts = dict(self.ephemeral)
        self.ephemeral = dict.fromkeys(counts, 0)
        return counts

    async def churn_start(self, *args):
        self.churning = asyncio.create_task(self.churn(*args))
        return True

    async def churn_result(self):
        return await self.churning

    async def reset(self):
        self.steps.clear()
        self.arrivals.clear()
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
        self.lock = threading.Lock()
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
        with self.lock:  # one command at a time on the pipes (calls may come from 2 tasks)
            return self._call_locked(command, args_per_worker)

    def _call_locked(self, command, args_per_worker):
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

    async def count_events(self, seqs):
        return sum(await self.call("count_events", seqs))

    async def collect_events(self, sent):
        """Merged over the workers: latencies by kind (arrays of ms), and the checks."""
        results = await self.call("collect_events", sent)
        by_kind = [array("d") for _ in KIND_NAMES]
        for result in results:
            for latencies, raw in zip(by_kind, result["by_kind"], strict=True):
                latencies.frombytes(raw)
        latencies = array("d")
        for part in by_kind:
            latencies.extend(part)
        firsts = [r["first_us"] for r in results if r["first_us"]]
        closed = {}
        for result in results:
            for code, number in result["closed"].items():
                closed[code] = closed.get(code, 0) + number
        return {
            "latencies_ms": latencies,
            "by_kind": dict(zip(KIND_NAMES, by_kind, strict=True)),
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

    async def typing_start(self, tag, frame, interval):
        return sum(await self.call("typing_start", tag, frame, interval))

    async def typing_stop(self):
        return sum(await self.call("typing_stop"))

    async def ephemeral_counts(self):
        results = await self.call("ephemeral_counts")
        return {key: sum(r[key] for r in results) for key in results[0]}

    async def churn_start(self, targets, rate, duration, hold, compression):
        """Start opening `rate` sockets per second (each closed `hold` s later) over the
        workers, in the background; worker w uses targets w, w + size, ... (distinct
        people per worker). `churn_result` waits for the end and sums up."""
        size = len(self.connections)
        args = [
            (
                targets,
                list(range(w, len(targets), size)) or list(range(len(targets))),
                rate / size,
                duration,
                hold,
                compression,
            )
            for w in range(size)
        ]
        await asyncio.to_thread(self._call, "churn_start", args)

    async def churn_result(self):
        results = await self.call("churn_result")
        open_ms = sorted(ms for r in results for ms in r["open_ms"])
        return {
            "started": sum(r["started"] for r in results),
            "opened": sum(r["opened"] for r in results),
            "failed": sum(r["failed"] for r in results),
            "closed": sum(r["closed"] for r in results),
            "errors": [e for r in results for e in r["errors"]][:3],
            "elapsed_s": max(r["elapsed_s"] for r in results),
            "open_ms": open_ms,
        }

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
    """A few sockets that post into the room on a schedule; they are not counted as receivers.

    With `mix` (weights of posts, reactions and edits, e.g. (70, 20, 10)) the operations
    interleave by smooth weighted round-robin; reactions and edits go to messages posted
    earlier, which the first socket's `ledger` learns from the frames it receives. Every
    operation on one message goes through the same socket, so the server handles them in
    the order they were sent (a socket's frames are handled one after another).
    """

    def __init__(self, targets, count, compression, mix=None, seed=9):
        self.targets = targets
        self.count = count
        self.compression = compression
        self.sockets = []
        self.drains = []
        self.number = 0  # every operation gets the next number
        self.rejected = 0  # errors sent back (composer, edit form, notice)
        self.mix = MixSchedule(mix) if mix else None
        self.ledger = MixLedger() if mix else None
        self.random = random.Random(seed)

    async def open(self):
        for index in range(self.count):
            target = self.targets[index % len(self.targets)]
            ws = await open_socket(target, compression=self.compression)
            self.sockets.append((ws, target))
            observe = self.ledger is not None and index == 0
            self.drains.append(asyncio.create_task(self._drain(ws, observe=observe)))

    async def _drain(self, ws, *, observe=False):
        with contextlib.suppress(Exception):
            async for frame in ws:
                if not isinstance(frame, str):
                    continue
                if self.mix is None:
                    if COMPOSER_ERROR in frame:
                        self.rejected += 1
                    continue
                if "error" in frame or 'id="notice"' in frame:
                    self.rejected += len(SENDER_ERROR.findall(frame))
                if observe:
                    self.ledger.feed(frame)

    def _operation(self, step):
        """The next operation: (socket, frame text, Op)."""
        kind = self.mix.next() if self.mix else POST
        if kind != POST and not self.ledger.pool:
            kind = POST  # nothing posted yet to react to or edit
        self.number += 1
        sent_us = now_us()
        if kind == POST:
            ws, target = self.sockets[self.number % len(self.sockets)]
            text = message_text(step, self.number, sent_us)
            op = Op(self.number, step, POST, None, sent_us)
            return ws, target.post_frame(text), op
        pk = self.ledger.target(self.random)
        ws, target = self.sockets[pk % len(self.sockets)]
        if kind == EDIT:
            op = Op(self.number, step, EDIT, pk, sent_us)
            return ws, target.edit_frame(pk, edit_text(step, self.number, sent_us)), op
        emoji = self.random.choice(REACTION_EMOJI)
        on = self.ledger.flip(pk, emoji)
        op = Op(self.number, step, REACTION, pk, sent_us, emoji=emoji, on=on)
        return ws, target.react_frame(pk, emoji, on), op

    async def post(self, step, rate, duration):
        """Send `rate` operations per second for `duration` seconds; returns what was sent."""
        interval = 1.0 / rate
        start = time.monotonic()
        sent = 0
        first = last = 0
        kinds = [0] * len(KIND_NAMES)
        while sent * interval < duration:
            delay = start + sent * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.mix is None:
                self.number += 1
                ws, target = self.sockets[sent % len(self.sockets)]
                frame = target.post_frame(message_text(step, self.number))
            else:
                ws, frame, op = self._operation(step)
                self.ledger.sent(op)
                kinds[op.kind] += 1
            await ws.send(frame)
            last = now_us()
            first = first or last
            sent += 1
        result = {"sent": sent, "first_us": first, "last_us": last}
        if self.mix is not None:
            result["kinds"] = dict(zip(KIND_NAMES, kinds, strict=True))
        return result

    async def close(self):
        for ws, _ in self.sockets:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 10)
        for task in self.drains:
            task.cancel()
        self.sockets, self.drains = [], []


class MixSchedule:
    """Smooth weighted round-robin: (70, 20, 10) gives P P R P E P P R P P ... evenly."""

    def __init__(self, weights):
        self.weights = list(weights)
        self.total = sum(self.weights)
        self.current = [0] * len(self.weights)

    def next(self):
        for index, weight in enumerate(self.weights):
            self.current[index] += weight
        chosen = max(range(len(self.weights)), key=self.current.__getitem__)
        self.current[chosen] -= self.total
        return chosen


@dataclass
class Op:
    number: int
    step: int
    kind: int  # POST, REACTION or EDIT
    pk: int | None  # the message reacted to or edited
    sent_us: int
    emoji: str | None = None
    on: bool | None = None
    seq: int | None = None  # the event number it got, once seen


class MixLedger:
    """Which event number each operation got, learnt from one socket's frames.

    Each event of a frame ends with its number (`EVENT_END`); what comes before says what
    it is: a posted message (`<ol id="messages" ...>`, matched to its post by the marker
    in the text), an edited message (a top-level `<li id="message-N">`, matched by the
    marker in the new text), or a message's reactions (`<div ... id="message-N-reactions">`,
    matched by the one emoji that changed since the previous reactions event of N).
    Messages seen posted join the pool that reactions and edits pick from.
    """

    def __init__(self):
        self.ops = {}  # operation number -> Op, until its event is seen
        self.by_step = {}  # step -> [Op]
        self.pool = []  # pks of messages seen posted, oldest first
        self.wanted = {}  # (pk, emoji) -> on/off after the reactions sent so far
        self.shown = {}  # pk -> set of emoji on, as the last reactions event of pk showed
        self.pending = {}  # (pk, emoji, on) -> deque of reaction Ops not seen yet
        self.last_seq = 0
        self.unmatched = 0  # events that matched no operation of ours
        self.out_of_order = 0  # on the observing socket
        self.sizes = {name: [0, 0] for name in KIND_NAMES}  # kind -> [events, bytes]

    def target(self, rng):
        return rng.choice(self.pool[-TARGET_POOL:])

    def flip(self, pk, emoji):
        """The state a reaction sent now asks for: the opposite of the last one sent."""
        on = not self.wanted.get((pk, emoji), False)
        self.wanted[(pk, emoji)] = on
        return on

    def sent(self, op):
        self.by_step.setdefault(op.step, []).append(op)
        if op.kind == REACTION:
            self.pending.setdefault((op.pk, op.emoji, op.on), deque()).append(op)
        else:
            self.ops[op.number] = op

    def feed(self, frame):
        start = 0
        for end in EVENT_END.finditer(frame):
            seq = int(end[1])
            segment = frame[start : end.start()].lstrip()
            start = end.end()
            if seq <= self.last_seq:
                self.out_of_order += 1
            self.last_seq = max(self.last_seq, seq)
            op, kind = self._match(segment)
            if kind is not None:
                self.sizes[KIND_NAMES[kind]][0] += 1
                self.sizes[KIND_NAMES[kind]][1] += len(segment) + end.end() - end.start()
            if op is None:
                self.unmatched += 1
            elif op.seq is None:
                op.seq = seq

    def _match(self, segment):
        head = segment[:200]
        if head.startswith('<ol id="messages"'):
            pk = MESSAGE_ID.search(segment)
            if pk:
                self.pool.append(int(pk[1]))
                self.shown[int(pk[1])] = set()
            marker = MARK.search(segment)
            return (self.ops.pop(int(marker[2]), None) if marker else None), POST
        reactions = REACTIONS_ID.search(head) if head.startswith("<div") else None
        if reactions:
            return self._reaction(int(reactions[1]), segment), REACTION
        if head.startswith("<li") and 'hx-swap-oob="delete"' not in head[:120]:
            marker = MARK.search(segment)
            return (self.ops.pop(int(marker[2]), None) if marker else None), EDIT
        return None, None

    def _reaction(self, pk, segment):
        now = set(REACTED.findall(segment))
        before = self.shown.get(pk, set())
        self.shown[pk] = now
        changed = [(emoji, True) for emoji in now - before]
        changed += [(emoji, False) for emoji in before - now]
        if len(changed) == 1:
            queue = self.pending.get((pk, *changed[0]))
            if queue:
                return queue.popleft()
        # Not one change away from the last event seen (it should be): the oldest
        # reaction sent to this message.
        oldest = None
        for (key_pk, _, _), queue in self.pending.items():
            if key_pk == pk and queue and (oldest is None or queue[0].number < oldest[0].number):
                oldest = queue
        return oldest.popleft() if oldest else None

    def step_seqs(self, step):
        return [op.seq for op in self.by_step.get(step, ()) if op.seq is not None]

    def step_sent(self, step):
        """{seq: (send µs, kind)} for the operations of `step` whose event was seen."""
        return {
            op.seq: (op.sent_us, op.kind) for op in self.by_step.get(step, ()) if op.seq is not None
        }

    def unseen(self, step):
        return sum(1 for op in self.by_step.get(step, ()) if op.seq is None)

    def forget(self, step):
        for op in self.by_step.pop(step, ()):
            self.ops.pop(op.number, None)

    def event_sizes(self):
        return {name: round(total / count) for name, (count, total) in self.sizes.items() if count}


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
