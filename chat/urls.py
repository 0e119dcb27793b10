from django.urls import path

from chat import views

urlpatterns = [
    path("", views.lobby, name="lobby"),
    path("chat/<slug:slug>/", views.room, name="room"),
    path("chat/<slug:slug>/send/", views.send, name="send"),
]
