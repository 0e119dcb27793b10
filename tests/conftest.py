"""Fixtures for tests that run real server processes (tests/system, tests/e2e)."""

import tempfile

import pytest

from tests.support.redis import RedisServer
from tests.support.servers import (
    WebProcess,
    drop_database,
    fresh_database_url,
    run_release,
    server_environment,
)


@pytest.fixture(scope="session")
def system_database_url():
    """One fresh database for all server processes of this test session."""
    url = fresh_database_url()
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def system_redis():
    """A redis-server of this session's own, shared by its server processes."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def system_env(system_database_url, system_redis):
    """The environment of a deployed process: this session's Redis and a migrated database."""
    env = server_environment(
        redis_url=system_redis.url,
        database_url=system_database_url,
        CHAT_RATE_LIMIT="off",
        STATIC_ROOT=tempfile.mkdtemp(prefix="chat-static-"),
    )
    run_release(env)
    return env


@pytest.fixture
def start_web(system_env):
    """Start `web:` processes from the Procfile: start_web(**env overrides) -> WebProcess."""
    started = []

    def start(name=None, **overrides):
        process = WebProcess(
            {**system_env, **{k: str(v) for k, v in overrides.items()}},
            name=name or f"web.{len(started) + 1}",
        )
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.kill()


@pytest.fixture
def private_redis():
    """A redis-server of this test's own, which the test may stop and start."""
    server = RedisServer().start()
    yield server
    server.stop()
