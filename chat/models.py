from django.conf import settings
from django.db import models
from django.urls import reverse


class Room(models.Model):
    name = models.CharField(max_length=80, unique=True)
    slug = models.SlugField(max_length=80, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The sequence number of the room's newest message: bumped in the same transaction
    # that saves a message, so numbers are unique, gapless and in commit order.
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
    seq = models.PositiveBigIntegerField()
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    # The composer's one-time key: a form that arrives twice stores one message.
    client_key = models.UUIDField(null=True, blank=True)

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
