"""Graceful restart under daphne: on SIGTERM, stop accepting, close every socket with
1012 (Service Restart), let the consumers finish, then exit.

Why: a platform restarts a `web:` process with SIGTERM. Daphne leaves SIGTERM to Twisted
(`ReactorBase.sigTerm` -> `reactor.stop()`), whose shutdown cancels every application
instance (`daphne.server.Server.kill_all_applications`) and then drops the TCP
connections (`ReactorBase.disconnectAll`) without a close frame. A browser sees 1006,
and frames its page had sent that no consumer had handled yet are lost.

Why 1012 and why not `self.close(code=1012)`: the htmx ws extension reconnects only
after 1006, 1011, 1012 or 1013 (django_htmx/static/django_htmx/ext/hx-ws-2.js,
`socket.onclose`); 1001 would strand the page. A consumer's close goes through daphne's
`WebSocketProtocol.serverClose` to autobahn's public `sendClose`, which allows only 1000
and 3000-4999 (autobahn/websocket/protocol.py). Below it, `sendCloseFrame` sends any
code: daphne itself calls it for 1011 when an application crashes
(`WebSocketProtocol.handle_exception`). The drain uses that same call.

How (all on the reactor's event loop, after daphne's `Server.run` started it):
1. `install()` (from project/asgi.py) replaces Twisted's SIGTERM handler once the
   reactor runs, only if Twisted's is the one installed (not under runserver's reloader).
2. On SIGTERM every daphne listening port stops listening: new connections are refused
   at once, so a router or a reconnecting page goes to another process.
3. Every open WebSocket gets a 1012 close frame; sockets still in their handshake get
   one as soon as their consumer accepts them. What a consumer sends after that is
   dropped, as after a close by the page.
4. The drain waits until every application instance in daphne's `Server.connections`
   has ended: a consumer handles the frames that arrived before the close (autobahn
   still reads data while closing), then `websocket.disconnect` (presence, hub).
5. Then `reactor.stop()`: daphne's own shutdown finds nothing left to cancel, and the
   process exits with status 0.
The drain gives up after DRAIN_SECONDS (daphne then cancels what is left, as before);
if the process is still alive EXIT_SECONDS after SIGTERM it exits at once (status 1).
A second SIGTERM, or SIGINT (left to Twisted), stops without draining.
"""

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time

logger = logging.getLogger(__name__)

SERVICE_RESTART = 1012
# How long a page has to answer the close before its connection is dropped (autobahn's
# default: 1 s). Until then, frames it sent before it saw the close still reach its
# consumer; a page silent for this long is most likely gone (a phone that went offline).
CLOSE_PATIENCE_SECONDS = 3.0
DRAIN_SECONDS = 6.0  # pages answering the close, then their consumers finishing
EXIT_SECONDS = 9.5  # the promise: a SIGTERMed process is gone within 10 s
POLL_SECONDS = 0.05


def install():
    """Drain on SIGTERM when daphne runs this application; elsewhere, nothing.

    daphne.server installs Twisted's asyncio reactor when it is imported (daphne's app
    config imports it), so importing the reactor here never installs another one.
    """
    if "daphne.server" not in sys.modules:
        return
    from twisted.internet import reactor

    reactor.callWhenRunning(_take_over_sigterm, reactor)


def _take_over_sigterm(reactor):
    if signal.getsignal(signal.SIGTERM) != reactor.sigTerm:
        return  # daphne runs without signal handlers (runserver's reloader): leave it be
    drain = Drain(reactor)
    signal.signal(signal.SIGTERM, drain.on_sigterm)


class Drain:
    def __init__(self, reactor):
        self.reactor = reactor
        self.started = None  # monotonic time of the first SIGTERM
        self.task = None  # the drain; held here, as the loop keeps only weak references

    def on_sigterm(self, signum, frame):
        # A signal handler may run between any two bytecodes: hand over to the loop,
        # as Twisted's own handler does.
        self.reactor.callFromThread(self.begin)

    def begin(self):
        if self.started is not None:
            logger.warning("SIGTERM again while draining: stopping now")
            return self.stop()
        self.started = time.monotonic()
        hard_stop = threading.Timer(EXIT_SECONDS, _exit_now)
        hard_stop.daemon = True
        hard_stop.start()
        servers = self.stop_listening()
        self.task = asyncio.ensure_future(self.drain(servers))

    def stop_listening(self):
        """Close daphne's listening sockets; returns daphne's Server instances."""
        from daphne.server import Server
        from twisted.internet.interfaces import IListeningPort

        servers = set()
        for reader in self.reactor.getReaders():
            server = getattr(getattr(reader, "factory", None), "server", None)
            if IListeningPort.providedBy(reader) and isinstance(server, Server):
                servers.add(server)
                reader.stopListening()
        return servers

    async def drain(self, servers):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_SECONDS
        closed = 0
        try:
            while True:
                closed += close_open_sockets(servers)
                running = running_applications(servers)
                if not running:
                    logger.info(
                        "SIGTERM: closed %d socket(s) with %d, drained in %.2f s",
                        closed,
                        SERVICE_RESTART,
                        time.monotonic() - self.started,
                    )
                    break
                if loop.time() > deadline:
                    logger.warning(
                        "SIGTERM: %d application instances still running after %.0f s; "
                        "daphne cancels them",
                        running,
                        DRAIN_SECONDS,
                    )
                    break
                await asyncio.sleep(POLL_SECONDS)
        finally:
            self.stop()

    def stop(self):
        from twisted.internet.error import ReactorNotRunning

        with contextlib.suppress(ReactorNotRunning):  # already stopping
            self.reactor.stop()


def close_open_sockets(servers):
    """Send 1012 to every open WebSocket of daphne's servers; returns how many."""
    from daphne.ws_protocol import WebSocketProtocol

    closed = 0
    for server in servers:
        for protocol in list(server.connections):
            if isinstance(protocol, WebSocketProtocol) and protocol.state == protocol.STATE_OPEN:
                protocol.closeHandshakeTimeout = CLOSE_PATIENCE_SECONDS  # read by sendCloseFrame
                # Below autobahn's sendClose, which refuses 1012 (see the module docstring).
                protocol.sendCloseFrame(code=SERVICE_RESTART, reasonUtf8=b"service restart")
                # No data may follow a close frame: autobahn would raise Disconnected into
                # a consumer still answering a frame. Marked gone, daphne drops what the
                # application sends (Server.handle_reply), as after a close by the page.
                server.protocol_disconnected(protocol)
                closed += 1
    return closed


def running_applications(servers):
    """Application instances (HTTP requests and sockets) that have not ended."""
    return sum(
        1
        for server in servers
        for details in list(server.connections.values())
        if details.get("application_instance") is not None
        and not details["application_instance"].done()
    )


def _exit_now():
    logger.error("SIGTERM: still running %.1f s later; exiting now", EXIT_SECONDS)
    logging.shutdown()
    os._exit(1)
