"""Reads. Every function here runs a fixed number of queries, however long the history."""

from django.db.models import F

from chat.models import Message, Room


def room_list():
    return Room.objects.order_by(F("last_message_at").desc(nulls_last=True), "name")


def room_by_slug(slug):
    return Room.objects.filter(slug=slug).first()


def room_last_seqs(room_ids):
    return dict(Room.objects.filter(pk__in=room_ids).values_list("pk", "last_seq"))


def _messages(room):
    return Message.objects.filter(room=room).select_related("author")


def messages_latest(room, *, limit):
    """The newest `limit` messages, oldest first."""
    return list(reversed(_messages(room).order_by("-seq")[:limit]))


def messages_before(room, *, before_seq, limit):
    """The `limit` messages just before `before_seq`, oldest first."""
    return list(reversed(_messages(room).filter(seq__lt=before_seq).order_by("-seq")[:limit]))


def messages_after(room, *, after_seq, upto_seq=None, limit=None):
    """Messages after `after_seq` (up to `upto_seq` when given), oldest first."""
    query = _messages(room).filter(seq__gt=after_seq).order_by("seq")
    if upto_seq is not None:
        query = query.filter(seq__lte=upto_seq)
    return list(query[:limit] if limit else query)
