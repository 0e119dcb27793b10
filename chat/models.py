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
    """A conversation: public (listed, anyone signed in may read and join), private
    (members only, invisible to others) or direct (2 to 8 people, named after the others)."""

    PUBLIC, PRIVATE, DIRECT = "public", "private", "direct"
    KINDS = [(PUBLIC, "Public"), (PRIVATE, "Private"), (DIRECT, "Direct")]

    # Not unique: a private room or a direct conversation may share a public room's name
    # without anyone learning that it exists. Slugs are unique (private ones carry a
    # random tail).
    name = models.CharField(max_length=80)
    slug = models.SlugField(max_length=80, unique=True)
    kind = models.CharField(max_length=10, choices=KINDS, default=PUBLIC, db_default=PUBLIC)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    archived_at = models.DateTimeField(null=True, blank=True)
    # Direct conversations: the members' ids, sorted ("3-5-9"), so a set of people has one.
    direct_key = models.CharField(max_length=200, null=True, blank=True, unique=True)
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

    @property
    def is_public(self):
        return self.kind == self.PUBLIC

    @property
    def is_private(self):
        return self.kind == self.PRIVATE

    @property
    def is_direct(self):
        return self.kind == self.DIRECT

    @property
    def is_archived(self):
        return self.archived_at is not None


class Membership(models.Model):
    """A person's place in a room: their role, how far they have read, what notifies them.

    Unread counts are derived from `last_read_seq` and the room's messages when asked
    (chat/selectors/unread.py), never written per member when someone posts.
    """

    OWNER, MEMBER = "owner", "member"
    ROLES = [(OWNER, "Owner"), (MEMBER, "Member")]
    NOTIFY_ALL, NOTIFY_MENTIONS, NOTIFY_NONE = "all", "mentions", "none"
    NOTIFY_CHOICES = [
        (NOTIFY_ALL, "Every message"),
        (NOTIFY_MENTIONS, "Mentions only"),
        (NOTIFY_NONE, "Nothing (muted)"),
    ]

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_memberships"
    )
    role = models.CharField(max_length=10, choices=ROLES, default=MEMBER)
    joined_at = models.DateTimeField(default=timezone.now)
    # The newest room event the person has seen: messages after it are unread.
    last_read_seq = models.PositiveBigIntegerField(default=0)
    notify = models.CharField(max_length=10, choices=NOTIFY_CHOICES, default=NOTIFY_ALL)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "user"], name="membership_unique_room_user")
        ]
        indexes = [models.Index(fields=["user", "room"], name="membership_user_room")]

    def __str__(self):
        return f"{self.user_id} in {self.room_id}"

    @property
    def is_owner(self):
        return self.role == self.OWNER


class Message(models.Model):
    # What people wrote, or a line the room shows about itself (a membership change, a
    # rename): those are messages too, so they travel the same stream, history and pages.
    TEXT = "text"
    JOINED, LEFT, ADDED, REMOVED = "joined", "left", "added", "removed"
    RENAMED, ARCHIVED, UNARCHIVED = "renamed", "archived", "unarchived"
    KINDS = [
        (TEXT, "Text"),
        (JOINED, "Joined"),
        (LEFT, "Left"),
        (ADDED, "Added"),
        (REMOVED, "Removed"),
        (RENAMED, "Renamed"),
        (ARCHIVED, "Archived"),
        (UNARCHIVED, "Unarchived"),
    ]

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_messages"
    )
    kind = models.CharField(max_length=12, choices=KINDS, default=TEXT, db_default=TEXT)
    # Whom a membership line is about (added, removed); the author is who did it.
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
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
    # [[user id, username], ...] mentioned with @username: what the fragment links and
    # marks (data-mentions), kept with the message so rendering needs no query.
    mentions = models.JSONField(default=list, db_default=[], blank=True)

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
    def is_text(self):
        return self.kind == self.TEXT

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


class Mention(models.Model):
    """Someone @mentioned in a message: counted, with the room's position, as a mention
    until they read past it."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="mention_set")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    seq = models.PositiveBigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "user"], name="mention_unique_message_user")
        ]
        indexes = [models.Index(fields=["user", "room", "seq"], name="mention_user_room_seq")]

    def __str__(self):
        return f"@{self.user_id} in {self.message_id}"


class MissedEmail(models.Model):
    """A mention or direct message that may deserve an email: the worker sends one email
    per person listing what is still unread when `due_at` passes (chat/notifications.py)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    due_at = models.DateTimeField(db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "message"], name="missedemail_unique_user_message"
            )
        ]

    def __str__(self):
        return f"email to {self.user_id} about {self.message_id}"


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
    # Off: no email about mentions and direct messages missed while away.
    email_missed = models.BooleanField(default=True, db_default=True)

    def __str__(self):
        return f"profile of {self.user_id}"
