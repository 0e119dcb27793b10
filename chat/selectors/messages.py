"""Messages as pages show them.

Pages take each message's HTML from the fragment cache (chat/rendering.py), so lists are
read as positions, (pk, seq, version), which the (room, seq) index yields without
joining authors; whole rows only for fragments not kept yet.
"""

from django.db.models import Q

from chat.models import Message, Reaction

SHOWN = Q(deleted_at__isnull=True)


def _positions(room, upto_seq=None):
    query = Message.objects.filter(SHOWN, room=room)
    if upto_seq is not None:
        query = query.filter(seq__lte=upto_seq)
    return query.values_list("pk", "seq", "version", named=True)


def message_positions_latest(room, *, limit, upto_seq=None):
    """Positions of the newest `limit` messages (up to `upto_seq`), oldest first."""
    return list(reversed(_positions(room, upto_seq).order_by("-seq")[:limit]))


def message_positions_before(room, *, before_seq, limit):
    """Positions of the `limit` messages just before `before_seq`, oldest first."""
    return list(reversed(_positions(room).filter(seq__lt=before_seq).order_by("-seq")[:limit]))


def message_positions_after(room, *, after_seq, limit, upto_seq=None):
    """Positions of the `limit` messages just after `after_seq`, oldest first."""
    return list(_positions(room, upto_seq).filter(seq__gt=after_seq).order_by("seq")[:limit])


def messages_by_pk(pks):
    """Whole messages, with what their fragment shows, for those the cache did not have."""
    return list(
        Message.objects.filter(pk__in=pks).select_related(
            "author__profile", "reply_to__author__profile", "subject__profile"
        )
    )


def message_in_room(room, message_id):
    """The message `message_id` if it is in `room` (deleted or not), else None."""
    return (
        Message.objects.filter(room=room, pk=message_id)
        .select_related("author__profile", "reply_to__author__profile")
        .first()
    )


def message_before(room, *, seq):
    """The newest shown message before `seq`: who wrote it, when, and whether it is a
    line about the room (for grouping)."""
    return (
        Message.objects.filter(SHOWN, room=room, seq__lt=seq)
        .order_by("-seq")
        .only("author_id", "created_at", "kind")
        .first()
    )


def message_with_key(author, client_key):
    message = (
        Message.objects.filter(author=author, client_key=client_key)
        .select_related("reply_to__author__profile")
        .first()
    )
    if message is not None:
        message.author = author  # what the fragment needs, without a join
    return message


def reaction_summary(message):
    """{emoji: [[user id, name], ...]} of a message, in reaction order (one query)."""
    summary = {}
    rows = (
        Reaction.objects.filter(message=message)
        .order_by("created_at", "pk")
        .values_list("emoji", "user_id", "user__username", "user__profile__display_name")
    )
    for emoji, user_id, username, chosen in rows:
        summary.setdefault(emoji, []).append([user_id, chosen or username])
    return summary


def messages_after(room, *, after_seq, upto_seq=None, limit=None):
    """Messages (deleted or not) after `after_seq`, oldest first."""
    query = Message.objects.filter(room=room, seq__gt=after_seq).select_related(
        "author__profile", "subject__profile"
    )
    query = query.order_by("seq")
    if upto_seq is not None:
        query = query.filter(seq__lte=upto_seq)
    return list(query[:limit] if limit else query)


def quoted_among(messages):
    """The pks of those `messages` that some reply quotes (one query)."""
    pks = [message.pk for message in messages]
    if not pks:
        return set()
    return set(
        Message.objects.filter(reply_to__in=pks).values_list("reply_to", flat=True).distinct()
    )
