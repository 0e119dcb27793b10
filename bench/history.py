"""Big history stays cheap: room page and "load older" with 1,000,000 messages vs none.

    python bench/history.py                      # SQLite and PostgreSQL, 1,000,000 messages
    python bench/history.py --count 100000 --repeat 100 --databases sqlite   # a quick look

For each database (a fresh SQLite file; a fresh PostgreSQL database, created and dropped
here), with Redis at 127.0.0.1:6379/12 (flushed) as the cache the way a deployment has it
(the pages keep rendered message fragments there), it migrates with the Procfile's
`release:` command, then seeds three rooms with
`manage.py seed_messages`: `empty` (no messages), `small` (200, a few pages) and `big`
(--count). Then it times, IN PROCESS with the Django test Client (the full Django stack:
middleware, session, auth, view, template; no HTTP server, so nothing dilutes the
difference), these requests of a logged-in user, round-robin, many times:

    room         GET /chat/<slug>/
    older-mid    GET /chat/<slug>/?before=<middle of the history>  with HX-Request (fragment)
    older-start  GET /chat/<slug>/?before=51                        with HX-Request (fragment)

and reports median and p95 per room, the ratio big/empty (the issue's goal: <= 1.5x) and
big/small (the same 50 messages rendered, so only the history's size differs), the
number of queries of each request, and the EXPLAIN plan of the message query (it must
use the (room, seq) unique index and no sort). Writes bench/results/history.json.
"""

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/12"  # a db of its own, flushed before each database
SMALL = 200
PAGE_NOTE = "page size = CHAT_PAGE_SIZE (50)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="messages in the big room")
    parser.add_argument("--repeat", type=int, default=300, help="timed requests per case")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_PG))
    parser.add_argument(
        "--redis-url", default=os.environ.get("BENCH_HISTORY_REDIS_URL", DEFAULT_REDIS)
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "history.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: JSON output path
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    import redis

    from tests.support.servers import (
        drop_database,
        new_database,
        run_release,
        server_environment,
    )

    started = time.monotonic()
    results = {
        "bench": "history",
        "command": "python bench/history.py " + " ".join(sys.argv[1:]),
        "how": "in-process Django test Client (full middleware/session/auth/view/template), "
        "DEBUG=false, REDIS_URL set (cache in Redis), one logged-in user; requests "
        "round-robin over rooms and cases",
        "machine": machine(),
        "count": args.count,
        "repeat": args.repeat,
        "databases": {},
    }
    for vendor in [name.strip() for name in args.databases.split(",") if name.strip()]:
        url = new_database(vendor, args.postgres_url, prefix="chat_bench_history")
        try:
            # Redis as deployed: the cache (kept message fragments, sessions stay in the DB).
            redis.Redis.from_url(args.redis_url).flushdb()
            env = server_environment(redis_url=args.redis_url, database_url=url, DEBUG="false")
            env["ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"
            progress(f"[{vendor}] migrate + collectstatic (the Procfile's release step)")
            run_release(env, quiet=True)
            with tempfile.NamedTemporaryFile(suffix=".json") as out:
                subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--worker",
                        out.name,
                        "--count",
                        str(args.count),
                        "--repeat",
                        str(args.repeat),
                    ],
                    cwd=ROOT,
                    env=env,
                    check=True,
                )
                results["databases"][vendor] = json.loads(Path(out.name).read_text())
        finally:
            drop_database(url)
    results["seconds"] = round(time.monotonic() - started, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    progress("")
    print_table(results)
    print(f"\nwrote {os.path.relpath(args.out)} in {results['seconds']:.0f} s")


def worker(args):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from chat.models import Room

    vendor = connection.vendor
    tag = f"[{vendor}]"
    if vendor == "sqlite":
        # This throwaway bench file only: no fsync while seeding.
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA synchronous=OFF")

    seeding = {}
    for name, count in (("empty", 0), ("small", SMALL), ("big", args.count)):
        began = time.monotonic()
        call_command(
            "seed_messages",
            room=f"history {name}",
            count=count,
            seed=1,
            verbosity=2,
            stdout=ProgressWriter(f"{tag} seeding {name}: "),
        )
        seconds = time.monotonic() - began
        seeding[name] = {
            "messages": count,
            "seconds": round(seconds, 2),
            "rows_per_s": round(count / seconds) if count else None,
        }
    connection.close()
    rooms = {name: Room.objects.get(slug=f"history-{name}") for name in ("empty", "small", "big")}

    viewer = get_user_model().objects.create_user(username="history-viewer", password=None)
    client = Client()
    client.force_login(viewer)

    def requests_for(room):
        middle = max(room.last_seq // 2, 51)  # as selector_call
        path = f"/chat/{room.slug}/"
        return {
            "room": (path, {}),
            "older-mid": (f"{path}?before={middle}", {"HTTP_HX_REQUEST": "true"}),
            "older-start": (f"{path}?before=51", {"HTTP_HX_REQUEST": "true"}),
        }

    cases = [
        (room_name, case, path, headers)
        for room_name, room in rooms.items()
        for case, (path, headers) in requests_for(room).items()
    ]

    # What each request costs in queries, and the plan of its message query.
    # The first view of a page also reads and renders the messages the fragment cache does
    # not hold yet (one query for all of them); later views read the cache alone.
    queries, first_view_queries, plans = {}, {}, {}
    for room_name, case, path, headers in cases:
        with CaptureQueriesContext(connection) as first:
            client.get(path, **headers)
        first_view_queries[f"{room_name}/{case}"] = len(first.captured_queries)
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path, **headers)
        assert response.status_code == 200, (path, response.status_code)
        queries[f"{room_name}/{case}"] = len(captured.captured_queries)
        if room_name == "big":
            sql = next(q["sql"] for q in captured.captured_queries if "chat_message" in q["sql"])
            plans[case] = explain(connection, sql)
        if room_name != "empty":
            assert response.content.count(b'class="message"') == 50, (path, "not a full page")

    # Warm up, then time everything round-robin so machine noise hits all cases alike.
    timings = {(room_name, case): [] for room_name, case, _, _ in cases}
    for _ in range(10):
        for _, _, path, headers in cases:
            client.get(path, **headers)
    last = 0.0
    for rep in range(args.repeat):
        order = cases[:]
        random.shuffle(order)
        for room_name, case, path, headers in order:
            began = time.perf_counter()
            response = client.get(path, **headers)
            timings[room_name, case].append(time.perf_counter() - began)
            if response.status_code != 200:
                raise SystemExit(f"{path}: {response.status_code}")
        if time.monotonic() - last > 0.5:
            last = time.monotonic()
            big = timings["big", "room"]
            progress(
                f"{tag} timing {rep + 1}/{args.repeat} rounds; big room page median so far "
                f"{statistics.median(big) * 1000:.2f} ms"
            )

    # The message query alone (the selector the view calls), same rooms and positions.
    query_timings = {(room_name, case): [] for room_name, case, _, _ in cases}
    selector_calls = {
        (room_name, case): selector_call(room, case)
        for room_name, room in rooms.items()
        for case in ("room", "older-mid", "older-start")
    }
    for rep in range(args.repeat):
        order = list(selector_calls.items())
        random.shuffle(order)
        for key, call in order:
            began = time.perf_counter()
            call()
            query_timings[key].append(time.perf_counter() - began)
        if time.monotonic() - last > 0.5:
            last = time.monotonic()
            progress(f"{tag} timing the message query alone: {rep + 1}/{args.repeat} rounds")

    cases_out = {}
    for case in ("room", "older-mid", "older-start"):
        per_room = {}
        for room_name in rooms:
            samples = sorted(timings[room_name, case])
            per_room[room_name] = {
                "median_ms": round(statistics.median(samples) * 1000, 3),
                "p95_ms": round(percentile(samples, 95) * 1000, 3),
                "mean_ms": round(statistics.fmean(samples) * 1000, 3),
                "queries": queries[f"{room_name}/{case}"],
                "queries_first_view": first_view_queries[f"{room_name}/{case}"],
                "query_only_median_ms": round(
                    statistics.median(query_timings[room_name, case]) * 1000, 3
                ),
                "query_only_p95_ms": round(
                    percentile(query_timings[room_name, case], 95) * 1000, 3
                ),
            }
        big, empty, small = per_room["big"], per_room["empty"], per_room["small"]
        cases_out[case] = {
            "rooms": per_room,
            "ratio_big_empty_median": round(big["median_ms"] / empty["median_ms"], 3),
            "ratio_big_empty_p95": round(big["p95_ms"] / empty["p95_ms"], 3),
            "ratio_big_small_median": round(big["median_ms"] / small["median_ms"], 3),
            "ratio_big_small_p95": round(big["p95_ms"] / small["p95_ms"], 3),
            "ratio_big_small_query_only_median": round(
                big["query_only_median_ms"] / small["query_only_median_ms"], 3
            ),
            "queries_constant": big["queries"] == empty["queries"] == small["queries"]
            and big["queries_first_view"] == small["queries_first_view"],
            "explain": plans[case],
        }
    result = {
        "vendor": vendor,
        "server_version": server_version(connection),
        "seeding": seeding,
        "big_room_last_seq": rooms["big"].last_seq,
        "cases": cases_out,
    }
    Path(args.worker).write_text(json.dumps(result))


def selector_call(room, case):
    """The selector call the view makes for `case`, as a no-argument function."""
    from django.conf import settings

    from chat.selectors import messages as selectors

    limit = settings.CHAT_PAGE_SIZE
    if case == "room":
        return lambda: selectors.message_positions_latest(room, limit=limit, upto_seq=room.last_seq)
    before = max(room.last_seq // 2, 51) if case == "older-mid" else 51
    return lambda: selectors.message_positions_before(room, before_seq=before, limit=limit)


def explain(connection, sql):
    """The plan of the big room's message query, and whether it walks the (room, seq) index."""
    index = room_seq_index(connection)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
            lines = [row[0] for row in cursor.fetchall()]
            sorts = any(line.strip().lstrip("-> ").startswith("Sort") for line in lines)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + sql)
            lines = [row[-1] for row in cursor.fetchall()]
            sorts = any("TEMP B-TREE" in line for line in lines)
    message_lines = [line for line in lines if "chat_message" in line]
    return {
        "sql": sql,
        "plan": lines,
        "room_seq_index": index,
        "uses_room_seq_index": any(index in line for line in message_lines),
        "sorts": sorts,
    }


def room_seq_index(connection):
    """The name the database gives the unique index on chat_message (room_id, seq)."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            # A table constraint becomes an automatic index with a name of SQLite's choosing.
            cursor.execute("PRAGMA index_list(chat_message)")
            for row in cursor.fetchall():
                name = row[1]
                cursor.execute(f'PRAGMA index_info("{name}")')
                if [info[2] for info in cursor.fetchall()] == ["room_id", "seq"]:
                    return name
            return None
        constraints = connection.introspection.get_constraints(cursor, "chat_message")
    return next(
        name
        for name, info in constraints.items()
        if info["columns"] == ["room_id", "seq"] and info["unique"]
    )


def server_version(connection):
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
        else:
            cursor.execute("SELECT sqlite_version()")
        return cursor.fetchone()[0]


def percentile(samples, pct):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


# --- output ---


class ProgressWriter:
    """A stdout for the seed command: its per-batch lines become one progress line."""

    def __init__(self, prefix):
        self.prefix = prefix

    def write(self, text, *args, **kwargs):
        for line in text.splitlines():
            if line.strip():
                progress(self.prefix + line.strip())

    def flush(self):
        pass


def progress(text):
    sys.stderr.write("\r\033[K" + text[:150])
    if text.startswith("[") and "added" in text:
        sys.stderr.write("\n")
    sys.stderr.flush()


def machine():
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "note": "shared 2-core machine; other jobs may run at the same time",
    }


def print_table(results):
    print(f"History: {results['count']:,} messages vs an empty room; {results['how']}.")
    print(f"{results['repeat']} timed requests per room and case; {PAGE_NOTE}.\n")
    header = (
        f"{'db':<10} {'case':<12} {'empty ms':>13} {'small ms':>13} {'big ms':>13} "
        f"{'big/empty':>9} {'big/small':>9} {'query e/s/b ms':>16} {'q b/s':>6} "
        f"{'queries':>7} {'index':>5}"
    )
    print(header + "\n" + "-" * len(header))
    for vendor, data in results["databases"].items():
        for case, row in data["cases"].items():
            rooms = row["rooms"]

            def cell(name, rooms=rooms):
                return f"{rooms[name]['median_ms']:.1f}/{rooms[name]['p95_ms']:.1f}"

            query_only = "/".join(
                f"{rooms[n]['query_only_median_ms']:.1f}" for n in ("empty", "small", "big")
            )
            queries = "/".join(str(rooms[n]["queries"]) for n in ("empty", "small", "big"))
            ok_index = row["explain"]["uses_room_seq_index"] and not row["explain"]["sorts"]
            print(
                f"{vendor:<10} {case:<12} {cell('empty'):>13} {cell('small'):>13} "
                f"{cell('big'):>13} {row['ratio_big_empty_median']:>8.2f}x "
                f"{row['ratio_big_small_median']:>8.2f}x {query_only:>16} "
                f"{row['ratio_big_small_query_only_median']:>5.2f}x {queries:>7} "
                f"{'yes' if ok_index else 'NO':>5}"
            )
    print(
        "\nms = median/p95 of a whole request; ratios of medians (goal big/empty <= 1.5x).\n"
        f"small = {SMALL} messages: the same 50 messages on the page as big, so big/small is the\n"
        "cost of the history's size alone; empty renders no message at all. query e/s/b = the\n"
        "message query alone (the view's selector call), median per\n"
        "room; q b/s = its big/small ratio. queries = per request for empty/small/big once\n"
        "the page's fragments are kept (a page's first view: one more, empty room excepted).\n"
        "index = EXPLAIN walks the (room, seq) unique index, no sort."
    )
    for vendor, data in results["databases"].items():
        seed = data["seeding"]["big"]
        print(
            f"\n{vendor} {data['server_version']}: seeded {seed['messages']:,} messages in "
            f"{seed['seconds']:.1f} s ({seed['rows_per_s']:,}/s)"
        )
        for case, row in data["cases"].items():
            plan = [line.strip() for line in row["explain"]["plan"]]
            steps = [line for line in plan if "chat_message" in line] or plan[:1]
            print(f"  {case:<12} {' | '.join(steps)}")


if __name__ == "__main__":
    main()
