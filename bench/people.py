"""Presence and typing under load (issue 10's "Speed"): one project server, three measures.

    .venv/bin/python bench/people.py                      # about 6-8 minutes on 2 cores
    .venv/bin/python bench/people.py --rates 5000,10000,15000,20000 --duration 6

The project is started exactly as bench/run.py starts it (the Procfile's `web:` line after
the `release:` step, a fresh SQLite database on tmpfs, a private redis-server,
CHAT_RATE_LIMIT_EXEMPT=bench), with the same load generator, steps, knee criterion and
per-socket checks (every message once, in order). Extra people are created straight in
the database with a session each (bench/people_users.py), so that presence and typing
see distinct persons:

1. RSS per idle socket at --idle-sockets (2,000) sockets in a room of its own, presence on
   (as always), every socket a distinct person (2,000 people in the room's presence);
   `--idle-modes one --no-load` on a fresh server gives today's figure (every socket the
   one bench user). Two modes on one server are not comparable: the second is flattered
   by the memory the first freed.
2. Typing: --sockets (500) receivers in one room, of which --typists (20) are distinct
   persons; a ladder of rates without typing, then the same ladder while each typist
   sends the page's typing frame every 2 s (staggered). Knee with / without.
3. Churn: at --churn-at (5,000) deliveries/s, steps without and with --churn-rate (200)
   sockets opened per second in the same room (each a distinct person, so each open and
   each close is an arrival or a departure in presence), each closed --churn-hold (1) s
   after it opened; alternating, --churn-repeats (2) of each. Message p99 with / without.

Writes bench/results/people-<timestamp>.json and .md.
"""

import argparse
import asyncio
import dataclasses
import datetime
import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import loadgen  # noqa: E402
from bench.loadgen import Posters, WorkerPool  # noqa: E402
from bench.plot import KNEE_P99_MS  # noqa: E402
from bench.run import (  # noqa: E402
    RESULTS,
    WARM_UP_SECONDS,
    Bench,
    Meter,
    Progress,
    code_version,
    flush,
    format_step,
    knee,
    machine,
    make_system,
    percentile,
    prioritise,
    redis_for_bench,
    redis_pid,
    settle,
    summarise_profile,
)

TYPING_EVERY = 2.0  # what the page sends at most (htmx throttle:2s)


