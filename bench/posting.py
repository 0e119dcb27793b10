"""Posting stays quick: latency of a post at 200 messages/s over 50 rooms of 10 sockets.

    python bench/posting.py                          # PostgreSQL, then SQLite
    python bench/posting.py --databases postgresql --seconds 20

Starts this project exactly as the Procfile does (release step, then one `web:` daphne
process) on a fresh database (PostgreSQL: created and dropped here; SQLite: a temporary
file) and Redis at 127.0.0.1:6379/11 (flushed first). Signs up --users users over HTTP,
opens --rooms rooms through the lobby form, and connects --sockets-per-room sockets per
room the way a browser does (Origin, session cookie, permessage-deflate offered, the
page's catch-up frame on open); socket i of every room belongs to user i. The bench users
are exempt from the rate limit through CHAT_RATE_LIMIT_EXEMPT; everyone else keeps it.

Then it posts --rate messages/s for --seconds (after --warmup seconds not counted) on an
open-loop schedule: room r posts every rooms/rate seconds, phase-shifted so the posts are
evenly spread, each time from the next socket of the room. Each frame is the composer's
JSON (message, client_key, HEADERS). All times are taken in this one process with
time.perf_counter(); a receiving socket only stamps and stores frames while running.

Reported intervals (client side, localhost):
  ack   send -> the sender's composer reset arrives. The consumer sends it only after
        `amessage_post` returned, i.e. after the message was saved AND group_send to Redis
        returned, so this is an upper bound of "frame received -> broadcast published"
        (plus localhost transit both ways). THIS is the figure held against the 20 ms goal.
  own   send -> the sender's own socket receives the message fragment.
  peer  send -> each of the other sockets of the room receives the fragment (through
        Redis, the process's room subscription and the local fan-out).
  server "frame received -> group_send returned" measured inside the consumer (this bench
        starts the server with CHAT_TIMING_LOG=true), parsed from the web log lines
        `post timing ... received_to_published_ms=<x>`.

Also: delivered fraction, the load generator's own lateness, server CPU. Writes
bench/results/posting.json.
"""

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import connect  # noqa: E402
from websockets.exceptions import InvalidHandshake  # noqa: E402

from tests.support.accounts import HttpSession  # noqa: E402
from tests.support.servers import (  # noqa: E402
    WebProcess,
    drop_database,
    new_database,
    procfile_command,
    run_release,
    server_environment,
)

try:
    import uvloop
except ImportError:
    uvloop = None

DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/11"
TOKEN = re.compile(r"pq(\d+)z")
SERVER_TIMING = re.compile(r"received_to_published_ms=([\d.]+)")
TIMING_FIELD = re.compile(r"(\w+)_ms=([\d.]+)")
GOAL_MS = 20.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--databases", default="postgresql,sqlite")
    parser.add_argument("--rate", type=float, default=200.0, help="messages per second, total")
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--sockets-per-room", type=int, default=10)
    parser.add_argument("--users", type=int, default=10, help="socket i of a room is user i")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured posting time")
    parser.add_argument("--warmup", type=float, default=5.0, help="posting time not counted")
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_PG))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "posting.json"))
    args = parser.parse_args()
    args.users = min(args.users, args.sockets_per_room)

    started = time.monotonic()
    results = {
        "bench": "posting",
        "command": "python bench/posting.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "load": {
            "rate_per_s": args.rate,
            "rooms": args.rooms,
            "sockets_per_room": args.sockets_per_room,
            "sockets": args.rooms * args.sockets_per_room,
            "users": args.users,
            "seconds": args.seconds,
            "warmup_seconds": args.warmup,
        },
        "reported": "ack = send -> sender's composer reset (sent by the consumer after save and "
        "group_send returned): upper bound of frame received -> broadcast published",
        "goal_p99_ms": GOAL_MS,
        "databases": {},
    }
    for vendor in [name.strip() for name in args.databases.split(",") if name.strip()]:
        results["databases"][vendor] = run_database(vendor, args)
    results["seconds"] = round(time.monotonic() - started, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    progress("")
    print_table(results)
    print(f"\nwrote {os.path.relpath(args.out)} in {results['seconds']:.0f} s")


def run_database(vendor, args):
    import redis

    redis.Redis.from_url(args.redis_url).flushdb()
    url = new_database(vendor, args.postgres_url, prefix="chat_bench_posting")
    users = [f"bench-post-{number:02d}" for number in range(args.users)]
    env = server_environment(
        redis_url=args.redis_url,
        database_url=url,
        CHAT_RATE_LIMIT_EXEMPT=",".join(users),
        CHAT_LOG_LEVEL="INFO",
        # One `post timing ... received_to_published_ms=` line per post (consumers.py).
        CHAT_TIMING_LOG="true",
    )
    web = None
    try:
        progress(f"[{vendor}] migrate + collectstatic (the Procfile's release step)")
        run_release(env, quiet=True)
        web = WebProcess(env, name="web.1")
        progress(f"[{vendor}] starting web: {procfile_command('web')}")
        web.start(timeout=90)
        log_start = len(web.log_text())
        progress(f"[{vendor}] signing up {len(users)} users over HTTP")
        with ThreadPoolExecutor(4) as pool:
            sessions = list(pool.map(lambda name: HttpSession(web.url).sign_up(name), users))
        progress(f"[{vendor}] opening {args.rooms} rooms through the lobby")
        slugs = [sessions[0].open_room(f"posting bench {number}") for number in range(args.rooms)]
        load_before = os.getloadavg()[0]
        measured = run_loop(post_and_measure(vendor, args, web, sessions, slugs))
        measured["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        log = web.log_text()[log_start:]
        # One line per post in completion order: leave out the warm-up posts.
        warmup_posts = int(args.warmup * args.rate)
        server = [float(value) for value in SERVER_TIMING.findall(log)][warmup_posts:]
        measured["server"] = summary(server) if server else None
        # Any other `<name>_ms=<x>` fields the server's timing lines carry (a breakdown).
        parts = {}
        for line in log.splitlines():
            if "post timing" in line and "received_to_published_ms" not in line:
                for name, value in TIMING_FIELD.findall(line):
                    parts.setdefault(name, []).append(float(value))
        measured["server_parts"] = {
            name: summary(values[warmup_posts:]) for name, values in parts.items()
        }
        measured["publish_failures"] = log.count("channel layer publish failed")
        measured["log_errors"] = [
            line for line in log.splitlines() if " ERROR " in line or "Traceback" in line
        ][:20]
        measured["database_url_kind"] = vendor
        return measured
    finally:
        if web is not None:
            web.stop()
        drop_database(url)


async def post_and_measure(vendor, args, web, sessions, slugs):
    tag = f"[{vendor}]"
    sockets_per_room = args.sockets_per_room
    progress(f"{tag} connecting {len(slugs) * sockets_per_room} sockets")
    limit = asyncio.Semaphore(10)
    retries = []

    async def open_one(slug, index):
        session = sessions[index % len(sessions)]
        async with limit:
            for attempt in range(6):
                try:
                    ws = await connect(
                        f"{web.ws_url}/ws/chat/{slug}/",
                        origin=session.origin,
                        additional_headers=session.socket_headers(),
                        open_timeout=60,
                        ping_interval=None,
                        max_size=None,
                        max_queue=None,
                        proxy=None,
                    )
                    break
                except (OSError, InvalidHandshake) as error:
                    # daphne drops a handshake the app did not accept within its
                    # --websocket_connect_timeout (5 s) on a busy machine; browsers retry too.
                    retries.append(repr(error))
                    if attempt == 5:
                        raise
                    await asyncio.sleep(0.5 * 2**attempt)
            await ws.send(json.dumps({"last_seq": "0", "HEADERS": {"HX-Request": "true"}}))
            return ws

    rooms = await asyncio.gather(
        *(
            asyncio.gather(*(open_one(slug, index) for index in range(sockets_per_room)))
            for slug in slugs
        )
    )
    compression = sorted({negotiated(ws) for sockets in rooms for ws in sockets})
    frames = {}  # (room, socket) -> [(arrival, text)]
    readers = []
    for room_index, sockets in enumerate(rooms):
        for socket_index, ws in enumerate(sockets):
            arrivals = frames[room_index, socket_index] = []
            readers.append(asyncio.create_task(read(ws, arrivals)))

    # The open-loop schedule: post n goes to room n % rooms at start + n / rate.
    total = int((args.warmup + args.seconds) * args.rate)
    warmup = int(args.warmup * args.rate)
    sent = {}  # token -> (room, socket, send time, lateness)
    progress(f"{tag} posting {args.rate:g}/s for {args.warmup:g}+{args.seconds:g} s")
    await asyncio.sleep(0.5)
    cpu_start = cpu_seconds(web.process.pid)
    start = time.perf_counter() + 0.1
    last_progress = 0.0
    for number in range(total):
        due = start + number / args.rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        room_index = number % len(rooms)
        socket_index = (number // len(rooms)) % sockets_per_room
        frame = json.dumps(
            {
                "message": f"pq{number}z posting bench message {number}, hello room",
                "client_key": str(uuid.uuid4()),
                "HEADERS": {"HX-Request": "true", "HX-Trigger": "composer"},
            }
        )
        now = time.perf_counter()
        sent[number] = (room_index, socket_index, now, now - due)
        await rooms[room_index][socket_index].send(frame)
        if now - last_progress > 1:
            last_progress = now
            late = max(value[3] for value in list(sent.values())[-200:]) * 1000
            phase = "warm-up" if number < warmup else "measuring"
            progress(
                f"{tag} {phase}: {number:,}/{total:,} posted, generator late by <= {late:.1f} ms"
            )

    # Wait until every socket saw its room's last post (or give up after 15 s).
    last_token = {}
    for token, (room_index, *_) in sent.items():
        last_token[room_index] = f"pq{token}z"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if all(
            any(last_token[room_index] in text for _, text in arrivals[-5:])
            for (room_index, _), arrivals in frames.items()
        ):
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    cpu_used = cpu_seconds(web.process.pid) - cpu_start
    wall = time.perf_counter() - start
    for task in readers:
        task.cancel()
    for sockets in rooms:
        for ws in sockets:
            await ws.close()

    progress(f"{tag} working out latencies")
    result = analyse(args, rooms, frames, sent, warmup, total, compression)
    # The server's own cost, whatever else the machine runs: CPU per post (save, render,
    # publish, fan-out to the room's sockets, composer reset), warm-up included.
    result["server_cpu_seconds"] = round(cpu_used, 2)
    result["server_cpu_ms_per_post"] = round(cpu_used / total * 1000, 2)
    result["server_cpu_share"] = round(cpu_used / wall, 2)
    result["connect_retries"] = len(retries)
    result["connect_retry_errors"] = sorted(set(retries))[:5]
    return result


async def read(ws, arrivals):
    """Stamp and keep every frame; nothing else, so the stamps stay honest."""
    try:
        async for text in ws:
            arrivals.append((time.perf_counter(), text))
    except asyncio.CancelledError:
        raise
    except Exception as error:  # a closed socket: noted with the frames
        arrivals.append((time.perf_counter(), f"<closed: {error!r}>"))


def analyse(args, rooms, frames, sent, warmup, total, compression):
    ack, own, peer, errors = [], [], [], []
    ack_by_token = {}
    delivered, expected, duplicates, closed = 0, 0, 0, []
    seen = {}  # (room, socket) -> set of tokens
    first = {}  # (token, socket) -> first arrival
    posts_of = {}  # (room, socket) -> [(send time, token)], in sending order
    for token, (room_index, socket_index, sent_at, _) in sent.items():
        posts_of.setdefault((room_index, socket_index), []).append((sent_at, token))
    for key, arrivals in frames.items():
        room_index, socket_index = key
        # Composer resets arrive in the order this socket sent its posts.
        acks = iter(posts_of.get(key, []))
        tokens = seen.setdefault(key, set())
        for arrival, text in arrivals:
            if text.startswith("<closed"):
                closed.append(f"room {room_index} socket {socket_index}: {text}")
                continue
            if 'id="composer-fields"' in text:
                sent_at, token = next(acks, (None, None))
                if token is None:
                    errors.append("a composer reset with no post pending")
                    continue
                if "composer-error" in text:
                    errors.append(re.sub(r"\s+", " ", text)[-300:])
                elif token >= warmup:
                    ack.append(arrival - sent_at)
                    ack_by_token[token] = arrival - sent_at
            for match in TOKEN.finditer(text):
                token = int(match[1])
                if token in tokens:
                    duplicates += 1
                    continue
                tokens.add(token)
                first[token, key] = arrival
    for token, (room_index, socket_index, sent_at, _) in sent.items():
        if token < warmup:
            continue
        for socket_index_2 in range(args.sockets_per_room):
            expected += 1
            arrival = first.get((token, (room_index, socket_index_2)))
            if arrival is None:
                continue
            delivered += 1
            (own if socket_index_2 == socket_index else peer).append(arrival - sent_at)
    lateness = [value[3] for token, value in sent.items() if token >= warmup]
    # Did the server keep up? Compare the first and the last 5 s of posts: a server that
    # cannot sustain the rate shows latency growing through the run.
    window = int(5 * args.rate)
    measured_tokens = range(warmup, total)
    first_acks = [ack_by_token[t] for t in measured_tokens[:window] if t in ack_by_token]
    last_acks = [ack_by_token[t] for t in measured_tokens[-window:] if t in ack_by_token]
    first_p50 = statistics.median(first_acks) * 1000 if first_acks else None
    last_p50 = statistics.median(last_acks) * 1000 if last_acks else None
    answered = len(ack_by_token) / (total - warmup)
    keeping_up = bool(
        first_p50 is not None
        and last_p50 is not None
        and answered > 0.999
        and last_p50 <= 2 * first_p50 + 20
    )
    measured_posts = total - warmup
    span = max(value[2] for value in sent.values()) - min(
        value[2] for token, value in sent.items() if token >= warmup
    )
    return {
        "posts_measured": measured_posts,
        "achieved_rate_per_s": round((measured_posts - 1) / span, 1) if span else None,
        "compression": compression,
        "ack": summary([value * 1000 for value in ack]),
        "ack_p50_first_5s_ms": round(first_p50, 1) if first_p50 is not None else None,
        "ack_p50_last_5s_ms": round(last_p50, 1) if last_p50 is not None else None,
        "posts_answered_fraction": round(answered, 4),
        "server_kept_up": keeping_up,
        "own": summary([value * 1000 for value in own]),
        "peer": summary([value * 1000 for value in peer]),
        "generator_lateness": summary([value * 1000 for value in lateness]),
        "delivered": delivered,
        "expected": expected,
        "delivered_fraction": round(delivered / expected, 6) if expected else None,
        "duplicates": duplicates,
        "composer_errors": errors[:10],
        "composer_error_count": len(errors),
        "closed_sockets": closed[:10],
    }


def summary(values_ms):
    if not values_ms:
        return {"n": 0}
    ordered = sorted(values_ms)

    def pct(p):
        return round(ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))], 2)

    return {
        "n": len(ordered),
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "max_ms": round(ordered[-1], 2),
        "mean_ms": round(statistics.fmean(ordered), 2),
    }


