"""Reconnect storm (issue 13 item 1): every page of a web process comes back at once.

    .venv/bin/python bench/storm.py                          # 500 pages, one room
    .venv/bin/python bench/storm.py --pages 2000 --rooms 20  # 2,000 pages over 20 rooms

The project as `run.py` starts it (Procfile `web:` after `release:`, a private
redis-server, `CHAT_RATE_LIMIT_EXEMPT=bench`), on a fresh PostgreSQL database, as TWO web
processes: `web.1` serves the pages, `web.2` the posters (so posting goes on while web.1
is down, as behind a router). web.1 runs with `bench.variants.query_count_settings`
(the project's settings plus a query counter on every database connection).

1. `--pages` distinct people (bench/people_users.py; `--people one`: all the bench user)
   open a page each, spread over `--rooms` public rooms, on web.1: the socket URL the room
   page renders, `/ws/chat/<slug>/?after=<seq>&drawn=<t>` (`drawn` a minute ago), then
   the page's catch-up frame `{"last_seq": "<n>"}`.
2. web.1 gets SIGTERM (it drains: every socket closed with 1012) and exits; meanwhile
   the posters put `--backlog` (200) new events into every room through web.2.
3. web.1 is started again on the same port. As soon as it answers, every page reconnects
   at once as the htmx ws extension does after 1012: the same URL (the old `after=` and
   `drawn=`), then the catch-up frame with the last seq it shows. Posters keep posting
   `--live-rate` messages/s over the rooms (through web.2) from that moment on.
4. Reported: the time from "web.1 answers" until every page is current (shows the last
   seq its room had when the storm started), the queries web.1 ran meanwhile (by table
   and statement, read from the counter with SIGUSR2: before the storm, when every page
   is current, and at the end), and the latency of the live messages to pages that were
   already current when the message was sent (send -> arrival, CLOCK_MONOTONIC).

Writes bench/results/storm-<timestamp>.json. See bench/README.md, "Reconnect storm".
"""

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import json
import os
import random
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import loadgen  # noqa: E402
from bench.loadgen import Target, now_us, open_socket  # noqa: E402
from bench.loadgen import worker_pids_cpu_seconds as cpu_seconds  # noqa: E402
from bench.run import (  # noqa: E402
    RESULTS,
    ProjectSystem,
    code_version,
    machine,
    percentile,
    prioritise,
    redis_for_bench,
    redis_pid,
    summarise_profile,
)

SETTINGS = "bench.variants.query_count_settings"
RETRIED = frozenset({1006, 1011, 1012, 1013})  # what the htmx ws extension reconnects after
LAST_SEQ_MARK = 'id="last-seq" name="last_seq" value="'
DATA_SEQ = 'data-seq="'
MARKER = re.compile(r"bm(\d+)-(\d+)-(\d+)e")
LIVE_STEP = 2  # marker step of the live posts (1: backlog, 0: before)
DRAWN_AGO_S = (
    60  # the page was drawn this long before the storm: a reconnect, as the server sees it
)
# What a query is for, by the functions it comes from (the counter's "sites": the
# outermost chat/ or channels/ function on the stack > the innermost).
PURPOSES = (
    ("auth", ("channels/auth", "socket_auth", "backends:get_user")),
    ("connect", ("readable_room_and_membership",)),
    ("catch-up", ("_render_from_database", "events_after", "render_stored", "quoted_among")),
    ("presence", ("presence",)),
    ("person stream", ("hub/people", "unread", "my_rooms", "rooms_of", "people_counts")),
    ("read marks", ("reads",)),
)


def purpose_of(site):
    for purpose, needles in PURPOSES:
        if any(needle in site for needle in needles):
            return purpose
    return "other"


def last_int(text, mark, start=0):
    """The number after the last `mark` in `text` (None if there is none)."""
    at = text.rfind(mark, start)
    if at < 0:
        return None
    at += len(mark)
    end = text.index('"', at)
    return int(text[at:end])


def first_int(text, mark):
    at = text.find(mark)
    if at < 0:
        return None
    at += len(mark)
    return int(text[at : text.index('"', at)])