def create_people(system, groups):
    """{prefix: [session key, ...]} for new users PREFIX0.. (bench/people_users.py)."""
    argv = [sys.executable, str(ROOT / "bench" / "people_users.py")]
    for prefix, count in groups.items():
        argv += [prefix, str(count)]
    done = subprocess.run(argv, cwd=ROOT, env=system.env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"creating users failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def as_people(target, keys):
    """The same socket as `target`, once per person (their session cookie)."""
    return [dataclasses.replace(target, headers=(("Cookie", f"sessionid={key}"),)) for key in keys]


async def ladder(bench, system, posters, meter, rates, say, tag):
    steps, failures, saturated = [], 0, 0
    for index, rate in enumerate(rates):
        duration = max(bench.args.duration, 20 * bench.args.sockets / rate)
        label = f"[{tag}] step {index + 1}/{len(rates)}"
        step = await bench.step(system, posters, meter, rate=rate, duration=duration, label=label)
        steps.append(step)
        say(f"[{tag}] {format_step(step)}")
        if step["ok"]:
            failures = saturated = 0
            continue
        failures += 1
        if (
            step["fraction"] < 1
            or step["achieved_per_s"] < 0.95 * rate
            or (step["p50_ms"] or 0) > KNEE_P99_MS
        ):
            saturated += 1
        if saturated >= 2 or failures >= 3 or step["fraction"] < 0.5:
            say(f"[{tag}] past its knee: stopping here")
            break
    return steps


async def run(args, redis_url):
    progress = Progress()
    say = progress.say
    pool = WorkerPool(args.workers)
    bench = Bench(args, pool, progress, redis_pid(redis_url))
    flush(redis_url)
    system = make_system("project", redis_url=redis_url, processes=1, database="sqlite")
    result = {"name": "project", "sockets": args.sockets}
    posters = None
    try:
        say("[people] starting the project")
        system.start()
        result["server"] = system.describe()
        result["logs"] = system.logs()
        pids = system.pids()
        if args.nice:
            result["priority"] = {pid: prioritise(pid, args.nice) for pid in pids}
        started = time.monotonic()
        keys = create_people(
            system,
            {"typist": args.typists, "idle": args.idle_sockets, "churn": args.churn_people},
        )
        say(
            f"[people] created {sum(map(len, keys.values()))} users ({time.monotonic() - started:.1f} s)"
        )
        fanout, idle = system.targets("fanout")[0], system.targets("idle")[0]
        meter = Meter(pids, [*pool.pids, os.getpid()], bench.redis_pid)
        await pool.reset()
        posters = Posters(system.targets("fanout"), args.posters, args.compression)
        await posters.open()
        await pool.connect("warm", system.targets("fanout"), 1, args.compression)
        await bench.step(system, posters, meter, rate=5, sockets=1, duration=1, record=False)
        await pool.close("warm")

        # 1. RSS per idle socket, in --idle-modes order: "one" (today's way: every socket
        # the bench user) and "people" (every socket a distinct person). Memory freed by
        # the first stays with the process and flatters the second: for figures, run
        # each first on a fresh server (--idle-modes people --no-load, then one).
        for mode in args.idle_modes if args.idle_sockets else ():
            key = "idle_one_person" if mode == "one" else "idle_distinct_people"
            measured = system
            if mode == "people":
                measured = types.SimpleNamespace(
                    name="project-people",
                    pids=system.pids,
                    targets=lambda room: as_people(idle, keys["idle"]),
                )
            result[key] = await bench.idle_rss(measured)
            result[key]["measured_after"] = [
                m for m in args.idle_modes[: args.idle_modes.index(mode)]
            ]
            who = "one person" if mode == "one" else f"{args.idle_sockets} people"
            say(f"[people] RSS per idle socket, {who}: {result[key]['rss_per_socket_kib']:.1f} KiB "
                f"(slope {result[key]['rss_slope_kib']:.1f})")  # fmt: skip
        if args.no_load:
            return result

        # The room: sockets - typists as the bench user, and the typists as themselves.
        typists = as_people(fanout, keys["typist"])
        opened = await pool.connect(
            "fanout", [fanout], args.sockets - args.typists, args.compression
        )
        opened_t = await pool.connect("typists", typists, args.typists, args.compression)
        result["connect"] = {"bench_user": opened, "typists": opened_t}
        say(f"[people] {opened['opened']} + {opened_t['opened']} typist sockets open, "
            f"{opened['failed'] + opened_t['failed']} failed")  # fmt: skip
        await settle(pids)
        check = await bench.step(
            system, posters, meter, rate=5 * args.sockets, duration=WARM_UP_SECONDS, record=False
        )
        if check["delivered"] < check["expected"]:
            say(f"[people] warm-up lost frames: {check['delivered']}/{check['expected']}")
            result["warm_up_short"] = check

        # 2. Typing: the same ladder without, then with.
        await pool.ephemeral_counts()
        result["without_typing"] = await ladder(
            bench, system, posters, meter, args.rate_list, say, "no typing"
        )
        result["ephemeral_without_typing"] = await pool.ephemeral_counts()
        frame = typists[0].typing_frame()
        await pool.typing_start("typists", frame, TYPING_EVERY)
        await asyncio.sleep(3)
        result["with_typing"] = await ladder(
            bench, system, posters, meter, args.rate_list, say, f"{args.typists} typing"
        )
        result["typing_frames_sent"] = await pool.typing_stop()
        result["ephemeral_with_typing"] = await pool.ephemeral_counts()
        say(f"[people] typing frames sent {result['typing_frames_sent']}; received by the "
            f"room's sockets: {result['ephemeral_with_typing']}")  # fmt: skip
        await asyncio.sleep(6)  # the typists expire (CHAT_TYPING_SECONDS, 5 s)

        # 3. Churn at 5,000 deliveries/s: alternating without and with.
        # "people": each churn socket a distinct person (every open and close moves
        # presence); "one": all the bench user, already here (presence never moves):
        # what connecting costs without presence changes.
        pools = {"people": as_people(fanout, keys["churn"]), "one": [fanout]}
        result["churn_steps"] = []
        for repeat in range(args.churn_repeats):
            for churning in args.churn_modes:
                tag = f"churn {args.churn_rate:.0f}/s {churning}" if churning else "no churn"
                churn = None
                if churning:

                    async def churn(duration=args.duration, targets=pools[churning]):
                        await pool.churn_start(
                            targets, args.churn_rate, duration, args.churn_hold, args.compression
                        )

                spy = None
                if churning and args.profile_churn and repeat == 0:
                    out = RESULTS / f"profile-churn-{churning}.txt"
                    spy = subprocess.Popen(  # noqa: ASYNC220 - started, not waited on here
                        [str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
                         str(pids[0]), "--duration", str(int(args.duration)), "--rate", "200",
                         "--format", "raw", "--nonblocking", "--output", str(out)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    )  # fmt: skip
                step = await bench.step(
                    system, posters, meter, rate=args.churn_at, duration=args.duration,
                    label=f"[{tag}] {repeat + 1}", during=churn,
                )  # fmt: skip
                if spy is not None:
                    await asyncio.to_thread(spy.wait, 30)
                    if out.exists():
                        summary = summarise_profile(out)
                        step["profile_file"] = str(out.relative_to(ROOT))
                        step["profile_inclusive"] = summary["inclusive"][:40]
                        step["profile_self"] = summary["self"][:20]
                step.pop("profile", None)
                info = await pool.churn_result() if churning else None
                step["ephemeral"] = await pool.ephemeral_counts()
                if info:
                    open_ms = info.pop("open_ms")
                    info["open_p50_ms"] = round(percentile(open_ms, 0.5) or 0, 1)
                    info["open_p99_ms"] = round(percentile(open_ms, 0.99) or 0, 1)
                    info["per_s"] = round(
                        info["opened"] / max(info["elapsed_s"] - args.churn_hold, 1e-3), 1
                    )
                    step["churn"] = info
                step["churning"] = churning
                result["churn_steps"].append(step)
                extra = (
                    f"; churn opened {info['opened']}/{info['started']} failed {info['failed']}, "
                    f"open p50 {info['open_p50_ms']} p99 {info['open_p99_ms']} ms"
                    if churning and info
                    else ""
                )
                say(f"[{tag}] {format_step(step)}{extra}")
                await settle(pids, longest=5)
        return result
    finally:
        if posters:
            await posters.close()
        pool.stop()
        system.stop()


def summarise(report):
    s = report["systems"]["project"]
    out = {}
    k0, k1 = knee(s.get("without_typing", [])), knee(s.get("with_typing", []))
    out["knee_without_typing"] = k0
    out["knee_with_typing"] = k1
    out["knee_ratio"] = round(k1 / k0, 3) if k0 else None
    steps = s.get("churn_steps", [])
    calm = [st["p99_ms"] for st in steps if not st["churning"] and st["p99_ms"] is not None]
    busy = [st["p99_ms"] for st in steps if st["churning"] == "people" and st["p99_ms"] is not None]
    out["churn_one_person_p99_ms"] = [
        st["p99_ms"] for st in steps if st["churning"] == "one" and st["p99_ms"] is not None
    ]
    out["churn_p99_ms"] = busy
    out["no_churn_p99_ms"] = calm
    out["churn_p99_worst_ms"] = max(busy) if busy else None
    out["churn_all_delivered"] = all(
        st["fraction"] == 1 and not st["duplicates"] and not st["out_of_order"] for st in steps
    )
    for key in ("idle_one_person", "idle_distinct_people"):
        if key in s and s[key].get("measured_after"):
            # Memory the earlier measure freed stays with the process: not comparable.
            out[f"rss_kib_{key}_after_another"] = s[key]["rss_per_socket_kib"]
        elif key in s:
            out[f"rss_kib_{key}"] = s[key]["rss_per_socket_kib"]
            out[f"rss_slope_kib_{key}"] = s[key]["rss_slope_kib"]
    out["goals"] = {
        "knee with typing >= 0.8x without": None if out["knee_ratio"] is None else out["knee_ratio"] >= 0.8,
        "p99 at 5,000/s with churn <= 250 ms": None if not busy else max(busy) <= 250,
        "RSS per idle socket (distinct people) <= 25 KiB": None
        if "rss_kib_idle_distinct_people" not in out
        else out["rss_kib_idle_distinct_people"] <= 25,
    }  # fmt: skip
    return out


def markdown(report):
    s, m = report["systems"]["project"], report["summary"]
    mach = report["machine"]
    lines = [
        f"# Presence and typing under load, {report['started']}",
        "",
        f"Commit {report['code']['commit']}"
        + (" (with uncommitted changes)" if report["code"]["uncommitted_app_changes"] else "")
        + f": `{report['command']}` ({report['elapsed_s']:.0f} s). Machine: {mach['cores']} cores"
        f" ({mach['cpu']}), load average {mach['load_average_at_start'][0]:.1f} at the start,"
        f" {mach['load_average_at_end'][0]:.1f} at the end (shared with other work).",
        "",
        "| measure | without | with | goal |",
        "| --- | ---: | ---: | --- |",
        f"| knee (deliveries/s), {report['config']['sockets']} sockets, "
        f"{report['config']['typists']} typing every 2 s | {m['knee_without_typing']:,.0f} | "
        f"{m['knee_with_typing']:,.0f} ({m['knee_ratio']}x) | >= 0.8x |",
        f"| p99 at {report['config']['churn_at']:,.0f}/s, {report['config']['churn_rate']} "
        f"connects + disconnects/s | {', '.join(f'{v:.0f}' for v in m['no_churn_p99_ms'])} ms | "
        f"{', '.join(f'{v:.0f}' for v in m['churn_p99_ms'])} ms (distinct people); "
        f"{', '.join(f'{v:.0f}' for v in m['churn_one_person_p99_ms'])} ms (one person, "
        "no presence change) | <= 250 ms |",
        f"| RSS per idle socket, {report['config']['idle_sockets']:,} sockets | "
        f"{m.get('rss_kib_idle_one_person', '-')} KiB (one person) | "
        f"{m.get('rss_kib_idle_distinct_people', '-')} KiB ({report['config']['idle_sockets']:,} people) | <= 25 KiB |",
        "",
        "Goals: "
        + "; ".join(
            f"{k}: {'not measured' if v is None else 'met' if v else 'NOT met'}"
            for k, v in m["goals"].items()
        ),
        "",
        "## Steps",
        "",
        "| phase | offered/s | achieved/s | delivered | p50 ms | p99 ms | server CPU % | other CPU % | ok |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]  # fmt: skip
    after = [k for k in m if k.endswith("_after_another")]
    if after:
        lines[-4:-4] = [
            "",
            "RSS measured after another measure on the same server (memory it freed stays "
            "with the process, so not comparable; run `--idle-modes people --no-load` for the "
            "figure): " + ", ".join(f"{k}: {m[k]} KiB" for k in after),
        ]
    rows = [("no typing", st) for st in s.get("without_typing", [])]
    rows += [("typing", st) for st in s.get("with_typing", [])]
    rows += [
        (f"churn ({st['churning']})" if st["churning"] else "no churn", st)
        for st in s.get("churn_steps", [])
    ]
    for phase, st in rows:
        lines.append(
            f"| {phase} | {st['offered_per_s']:,.0f} | {st['achieved_per_s']:,.0f} | "
            f"{st['fraction']:.4f} | {st['p50_ms']} | {st['p99_ms']} | {st['server_cpu_pct']} | "
            f"{st['other_cpu_pct']} | {'yes' if st['ok'] else 'no'} |"
        )
    churns = [(st["churning"], st["churn"]) for st in s.get("churn_steps", []) if st.get("churn")]
    if churns:
        lines += ["", "Churn achieved: " + "; ".join(
            f"{mode}: {c['opened']} opened ({c['per_s']}/s), {c['failed']} failed, open p50 "
            f"{c['open_p50_ms']} ms p99 {c['open_p99_ms']} ms" for mode, c in churns)]  # fmt: skip
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=500)
    parser.add_argument("--typists", type=int, default=20)
    parser.add_argument("--rates", default="2500,5000,7500,10000,15000,20000,30000,40000")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--idle-sockets", type=int, default=2000)
    parser.add_argument("--churn-rate", type=float, default=200)
    parser.add_argument("--churn-at", type=float, default=5000)
    parser.add_argument("--churn-hold", type=float, default=1.0)
    parser.add_argument("--churn-repeats", type=int, default=2)
    parser.add_argument("--churn-people", type=int, default=600)
    parser.add_argument(
        "--idle-modes", default="people", help="idle RSS: one (bench user), people; in order"
    )
    parser.add_argument("--no-load", action="store_true", help="idle RSS only")
    parser.add_argument(
        "--profile-churn", action="store_true", help="py-spy on the server in the first churn steps"
    )
    parser.add_argument(
        "--churn-modes",
        default=",people,one",
        help="per repeat, in order: '' (no churn), people (distinct), one (the bench user)",
    )
    parser.add_argument("--posters", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--compression", choices=("deflate", "off"), default="deflate")
    parser.add_argument("--nice", type=int, default=-10)
    parser.add_argument("--redis-url", default=None)
    args = parser.parse_args(argv)
    args.rate_list = [float(r) for r in args.rates.split(",") if r]
    args.idle_modes = [mode for mode in args.idle_modes.split(",") if mode]
    args.churn_modes = [mode or None for mode in args.churn_modes.split(",")]
    args.compression = None if args.compression == "off" else args.compression
    # What bench.run.Bench reads.
    args.drain_quiet, args.drain_max, args.profile, args.profile_gil = 3.0, 20.0, None, False
    return args


def main(argv=None):
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
        "command": "python bench/people.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "code": code_version(),
        "machine": machine(),
        "config": {
            k: getattr(args, k)
            for k in (
                "sockets",
                "typists",
                "rate_list",
                "duration",
                "idle_sockets",
                "churn_rate",
                "churn_at",
                "churn_hold",
                "churn_repeats",
                "churn_people",
                "posters",
                "workers",
                "nice",
            )
        }
        | {"knee_p99_ms": KNEE_P99_MS, "typing_every_s": TYPING_EVERY},
    }
    t0 = time.monotonic()
    try:
        report["systems"] = {"project": loadgen.run_loop(run(args, redis_url))}
    finally:
        if private:
            private.stop()
    report["elapsed_s"] = round(time.monotonic() - t0, 1)
    report["machine"]["load_average_at_end"] = list(os.getloadavg())
    report["summary"] = summarise(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"people-{stamp}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    md = markdown(report)
    path.with_suffix(".md").write_text(md)
    print()
    print(md)
    print(f"wrote {path.relative_to(ROOT)} and .md")


if __name__ == "__main__":
    main()
