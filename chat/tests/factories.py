"""Keyword-only factories for tests."""

import itertools

from django.contrib.auth import get_user_model

from chat import services

_numbers = itertools.count(1)


def make_user(*, username=None, password="a-long-test-password"):
    username = username or f"user{next(_numbers)}"
    return get_user_model().objects.create_user(username=username, password=password)


def make_room(*, name=None):
    room, _ = services.room_get_or_create(name=name or f"Room {next(_numbers)}")
    return room


def make_message(*, room, author=None, text="hello"):
    return services.message_save(room=room, author=author or make_user(), text=text).message
