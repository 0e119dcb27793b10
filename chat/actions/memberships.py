"""Who is in which room: creating rooms, joining, leaving, inviting, removing, direct
conversations, renaming and archiving. Each change is a line in the room's stream (a
`Message` of its own kind), numbered and delivered like any message; each also tells
the people concerned that their list of rooms changed (their person stream)."""

import secrets

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from chat import events
from chat.actions import Done
from chat.actions.limits import rate_limit_check
from chat.models import Membership, Message, Room
from chat.selectors import messages as message_selectors
from chat.selectors import rooms as room_selectors

ROOM_NAME_MAX_LENGTH = Room._meta.get_field("name").max_length
DIRECT_MAX_PEOPLE = 8
ARCHIVED = "This room is archived: it can be read, not written in."


def clean_room_name(name):
    name = " ".join((name or "").split())
    if not name:
        raise ValidationError("Give the room a name.", code="blank")
    if len(name) > ROOM_NAME_MAX_LENGTH:
        raise ValidationError(
            f"Room names are at most {ROOM_NAME_MAX_LENGTH} characters.", code="too_long"
        )
    if any(not character.isprintable() for character in name):
        raise ValidationError("The name holds a character that cannot be shown.", code="control")
    return name


def room_open_or_create(*, user, name, private=False):
    """The lobby's form: open the public room called `name` (joining it), or create it.
    `private` always creates a new private room, owned by `user`. Returns (room, created)."""
    name = clean_room_name(name)
    base = slugify(name)[: ROOM_NAME_MAX_LENGTH - 7].strip("-")
    if not base:
        raise ValidationError("Use some letters or digits in the room name.", code="unusable")
    if private:
        # A random tail: the address of a private room says nothing about others.
        return _create(user=user, name=name, slug=_with_tail(base), kind=Room.PRIVATE), True
    room = _public_room_named(base, name)
    if room is None:
        # A private room or conversation may hold this address: the public room then
        # gets a tail of its own, and nobody learns that the other exists.
        slug = base if not Room.objects.filter(slug=base).exists() else _with_tail(base)
        try:
            return _create(user=user, name=name, slug=slug, kind=Room.PUBLIC), True
        except IntegrityError:  # created at the same instant by someone else
            room = _public_room_named(base, name)
            if room is None:
                raise ValidationError("Try that again: the room was just created.") from None
    if not room.is_archived:  # an archived room opens to be read; nobody joins it
        room_join(room=room, user=user)
    return room, False


def _public_room_named(slug, name):
    public = Room.objects.filter(kind=Room.PUBLIC)
    return public.filter(slug=slug).first() or public.filter(name__iexact=name).first()


def _with_tail(base):
    return f"{base}-{secrets.token_hex(3)}"


def _create(*, user, name, slug, kind):
    with transaction.atomic():
        # Its creator owns it; the room starts empty (no line: nobody else is there yet).
        room = Room.objects.create(name=name, slug=slug, kind=kind, created_by=user)
        Membership.objects.create(room=room, user=user, role=Membership.OWNER)
    events.person_changed([user.pk])
    return room


def room_join(*, room, user):
    """Join a public room (already in: nothing changes)."""
    if not room.is_public:
        raise ValidationError("Only members can add people to this room.", code="forbidden")
    _check_open(room)
    if room_selectors.is_member(user, room):
        return Done(message=None, seq=None)
    rate_limit_check(user)
    try:
        with transaction.atomic():
            Membership.objects.create(room=room, user=user, last_read_seq=room.last_seq)
            done = _line(room, Message.JOINED, author=user)
    except IntegrityError:  # two tabs joined at once
        return Done(message=None, seq=None)
    events.person_changed([user.pk])
    return done


def room_leave(*, room, user):
    """Leave a room (not a direct conversation). Leaving a private room closes the
    person's sockets for it: reading it again takes an invitation."""
    if room.is_direct:
        raise ValidationError("You cannot leave a direct conversation.", code="direct")
    with transaction.atomic():
        seq = events.take_next_seq(room.pk)  # the room's lock first: joins and leaves queue
        deleted, _ = Membership.objects.filter(room=room, user=user).delete()
        if not deleted:
            raise ValidationError("You are not in this room.", code="not_member")
        done = _line(room, Message.LEFT, author=user, seq=seq)
    events.person_changed([user.pk])
    return done


def member_add(*, room, by, username):
    """An owner (or staff) adds someone to a private room."""
    _check_manager(room, by)
    _check_open(room)
    if room.is_public:
        raise ValidationError("Anyone can join a public room; no invitation needed.", code="public")
    person = _active_user(username)
    rate_limit_check(by)
    try:
        with transaction.atomic():
            seq = events.take_next_seq(room.pk)
            Membership.objects.create(room=room, user=person, last_read_seq=seq)
            done = _line(room, Message.ADDED, author=by, subject=person, seq=seq)
    except IntegrityError:
        raise ValidationError(
            f"{person.get_username()} is already in this room.", code="already_member"
        ) from None
    events.person_changed([person.pk])
    return done


