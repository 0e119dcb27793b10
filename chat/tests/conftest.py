"""Fixtures shared by the unit tests: a room and two people (no passwords: fast)."""

import pytest

from chat.tests.factories import make_author, make_room


@pytest.fixture
def room():
    return make_room(name="General")


@pytest.fixture
def alice():
    return make_author(username="alice")


@pytest.fixture
def bob():
    return make_author(username="bob")


@pytest.fixture
def client_alice(client, alice):
    client.force_login(alice)
    return client
