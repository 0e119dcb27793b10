"""Issue 11's person stream under load: the fan-out knee with CHAT_PERSON_STREAM on and off.

    .venv/bin/python bench/person_stream.py            # about 4-6 minutes on 2 cores
    .venv/bin/python bench/person_stream.py --quick    # smoke run, about 2 minutes

Two project servers, each started as bench/run.py starts the project (the Procfile's `web:`
line after `release:`, a fresh SQLite database on tmpfs, CHAT_RATE_LIMIT_EXEMPT=bench), one
with CHAT_PERSON_STREAM=on and one with =off, side by side on one private redis-server (a
database each, so their groups and caches never meet). On each:

- --sockets (500) people, created in the database with a session each
  (bench/people_users.py), all MEMBERS of the measured room and of a second room; each has
  one socket on the measured room, so what it is sent counts as read and their read
  positions are saved while they watch (every 2 s);
- --lobby (100) of those people also have the lobby open (/ws/lobby/): a second page of
  theirs that shows their rooms, redrawn when a read position of theirs moves;
- during every step the bench user posts --side-rate (1) messages/s into the second room:
  each is an activity notice (with the stream on), and every one of the people is in that
  room without having it open, so their sidebars (room pages and lobbies) redraw.

The same ladder of rates runs on both servers, alternating step by step (on then off at
one rate, off then on at the next), each stopping at its knee by bench/run.py's criterion
(p99 <= 250 ms, every frame delivered, none twice, none out of order). Reported: the knee
on and off and their ratio (issue 11: on >= 0.8x off), and per step deliveries/s, p99 and
server CPU. `--profile RATE` then runs py-spy on each server during one more step at RATE.
Writes bench/results/person-stream-<timestamp>.json.
"""

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import loadgen  # noqa: E402
from bench.loadgen import Posters, WorkerPool  # noqa: E402
from bench.people import as_people, create_people  # noqa: E402
from bench.plot import KNEE_P99_MS  # noqa: E402
from bench.run import (  # noqa: E402
    RESULTS,
    Bench,
    KneeWatch,
    Progress,
    ProjectSystem,
    code_version,
    flush,
    format_step,
    knee,
    machine,
    prioritise,
    redis_for_bench,
    redis_pid,
    settle,
)

MODES = ("on", "off")
REDRAW = 'id="my-rooms"'  # the person stream's redraw of a sidebar (chat/rooms/_my_rooms.html)
READS_SETTLE_SECONDS = 6  # 3x the person stream's READ_SAVE_SECONDS, before reading them
GOAL = 0.8  # issue 11: the knee with the stream on >= 0.8x the knee without it


# --- in the server's environment (a subprocess): memberships and read positions ---


def _django():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()


def join_rooms(slugs, prefix, count):
    """Users PREFIX0..PREFIX<count - 1> become members of the rooms SLUG,SLUG.., read up to now. Membership rows as
    chat.actions.memberships.room_join writes them, without its "joined" line per person:
    every page opening at ?after=0 would replay those hundreds of lines."""
    _django()
    from django.contrib.auth import get_user_model

    from chat.models import Membership, Room

    names = [f"{prefix}{i}" for i in range(int(count))]
    users = list(get_user_model().objects.filter(username__in=names))
    rows = [
        Membership(room=room, user=user, last_read_seq=room.last_seq)
        for room in Room.objects.filter(slug__in=slugs.split(","))
        for user in users
    ]
    Membership.objects.bulk_create(rows, batch_size=500)
    return {"memberships": len(rows)}


def read_positions(slug, prefix):
    """How far the people have read the room, as saved: the person stream's read saves."""
    _django()
    from chat.models import Membership, Room

    room = Room.objects.get(slug=slug)
    seqs = sorted(
        Membership.objects.filter(room=room, user__username__startswith=prefix).values_list(
            "last_read_seq", flat=True
        )
    )
    return {
        "room_last_seq": room.last_seq,
        "members": len(seqs),
        "read_min": seqs[0] if seqs else None,
        "read_median": seqs[len(seqs) // 2] if seqs else None,
        "read_max": seqs[-1] if seqs else None,
    }


SERVER_SIDE = {"join": join_rooms, "reads": read_positions}


def in_server(system, command, *args):
    """Run one of SERVER_SIDE in `system`'s environment (its database, its SECRET_KEY)."""
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--server-side",
        command,
        *map(str, args),
    ]
    done = subprocess.run(argv, cwd=ROOT, env=system.env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{command} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the coordinator ---


class Watcher:
    """One more person (not counted as a receiver), on the room and in the lobby, whose
    frames are read here: how many sidebar redraws a person's pages get."""

    def __init__(self, room_target, lobby_target, compression):
        self.targets = {"room": room_target, "lobby": lobby_target}
        self.compression = compression
        self.redraws = dict.fromkeys(self.targets, 0)
        self.tasks = []
        self.sockets = []

    async def open(self):
        for where, target in self.targets.items():
            ws = await loadgen.open_socket(target, compression=self.compression)
            self.sockets.append(ws)
            self.tasks.append(asyncio.create_task(self._read(ws, where)))

    async def _read(self, ws, where):
        with contextlib.suppress(Exception):
            async for frame in ws:
                if isinstance(frame, str) and REDRAW in frame:
                    self.redraws[where] += 1

    def counts(self):
        return dict(self.redraws)

    async def close(self):
        for ws in self.sockets:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 10)
        for task in self.tasks:
            task.cancel()


