"""Writes, one module per feature. Each validates, changes the database in one
transaction, and records the change as a room event (chat/events.py), which reaches
pages only after commit. Errors are `django.core.exceptions.ValidationError` with a
message a person can read and a `code` the callers map to HTTP statuses.
"""

from dataclasses import dataclass

from chat.models import Message


@dataclass(frozen=True)
class Done:
    """What an action changed: the message, and the number of its event (None: nothing
    changed, as when the same form arrives twice)."""

    message: Message
    seq: int | None

    @property
    def changed(self):
        return self.seq is not None
