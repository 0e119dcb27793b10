"""Email about what a person missed: mentions and direct messages.

A post queues a `MissedEmail` per person mentioned or written to directly (not per
member); the worker (chat/management/commands/chat_worker.py) sends each person one
email listing what is still unread once CHAT_MENTION_EMAIL_DELAY has passed.
"""

import logging
import smtplib
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from chat.formatting import excerpt
from chat.models import Membership, Mention, MissedEmail, Profile
from chat.selectors.people import display_name
from chat.selectors.rooms import title_for


def missed_email_queue(room, message, mentioned):
    """Inside the post's transaction: queue an email check for the people concerned."""
    recipients = {person.pk for person in mentioned}
    if room.is_direct:
        recipients |= set(Membership.objects.filter(room=room).values_list("user_id", flat=True))
    recipients.discard(message.author_id)
    if not recipients:
        return
    due = message.created_at + timedelta(seconds=settings.CHAT_MENTION_EMAIL_DELAY)
    MissedEmail.objects.bulk_create(
        MissedEmail(user_id=user_id, message=message, due_at=due) for user_id in recipients
    )


# --- Sending: the worker's side (chat/management/commands/chat_worker.py) ---
#
# Why a worker polling the database, and not the channel layer: the email is due ten
# minutes after the post, and channels_redis drops a message nobody received within
# `expiry` (60 s here) and keeps nothing across a Redis restart. The MissedEmail rows,
# written in the post's own transaction, are the queue: durable, and a row whose email
# went out is marked `sent_at`, so a restarted worker neither loses nor repeats one.

# People handled per call: one transaction each, so a call stays short and the command
# can stop between calls when told to.
MISSED_EMAIL_BATCH = 100

logger = logging.getLogger(__name__)


@dataclass
class _Missed:
    """One message to list in an email, as the recipient sees it."""

    author: str
    excerpt: str
    url: str


@dataclass
class _RoomMissed:
    title: str
    url: str
    messages: list = field(default_factory=list)


def missed_emails_send(now=None):
    """Send every person whose MissedEmail rows are due by `now` one email listing what
    they still have not read; mark every due row handled (listed or not). Returns the
    number of emails sent.

    Each person is one transaction that first locks their user row with SKIP LOCKED: two
    workers at once never both take the same person, so nobody gets the same rows twice
    or one email split in two. The email goes out inside the transaction: if sending
    fails, nothing is marked and the next call tries again. (On SQLite the lock is a
    no-op; its one writer at a time serialises workers anyway.)
    """
    now = now or timezone.now()
    people = list(
        MissedEmail.objects.filter(sent_at__isnull=True, due_at__lte=now)
        .values_list("user_id", flat=True)
        .order_by("user_id")
        .distinct()[:MISSED_EMAIL_BATCH]
    )
    if not people:
        return 0
    sent = 0
    # One connection for the batch, opened by the first email (not when all are skipped).
    smtp = mail.get_connection()
    try:
        for user_id in people:
            sent += _send_to(user_id, now, smtp)
    finally:
        smtp.close()
    return sent


def _send_to(user_id, now, smtp):
    """One person's due rows: at most one email. Returns 1 if it was sent, else 0."""
    try:
        with transaction.atomic():
            user = (
                get_user_model()
                .objects.select_for_update(skip_locked=True, no_key=True, of=("self",))
                .select_related("profile")
                .filter(pk=user_id)
                .first()
            )
            if user is None:  # another worker has this person (or they were deleted)
                return 0
            # Read after taking the lock: rows another worker just handled show as sent.
            due = list(
                MissedEmail.objects.filter(user=user, sent_at__isnull=True, due_at__lte=now)
                .select_related("message__room", "message__author__profile")
                .order_by("message__room_id", "message__seq")
            )
            if not due:
                return 0
            rooms = _still_missed(user, [row.message for row in due]) if _wants_email(user) else []
            MissedEmail.objects.filter(pk__in=[row.pk for row in due]).update(
                sent_at=timezone.now()
            )
            if not rooms:
                return 0
            # Not reaching the server, or it refusing us, is nobody's fault in particular:
            # that raises, rolls back and ends the round (the worker tries again later).
            smtp.open()  # no-op once open
            try:
                smtp.send_messages([_email(user, rooms)])
            except (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError) as error:
                if _smtp_code(error) < 500:
                    raise  # "try later" for this email: roll back, go on with the others
                # The server will never take this one: marked handled, or it would come
                # first and fail again every round.
                logger.warning("missed email to user %s refused: %s", user.pk, error)
                return 0
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError) as error:
        logger.warning("missed email to user %s deferred: %s", user_id, error)
        return 0
    count = sum(len(room.messages) for room in rooms)
    logger.info(
        "missed email sent to user %s: %s message(s) in %s room(s)",
        user.pk,
        count,
        len(rooms),
        extra={"user": user.pk, "messages": count, "rooms": len(rooms)},
    )
    return 1


def _smtp_code(error):
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return min(code for code, _ in error.recipients.values())
    return error.smtp_code


def _wants_email(user):
    if not user.is_active or not user.email:
        return False
    try:
        return user.profile.email_missed
    except Profile.DoesNotExist:  # nobody chose: on
        return True


def _still_missed(user, messages):
    """[_RoomMissed] of the messages `user` should still hear about, by room."""
    room_ids = {message.room_id for message in messages}
    memberships = {
        membership.room_id: membership
        for membership in Membership.objects.filter(user=user, room_id__in=room_ids)
    }
    mentioned = set(
        Mention.objects.filter(user=user, message__in=messages).values_list("message_id", flat=True)
    )
    site = settings.CHAT_SITE_URL
    rooms = {}
    for message in messages:
        if not _worth_telling(message, memberships.get(message.room_id), message.pk in mentioned):
            continue
        room = message.room
        if room.pk not in rooms:
            rooms[room.pk] = _RoomMissed(
                title=title_for(room, user), url=site + room.get_absolute_url()
            )
        rooms[room.pk].messages.append(
            _Missed(
                author=display_name(message.author),
                excerpt=excerpt(message.text),
                url=site + reverse("message", kwargs={"pk": message.pk}),
            )
        )
    return list(rooms.values())


def _worth_telling(message, membership, is_mentioned):
    if message.is_deleted:
        return False
    room = message.room
    if membership is None:
        # Never joined a public room they were mentioned in: nothing of it is read. Out of
        # a private room or a conversation: they may not read it any more.
        return room.is_public and is_mentioned
    if membership.last_read_seq >= message.seq or membership.notify == Membership.NOTIFY_NONE:
        return False
    # A direct message is for them whatever it says; elsewhere only a mention still in
    # the text (an edit may have taken it out) is.
    return room.is_direct or is_mentioned


def _email(user, rooms):
    count = sum(len(room.messages) for room in rooms)
    plural = "s" if count != 1 else ""
    where = rooms[0].title if len(rooms) == 1 else f"{len(rooms)} conversations"
    # Titles are people's text: no line break may reach a header.
    subject = " ".join(f"You missed {count} message{plural} in {where}".split())
    context = {
        "name": display_name(user),
        "rooms": rooms,
        "count": count,
        "settings_url": settings.CHAT_SITE_URL + reverse("settings"),
    }
    message = mail.EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("chat/email/missed.txt", context),
        to=[user.email],
    )
    message.attach_alternative(render_to_string("chat/email/missed.html", context), "text/html")
    return message
