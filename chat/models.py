"""The chat's data: rooms, messages, reactions, and the numbered events of each room.

Every durable change to a room (a message posted, edited or deleted, a reaction added or
removed) takes the room's next sequence number in the transaction that makes it and is
recorded as a `RoomEvent`. Pages apply events in that order, exactly once; a page that
was away asks for the events after the last number it saw (chat/realtime).
"""

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone


class Room(models.Model):
    name = models.CharField(max_length=80, unique=True)
    slug = models.SlugField(max_length=80, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The sequence number of the room's newest event: bumped in the same transaction
    # that makes a change, so numbers are unique, gapless and in commit order.
    last_seq = models.PositiveBigIntegerField(default=0)
    last_message_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("room", kwargs={"slug": self.slug})

    @property
    def group_name(self):
        return f"room-{self.pk}"


class Message(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_messages"
    )
    # The number of the event that posted it: its place in the room, for good.
    seq = models.PositiveBigIntegerField()
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    # The composer's one-time key: a form that arrives twice stores one message.
    client_key = models.UUIDField(null=True, blank=True)
    reply_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replies"
    )
    edited_at = models.DateTimeField(null=True, blank=True)
    # A deleted message keeps its row (events and replies point at it) but not its text.
    deleted_at = models.DateTimeField(null=True, blank=True)
    # Bumped by every change that alters how the message looks: the key of its kept HTML,
    # so a page can never be served an old version.
    version = models.PositiveIntegerField(default=1, db_default=1)
    # Fixed when posted, so the one rendering serves every reader: whether the name is
    # shown (a new author, or a pause), and when the message before it was posted, so
    # each reader's clock can tell whether a day divider leads it (chat/localtime.py).
    continues_group = models.BooleanField(default=False, db_default=False)
    previous_at = models.DateTimeField(null=True, blank=True)
    # {emoji: [[user id, name], ...]} in reaction order: what the fragment shows, kept
    # with the message so rendering needs no query. `Reaction` rows are the truth.
    reactions = models.JSONField(default=dict, db_default={}, blank=True)

    class Meta:
        ordering = ["room", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["room", "seq"], name="message_unique_room_seq"),
            models.UniqueConstraint(
                fields=["author", "client_key"],
                condition=models.Q(client_key__isnull=False),
                name="message_unique_author_client_key",
            ),
        ]

    def __str__(self):
        return f"{self.room} #{self.seq}"

    @property
    def dom_id(self):
        return f"message-{self.pk}"

    @property
    def is_deleted(self):
        return self.deleted_at is not None

    @property
    def starts_day(self):
        """Whether a new day begins with this message, on the operator's clock."""
        return self.previous_at is None or timezone.localdate(
            self.previous_at
        ) != timezone.localdate(self.created_at)


class Reaction(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reaction_set")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    emoji = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["message", "user", "emoji"], name="reaction_unique_message_user_emoji"
            )
        ]

    def __str__(self):
        return f"{self.emoji} on {self.message_id} by {self.user_id}"


class RoomEvent(models.Model):
    """One durable change, numbered in its room's sequence (kinds: chat/events.py)."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveBigIntegerField()
    kind = models.CharField(max_length=40)
    message = models.ForeignKey(Message, null=True, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["room", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["room", "seq"], name="roomevent_unique_room_seq")
        ]

    def __str__(self):
        return f"{self.room_id} #{self.seq} {self.kind}"


class Profile(models.Model):
    """What a person chooses about how they appear: created on first use."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="profile"
    )
    # Shown everywhere instead of the username; blank means the username.
    display_name = models.CharField(max_length=50, blank=True)
    # An IANA name (Europe/Paris); blank means the operator's TIME_ZONE.
    time_zone = models.CharField(max_length=64, blank=True)
    # Off: never listed under "People here", on any page.
    show_presence = models.BooleanField(default=True)

    def __str__(self):
        return f"profile of {self.user_id}"
