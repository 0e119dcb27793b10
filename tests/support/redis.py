"""A real Redis for the tests: the machine's own, or a throwaway one started here."""

import os
import shutil
import socket
import subprocess
import tempfile
import time

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 6379


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A private redis-server on its own port, which a test may stop and start again."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="chat-redis-")
        self.process = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install -y redis-server)")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not answers(self.port):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)
        return self

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


def redis_url_for_tests():
    """(url, server or None). In CI a missing Redis is an error, never a skip."""
    if answers(DEFAULT_PORT):
        return f"redis://{DEFAULT_HOST}:{DEFAULT_PORT}/13", None
    if os.environ.get("CI"):
        raise RuntimeError(f"CI: no Redis answers on {DEFAULT_HOST}:{DEFAULT_PORT}")
    server = RedisServer().start()
    return server.url, server
