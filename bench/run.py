"""Fan-out benchmark: the project against the Channels tutorial and a bare ASGI floor.

    .venv/bin/python bench/run.py            # full run, about 10-15 minutes on 2 cores
    .venv/bin/python bench/run.py --quick    # smoke run, about 2 minutes

One after another, on free localhost ports, it starts
  project   this project exactly as the Procfile's `web:` line runs it (release step first,
            a fresh database, a private redis-server, CHAT_RATE_LIMIT_EXEMPT=the bench user,
            every other limit as deployed); `--processes 2` runs two such processes;
  tutorial  bench/tutorial/, the official Channels tutorial chat (daphne, RedisChannelLayer,
            one group member per socket, JSON frames);
  floor     bench/floor.py, a bare ASGI broadcast loop under daphne;
  project-mix  the project again, with a mixed workload (--mix, 70% posts, 20% reactions,
            10% edits of earlier messages; every delivery counted by its event number);
and for each: measures RSS per idle socket, opens --sockets receivers in one room, posts
at stepped rates and reports deliveries/s, delivered fraction, latency percentiles and
server CPU per 1,000 deliveries. See bench/README.md.
"""

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import loadgen  # noqa: E402
from bench.loadgen import (  # noqa: E402
    Posters,
    Target,
    WorkerPool,
    machine_busy_seconds,
    rss_bytes,
)
from bench.loadgen import worker_pids_cpu_seconds as cpu_seconds  # noqa: E402
from bench.plot import KNEE_P99_MS, plot  # noqa: E402

RESULTS = ROOT / "bench" / "results"
# Experiments only (pip install uvicorn): uvicorn's defaults, i.e. uvloop when installed and
# permessage-deflate accepted when the client offers it (--compression off to compare).
UVICORN = (
    "uvicorn --host 127.0.0.1 --port $PORT --ws websockets-sansio --no-access-log --lifespan off"
)
BENCH_USER = "bench"
DEFAULT_RATES = "500,1000,2500,5000,7500,10000,15000,20000,30000,40000,50000,60000,70000,80000"
QUICK_RATES = "500,1000,2500,5000"
WARM_UP_SECONDS = 5  # traffic after the sockets open, before the first step
MIN_MESSAGES = 20  # per step, see Bench.run_system
PRIME_SOCKETS = 100  # opened and closed before the empty RSS reading, see Bench.idle_rss
DEFAULT_SYSTEMS = "project,project-mix,tutorial,floor"
DEFAULT_MIX = "70,20,10"  # posts, reactions, edits
SYSTEM_NAMES = (
    "project",
    "project-mix",
    "project-pubsub",
    "project-exp",
    "project-uvicorn",
    "tutorial",
    "floor",
    "floor-uvicorn",
)


# --- the systems under test ---