@dataclasses.dataclass
class Server:
    """One of the two servers, with its posters (measured room, second room) and watcher."""

    mode: str
    system: ProjectSystem
    result: dict
    meter: object = None
    posters: Posters = None
    second: Posters = None
    watcher: Watcher = None
    watch: KneeWatch = dataclasses.field(default_factory=KneeWatch)
    done: bool = False

    @property
    def tag(self):  # its sockets' groups in the load generator
        return f"{self.mode}-"


def make_server(mode, redis_url, database):
    name = f"project-person-{mode}"
    system = ProjectSystem(
        name, redis_url=redis_url, database=database, env={"CHAT_PERSON_STREAM": mode}
    )
    return Server(mode=mode, system=system, result={"name": name, "mode": mode, "steps": []})


def lobby_of(target):
    """The lobby page's socket on the same server (no room, only the person's stream)."""
    base = target.url.split("/ws/", 1)[0]
    return dataclasses.replace(target, url=f"{base}/ws/lobby/", kind="json", page_url="")


async def prepare(bench, server, args):
    """Start the server, create the people and their memberships, open every socket."""
    say = bench.progress.say
    system, result = server.system, server.result
    server.meter, server.posters = await bench.start(system, result)
    system.slugs["second"] = system.session.open_room(f"bench second {uuid.uuid4().hex[:6]}")
    started = time.monotonic()
    keys = create_people(system, {"p": args.sockets, "watch": 1})
    rooms = f"{system.slugs['fanout']},{system.slugs['second']}"
    joined = in_server(system, "join", rooms, "p", args.sockets)
    in_server(system, "join", rooms, "watch", 1)
    seconds = round(time.monotonic() - started, 1)
    result["people"] = {"created": args.sockets, **joined, "seconds": seconds}
    room = system.targets("fanout")[0]
    lobby = lobby_of(room)
    opened = await bench.pool.connect(
        server.tag + "room", as_people(room, keys["p"]), args.sockets, args.compression
    )
    lobbies = await bench.pool.connect(
        server.tag + "lobby",
        as_people(lobby, keys["p"][: args.lobby]),
        args.lobby,
        args.compression,
    )
    result["connect"], result["lobby_connect"] = opened, lobbies
    server.second = Posters(system.targets("second"), 1, args.compression)
    await server.second.open()
    [watch_room], [watch_lobby] = as_people(room, keys["watch"]), as_people(lobby, keys["watch"])
    server.watcher = Watcher(watch_room, watch_lobby, args.compression)
    await server.watcher.open()
    say(
        f"[{system.name}] {args.sockets} people, members of both rooms; {opened['opened']} room "
        f"sockets + {lobbies['opened']} lobby sockets open, "
        f"{opened['failed'] + lobbies['failed']} failed"
    )  # fmt: skip
    if opened["failed"] or lobbies["failed"]:
        raise RuntimeError(f"sockets failed to open: {opened['errors'] + lobbies['errors']}")


async def measure(bench, server, rate, *, duration, label):
    """One step at `rate` on `server`, the second room posted into meanwhile."""
    args = bench.args

    async def second_room():
        return await server.second.post(0, args.side_rate, duration) if args.side_rate else None

    before = server.watcher.counts()
    step = await bench.step(
        server.system, server.posters, server.meter, rate=rate, duration=duration, label=label,
        during=second_room,
    )  # fmt: skip
    posted = step.pop("profile", None)
    step["side_posts"] = posted["sent"] if posted else 0
    after = server.watcher.counts()
    step["watcher_redraws"] = {where: after[where] - before[where] for where in after}
    return step


