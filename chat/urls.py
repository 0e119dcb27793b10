from django.urls import path

from chat.accounts import views as accounts
from chat.views import memberships, mentions, messages, rooms

urlpatterns = [
    path("", rooms.lobby, name="lobby"),
    path("chat/<slug:slug>/", rooms.room, name="room"),
    path("chat/<slug:slug>/send/", rooms.send, name="send"),
    path("chat/<slug:slug>/composer/", rooms.composer, name="composer"),
    path("chat/<slug:slug>/mentions/", mentions.suggestions, name="mention_suggestions"),
    path("chat/<slug:slug>/members/", memberships.members, name="room_members"),
    path("chat/<slug:slug>/join/", memberships.join, name="room_join"),
    path("chat/<slug:slug>/leave/", memberships.leave, name="room_leave"),
    path("chat/<slug:slug>/notify/", memberships.notify, name="room_notify"),
    path("dm/", memberships.direct_new, name="direct_new"),
    path("dm/<str:username>/", memberships.direct_with, name="direct_with"),
    path("messages/<int:pk>/", messages.permalink, name="message"),
    # Below a message's permalink: _message.html writes them as {{ permalink }}edit/ and reply/.
    path("messages/<int:pk>/edit/", messages.edit, name="message_edit"),
    path("messages/<int:pk>/reply/", messages.reply, name="message_reply"),
    path("people/<str:username>/", accounts.person, name="person"),
]