class ProjectSystem:
    """This project, started as the Procfile starts it, with its release step first."""

    def __init__(
        self,
        name,
        *,
        redis_url,
        processes=1,
        settings_module=None,
        asgi=None,
        database="sqlite",
        env=None,
        server="daphne",
        mix=None,
    ):
        self.name = name
        self.mix = mix  # (posts, reactions, edits) weights: the mixed workload
        self.redis_url = redis_url
        self.processes = processes
        self.settings_module = settings_module
        self.asgi = asgi  # experiments only: another ASGI application than project.asgi's
        self.database = database
        self.temp_dir = None
        self.env_overrides = dict(env or {})
        self.server = server
        self.webs = []
        self.database_url = None
        self.session = None
        self.slugs = {}

    def start(self):
        from tests.support.accounts import HttpSession
        from tests.support.servers import (
            WebProcess,
            fresh_database_url,
            run_release,
            server_environment,
        )

        if self.database == "postgres":
            base = os.environ.get("DATABASE_URL", "")
            if not base.startswith(("postgres://", "postgresql://")):
                os.environ["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/test"
            self.database_url = fresh_database_url()  # a new database next to DATABASE_URL's
        else:
            # On tmpfs when there is one: the disk of a shared machine stalls commits now and
            # then, and this benchmark is about fan-out, not fsync.
            shm = Path("/dev/shm")  # noqa: S108 - mkdtemp makes a private directory in it
            self.temp_dir = tempfile.mkdtemp(
                prefix="bench-chat-", dir=shm if shm.is_dir() else None
            )
            self.database_url = f"sqlite:///{self.temp_dir}/db.sqlite3"
        extra = {"CHAT_RATE_LIMIT_EXEMPT": BENCH_USER, "CHAT_LOG_LEVEL": "WARNING"}
        if self.settings_module:
            extra["DJANGO_SETTINGS_MODULE"] = self.settings_module
        extra.update(self.env_overrides)
        env = server_environment(redis_url=self.redis_url, database_url=self.database_url, **extra)
        self.env = env  # bench/people.py creates its users with the same SECRET_KEY
        run_release(env, quiet=True)
        for index in range(self.processes):
            kind = _VariantWeb if self.asgi or self.server != "daphne" else WebProcess
            web = kind(env, name=f"bench-{self.name}.{index + 1}")
            web.command = self.command
            self.webs.append(web)
            web.start(timeout=60)
        self.session = HttpSession(self.webs[0].url).sign_up(BENCH_USER)
        for room in ("fanout", "idle"):
            self.slugs[room] = self.session.open_room(f"bench {room} {uuid.uuid4().hex[:6]}")

    @property
    def command(self):
        if self.server == "uvicorn":
            return f"{UVICORN} --proxy-headers {self.asgi or 'project.asgi:application'}"
        command = _procfile_web()
        if self.asgi:
            command = command.replace("project.asgi:application", self.asgi)
        return command

    def pids(self):
        return [web.process.pid for web in self.webs if web.process]

    def targets(self, room):
        slug = self.slugs[room]
        headers = tuple(self.session.socket_headers().items())
        return [
            Target(
                url=f"{web.ws_url}/ws/chat/{slug}/?after=0",
                origin=web.url,
                headers=headers,
                kind="project",
                page_url=f"{web.url}/chat/{slug}/",
                count_events=bool(self.mix),
            )
            for web in self.webs
        ]

    def describe(self):
        return {
            "command": self.command,
            "processes": self.processes,
            "mix": dict(zip(loadgen.KIND_NAMES, self.mix, strict=True)) if self.mix else None,
            "settings": self.settings_module or "project.settings",
            "database": self.database_url.split(":", 1)[0] if self.database_url else None,
            "database_on_tmpfs": bool(self.temp_dir and self.temp_dir.startswith("/dev/shm/")),  # noqa: S108
        }

    def logs(self):
        return {web.name: str(web.log_path) for web in self.webs}

    def stop(self):
        for web in self.webs:
            with contextlib.suppress(Exception):
                web.stop()
        if self.database_url:
            from tests.support.servers import drop_database

            with contextlib.suppress(Exception):
                drop_database(self.database_url)
        if self.temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


class CommandSystem:
    """A daphne process serving one ASGI application (the tutorial or the floor)."""

    def __init__(self, name, *, application, cwd, env, server="daphne"):
        self.name = name
        self.server = server
        self.application = application
        self.cwd = cwd
        self.env = env
        self.port = None
        self.process = None
        self.log_path = None

    @property
    def command(self):
        if self.server == "uvicorn":
            return f"{UVICORN} {self.application}"
        return (
            "daphne --bind 127.0.0.1 --port $PORT --websocket_timeout -1 "
            f"--proxy-headers {self.application}"
        )

    def start(self, timeout=60):
        from tests.support.redis import free_port

        self.port = free_port()
        self.log_path = Path(tempfile.gettempdir()) / f"bench-{self.name}-{self.port}.log"
        env = {**self.env, "PORT": str(self.port)}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                ["bash", "-c", "exec " + self.command],
                cwd=self.cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # it answers
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not answer on port {self.port}")
            time.sleep(0.1)

    def pids(self):
        return [self.process.pid] if self.process else []

    def targets(self, room):
        return [
            Target(
                url=f"ws://127.0.0.1:{self.port}/ws/chat/bench{room}/",
                origin=f"http://127.0.0.1:{self.port}",
                kind="json",
            )
        ]

    mix = None  # a reaction or an edit would be one more broadcast of the same size

    def describe(self):
        return {"command": self.command, "processes": 1, "cwd": str(self.cwd)}

    def logs(self):
        return {self.name: str(self.log_path)}

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.process = None


def _variant_web_class():
    from tests.support import servers

    class VariantWeb(servers.WebProcess):
        """A web process started with another command than the Procfile's (experiments)."""

        command = None

        def start(self, timeout=30):
            original = servers.procfile_command
            servers.procfile_command = lambda kind: self.command
            try:
                return super().start(timeout)
            finally:
                servers.procfile_command = original

    return VariantWeb


class _LazyVariant:
    def __call__(self, *args, **kwargs):
        return _variant_web_class()(*args, **kwargs)


_VariantWeb = _LazyVariant()


def _procfile_web():
    from tests.support.servers import procfile_command

    return procfile_command("web")


def _plain_env(**extra):
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "CHAT_", "PYTEST"))
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def make_system(name, *, redis_url, processes, experiment=None, database="sqlite", mix=None):
    if name == "project":
        label = "project" if processes == 1 else f"project-{processes}p"
        return ProjectSystem(label, redis_url=redis_url, processes=processes, database=database)
    if name == "project-mix":
        label = "project-mix" if processes == 1 else f"project-mix-{processes}p"
        return ProjectSystem(
            label, redis_url=redis_url, processes=processes, database=database, mix=mix
        )
    if name == "project-pubsub":
        return ProjectSystem(
            name,
            redis_url=redis_url,
            processes=processes,
            settings_module="bench.variants.pubsub_settings",
            database=database,
        )
    if name == "project-uvicorn":
        return ProjectSystem(
            name, redis_url=redis_url, processes=processes, database=database, server="uvicorn"
        )
    if name == "floor-uvicorn":
        return CommandSystem(
            name,
            application="bench.floor:application",
            cwd=ROOT,
            env=_plain_env(PYTHONPATH=str(ROOT)),
            server="uvicorn",
        )
    if name == "project-exp":  # experiments: --exp-settings and/or --exp-asgi
        return ProjectSystem(
            name,
            redis_url=redis_url,
            processes=processes,
            settings_module=experiment["settings"],
            asgi=experiment["asgi"],
            env=experiment["env"],
            database=database,
        )
    if name == "tutorial":
        tutorial = ROOT / "bench" / "tutorial"
        env = _plain_env(
            DJANGO_SETTINGS_MODULE="mysite.settings",
            REDIS_URL=redis_url,
            PYTHONPATH=str(tutorial),
            TUTORIAL_DB=str(Path(tempfile.mkdtemp(prefix="bench-tutorial-")) / "db.sqlite3"),
        )
        return CommandSystem(name, application="mysite.asgi:application", cwd=tutorial, env=env)
    if name == "floor":
        return CommandSystem(
            name,
            application="bench.floor:application",
            cwd=ROOT,
            env=_plain_env(PYTHONPATH=str(ROOT)),
        )
    raise ValueError(f"unknown system {name!r}; choose from {', '.join(SYSTEM_NAMES)}")


# --- progress on the terminal ---


class Progress:
    def __init__(self):
        self.tty = sys.stderr.isatty()
        self.width = 0

    def show(self, text):
        if self.tty:
            line = text[:150]
            sys.stderr.write("\r" + line + " " * max(0, self.width - len(line)))
            sys.stderr.flush()
            self.width = len(line)

    def say(self, text):
        if self.tty and self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            self.width = 0
        print(text, flush=True)


# --- measuring ---


class Meter:
    """CPU seconds of the server, the load generator and Redis over one interval."""

    def __init__(self, server_pids, loadgen_pids, redis_pid):
        self.server_pids = server_pids
        self.loadgen_pids = loadgen_pids
        self.redis_pids = [redis_pid] if redis_pid else []

    def read(self):
        return (
            time.monotonic(),
            cpu_seconds(self.server_pids),
            cpu_seconds(self.loadgen_pids),
            cpu_seconds(self.redis_pids),
            machine_busy_seconds(),
        )


async def settle(pids, *, quiet=0.05, longest=20.0):
    """Wait until these processes use under `quiet` of a core for half a second."""
    deadline = time.monotonic() + longest
    before = cpu_seconds(pids)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        after = cpu_seconds(pids)
        if after - before < quiet * 0.5:
            return True
        before = after
    return False


