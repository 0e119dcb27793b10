"""Rooms as a person may see them. Every page, fragment, form and socket that touches a
room asks `readable_room` first: a room the person may not read is None, exactly as a
room that does not exist, so nobody learns that it does."""

from django.db.models import Exists, F, OuterRef, Prefetch, Q

from chat.models import Membership, Room
from chat.selectors.people import display_name


def room_list():
    """Public rooms, most recently active first (everyone signed in may see them);
    archived ones are off the lists (their address still opens them, read-only)."""
    return Room.objects.filter(kind=Room.PUBLIC, archived_at__isnull=True).order_by(
        F("last_message_at").desc(nulls_last=True), "name"
    )


def room_by_slug(slug):
    return Room.objects.filter(slug=slug).first()


def readable_room(user, slug):
    """The room at `slug` if `user` may read it: public rooms for anyone signed in,
    private rooms and direct conversations for their members only (staff included:
    staff manage private rooms from the members page, and add themselves to read)."""
    if not user.is_authenticated:
        return None
    return (
        Room.objects.filter(slug=slug)
        .filter(Q(kind=Room.PUBLIC) | Q(memberships__user=user))
        .distinct()
        .first()
    )


def readable_room_and_membership(user, slug):
    """(room, is_member) as `readable_room` decides, in one query (a socket's connect)."""
    if not user.is_authenticated:
        return None, False
    room = (
        Room.objects.filter(slug=slug)
        .annotate(is_member=Exists(Membership.objects.filter(room=OuterRef("pk"), user=user)))
        .first()
    )
    if room is None or not (room.is_public or room.is_member):
        return None, False
    return room, room.is_member


def managed_room(user, slug):
    """The room at `slug` if `user` may manage it (members page, rename, archive): its
    owners, and staff for every room but direct conversations."""
    if not user.is_authenticated:
        return None
    room = Room.objects.filter(slug=slug).exclude(kind=Room.DIRECT).first()
    if room is None:
        return None
    if user.is_staff or is_owner(user, room):
        return room
    return None


def may_read(user, room):
    return room.is_public or is_member(user, room)


def is_member(user, room):
    return Membership.objects.filter(room=room, user=user).exists()


def is_owner(user, room):
    return Membership.objects.filter(room=room, user=user, role=Membership.OWNER).exists()


def membership_of(user, room):
    return Membership.objects.filter(room=room, user=user).first()


def members(room):
    """The room's memberships, owners first, each with its person and profile."""
    return list(
        Membership.objects.filter(room=room)
        .select_related("user__profile")
        .order_by("-role", "user__username")
    )


def member_ids(room_id):
    return set(Membership.objects.filter(room_id=room_id).values_list("user_id", flat=True))


def rooms_of(user):
    """The rooms a person is in (their sidebar), with their membership and, for direct
    conversations, the other members: three queries, however many rooms."""
    memberships = list(
        Membership.objects.filter(user=user, room__archived_at__isnull=True)
        .select_related("room")
        .order_by("room__kind", "room__name")
    )
    rooms = [membership.room for membership in memberships]
    direct = [room for room in rooms if room.is_direct]
    if direct:
        others = Prefetch(
            "memberships",
            queryset=Membership.objects.exclude(user=user).select_related("user__profile"),
            to_attr="other_memberships",
        )
        with_others = {
            room.pk: room
            for room in Room.objects.filter(pk__in=[r.pk for r in direct]).prefetch_related(others)
        }
        for room in direct:
            room.other_memberships = with_others[room.pk].other_memberships
    for membership, room in zip(memberships, rooms, strict=True):
        room.membership = membership
        room.title = title_for(room, user)
    return rooms


def title_for(room, user):
    """A room's name as `user` sees it: a direct conversation is named after the others."""
    if not room.is_direct:
        return room.name
    others = getattr(room, "other_memberships", None)
    if others is None:
        others = list(
            Membership.objects.filter(room=room).exclude(user=user).select_related("user__profile")
        )
    names = sorted(display_name(membership.user) for membership in others)
    return ", ".join(names) or "Just you"


def room_ids_of(user_id):
    return set(
        Membership.objects.filter(user_id=user_id, room__archived_at__isnull=True).values_list(
            "room_id", flat=True
        )
    )


def room_last_seqs(room_ids):
    return dict(Room.objects.filter(pk__in=room_ids).values_list("pk", "last_seq"))


def direct_room(user_ids):
    return Room.objects.filter(direct_key=direct_key(user_ids)).first()


def direct_key(user_ids):
    return "-".join(str(pk) for pk in sorted(set(user_ids)))