async def ladder(bench, servers, args):
    """The rates in turn, alternating the servers (on, off; then off, on; ...)."""
    say = bench.progress.say
    for index, rate in enumerate(args.rate_list):
        order = servers if index % 2 == 0 else servers[::-1]
        for server in order:
            if server.done:
                continue
            await settle([pid for s in servers for pid in s.system.pids()], longest=10)
            label = f"[{server.system.name}] step {index + 1}/{len(args.rate_list)}"
            step = await measure(bench, server, rate, duration=bench.seconds(rate), label=label)
            server.result["steps"].append(step)
            redraws = step["watcher_redraws"]
            say(
                f"[{server.mode:>3}] {format_step(step)}  redraws room {redraws['room']} "
                f"lobby {redraws['lobby']}"
            )
            if server.watch.past_knee(step):
                say(f"[{server.mode:>3}] past its knee: stopping here")
                server.done = True
        if all(server.done for server in servers):
            break


async def profile(bench, server):
    """py-spy on the server during one more step at --profile's rate (second room too)."""
    args = bench.args

    async def second_room():
        return await server.second.post(0, args.side_rate, args.duration)

    also = second_room if args.side_rate else None
    return await bench.profile(server.system, server.posters, server.meter, also=also)


async def run(args, redis_url):
    progress = Progress()
    pool = WorkerPool(args.workers)
    bench = Bench(args, pool, progress, redis_pid(redis_url))
    base, _, db = redis_url.rpartition("/")
    urls = {"on": redis_url, "off": f"{base}/{int(db or 0) + 1}"}
    servers = []
    try:
        for mode in MODES:
            flush(urls[mode])
            servers.append(make_server(mode, urls[mode], args.database))
            await prepare(bench, servers[-1], args)
        for server in servers:
            await bench.warm_up(server.system, server.posters, server.meter, server.result)
        await ladder(bench, servers, args)
        # Every page is still open on the room, which has been quiet since its last step:
        # by now each read position should have been saved up to the room's last event.
        await asyncio.sleep(READS_SETTLE_SECONDS)
        for server in servers:
            server.result["knee"] = knee(server.result["steps"])
            fanout = server.system.slugs["fanout"]
            server.result["reads_saved"] = in_server(server.system, "reads", fanout, "p")
            server.result["reads_saved"]["read_after_quiet_s"] = READS_SETTLE_SECONDS
        if args.profile:
            for server in servers:
                await settle([pid for s in servers for pid in s.system.pids()], longest=10)
                server.result["profile"] = await profile(bench, server)
        return {server.system.name: server.result for server in servers}
    finally:
        for server in servers:
            for closing in (server.watcher, server.second, server.posters):
                if closing is not None:
                    with contextlib.suppress(Exception):
                        await closing.close()
        pool.stop()
        for server in servers:
            server.system.stop()


def summarise(systems):
    on, off = systems.get("project-person-on", {}), systems.get("project-person-off", {})
    k_on, k_off = on.get("knee"), off.get("knee")
    ratio = round(k_on / k_off, 3) if k_on is not None and k_off else None
    keys = ("achieved_per_s", "p99_ms", "server_cpu_s_per_1k", "server_cpu_pct", "ok")
    by_rate = {}
    for mode, system in (("on", on), ("off", off)):
        for step in system.get("steps", []):
            row = by_rate.setdefault(step["offered_per_s"], {})
            row[mode] = {key: step[key] for key in keys}
            # Sidebar redraws one person's pages got during the step (room page, lobby).
            row[mode]["watcher_redraws"] = step.get("watcher_redraws")
    return {
        "knee_on": k_on,
        "knee_off": k_off,
        "knee_on_over_off": ratio,
        "goal": f"knee on >= {GOAL}x off",
        "goal_met": None if ratio is None else ratio >= GOAL,
        "by_rate": {str(int(rate)): row for rate, row in sorted(by_rate.items())},
    }