class Page:
    """One open room page: its socket, what it shows last, and when it became current."""

    def __init__(self, storm, room, target):
        self.storm = storm
        self.room = room
        self.target = target  # the first URL, kept for every reconnect (the extension does)
        self.last_seq = target.last_seq
        self.max_data_seq = target.last_seq
        self.duplicates = 0
        self.opens = 0
        self.closes = []
        self.failures = 0
        self.current_us = None  # when it showed its room's storm target
        self.reopened_us = None  # when its socket opened again in the storm
        self.catch_up_bytes = 0
        self.live = []  # (number, latency ms) of live messages sent after it was current

    async def run(self):
        storm = self.storm
        retries = 0
        while not storm.finished:
            target = dataclasses.replace(self.target, last_seq=self.last_seq)
            try:
                if storm.on:
                    ws = await open_socket(target, compression=None)
                else:  # before the storm the pages open a few at a time
                    async with storm.gate:
                        ws = await open_socket(target, compression=None)
            except Exception as error:  # refused, or the handshake timed out
                self.failures += 1
                storm.errors[type(error).__name__] = storm.errors.get(type(error).__name__, 0) + 1
                # The extension's retry delay: full jitter, up to 2^n s (hx-ws-2.js).
                await asyncio.sleep(storm.random.random() * 2 ** min(retries, 6))
                retries += 1
                continue
            retries = 0
            self.opens += 1
            if storm.on and self.reopened_us is None:
                self.reopened_us = now_us()
            code = None
            try:
                async for frame in ws:
                    if isinstance(frame, str):
                        self.frame(frame)
            except Exception:  # noqa: S110 - the close code is read below
                pass
            code = ws.close_code if ws.close_code is not None else 1006
            self.closes.append(code)
            if storm.finished or code not in RETRIED:
                return
            storm.closed_pages += 1
            await storm.server_up.wait()  # reconnect at once when the process answers again

    def frame(self, frame):
        seq = last_int(frame, LAST_SEQ_MARK)
        first = first_int(frame, DATA_SEQ)
        if first is not None:
            if first <= self.max_data_seq:
                self.duplicates += 1
            self.max_data_seq = max(self.max_data_seq, last_int(frame, DATA_SEQ))
        was_current = self.current_us is not None
        arrived = now_us()
        if seq is not None and seq > self.last_seq:
            self.last_seq = seq
        storm = self.storm
        if storm.on and not was_current:
            self.catch_up_bytes += len(frame)
            if self.last_seq >= storm.targets[self.room]:
                self.current_us = arrived
                storm.current += 1
                if storm.current == len(storm.pages):
                    storm.all_current.set()
        elif was_current and len(frame) < 100_000:
            for step, number, sent in MARKER.findall(frame):
                if int(step) == LIVE_STEP and int(sent) >= self.current_us:
                    self.live.append((int(number), (arrived - int(sent)) / 1000))


class Posters:
    """One socket per room on web.2, posting the composer's frame; each also reads its
    room's stream, so `seen[room]` is the room's last seq."""

    def __init__(self, targets):
        self.targets = targets  # {room: Target}
        self.sockets = {}
        self.seen = dict.fromkeys(targets, 0)
        self.tasks = []
        self.number = 0
        self.rejected = 0

    async def open(self):
        for room, target in self.targets.items():
            ws = await open_socket(target, compression=None)
            self.sockets[room] = ws
            self.tasks.append(asyncio.create_task(self._read(room, ws)))

    async def _read(self, room, ws):
        with contextlib.suppress(Exception):
            async for frame in ws:
                if not isinstance(frame, str):
                    continue
                if loadgen.COMPOSER_ERROR in frame:
                    self.rejected += 1
                seq = last_int(frame, LAST_SEQ_MARK)
                if seq is not None and seq > self.seen[room]:
                    self.seen[room] = seq

    async def post(self, step, per_room, rate, *, until=None):
        """`per_room` messages into every room (or, with `until`, until that event is set),
        round-robin over the rooms, `rate` messages/s in all, on an absolute schedule."""
        rooms = list(self.sockets)
        interval = 1.0 / rate
        start = time.monotonic()
        sent = 0
        while (until is None and sent < per_room * len(rooms)) or (
            until is not None and not until.is_set()
        ):
            delay = start + sent * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            room = rooms[sent % len(rooms)]
            self.number += 1
            text = loadgen.message_text(step, self.number)
            await self.sockets[room].send(self.targets[room].post_frame(text))
            sent += 1
        return sent

    async def wait_seen(self, wanted, timeout=60):
        deadline = time.monotonic() + timeout
        while any(self.seen[room] < seq for room, seq in wanted.items()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"posts not seen: wanted {wanted}, seen {self.seen}")
            await asyncio.sleep(0.05)

    async def close(self):
        for ws in self.sockets.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 5)
        for task in self.tasks:
            task.cancel()