def prioritise(pid, nice):
    """Raise a process's CPU priority, and its autogroup's.

    With autogroup scheduling (kernel.sched_autogroup_enabled=1, common on Linux) each
    session competes as one group, whatever the nice values inside it: a server started
    in a session of its own on a shared machine gets 1/k of the CPU when k sessions are
    busy. Writing the group's nice value is what raises its share.
    """
    done = []
    try:
        os.setpriority(os.PRIO_PROCESS, pid, nice)
        done.append("process")
    except OSError:
        pass
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))
        done.append("autogroup")
    except OSError:
        pass
    return done


def percentile(values, fraction):
    import numpy

    return float(numpy.percentile(values, fraction * 100)) if len(values) else None


class Bench:
    def __init__(self, args, pool, progress, redis_pid):
        self.args = args
        self.pool = pool
        self.progress = progress
        self.redis_pid = redis_pid
        self.step_id = 0
        self.counters = {"duplicates": 0, "disorder": 0}

    def next_step(self):
        self.step_id += 1
        return self.step_id

    async def run_system(self, system):
        args = self.args
        say = self.progress.say
        result = {"name": system.name, "sockets": args.sockets, "steps": []}
        posters = None
        try:
            meter, posters = await self.start(system, result)
            # The mixed workload runs the same server as `project`: its idle sockets cost
            # the same, so the RSS measure is not repeated.
            if args.idle_sockets and not system.mix:
                result["idle"] = await self.idle_rss(system)
                say(
                    f"[{system.name}] RSS per idle socket: "
                    f"{result['idle']['rss_per_socket_kib']:.1f} KiB "
                    f"({result['idle']['opened']} sockets; slope over the second half "
                    f"{result['idle']['rss_slope_kib']:.1f} KiB)"
                )
            self.progress.show(f"[{system.name}] opening {args.sockets} sockets")
            opened = await self.pool.connect(
                "fanout", system.targets("fanout"), args.sockets, args.compression
            )
            result["connect"] = opened
            say(
                f"[{system.name}] {opened['opened']} sockets open, {opened['failed']} failed; "
                f"compression offered: {args.compression or 'none'}, "
                f"negotiated: {', '.join(opened['extensions']) or '-'}"
            )
            if opened["failed"]:
                result["error"] = f"sockets failed to open: {opened['errors']}"
                return result
            await self.warm_up(system, posters, meter, result)
            watch = KneeWatch()
            for index, rate in enumerate(args.rate_list):
                label = f"[{system.name}] step {index + 1}/{len(args.rate_list)}"
                step = await self.step(
                    system, posters, meter, rate=rate, duration=self.seconds(rate), label=label
                )
                result["steps"].append(step)
                say(f"[{system.name}] {format_step(step)}")
                if watch.past_knee(step):
                    say(f"[{system.name}] past its knee: stopping here")
                    break
            if args.profile and system.name.startswith("project"):
                result["profile"] = await self.profile(system, posters, meter)
            result["knee"] = knee(result["steps"])
            if posters.ledger:
                result["event_bytes"] = posters.ledger.event_sizes()
                result["events_unmatched"] = posters.ledger.unmatched
            return result
        finally:
            with contextlib.suppress(Exception):
                await self.pool.close("fanout")
            if posters is not None:
                with contextlib.suppress(Exception):
                    await posters.close()
            system.stop()

    async def start(self, system, result):
        """Start `system`, open its posters and warm it up with one socket and a few
        messages (so lazy imports and pools exist); returns (meter, posters). The caller
        stops the system, and closes the posters once they are returned."""
        self.progress.say(f"[{system.name}] starting")
        system.start()
        result["server"] = system.describe()
        result["logs"] = system.logs()
        pids = system.pids()
        if self.args.nice:
            result["priority"] = {pid: prioritise(pid, self.args.nice) for pid in pids}
        meter = Meter(pids, [*self.pool.pids, os.getpid()], self.redis_pid)
        await self.pool.reset()  # what the workers saw of an earlier system goes
        self.counters = {"duplicates": 0, "disorder": 0}
        posters = Posters(
            system.targets("fanout"), self.args.posters, self.args.compression, mix=system.mix
        )
        try:
            await posters.open()
            await self.pool.connect("warm", system.targets("fanout"), 1, self.args.compression)
            await self.step(system, posters, meter, rate=5, sockets=1, duration=1, record=False)
            await self.pool.close("warm")
        except BaseException:
            with contextlib.suppress(Exception):
                await posters.close()
            raise
        return meter, posters

    async def warm_up(self, system, posters, meter, result):
        """Traffic not measured, once the receivers are open: the server has just taken on
        hundreds of sockets, and the first collections over them (tens of ms each) belong
        to the connect, not to a step."""
        await settle(meter.server_pids)
        check = await self.step(
            system, posters, meter, rate=5 * self.args.sockets, duration=WARM_UP_SECONDS,
            record=False,
        )  # fmt: skip
        if check["delivered"] < check["expected"]:
            result["error"] = f"warm-up lost frames: {check}"
            self.progress.say(
                f"[{system.name}] warm-up lost frames: {check['delivered']}/{check['expected']}"
            )
        return check

    def seconds(self, rate):
        """A step's length: at least MIN_MESSAGES messages, for with fewer, one scheduling
        hiccup of a shared machine delays a whole message, i.e. >1% of the deliveries."""
        return max(self.args.duration, MIN_MESSAGES * self.args.sockets / rate)

    async def step(
        self,
        system,
        posters,
        meter,
        *,
        rate,
        duration,
        sockets=None,
        label=None,
        record=True,
        during=None,
    ):
        """Post at `rate` deliveries/s for `duration` s, wait for the frames, summarise."""
        sockets = sockets or self.args.sockets
        step_id = self.next_step()
        messages_per_s = rate / sockets
        before = meter.read()
        rejected_before = posters.rejected
        posting = asyncio.create_task(posters.post(step_id, messages_per_s, duration))
        extra = asyncio.create_task(during()) if during else None
        started = time.monotonic()
        ledger = posters.ledger  # the mixed workload: deliveries counted by event number

        async def delivered_so_far():
            if ledger is None:
                return await self.pool.count(step_id)
            return await self.pool.count_events(ledger.step_seqs(step_id))

        while not posting.done():
            if label:
                delivered = await delivered_so_far()
                self.progress.show(
                    f"{label}: offering {rate:,.0f}/s  {time.monotonic() - started:4.1f}/"
                    f"{duration:.0f} s  delivered {delivered:,}"
                )
            await asyncio.wait([posting], timeout=1.0)
        sent = posting.result()
        expected = sent["sent"] * sockets
        # Drain: wait for the frames still on their way, until no more arrive.
        sent_done = time.monotonic()
        last_count, last_change = -1, sent_done
        while True:
            count = await delivered_so_far()
            now = time.monotonic()
            if count >= expected:
                break
            if count != last_count:
                last_count, last_change = count, now
            elif now - last_change > self.args.drain_quiet:
                break
            if now - sent_done > self.args.drain_max:
                break
            if label:
                self.progress.show(f"{label}: draining  delivered {count:,}/{expected:,}")
            await asyncio.sleep(0.2)
        after = meter.read()
        profile = await extra if extra else None
        if ledger is None:
            got = await self.pool.collect(step_id)
        else:
            got = await self.pool.collect_events(ledger.step_sent(step_id))
            unseen = ledger.unseen(step_id)
            ledger.forget(step_id)
        latencies = got["latencies_ms"]
        delivered = len(latencies)
        span_s = max(
            (sent["last_us"] - sent["first_us"]) / 1e6 + 1 / messages_per_s,
            (got["last_us"] - got["first_us"]) / 1e6 if delivered else 0,
            1e-3,
        )
        wall = after[0] - before[0]
        step = {
            "offered_per_s": rate,
            "messages_per_s": round(messages_per_s, 3),
            "duration_s": duration,
            "sent": sent["sent"],
            "expected": expected,
            "delivered": delivered,
            "fraction": round(delivered / expected, 6) if expected else 0.0,
            "achieved_per_s": round(delivered / span_s, 1),
            "p50_ms": _round(percentile(latencies, 0.50)),
            "p95_ms": _round(percentile(latencies, 0.95)),
            "p99_ms": _round(percentile(latencies, 0.99)),
            "max_ms": _round(max(latencies) if delivered else None),
            "server_cpu_s": round(after[1] - before[1], 3),
            "server_cpu_s_per_1k": _round((after[1] - before[1]) / delivered * 1000, 4)
            if delivered
            else None,
            "server_cpu_pct": round(100 * (after[1] - before[1]) / wall, 1),
            "loadgen_cpu_pct": round(100 * (after[2] - before[2]) / wall, 1),
            "redis_cpu_pct": round(100 * (after[3] - before[3]) / wall, 1),
            # Busy CPU of the whole machine not used by the server, the load generator or
            # Redis: other work on a shared machine, which the figures then suffer from.
            "other_cpu_pct": round(
                100
                * ((after[4] - before[4]) - sum(after[i] - before[i] for i in (1, 2, 3)))
                / wall,
                1,
            ),
            "duplicates": got["duplicates"] - self.counters["duplicates"],
            "out_of_order": got["disorder"] - self.counters["disorder"],
            "closed_by_server": got["closed"],
            "posts_rejected": posters.rejected - rejected_before,
        }
        if ledger is not None:
            # What each kind of operation was, how long its events took, and operations
            # whose event the observing socket never saw (then counted as not delivered).
            step["operations"] = sent["kinds"]
            step["operations_unseen"] = unseen
            for name, part in got["by_kind"].items():
                step[f"{name}_p50_ms"] = _round(percentile(part, 0.50))
                step[f"{name}_p99_ms"] = _round(percentile(part, 0.99))
        self.counters = {"duplicates": got["duplicates"], "disorder": got["disorder"]}
        step["ok"] = bool(
            delivered == expected
            and expected > 0
            and step["p99_ms"] is not None
            and step["p99_ms"] <= KNEE_P99_MS
            and step["duplicates"] == 0
            and step["out_of_order"] == 0
        )
        if profile:
            step["profile"] = profile
        return step

    async def idle_rss(self, system):
        """RSS of the server with N idle sockets minus with none, per socket.

        A burst of PRIME_SOCKETS connections is opened and closed first, so that one-time
        costs of a process (thread pools and their malloc arenas, database connections and
        caches, lazily imported code) are paid before the empty reading. The slope between
        N/2 and N sockets, which no fixed cost can reach, is reported as a cross-check.
        """
        pids = system.pids()
        targets, compression, total = system.targets("idle"), self.args.compression, 0
        self.progress.show(f"[{system.name}] priming with {PRIME_SOCKETS} sockets")
        await self.pool.connect("prime", targets, PRIME_SOCKETS, compression)
        await self.pool.close("prime")
        await settle(pids)
        rss_empty = rss_bytes(pids)
        readings, opened = [], {"opened": 0, "failed": 0, "errors": []}
        for part in (
            self.args.idle_sockets // 2,
            self.args.idle_sockets - self.args.idle_sockets // 2,
        ):
            self.progress.show(f"[{system.name}] opening {part} idle sockets ({total} open)")
            got = await self.pool.connect("idle", targets, part, compression)
            for key in ("opened", "failed"):
                opened[key] += got[key]
            opened["errors"] += got["errors"]
            total += got["opened"]
            await settle(pids)
            readings.append((total, rss_bytes(pids)))
        (half_count, rss_half), (count, rss_full) = readings
        self.progress.show(f"[{system.name}] closing the idle sockets")
        await self.pool.close("idle")
        await settle(pids)
        rss_after = rss_bytes(pids)
        return {
            "opened": opened["opened"],
            "failed": opened["failed"],
            "errors": opened["errors"][:3],
            "primed_with": PRIME_SOCKETS,
            "rss_empty_mib": round(rss_empty / 2**20, 1),
            "rss_half_mib": round(rss_half / 2**20, 1),
            "rss_full_mib": round(rss_full / 2**20, 1),
            "rss_after_close_mib": round(rss_after / 2**20, 1),
            "rss_per_socket_kib": round((rss_full - rss_empty) / max(count, 1) / 1024, 2),
            "rss_slope_kib": round((rss_full - rss_half) / max(count - half_count, 1) / 1024, 2),
        }

    async def profile(self, system, posters, meter, *, also=None):
        """py-spy on the (first) server process during one extra step at --profile's rate.
        `also`: a coroutine function run during the step as well (more traffic)."""
        py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which(
            "py-spy"
        )
        if not py_spy:
            return {"error": "py-spy not found"}
        rate = self.args.profile
        seconds = max(2, int(self.args.duration) - 1)
        gil = "-gil" if self.args.profile_gil else ""
        out = RESULTS / f"profile-{system.name}-{int(rate)}{gil}.txt"
        pid = system.pids()[0]

        async def record():
            process = await asyncio.create_subprocess_exec(
                py_spy, "record", "--pid", str(pid), "--duration", str(seconds),
                "--rate", "200", "--format", "raw", "--nonblocking", "--output", str(out),
                *(["--gil"] if self.args.profile_gil else []),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            _, error = await process.communicate()
            return error.decode(errors="replace")[-500:] if process.returncode else None

        async def recorded():
            results = await asyncio.gather(record(), *([also()] if also else []))
            return results[0]

        label = f"[{system.name}] profiling with py-spy"
        step = await self.step(
            system, posters, meter, rate=rate, duration=self.args.duration, label=label,
            during=recorded,
        )  # fmt: skip
        step.pop("profile", None)
        summary = summarise_profile(out) if out.exists() else {}
        self.progress.say(f"[{system.name}] profiled step: {format_step(step)}")
        for line in summary.get("self", [])[:12]:
            self.progress.say(f"    {line['percent']:5.1f}% self  {line['frame']}")
        return {
            "rate": rate,
            "gil_only": self.args.profile_gil,
            "file": str(out.relative_to(ROOT)),
            "step": step,
            **summary,
        }


def summarise_profile(path, top=30):
    """Hottest frames of py-spy's collapsed stacks: by own time and including callees."""
    own, inclusive, total = {}, {}, 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        count = int(count)
        total += count
        frames = [frame for frame in stack.split(";") if frame]
        if not frames:
            continue
        leaf = frames[-1]
        own[leaf] = own.get(leaf, 0) + count
        for frame in {_without_line(frame) for frame in frames}:
            inclusive[frame] = inclusive.get(frame, 0) + count

    def ranked(table):
        rows = sorted(table.items(), key=lambda item: -item[1])[:top]
        return [{"frame": frame, "percent": round(100 * n / total, 2)} for frame, n in rows]

    return {"samples": total, "self": ranked(own), "inclusive": ranked(inclusive)}


def _without_line(frame):
    # "function (path/file.py:123)" -> "function (path/file.py)"
    head, _, tail = frame.rpartition(":")
    return f"{head})" if tail.rstrip(")").isdigit() else frame


def _round(value, digits=1):
    return None if value is None else round(value, digits)


class KneeWatch:
    """When to stop stepping up. A failed step is past the knee when the system no longer
    keeps up (frames lost, throughput short of the offer, or most frames late), not when a
    noisy p99 alone missed: stepping on then may still find a higher passing step. Stops
    after two such steps in a row, three failures of any kind, or half the frames lost."""

    def __init__(self):
        self.failures = self.saturated = 0

    def past_knee(self, step):
        if step["ok"]:
            self.failures = self.saturated = 0
            return False
        self.failures += 1
        if (
            step["fraction"] < 1
            or step["achieved_per_s"] < 0.95 * step["offered_per_s"]
            or (step["p50_ms"] or 0) > KNEE_P99_MS
        ):
            self.saturated += 1
        return self.saturated >= 2 or self.failures >= 3 or step["fraction"] < 0.5


def knee(steps):
    good = [step["achieved_per_s"] for step in steps if step["ok"]]
    return max(good) if good else 0.0


def format_step(step):
    def ms(value):
        return "-" if value is None else f"{value:,.0f}"

    return (
        f"offered {step['offered_per_s']:>7,.0f}/s -> {step['achieved_per_s']:>8,.0f}/s "
        f"delivered {100 * step['fraction']:6.2f}%  p50 {ms(step['p50_ms'])} "
        f"p95 {ms(step['p95_ms'])} p99 {ms(step['p99_ms'])} max {ms(step['max_ms'])} ms  "
        f"cpu {step['server_cpu_s_per_1k'] or 0:.3f} s/1k  server {step['server_cpu_pct']:.0f}% "
        f"loadgen {step['loadgen_cpu_pct']:.0f}% redis {step['redis_cpu_pct']:.0f}% "
        f"other {step['other_cpu_pct']:.0f}%" + ("" if step["ok"] else "  (over the knee)")
    )


# --- the whole run ---


def machine():
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for package in ("daphne", "channels", "channels_redis", "django", "websockets", "uvloop"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[package] = version(package)
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_average_at_start": list(os.getloadavg()),
        "versions": versions,
        "loadgen_event_loop": "uvloop" if loadgen.uvloop else "asyncio",
    }


def code_version():
    """The commit measured, and whether the work tree differed from it."""

    def git(*args):
        with contextlib.suppress(Exception):
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10
            ).stdout.rstrip()  # not strip(): a status line starts with a space (" M path")
        return ""

    changed = [
        line[3:]
        for line in git("status", "--porcelain", "--untracked-files=no").splitlines()
        if not line[3:].startswith("bench/")
    ]
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip(),
        "uncommitted_app_changes": changed,
    }


