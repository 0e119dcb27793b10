"""chat/actions/rooms.py: opening a room by name."""

import pytest
from django.core.exceptions import ValidationError

from chat.actions.rooms import room_get_or_create
from chat.models import Room

pytestmark = pytest.mark.django_db


class RoomGetOrCreateTests:
    def test_creates_a_room_with_a_slug_from_its_name(self):
        room, created = room_get_or_create(name="  Coffee   Corner ")
        assert created
        assert (room.name, room.slug) == ("Coffee Corner", "coffee-corner")
        assert room.last_seq == 0

    def test_joins_the_existing_room(self):
        first, _ = room_get_or_create(name="Coffee Corner")
        again, created = room_get_or_create(name="coffee corner")
        assert not created and again == first
        assert Room.objects.count() == 1

    @pytest.mark.parametrize(
        ("name", "code"),
        [
            ("", "blank"),
            ("   ", "blank"),
            (None, "blank"),
            ("x" * 81, "too_long"),
            ("!!!", "unusable"),
        ],
    )
    def test_refuses_bad_names_clearly(self, name, code):
        with pytest.raises(ValidationError) as error:
            room_get_or_create(name=name)
        assert error.value.code == code
        assert Room.objects.count() == 0

    def test_a_name_whose_slug_is_taken_by_another_room_joins_that_room(self):
        first, _ = room_get_or_create(name="Tea Time")
        again, created = room_get_or_create(name="tea-time")
        assert not created and again == first