class Storm:
    def __init__(self, args, say):
        self.args = args
        self.say = say
        self.pages = []
        self.on = False
        self.finished = False
        self.server_up = asyncio.Event()
        self.server_up.set()
        self.all_current = asyncio.Event()
        self.targets = {}
        self.current = 0
        self.closed_pages = 0
        self.errors = {}
        self.gate = asyncio.Semaphore(32)
        self.random = random.Random(13)

    async def run(self, system):
        args = self.args
        result = {}
        web, poster_web = system.webs
        session = system.session
        slugs = [session.open_room(f"storm {index} {os.getpid()}") for index in range(args.rooms)]
        headers = tuple(session.socket_headers().items())
        posters = Posters(
            {
                slug: Target(
                    url=f"{poster_web.ws_url}/ws/chat/{slug}/?after=0",
                    origin=poster_web.url,
                    headers=headers,
                    kind="project",
                    page_url=f"{poster_web.url}/chat/{slug}/",
                )
                for slug in slugs
            }
        )
        await posters.open()
        try:
            return await self._run(system, web, slugs, headers, posters, result)
        finally:
            self.finished = True
            self.server_up.set()
            await posters.close()

    async def _run(self, system, web, slugs, headers, posters, result):
        args, say = self.args, self.say
        # A little history first, so pages open on a room with something in it.
        await posters.post(0, 5, 200)
        await posters.wait_seen(dict.fromkeys(slugs, 5))
        if args.people == "distinct":
            from bench.people import create_people

            keys = create_people(system, {"storm": args.pages})["storm"]
            cookies = [(("Cookie", f"sessionid={key}"),) for key in keys]
        else:
            cookies = [headers] * args.pages
        drawn = int(time.time()) - DRAWN_AGO_S
        for index in range(args.pages):
            slug = slugs[index % len(slugs)]
            seq = posters.seen[slug]
            self.pages.append(
                Page(
                    self,
                    slug,
                    Target(
                        url=f"{web.ws_url}/ws/chat/{slug}/?after={seq}&drawn={drawn}",
                        origin=web.url,
                        headers=cookies[index],
                        kind="project",
                        page_url=f"{web.url}/chat/{slug}/",
                        last_seq=seq,
                    ),
                )
            )
        say(f"opening {args.pages} pages over {args.rooms} room(s) on {web.name}")
        tasks = []
        for start in range(0, len(self.pages), 50):  # pages opened over a few seconds
            tasks += [asyncio.create_task(page.run()) for page in self.pages[start : start + 50]]
            await asyncio.sleep(0.05)
        deadline = time.monotonic() + 120
        while sum(page.opens for page in self.pages) < len(self.pages):
            if time.monotonic() > deadline:
                raise RuntimeError(f"pages did not open: errors {self.errors}")
            await asyncio.sleep(0.1)
        await asyncio.sleep(args.settle)
        result["opened"] = {"pages": len(self.pages), "errors_before": dict(self.errors)}
        before = {slug: posters.seen[slug] for slug in slugs}

        # --- the restart ---
        self.server_up.clear()
        old_pid = web.process.pid
        term_us = now_us()
        say(f"SIGTERM to {web.name} (pid {old_pid})")
        await asyncio.to_thread(web.stop)
        exited_us = now_us()
        backlog_sent = await posters.post(1, args.backlog, args.backlog_rate)
        self.targets = {slug: before[slug] + args.backlog for slug in slugs}
        await posters.wait_seen(self.targets)
        closed = {}
        for page in self.pages:
            for code in page.closes:
                closed[code] = closed.get(code, 0) + 1
        say(
            f"{web.name} exited after {(exited_us - term_us) / 1e6:.2f} s; close codes "
            f"{closed}; {backlog_sent} events posted through web.2; starting {web.name} again"
        )
        log_offset = web.log_path.stat().st_size if web.log_path.exists() else 0
        start_us = now_us()
        await asyncio.to_thread(web.start, 60)
        pid = web.process.pid
        if args.nice:
            prioritise(pid, args.nice)
        ready_us = now_us()
        counts_path = Path(tempfile.gettempdir()) / f"chat-query-count-{pid}.json"
        counts_before = await read_counts(pid, counts_path)
        cpu_before = cpu_seconds([pid])
        loadgen_before = cpu_seconds([os.getpid()])
        profile = None
        if args.profile:
            profile = asyncio.create_task(record_profile(pid, args.profile))

        # --- the storm ---
        live_done = asyncio.Event()
        self.on = True
        t0 = now_us()
        self.server_up.set()
        live = asyncio.create_task(posters.post(LIVE_STEP, 0, args.live_rate, until=live_done))
        try:
            await asyncio.wait_for(self.all_current.wait(), args.timeout)
        except TimeoutError:
            say(f"not every page current after {args.timeout} s: {self.current}/{len(self.pages)}")
        all_current_us = now_us()
        cpu_current = cpu_seconds([pid])
        counts_current = await read_counts(pid, counts_path)
        remaining = args.live_seconds - (now_us() - t0) / 1e6
        if remaining > 0:
            await asyncio.sleep(remaining)
        live_done.set()
        live_sent = await live
        live_end = dict(posters.seen)
        await asyncio.sleep(2)  # the last live messages arrive
        cpu_end = cpu_seconds([pid])
        loadgen_end = cpu_seconds([os.getpid()])
        counts_end = await read_counts(pid, counts_path)
        self.finished = True
        if profile is not None:
            profile = await profile

        log = web.log_path.read_bytes()[log_offset:].decode(errors="replace")
        result["server_log"] = {
            "catch_up_failed": log.count("catch-up failed"),
            "payload_exceeded": log.count("PayloadExceededError:"),
            "errors": log.count(" ERROR "),
            "first_error": next(
                (line for line in log.splitlines() if "Error:" in line or " ERROR " in line), None
            ),
        }
        current = [page.current_us for page in self.pages if page.current_us]
        reopened = [page.reopened_us for page in self.pages if page.reopened_us]
        latencies = [ms for page in self.pages for _, ms in page.live]
        delivered_live = sum(1 for page in self.pages if page.last_seq >= live_end[page.room])
        storm_s = (all_current_us - t0) / 1e6
        result.update(
            {
                "rooms": len(slugs),
                "pages": len(self.pages),
                "backlog_per_room": args.backlog,
                "old_process_exit_s": round((exited_us - term_us) / 1e6, 2),
                "close_codes_at_restart": {str(code): n for code, n in sorted(closed.items())},
                "restart_s": round((ready_us - start_us) / 1e6, 2),
                "pages_current": len(current),
                # None unless every page became current within --timeout
                "time_to_all_current_s": round((max(current) - t0) / 1e6, 3)
                if len(current) == len(self.pages)
                else None,
                "time_to_last_current_s": _s(max(current) - t0) if current else None,
                "time_to_current_p50_s": _s(percentile([c - t0 for c in current], 0.5)),
                "time_to_current_p99_s": _s(percentile([c - t0 for c in current], 0.99)),
                "reopened_p50_s": _s(percentile([r - t0 for r in reopened], 0.5)),
                "reopened_max_s": _s(max(reopened) - t0) if reopened else None,
                "connect_errors_in_storm": dict(self.errors),
                "duplicates": sum(page.duplicates for page in self.pages),
                "catch_up_bytes_per_page": round(
                    sum(page.catch_up_bytes for page in self.pages) / len(self.pages)
                ),
                "server_cpu_s_until_current": round(cpu_current - cpu_before, 2),
                "server_cpu_pct_until_current": round(
                    100 * (cpu_current - cpu_before) / max(storm_s, 1e-3)
                ),
                "server_cpu_s_storm_window": round(cpu_end - cpu_before, 2),
                "loadgen_cpu_s_storm_window": round(loadgen_end - loadgen_before, 2),
                "live": {
                    "rate_per_s": args.live_rate,
                    "sent": live_sent,
                    "seconds": args.live_seconds,
                    "deliveries_measured": len(latencies),
                    "pages_measured": sum(1 for page in self.pages if page.live),
                    "p50_ms": _r(percentile(latencies, 0.5)),
                    "p99_ms": _r(percentile(latencies, 0.99)),
                    "max_ms": _r(max(latencies)) if latencies else None,
                    "pages_with_every_live_message": delivered_live,
                },
                "queries": {
                    "counter": SETTINGS,
                    "until_all_current": diff_counts(counts_before, counts_current),
                    "whole_window": diff_counts(counts_before, counts_end),
                },
                "profile": profile,
            }
        )
        for window in result["queries"].values():
            if isinstance(window, dict):
                window["per_room"] = round(window["total"] / len(slugs), 1)
                window["per_page"] = round(window["total"] / len(self.pages), 2)
        await asyncio.sleep(0)
        for task in tasks:
            task.cancel()
        return result


