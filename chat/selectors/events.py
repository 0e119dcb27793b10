from chat.models import RoomEvent


def events_after(room_id, *, after_seq, upto_seq=None, limit):
    """A room's stored events after `after_seq` (to `upto_seq`), oldest first, each with
    its message as it is now: one query, however many kinds and messages."""
    query = RoomEvent.objects.filter(room_id=room_id, seq__gt=after_seq)
    if upto_seq is not None:
        query = query.filter(seq__lte=upto_seq)
    query = query.select_related(
        "room",
        "message__author__profile",
        "message__reply_to__author__profile",
        "message__subject__profile",
    )
    return list(query.order_by("seq")[:limit])