def redis_for_bench(url=None):
    """A private redis-server for this run (on a free port), or the Redis `url` names.

    Private by default: runs of the bench, the tests of other sessions and their flushes
    cannot see each other's keys (the same room pk in two runs would cross-deliver), and
    Redis time measured is this run's alone.
    """
    from tests.support.redis import RedisServer

    if url:
        return url, None
    if shutil.which("redis-server") is None:
        raise SystemExit(
            "redis-server is not installed: apt-get install -y redis-server, or --redis-url"
        )
    server = RedisServer().start()
    return f"redis://127.0.0.1:{server.port}/0", server


def redis_pid(url):
    import redis

    with contextlib.suppress(Exception):
        return int(redis.Redis.from_url(url).info("server")["process_id"])
    return None


def flush(url):
    import redis

    redis.Redis.from_url(url).flushdb()


def ratios(systems):
    def get(name, key):
        system = systems.get(name) or {}
        return system.get(key)

    project = next((name for name in ("project", "project-2p") if name in systems), None)
    out = {"project": project}
    p_knee, t_knee, f_knee = get(project, "knee"), get("tutorial", "knee"), get("floor", "knee")
    out["knee_project_over_tutorial"] = _ratio(p_knee, t_knee)
    tutorial_steps = (systems.get("tutorial") or {}).get("steps") or []
    if t_knee == 0 and tutorial_steps and p_knee:
        # The tutorial missed the criterion even at the lowest step: its knee is below that
        # rate, so the ratio is at least the project's knee over the lowest rate.
        lowest = min(step["offered_per_s"] for step in tutorial_steps)
        out["tutorial_knee_below"] = lowest
        out["knee_project_over_tutorial_at_least"] = round(p_knee / lowest, 3)
    out["knee_project_over_floor"] = _ratio(p_knee, f_knee)
    p99 = {name: p99_at(systems.get(name), 5000) for name in systems}
    out["p99_at_5000"] = p99
    out["p99_at_5000_project_over_floor"] = _ratio(p99.get(project), p99.get("floor"))
    rss = {name: (s.get("idle") or {}).get("rss_per_socket_kib") for name, s in systems.items()}
    out["rss_per_idle_socket_kib"] = rss
    out["rss_project_over_tutorial"] = _ratio(rss.get(project), rss.get("tutorial"))
    if "project" in systems and "project-2p" in systems:
        out["knee_2_processes_over_1"] = _ratio(get("project-2p", "knee"), get("project", "knee"))
    goals = {
        # With only a lower bound (the tutorial failed at every step) the goal is met when the
        # bound reaches 5, and undecided (None) otherwise.
        "knee >= 5x tutorial": _at_least(out["knee_project_over_tutorial"], 5)
        if out.get("knee_project_over_tutorial_at_least") is None
        else (out["knee_project_over_tutorial_at_least"] >= 5 or None),
        "knee >= 0.5x floor": _at_least(out["knee_project_over_floor"], 0.5),
        "p99 at 5,000/s <= 2x floor": _at_most(out["p99_at_5000_project_over_floor"], 2),
        "RSS per idle socket <= tutorial": _at_most(out["rss_project_over_tutorial"], 1),
    }
    if "knee_2_processes_over_1" in out:
        goals["knee with 2 processes >= with 1"] = _at_least(out["knee_2_processes_over_1"], 0.95)
    mix = next((name for name in ("project-mix", "project-mix-2p") if name in systems), None)
    if mix:
        # Issue 9: the mixed workload against the same baselines (theirs are all posts: a
        # reaction or an edit would be one more broadcast of the same size there).
        m_knee = get(mix, "knee")
        out["mix"] = mix
        out["knee_mix_over_tutorial"] = _ratio(m_knee, t_knee)
        if out.get("tutorial_knee_below") and m_knee:
            out["knee_mix_over_tutorial_at_least"] = round(m_knee / out["tutorial_knee_below"], 3)
        out["knee_mix_over_floor"] = _ratio(m_knee, f_knee)
        out["knee_mix_over_posts"] = _ratio(m_knee, p_knee)
        out["p99_at_5000_mix_over_floor"] = _ratio(p99.get(mix), p99.get("floor"))
        goals["mix knee >= 10x tutorial"] = (
            _at_least(out["knee_mix_over_tutorial"], 10)
            if out.get("knee_mix_over_tutorial_at_least") is None
            else (out["knee_mix_over_tutorial_at_least"] >= 10 or None)
        )
        goals["mix knee >= 1x floor"] = _at_least(out["knee_mix_over_floor"], 1)
    out["goals"] = goals
    return out


