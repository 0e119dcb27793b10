from django.urls import path

from chat.realtime.consumer import ChatConsumer
from chat.realtime.lobby import LobbyConsumer

websocket_urlpatterns = [
    path("ws/chat/<slug:slug>/", ChatConsumer.as_asgi()),
    path("ws/lobby/", LobbyConsumer.as_asgi()),
]
