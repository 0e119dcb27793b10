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


def message_positions_latest(room, *, limit):
    """(pk, seq) of the newest `limit` messages, oldest first: a page's list without rows.

    Pages take each message's HTML from the fragment cache, so they need only these two
    columns, which the (room, seq) index walk yields without joining the authors.
    """
    return list(reversed(_positions(room).order_by("-seq")[:limit]))


def message_positions_before(room, *, before_seq, limit):
    """(pk, seq) of the `limit` messages just before `before_seq`, oldest first."""
    return list(reversed(_positions(room).filter(seq__lt=before_seq).order_by("-seq")[:limit]))


def messages_by_pk(pks):
    """Whole messages, with their authors, for rendering those the cache did not have."""
    return list(Message.objects.filter(pk__in=pks).select_related("author"))


def _positions(room):
    return Message.objects.filter(room=room).values_list("pk", "seq", named=True)


def messages_after(room, *, after_seq, upto_seq=None, limit=None):
    """Messages after `after_seq` (up to `upto_seq` when given), oldest first."""
    query = _messages(room).filter(seq__gt=after_seq).order_by("seq")
    if upto_seq is not None:
        query = query.filter(seq__lte=upto_seq)
    return list(query[:limit] if limit else query)