def p99_at(system, rate):
    for step in (system or {}).get("steps", []):
        if step["offered_per_s"] == rate:
            return step["p99_ms"]
    return None


def _ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def _at_least(value, goal):
    return None if value is None else value >= goal


def _at_most(value, goal):
    return None if value is None else value <= goal


def summary_table(report):
    systems = report["systems"]
    lines = [
        f"{'system':<16}{'knee/s':>10}{'p99@5k ms':>11}{'cpu s/1k@5k':>13}"
        f"{'RSS/idle sock':>15}  negotiated"
    ]
    for name, system in systems.items():
        step = next((s for s in system.get("steps", []) if s["offered_per_s"] == 5000), {})
        idle = (system.get("idle") or {}).get("rss_per_socket_kib")
        lines.append(
            f"{name:<16}{system.get('knee', 0):>10,.0f}"
            f"{_fmt(step.get('p99_ms'), '{:,.1f}'):>11}"
            f"{_fmt(step.get('server_cpu_s_per_1k'), '{:.4f}'):>13}"
            f"{_fmt(idle, '{:.1f} KiB'):>15}  "
            f"{','.join((system.get('connect') or {}).get('extensions', [])) or '-'}"
            + (f"  ERROR: {system['error']}" if system.get("error") else "")
        )
    r = report["ratios"]
    lines.append("")
    lines.append(
        "knee project/tutorial "
        + (
            f">= {r['knee_project_over_tutorial_at_least']:.2f}x (tutorial failed at "
            f"{r['tutorial_knee_below']:,.0f}/s already)"
            if r.get("knee_project_over_tutorial_at_least")
            else _fmt(r["knee_project_over_tutorial"], "{:.2f}x")
        )
        + "   "
        f"project/floor {_fmt(r['knee_project_over_floor'], '{:.2f}x')}   "
        f"p99@5k project/floor {_fmt(r['p99_at_5000_project_over_floor'], '{:.2f}x')}   "
        f"RSS/socket project/tutorial {_fmt(r['rss_project_over_tutorial'], '{:.2f}x')}"
        + (
            f"   knee 2 processes/1 {_fmt(r['knee_2_processes_over_1'], '{:.2f}x')}"
            if "knee_2_processes_over_1" in r
            else ""
        )
    )
    if r.get("mix"):
        lines.append(
            f"knee {r['mix']}/tutorial "
            + (
                f">= {r['knee_mix_over_tutorial_at_least']:.2f}x"
                if r.get("knee_mix_over_tutorial_at_least")
                else _fmt(r["knee_mix_over_tutorial"], "{:.2f}x")
            )
            + f"   mix/floor {_fmt(r['knee_mix_over_floor'], '{:.2f}x')}"
            f"   mix/posts {_fmt(r['knee_mix_over_posts'], '{:.2f}x')}"
            f"   p99@5k mix/floor {_fmt(r['p99_at_5000_mix_over_floor'], '{:.2f}x')}"
        )
        mix_system = systems[r["mix"]]
        lines.append(f"  {r['mix']}: {mix_line(mix_system)}")
    for goal, met in r["goals"].items():
        lines.append(
            f"  goal {goal:<34} {'met' if met else 'NOT met' if met is False else 'undecided'}"
        )
    return "\n".join(lines)


