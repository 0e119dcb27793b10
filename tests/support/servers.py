"""Real server processes, started exactly as the Procfile starts them."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from tests.support.redis import free_port

ROOT = Path(__file__).resolve().parents[2]


def procfile_command(process_type):
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process_type:
            return command.strip()
    raise LookupError(f"no {process_type}: line in the Procfile")


def server_environment(*, redis_url, database_url, **extra):
    """What a Procfile platform would set, with this test run's Redis and database."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "CHAT_", "PYTEST"))
    }
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "SECRET_KEY": "test-" + uuid.uuid4().hex * 2,
            "DEBUG": "false",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "REDIS_URL": redis_url,
            "DATABASE_URL": database_url,
            "CHAT_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update({key: str(value) for key, value in extra.items()})
    return env


def run_release(env, *, quiet=False):
    """The Procfile's `release:` step (migrate), plus collectstatic as the build step does.

    `quiet` keeps their output (a benchmark's progress line) to the error, if any.
    """
    for command in (
        ["bash", "-c", procfile_command("release")],
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
    ):
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=quiet, text=True)
        if done.returncode:
            raise RuntimeError(f"{command} failed:\n{done.stdout}\n{done.stderr}")


class WebProcess:
    """One `web:` process on its own port; it can be killed and started again."""

    def __init__(self, env, *, port=None, name="web.1"):
        self.env = dict(env)
        self.port = port or free_port()
        self.name = name
        self.process = None
        self.log_path = Path(tempfile.gettempdir()) / f"chat-{name}-{self.port}.log"

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self):
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout=30):
        env = {**self.env, "PORT": str(self.port), "DYNO_NAME": self.name}
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            ["bash", "-c", "exec " + procfile_command("web")],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/accounts/login/", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not answer: {self.log_text()[-3000:]}")
            time.sleep(0.1)

    def kill(self, sig=signal.SIGKILL):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(20)
        self.process = None
        if getattr(self, "log", None):
            self.log.close()

    def stop(self):
        self.kill(signal.SIGTERM)

    def send_signal(self, sig):
        """Signal the process without waiting for it to exit (kill() waits)."""
        os.killpg(self.process.pid, sig)

    def log_text(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def fresh_database_url():
    """A new empty database of the kind DATABASE_URL names (PostgreSQL), or a SQLite file."""
    base = os.environ.get("DATABASE_URL", "")
    if base.startswith(("postgres://", "postgresql://")):
        return new_database("postgresql", base)
    return new_database("sqlite")


def new_database(vendor, postgres_url=None, *, prefix="chat_system"):
    """A new empty database: a SQLite file in a folder of its own, or a PostgreSQL
    database created on the server `postgres_url` names. Remove it with drop_database."""
    if vendor == "sqlite":
        folder = tempfile.mkdtemp(prefix=f"{prefix.replace('_', '-')}-")
        return f"sqlite:///{folder}/db.sqlite3"
    if vendor == "postgresql":
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return _with_db(postgres_url, name)
    raise ValueError(f"unknown database {vendor!r}: sqlite or postgresql")


def _with_db(url, name):
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def drop_database(url):
    """Drop a database made by new_database."""
    if url.startswith("sqlite:///"):
        folder = Path(url.removeprefix("sqlite:///")).parent
        if folder.name.startswith("chat-"):
            shutil.rmtree(folder, ignore_errors=True)
        return
    from urllib.parse import urlsplit

    import psycopg

    name = urlsplit(url).path.lstrip("/")
    admin = _with_db(url, "postgres")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class WorkerProcess:
    """The `worker:` process (chat_worker), started as the Procfile starts it. It has no
    port: it is up once its log says it started."""

    READY = "chat worker started"

    def __init__(self, env, *, name="worker.1"):
        self.env = dict(env)
        self.name = name
        self.process = None
        self.log_path = Path(tempfile.gettempdir()) / f"chat-{name}-{uuid.uuid4().hex[:6]}.log"

    def start(self, timeout=30):
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in kill()
        self.process = subprocess.Popen(
            ["bash", "-c", "exec " + procfile_command("worker")],
            cwd=ROOT,
            env={**self.env, "DYNO_NAME": self.name},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while self.READY not in self.log_text():
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start: {self.log_text()[-3000:]}")
            time.sleep(0.1)
        return self

    def stop(self, timeout=20):
        """SIGTERM, as a platform stops it; returns its exit status."""
        os.killpg(self.process.pid, signal.SIGTERM)
        status = self.process.wait(timeout)
        self.kill()
        return status

    def kill(self, sig=signal.SIGKILL):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(20)
        if getattr(self, "log", None):
            self.log.close()

    def log_text(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
