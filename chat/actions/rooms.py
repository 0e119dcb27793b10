"""Public rooms without an owner: for the seed command and the bench. People open and
create rooms through chat/actions/memberships.py (which makes them members)."""

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from chat.actions.memberships import ROOM_NAME_MAX_LENGTH, clean_room_name
from chat.models import Room

__all__ = ["ROOM_NAME_MAX_LENGTH", "room_get_or_create"]


def room_get_or_create(*, name):
    """Open the public room called `name`, creating it if new. Returns (room, created)."""
    name = clean_room_name(name)
    slug = slugify(name)[:ROOM_NAME_MAX_LENGTH].strip("-")
    if not slug:
        raise ValidationError("Use some letters or digits in the room name.", code="unusable")
    try:
        with transaction.atomic():
            return Room.objects.get_or_create(slug=slug, defaults={"name": name})
    except IntegrityError:  # two people created it at the same instant
        room = Room.objects.filter(slug=slug).first()
        if room is None:
            raise ValidationError("That name is taken by another room.", code="taken") from None
        return room, False