# --- plumbing ---


def cpu_seconds(pid):
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def negotiated(ws):
    return ",".join(extension.name for extension in ws.protocol.extensions) or "none"


def run_loop(coroutine):
    return uvloop.run(coroutine) if uvloop is not None else asyncio.run(coroutine)


def progress(text):
    sys.stderr.write("\r\033[K" + text[:150])
    sys.stderr.flush()


def machine():
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "event_loop": "uvloop" if uvloop is not None else "asyncio",
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
        "note": "shared 2-core machine; the load generator runs on it too",
    }


def print_table(results):
    load = results["load"]
    print(
        f"Posting: {load['rate_per_s']:g} messages/s over {load['rooms']} rooms x "
        f"{load['sockets_per_room']} sockets ({load['sockets']} sockets), {load['seconds']:g} s "
        f"measured after {load['warmup_seconds']:g} s warm-up; one web process (Procfile)."
    )
    header = f"{'db':<10} {'interval':<34} {'n':>7} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7}"
    print("\n" + header + "\n" + "-" * len(header))
    names = {
        "ack": "send -> composer reset (REPORTED)",
        "own": "send -> own socket gets fragment",
        "peer": "send -> other sockets get it",
        "server": "server: received -> published",
        "generator_lateness": "load generator lateness",
    }
    for vendor, data in results["databases"].items():
        for key, label in names.items():
            row = data.get(key)
            if not row or not row.get("n"):
                print(f"{vendor:<10} {label:<34} {'(not logged by the server)':>38}")
                continue
            print(
                f"{vendor:<10} {label:<34} {row['n']:>7} {row['p50_ms']:>7.1f} "
                f"{row['p95_ms']:>7.1f} {row['p99_ms']:>7.1f} {row['max_ms']:>7.1f}"
            )
        for name, row in (data.get("server_parts") or {}).items():
            if row.get("n"):
                print(
                    f"{vendor:<10} {'  server part: ' + name:<34} {row['n']:>7} "
                    f"{row['p50_ms']:>7.1f} {row['p95_ms']:>7.1f} {row['p99_ms']:>7.1f} "
                    f"{row['max_ms']:>7.1f}"
                )
    print("(milliseconds)\n")
    for vendor, data in results["databases"].items():
        p99 = data["ack"].get("p99_ms")
        verdict = "meets" if p99 is not None and p99 <= GOAL_MS else "MISSES"
        print(
            f"{vendor}: p99 send -> composer reset {p99} ms {verdict} the {GOAL_MS:g} ms goal; "
            f"achieved {data['achieved_rate_per_s']}/s; delivered {data['delivered']:,}/"
            f"{data['expected']:,} ({data['delivered_fraction']:.4%}), duplicates "
            f"{data['duplicates']}, composer errors {data['composer_error_count']}; server CPU "
            f"{data['server_cpu_ms_per_post']} ms per post ({data['server_cpu_share']:.0%} of a "
            f"core); load average {data['load_average_1min'][0]}->{data['load_average_1min'][1]}; "
            f"compression {','.join(data['compression'])}"
        )
        if not data.get("server_kept_up"):
            print(
                f"  ! the server did not keep up with {load['rate_per_s']:g} posts/s: composer-reset "
                f"p50 {data['ack_p50_first_5s_ms']} ms in the first 5 s, "
                f"{data['ack_p50_last_5s_ms']} ms in the last 5 s; "
                f"{data['posts_answered_fraction']:.1%} of posts answered before the end"
            )
        if data.get("publish_failures"):
            print(
                f"  ! {data['publish_failures']} posts were not published through the channel "
                "layer (server log: 'channel layer publish failed')"
            )


if __name__ == "__main__":
    main()
