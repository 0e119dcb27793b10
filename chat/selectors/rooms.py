from django.db.models import F

from chat.models import Room


def room_list():
    return Room.objects.order_by(F("last_message_at").desc(nulls_last=True), "name")


def room_by_slug(slug):
    return Room.objects.filter(slug=slug).first()


def room_last_seqs(room_ids):
    return dict(Room.objects.filter(pk__in=room_ids).values_list("pk", "last_seq"))
