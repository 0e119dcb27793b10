"""The lobby's socket: no room, only its person's stream (their rooms and counts, live)
and the heartbeat that tells the page it is connected."""

from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from chat.realtime.consumer import drawn_long_ago
from chat.realtime.frames import CloseCode
from chat.realtime.hub import get_hub
from chat.realtime.hub.heartbeat import status_frame


class LobbyConsumer(AsyncWebsocketConsumer):
    channel_layer_alias = None  # the process's hub reads the layer (chat/realtime/hub)
    room_id = None
    page_title = "Rooms"
    listed = False
    ready = False  # accepted: the hub may send to it
    revoked = False
    closing = False

    async def connect(self):
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.accept()
            await self.send(
                text_data=render_to_string(
                    "chat/rooms/_refused.html", {"code": CloseCode.NOT_LOGGED_IN}
                )
            )
            return await self.close(code=int(CloseCode.NOT_LOGGED_IN))
        self.user_id = user.pk
        self.hub = get_hub()
        # Listed before the page is told it is connected: nothing after that is missed.
        self.listed = True
        await self.hub.open_lobby(self, redraw=drawn_long_ago(self.scope))
        await self.accept()
        self.ready = True
        await self.base_send(status_frame())

    async def disconnect(self, code):
        if self.listed:
            self.listed = False
            await self.hub.close_lobby(self)
        elif self.revoked:
            self.hub._stop_if_idle()

    async def receive(self, text_data=None, bytes_data=None):
        pass  # the lobby sends nothing over its socket: its forms are plain HTTP

    def cut_off(self):
        self.revoked = True
        if self.listed:
            self.listed = False
            self.hub.people.depart(self)

    async def revoke(self, reason):
        if self.closing:
            return
        self.closing = True
        self.cut_off()
        await self.send(text_data=render_to_string("chat/rooms/_refused.html", {"reason": reason}))
        await self.close(code=int(CloseCode.REVOKED))
