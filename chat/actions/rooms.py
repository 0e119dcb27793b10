from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from chat.models import Room

ROOM_NAME_MAX_LENGTH = Room._meta.get_field("name").max_length


def room_get_or_create(*, name):
    """Open the room called `name`, creating it if new. Returns (room, created)."""
    name = " ".join((name or "").split())
    if not name:
        raise ValidationError("Give the room a name.", code="blank")
    if len(name) > ROOM_NAME_MAX_LENGTH:
        raise ValidationError(
            f"Room names are at most {ROOM_NAME_MAX_LENGTH} characters.", code="too_long"
        )
    slug = slugify(name)[:ROOM_NAME_MAX_LENGTH].strip("-")
    if not slug:
        raise ValidationError("Use some letters or digits in the room name.", code="unusable")
    try:
        with transaction.atomic():
            return Room.objects.get_or_create(slug=slug, defaults={"name": name})
    except IntegrityError:  # two people created it at the same instant, or a name clash
        room = Room.objects.filter(slug=slug).first()
        if room is None:
            raise ValidationError("That name is taken by another room.", code="taken") from None
        return room, False