def mix_line(system):
    """The mixed workload in one line: its shares, event sizes and p99 by kind at 5,000/s."""
    mix = (system.get("server") or {}).get("mix") or {}
    sizes = system.get("event_bytes") or {}
    step = next((s for s in system.get("steps", []) if s["offered_per_s"] == 5000), {})
    parts = [
        "operations " + ", ".join(f"{share}% {name}s" for name, share in mix.items()),
        "event sizes " + ", ".join(f"{name} {size:,} B" for name, size in sizes.items()),
    ]
    if step:
        parts.append(
            "p99 at 5,000/s by kind "
            + ", ".join(f"{name} {_fmt(step.get(f'{name}_p99_ms'), '{:,.0f} ms')}" for name in mix)
        )
    return "; ".join(parts)


def markdown_summary(report):
    """The figures as Markdown, for the README's Performance section."""
    m, cfg, r = report["machine"], report["config"], report["ratios"]
    lines = [
        f"Run {report['started']}, commit {report['code']['commit']}"
        + (" (with uncommitted changes)" if report["code"]["uncommitted_app_changes"] else "")
        + f": `{report['command'].strip()}` ({report['elapsed_s']:.0f} s).",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Python {m['python']}, "
        f"load average {m['load_average_at_start'][0]:.1f} at the start (shared with other work); "
        f"load generator on {m['loadgen_event_loop']}, {cfg['loadgen_workers']} processes. "
        f"{cfg['sockets']} sockets in one room, {cfg['duration_s']:.0f} s per step.",
        "",
        "| system | knee (deliveries/s) | p99 at 5,000/s | server CPU s per 1,000 deliveries at "
        "5,000/s | RSS per idle socket (2,000) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, system in report["systems"].items():
        step = next((s for s in system.get("steps", []) if s["offered_per_s"] == 5000), {})
        idle = (system.get("idle") or {}).get("rss_per_socket_kib")
        knee = system.get("knee") or 0
        lowest = min((s["offered_per_s"] for s in system.get("steps", [])), default=None)
        knee_text = f"{knee:,.0f}" if knee else (f"< {lowest:,.0f}" if lowest else "-")
        lines.append(
            f"| {name} | {knee_text} | {_fmt(step.get('p99_ms'), '{:,.0f} ms')} | "
            f"{_fmt(step.get('server_cpu_s_per_1k'), '{:.3f}')} | {_fmt(idle, '{:.1f} KiB')} |"
        )
    mix_lines = []
    if r.get("mix"):
        ratio_mix_t = (
            f">= {r['knee_mix_over_tutorial_at_least']:.1f}x"
            if r.get("knee_mix_over_tutorial_at_least")
            else _fmt(r["knee_mix_over_tutorial"], "{:.2f}x")
        )
        mix_lines = [
            "",
            f"Ratios ({r['mix']}): knee mix/tutorial {ratio_mix_t}; knee mix/floor "
            f"{_fmt(r['knee_mix_over_floor'], '{:.2f}x')}; knee mix/posts-only "
            f"{_fmt(r['knee_mix_over_posts'], '{:.2f}x')}; p99 at 5,000/s mix/floor "
            f"{_fmt(r['p99_at_5000_mix_over_floor'], '{:.2f}x')}. Mixed workload: "
            f"{mix_line(report['systems'][r['mix']])}.",
        ]
    ratio_knee_t = (
        f">= {r['knee_project_over_tutorial_at_least']:.1f}x (the tutorial missed at "
        f"{r['tutorial_knee_below']:,.0f}/s already)"
        if r.get("knee_project_over_tutorial_at_least")
        else _fmt(r["knee_project_over_tutorial"], "{:.2f}x")
    )
    lines += [
        "",
        "Other work on the machine during the steps (CPU not used by the servers, the load "
        "generator or Redis; 200% = both cores), median per system: "
        + ", ".join(
            f"{name} {_fmt(other_cpu_median(system), '{:.0f}%')}"
            for name, system in report["systems"].items()
        )
        + ". Compare figures within one run.",
        "",
        f"Ratios ({r['project']}): knee project/tutorial {ratio_knee_t}; knee project/floor "
        f"{_fmt(r['knee_project_over_floor'], '{:.2f}x')}; p99 at 5,000/s project/floor "
        f"{_fmt(r['p99_at_5000_project_over_floor'], '{:.2f}x')}; RSS per idle socket "
        f"project/tutorial {_fmt(r['rss_project_over_tutorial'], '{:.2f}x')}"
        + (
            f"; knee with 2 processes / 1 {_fmt(r['knee_2_processes_over_1'], '{:.2f}x')}"
            if "knee_2_processes_over_1" in r
            else ""
        )
        + ".",
        *mix_lines,
        "",
        "Goals: "
        + "; ".join(
            f"{goal}: {'met' if met else 'NOT met' if met is False else 'undecided'}"
            for goal, met in r["goals"].items()
        )
        + ".",
    ]
    return "\n".join(lines) + "\n"


def other_cpu_median(system):
    values = sorted(step["other_cpu_pct"] for step in system.get("steps", []))
    return values[len(values) // 2] if values else None


def _fmt(value, pattern):
    return "-" if value is None else pattern.format(value)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=500, help="receiving sockets in the room")
    parser.add_argument(
        "--rates", default=None, help=f"offered deliveries/s per step (default {DEFAULT_RATES})"
    )
    parser.add_argument("--duration", type=float, default=None, help="seconds per step (8)")
    parser.add_argument(
        "--processes", default="1", help="project web processes: 1, 2, or 1,2 for both"
    )
    parser.add_argument(
        "--systems",
        default=DEFAULT_SYSTEMS,
        help=f"comma-separated, from {', '.join(SYSTEM_NAMES)} (default {DEFAULT_SYSTEMS})",
    )
    parser.add_argument(
        "--mix",
        default=DEFAULT_MIX,
        help="project-mix: percentages of posts, reactions and edits (default "
        f"{DEFAULT_MIX}); reactions and edits go to messages posted earlier",
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument(
        "--idle-sockets", type=int, default=None, help="sockets for the RSS measure (2000)"
    )
    parser.add_argument("--posters", type=int, default=4, help="posting sockets (not counted)")
    parser.add_argument("--workers", type=int, default=2, help="load generator processes")
    parser.add_argument(
        "--compression",
        choices=("deflate", "off"),
        default="deflate",
        help="offer permessage-deflate as browsers do (default) or not",
    )
    parser.add_argument(
        "--profile", type=float, default=None, help="py-spy the project during a step at this rate"
    )
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="the project's database: a fresh SQLite file (on tmpfs) or a fresh PostgreSQL "
        "database beside DATABASE_URL's",
    )
    parser.add_argument(
        "--profile-gil",
        action="store_true",
        help="sample only threads holding the GIL (py-spy --gil): where Python time goes",
    )
    parser.add_argument(
        "--redis-url",
        default=None,
        help="use this Redis (e.g. redis://127.0.0.1:6379/12) instead of a private redis-server",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=-10,
        help="nice value for the servers, the load generator and their autogroups, so that "
        "other work on a shared machine disturbs less (default -10; 0 leaves them alone; "
        "needs root, else ignored)",
    )
    parser.add_argument("--exp-settings", default=None, help="project-exp: settings module")
    parser.add_argument("--exp-asgi", default=None, help="project-exp: module:application")
    parser.add_argument(
        "--exp-env", action="append", default=[], help="project-exp: NAME=VALUE (repeatable)"
    )
    parser.add_argument("--drain-quiet", type=float, default=3.0, help=argparse.SUPPRESS)
    parser.add_argument("--drain-max", type=float, default=20.0, help=argparse.SUPPRESS)
    parser.add_argument("--output", default=None, help="JSON path (default bench/results/...)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sockets = args.sockets if args.sockets != 500 else 100
        args.rates = args.rates or QUICK_RATES
        args.duration = args.duration or 3
        args.idle_sockets = 200 if args.idle_sockets is None else args.idle_sockets
    args.rate_list = [float(rate) for rate in (args.rates or DEFAULT_RATES).split(",") if rate]
    args.duration = args.duration or 8.0
    args.idle_sockets = 2000 if args.idle_sockets is None else args.idle_sockets
    args.compression = None if args.compression == "off" else args.compression
    args.process_list = [int(p) for p in args.processes.split(",")]
    args.system_list = [name.strip() for name in args.systems.split(",") if name.strip()]
    for name in args.system_list:
        if name not in SYSTEM_NAMES:
            parser.error(f"unknown system {name!r}")
    try:
        args.mix_weights = tuple(int(part) for part in args.mix.split(","))
    except ValueError:
        args.mix_weights = ()
    if len(args.mix_weights) != 3 or min(args.mix_weights) < 0 or not args.mix_weights[0]:
        parser.error("--mix takes three percentages, posts,reactions,edits (posts > 0)")
    return args


async def main_async(args, redis_url):
    progress = Progress()
    pool = WorkerPool(args.workers)
    bench = Bench(args, pool, progress, redis_pid(redis_url))
    systems = {}
    try:
        for name in args.system_list:
            counts = args.process_list if name.startswith("project") else [1]
            for processes in counts:
                flush(redis_url)
                system = make_system(
                    name,
                    redis_url=redis_url,
                    processes=processes,
                    experiment={
                        "settings": args.exp_settings,
                        "asgi": args.exp_asgi,
                        "env": dict(item.split("=", 1) for item in args.exp_env),
                    },
                    database=args.database,
                    mix=args.mix_weights,
                )
                try:
                    systems[system.name] = await bench.run_system(system)
                except Exception as error:
                    progress.say(f"[{system.name}] FAILED: {type(error).__name__}: {error}")
                    systems[system.name] = {"name": system.name, "error": repr(error), "steps": []}
    finally:
        pool.stop()
    return systems


def main(argv=None):
    args = parse_args(argv)
    if args.nice:
        prioritise(os.getpid(), args.nice)  # inherited by the load generator's workers
    limit = loadgen.raise_open_files_limit()
    needed = args.idle_sockets + args.sockets + 200
    if limit < needed:
        print(f"warning: open-files limit {limit} < {needed}; sockets may fail", file=sys.stderr)
    redis_url, private_redis = redis_for_bench(args.redis_url)
    if private_redis and args.nice:
        prioritise(private_redis.process.pid, args.nice)
    started = datetime.datetime.now(datetime.UTC)
    report = {
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python bench/run.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "code": code_version(),
        "machine": machine(),
        "config": {
            "sockets": args.sockets,
            "rates": args.rate_list,
            "duration_s": args.duration,
            "processes": args.process_list,
            "systems": args.system_list,
            "idle_sockets": args.idle_sockets,
            "posters": args.posters,
            "loadgen_workers": args.workers,
            "compression_offered": args.compression or "none",
            "knee_p99_ms": KNEE_P99_MS,
            "redis": redis_url,
            "redis_private": private_redis is not None,
            "database": args.database,
            "mix": dict(zip(loadgen.KIND_NAMES, args.mix_weights, strict=True))
            if any(name.startswith("project-mix") for name in args.system_list)
            else None,
            "quick": args.quick,
            "nice": args.nice,
            "experiment": {
                "settings": args.exp_settings,
                "asgi": args.exp_asgi,
                "env": args.exp_env,
            }
            if "project-exp" in args.system_list
            else None,
        },
    }
    t0 = time.monotonic()
    try:
        report["systems"] = loadgen.run_loop(main_async(args, redis_url))
    finally:
        if private_redis:
            private_redis.stop()
    report["elapsed_s"] = round(time.monotonic() - t0, 1)
    report["machine"]["load_average_at_end"] = list(os.getloadavg())
    report["ratios"] = ratios(report["systems"])

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    kind = "quick" if args.quick else "fanout"
    path = Path(args.output) if args.output else RESULTS / f"{kind}-{stamp}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    written = [path]
    # latest.* are the figures of the last full comparison (what the README quotes): a run of
    # some systems only, or a quick one, leaves them alone.
    full = (
        not args.quick
        and not args.output
        and {"project", "tutorial", "floor"} <= set(args.system_list)
    )
    if full:
        (RESULTS / "latest.json").write_text(json.dumps(report, indent=1) + "\n")
        written.append(RESULTS / "latest.json")
    if full:
        (RESULTS / "latest.md").write_text(markdown_summary(report))
        written.append(RESULTS / "latest.md")
    png = RESULTS / "fanout.png" if full else path.with_suffix(".png")
    plot(report, png)
    written.append(png)
    print()
    print(summary_table(report))
    print(
        f"\n{report['elapsed_s']:.0f} s; wrote "
        + ", ".join(str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p) for p in written)
    )
    return report


if __name__ == "__main__":
    main()
