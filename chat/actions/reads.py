"""How far each member has read: the one thing unread counts are derived from."""

from django.db.models import Q

from chat import events
from chat.models import Membership


def read_mark(*, user, room, seq):
    """The person has seen `room` up to event `seq` (opening it, or leaving its page).
    Their other pages redraw their counts. Never moves back; not a member: nothing."""
    moved = Membership.objects.filter(room=room, user=user, last_read_seq__lt=seq).update(
        last_read_seq=seq
    )
    if moved:
        events.person_changed([user.pk])
    return bool(moved)


def read_positions_save(upto):
    """Save many read positions at once, {(room id, user id): seq}, from pages that were
    sent the events live. One statement per room; returns the (room id, user id) pairs
    whose position moved, whose other pages should redraw their counts."""
    by_room = {}
    for (room_id, user_id), seq in upto.items():
        by_room.setdefault((room_id, seq), []).append(user_id)
    moved = []
    for (room_id, seq), user_ids in by_room.items():
        condition = Q(room_id=room_id, user_id__in=user_ids, last_read_seq__lt=seq)
        changed = list(Membership.objects.filter(condition).values_list("user_id", flat=True))
        if changed:
            Membership.objects.filter(condition).update(last_read_seq=seq)
            moved.extend((room_id, user_id) for user_id in changed)
    return moved
