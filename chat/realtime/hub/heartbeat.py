"""Tell every page its socket is alive, so a page can tell when it is not.

Every few seconds each open page gets a fresh #connection-status element. Its CSS
animation shows "Reconnecting…" only after CHAT_HEARTBEAT_SECONDS x 2.5 without a new
one, so a page notices a dead socket (a killed server, a lost network) with no script of
ours. One shared `websocket.send` event per beat, the same for every socket.
"""

import asyncio
import logging

from django.conf import settings
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)


def status_frame():
    return {
        "type": "websocket.send",
        "text": render_to_string("chat/rooms/_connection_status.html"),
    }


class Heartbeat:
    def __init__(self, hub):
        self.hub = hub

    async def run(self, channel):
        frame = status_frame()
        while True:
            await asyncio.sleep(settings.CHAT_HEARTBEAT_SECONDS)
            if self.hub.channel != channel:
                return
            for index, socket in enumerate(self.hub.all_sockets(), 1):
                if not getattr(socket, "ready", True):
                    continue  # still connecting: a send before accept would break it
                try:
                    await socket.base_send(frame)
                except Exception:  # a socket closing under us; its disconnect cleans up
                    logger.debug("heartbeat to a closing socket failed", exc_info=True)
                if index % 200 == 0:
                    await asyncio.sleep(0)