def member_remove(*, room, by, user_id):
    """An owner (or staff) removes someone: their sockets for the room close at once,
    on every process, and nothing after the removal reaches them."""
    _check_manager(room, by)
    if room.is_public:
        raise ValidationError("People leave public rooms themselves.", code="public")
    with transaction.atomic():
        seq = events.take_next_seq(room.pk)
        membership = Membership.objects.filter(room=room, user_id=user_id).select_related("user")
        membership = membership.first()
        if membership is None:
            raise ValidationError("That person is not in this room.", code="not_member")
        membership.delete()
        done = _line(room, Message.REMOVED, author=by, subject=membership.user, seq=seq)
    events.person_changed([user_id])
    return done


def room_rename(*, room, by, name):
    _check_manager(room, by)
    _check_open(room)
    name = clean_room_name(name)
    if name == room.name:
        return Done(message=None, seq=None)
    with transaction.atomic():
        seq = events.take_next_seq(room.pk)
        Room.objects.filter(pk=room.pk).update(name=name)
        room.name = name
        done = _line(room, Message.RENAMED, author=by, text=name, seq=seq)
    events.person_changed(room_selectors.member_ids(room.pk))
    return done


def room_archive(*, room, by, archived=True):
    """Archive (read-only, off the lists) or bring back a room."""
    _check_manager(room, by)
    if room.is_archived == archived:
        return Done(message=None, seq=None)
    with transaction.atomic():
        seq = events.take_next_seq(room.pk)
        room.archived_at = timezone.now() if archived else None
        Room.objects.filter(pk=room.pk).update(archived_at=room.archived_at)
        kind = Message.ARCHIVED if archived else Message.UNARCHIVED
        done = _line(room, kind, author=by, seq=seq)
    events.person_changed(room_selectors.member_ids(room.pk))
    return done


def direct_open(*, user, usernames):
    """The direct conversation between `user` and the people named: found, or created
    (2 to 8 people in all, one conversation per set of people). Returns (room, created)."""
    names = {name.strip().lstrip("@") for name in usernames if name and name.strip()}
    if not names:
        raise ValidationError("Name at least one person to write to.", code="blank")
    people = {user.pk: user}
    for name in sorted(names):
        person = _active_user(name)
        people[person.pk] = person
    if len(people) < 2:
        raise ValidationError("A direct conversation needs someone besides you.", code="self")
    if len(people) > DIRECT_MAX_PEOPLE:
        raise ValidationError(
            f"A direct conversation holds at most {DIRECT_MAX_PEOPLE} people, you included.",
            code="too_many",
        )
    key = room_selectors.direct_key(people)
    room = Room.objects.filter(direct_key=key).first()
    if room is not None:
        return room, False
    rate_limit_check(user)
    try:
        with transaction.atomic():
            room = Room.objects.create(
                name=", ".join(sorted(person.get_username() for person in people.values())),
                slug=f"dm-{secrets.token_hex(6)}",
                kind=Room.DIRECT,
                direct_key=key,
                created_by=user,
            )
            Membership.objects.bulk_create(
                Membership(room=room, user_id=pk, role=Membership.MEMBER) for pk in people
            )
    except IntegrityError:  # the same conversation, started at the same instant
        return Room.objects.get(direct_key=key), False
    events.person_changed(list(people))
    return room, True


def notify_set(*, room, user, notify):
    """What counts and notifies in this room for this person: all, mentions or none."""
    if notify not in dict(Membership.NOTIFY_CHOICES):
        raise ValidationError("Pick every message, mentions only or nothing.", code="notify")
    updated = Membership.objects.filter(room=room, user=user).update(notify=notify)
    if not updated:
        raise ValidationError("Join the room first.", code="not_member")
    events.person_changed([user.pk])


def may_post(room, user):
    """Raise ValidationError unless `user` may write in `room` now."""
    if room.is_archived:
        raise ValidationError(
            "This room is archived: it can be read, not written in.", code="archived"
        )
    if not room.is_public and not room_selectors.is_member(user, room):
        raise ValidationError("You are not in this room any more.", code="not_found")


def _line(room, kind, *, author, subject=None, text="", seq=None):
    """Inside a transaction: the room's line about a change, as its next event."""
    now = timezone.now()
    if seq is None:
        seq = events.take_next_seq(room.pk)
    message = Message.objects.create(
        room=room,
        author=author,
        kind=kind,
        subject=subject,
        text=text,
        seq=seq,
        created_at=now,
        previous_at=_created_at(message_selectors.message_before(room, seq=seq)),
    )
    message.author, message.subject = author, subject
    events.record(events.LINE_KINDS[kind], room_id=room.pk, seq=seq, message=message)
    return Done(message=message, seq=seq)


def _created_at(message):
    return message.created_at if message is not None else None


def _check_manager(room, user):
    if room.is_direct or not (user.is_staff or room_selectors.is_owner(user, room)):
        raise ValidationError("Only the room's owners can do that.", code="forbidden")


def _check_open(room):
    if room.is_archived:
        raise ValidationError("This room is archived.", code="archived")


def _active_user(username):
    username = (username or "").strip().lstrip("@")
    person = get_user_model().objects.filter(username=username, is_active=True).first()
    if person is None:
        raise ValidationError(f"Nobody is called {username!r} here.", code="unknown_user")
    return person
