from django.urls import path

from chat.accounts import views as accounts
from chat.views import messages, rooms

urlpatterns = [
    path("", rooms.lobby, name="lobby"),
    path("chat/<slug:slug>/", rooms.room, name="room"),
    path("chat/<slug:slug>/send/", rooms.send, name="send"),
    path("chat/<slug:slug>/composer/", rooms.composer, name="composer"),
    path("messages/<int:pk>/", messages.permalink, name="message"),
    # Below a message's permalink: _message.html writes them as {{ permalink }}edit/ and reply/.
    path("messages/<int:pk>/edit/", messages.edit, name="message_edit"),
    path("messages/<int:pk>/reply/", messages.reply, name="message_reply"),
    path("people/<str:username>/", accounts.person, name="person"),
]