def _s(value):
    return round(value / 1e6, 3) if value is not None else None


def _r(value):
    return round(value, 1) if value is not None else None


async def read_counts(pid, path, timeout=10):
    """The counter's snapshot: SIGUSR2 to the process, then its file, once rewritten."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            return json.loads(path.read_text())
        await asyncio.sleep(0.02)
    raise RuntimeError(f"no query counts from pid {pid} in {path}")


def diff_counts(before, after):
    tables = {
        table: after["tables"].get(table, 0) - before["tables"].get(table, 0)
        for table in after["tables"]
    }
    statements = {
        sql: after["statements"].get(sql, 0) - before["statements"].get(sql, 0)
        for sql in after["statements"]
    }
    sites = {
        site: after["sites"].get(site, 0) - before["sites"].get(site, 0) for site in after["sites"]
    }
    by_purpose = {}
    for site, count in sites.items():
        if count:
            purpose = purpose_of(site)
            by_purpose[purpose] = by_purpose.get(purpose, 0) + count
    top = sorted(((n, sql) for sql, n in statements.items() if n), reverse=True)[:25]
    return {
        "total": after["total"] - before["total"],
        "by_purpose": by_purpose,
        "by_site": {site: n for site, n in sorted(sites.items(), key=lambda i: -i[1]) if n},
        "by_table": {table: n for table, n in sorted(tables.items(), key=lambda i: -i[1]) if n},
        "top_statements": [{"count": n, "sql": sql} for n, sql in top],
    }


async def record_profile(pid, seconds):
    import shutil

    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if not py_spy:
        return {"error": "py-spy not found"}
    out = RESULTS / f"profile-storm-{datetime.datetime.now(datetime.UTC):%Y%m%d-%H%M%S}.txt"
    process = await asyncio.create_subprocess_exec(
        py_spy, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "200",
        "--format", "raw", "--nonblocking", "--output", str(out),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, error = await process.communicate()
    if process.returncode or not out.exists():
        return {"error": error.decode(errors="replace")[-500:]}
    summary = summarise_profile(out)
    return {"file": str(out.relative_to(ROOT)), "seconds": seconds, **summary}


def goals(result):
    queries = result["queries"]["until_all_current"]
    checks = {
        "all current within 2 s": (result["time_to_all_current_s"], 2.0),
        "at most 5 queries per room": (queries["per_room"], 5),
        "live p99 at most 250 ms": (result["live"]["p99_ms"], 250),
    }
    return {
        name: {
            "value": value,
            "goal": goal,
            "met": value is not None
            and value <= goal
            and result["pages_current"] == result["pages"],
        }
        for name, (value, goal) in checks.items()
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=500)
    parser.add_argument("--rooms", type=int, default=1)
    parser.add_argument("--backlog", type=int, default=200, help="new events per room")
    parser.add_argument("--backlog-rate", type=float, default=300, help="posts/s, all rooms")
    parser.add_argument("--live-rate", type=float, default=60, help="posts/s during the storm")
    parser.add_argument("--live-seconds", type=float, default=8)
    parser.add_argument("--people", choices=("distinct", "one"), default="distinct")
    parser.add_argument("--settle", type=float, default=3, help="s after the pages open")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--profile", type=int, default=0, help="py-spy for S s from the storm")
    parser.add_argument(
        "--ws-max-message",
        type=int,
        help="experiment: daphne's WebSocket message limit in bytes (0: none; default 1 MiB)",
    )
    parser.add_argument("--redis-url")
    parser.add_argument("--nice", type=int, default=-10)
    parser.add_argument("--output")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.nice:
        prioritise(os.getpid(), args.nice)
    loadgen.raise_open_files_limit()
    redis_url, private_redis = redis_for_bench(args.redis_url)
    if private_redis and args.nice:
        prioritise(private_redis.process.pid, args.nice)
    started = datetime.datetime.now(datetime.UTC)
    report = {
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python bench/storm.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "code": code_version(),
        "machine": machine(),
        "config": {key: value for key, value in vars(args).items() if key != "redis_url"},
    }
    system = ProjectSystem(
        "storm",
        redis_url=redis_url,
        processes=2,
        settings_module=SETTINGS,
        database="postgres",
        env={"CHAT_BENCH_WS_MAX_MESSAGE": str(args.ws_max_message)}
        if args.ws_max_message is not None
        else None,
    )
    t0 = time.monotonic()

    def say(text):
        print(f"[storm +{time.monotonic() - t0:5.1f}s] {text}", flush=True)

    try:
        say("starting 2 web processes (PostgreSQL, private redis-server)")
        system.start()
        if args.nice:
            for pid in system.pids():
                prioritise(pid, args.nice)
        report["server"] = system.describe()
        report["logs"] = system.logs()
        report["redis_pid"] = redis_pid(redis_url)
        report["storm"] = loadgen.run_loop(Storm(args, say).run(system))
        report["goals"] = goals(report["storm"])
    finally:
        system.stop()
        if private_redis:
            private_redis.stop()
    report["elapsed_s"] = round(time.monotonic() - t0, 1)
    report["machine"]["load_average_at_end"] = list(os.getloadavg())
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = Path(args.output) if args.output else RESULTS / f"storm-{started:%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    storm = report["storm"]
    queries = storm["queries"]["until_all_current"]
    print(
        f"\n{storm['pages']} pages, {storm['rooms']} room(s), {storm['backlog_per_room']} events "
        f"behind: {storm['pages_current']}/{storm['pages']} current, all current in "
        f"{storm['time_to_all_current_s']} s (last current page at {storm['time_to_last_current_s']} s, "
        f"p50 {storm['time_to_current_p50_s']} s); "
        f"restart took {storm['restart_s']} s"
    )
    print(
        f"queries until all current: {queries['total']} ({queries['per_room']}/room, "
        f"{queries['per_page']}/page) {queries['by_purpose']}"
    )
    print(
        f"live p50 {storm['live']['p50_ms']} ms, p99 {storm['live']['p99_ms']} ms over "
        f"{storm['live']['deliveries_measured']} deliveries; server CPU "
        f"{storm['server_cpu_pct_until_current']}% until current"
    )
    print(f"server log during the storm: {storm['server_log']}")
    for name, check in report["goals"].items():
        print(f"  {name}: {check['value']} -> {'met' if check['met'] else 'NOT met'}")
    print(f"{report['elapsed_s']:.0f} s; wrote {path}")
    return report


if __name__ == "__main__":
    main()