def report_lines(report):
    s = report["summary"]
    lines = [
        f"knee with the person stream on  {s['knee_on'] or 0:>10,.0f} deliveries/s",
        f"knee with the person stream off {s['knee_off'] or 0:>10,.0f} deliveries/s",
        f"on / off {s['knee_on_over_off']}x  (goal >= {GOAL}x: "
        f"{'met' if s['goal_met'] else 'NOT met' if s['goal_met'] is False else 'undecided'})",
        "",
        f"{'offered/s':>10}  {'on: achieved':>13} {'p99':>5} {'cpu s/1k':>8} {'cpu%':>4} "
        f"{'redraws':>7}  {'off: achieved':>13} {'p99':>5} {'cpu s/1k':>8} {'cpu%':>4} "
        f"{'redraws':>7}",
    ]

    def cells(row):
        if not row:
            return f"{'-':>13} {'-':>5} {'-':>8} {'-':>4} {'-':>7}"
        p99 = "-" if row["p99_ms"] is None else f"{row['p99_ms']:.0f}"
        cpu = "-" if row["server_cpu_s_per_1k"] is None else f"{row['server_cpu_s_per_1k']:.4f}"
        redraws = row.get("watcher_redraws") or {}
        drawn = f"{redraws.get('room', '-')}/{redraws.get('lobby', '-')}"
        mark = " " if row["ok"] else "*"
        return (
            f"{row['achieved_per_s']:>12,.0f}{mark} {p99:>5} {cpu:>8} "
            f"{row['server_cpu_pct']:>4.0f} {drawn:>7}"
        )

    for rate, row in s["by_rate"].items():
        lines.append(f"{int(rate):>10,}  {cells(row.get('on'))}  {cells(row.get('off'))}")
    lines.append(
        "(* over the knee; cpu% of one core; redraws: sidebar redraws one person's room page / "
        "lobby got during the step)"
    )
    for name, system in report["systems"].items():
        reads = system.get("reads_saved")
        if reads:
            lines.append(
                f"{name}: read positions saved for {reads['members']} people, "
                f"{reads.get('read_after_quiet_s', 0)} s after the room's last post: median "
                f"{reads['read_median']} (min {reads['read_min']}) of the room's "
                f"{reads['room_last_seq']} events"
            )
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=500, help="people, one room socket each")
    parser.add_argument("--lobby", type=int, default=100, help="of them, also on the lobby")
    parser.add_argument(
        "--side-rate", type=float, default=1.0, help="messages/s into the second room (1)"
    )
    parser.add_argument("--rates", default="2500,5000,7500,10000,15000,20000,30000,40000")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per step (8)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 people, short steps")
    parser.add_argument("--posters", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--compression", choices=("deflate", "off"), default="deflate")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--profile", type=float, default=None, help="py-spy each server during a step at RATE"
    )
    parser.add_argument("--profile-gil", action="store_true")
    parser.add_argument("--nice", type=int, default=-10)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.sockets = 100 if args.sockets == 500 else args.sockets
        args.lobby = min(args.lobby, 20)
        args.rates = "2500,5000" if "--rates" not in (argv or sys.argv) else args.rates
        args.duration = 3.0 if "--duration" not in (argv or sys.argv) else args.duration
    args.rate_list = [float(rate) for rate in args.rates.split(",") if rate]
    args.lobby = min(args.lobby, args.sockets)
    args.compression = None if args.compression == "off" else args.compression
    # What bench.run.Bench reads besides.
    args.drain_quiet, args.drain_max, args.idle_sockets = 3.0, 20.0, 0
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--server-side"]:
        command, *rest = argv[1:]
        print(json.dumps(SERVER_SIDE[command](*rest)))
        return None
    args = parse_args(argv)
    if args.nice:
        prioritise(os.getpid(), args.nice)
    loadgen.raise_open_files_limit()
    redis_url, private = redis_for_bench(args.redis_url)
    if private and args.nice:
        prioritise(private.process.pid, args.nice)
    started = datetime.datetime.now(datetime.UTC)
    report = {
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python bench/person_stream.py " + " ".join(argv),
        "code": code_version(),
        "machine": machine(),
        "config": {
            key: getattr(args, key)
            for key in (
                "sockets", "lobby", "side_rate", "rate_list", "duration", "posters", "workers",
                "database", "nice", "quick", "profile",
            )
        }
        | {"knee_p99_ms": KNEE_P99_MS, "order": "alternating step by step: on, off; off, on; ..."},
    }  # fmt: skip
    t0 = time.monotonic()
    try:
        report["systems"] = loadgen.run_loop(run(args, redis_url))
    finally:
        if private:
            private.stop()
    report["elapsed_s"] = round(time.monotonic() - t0, 1)
    report["machine"]["load_average_at_end"] = list(os.getloadavg())
    report["summary"] = summarise(report["systems"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    path = Path(args.output) if args.output else RESULTS / f"person-stream-{stamp}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    print()
    print(report_lines(report))
    print(
        f"\n{report['elapsed_s']:.0f} s; wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}"
    )
    return report


if __name__ == "__main__":
    main()
