"""The rendered events a process keeps per room, so catch-up rarely needs a query."""

from collections import OrderedDict

RECENT_PER_ROOM = 1024  # rendered events kept per room


class EventMemory:
    def __init__(self, per_room=RECENT_PER_ROOM):
        self.per_room = per_room
        self.rooms = {}  # room id -> OrderedDict(seq -> html)

    def remember(self, room_id, seq, html):
        recent = self.rooms.setdefault(room_id, OrderedDict())
        recent[seq] = html
        while len(recent) > self.per_room:
            recent.popitem(last=False)

    def forget(self, room_id):
        self.rooms.pop(room_id, None)

    def range(self, room_id, after_seq, upto_seq):
        """[(seq, html)] for every number after `after_seq` up to `upto_seq`, or None if
        any of them is not kept."""
        recent = self.rooms.get(room_id, {})
        found = []
        for seq in range(after_seq + 1, upto_seq + 1):
            html = recent.get(seq)
            if html is None:
                return None
            found.append((seq, html))
        return found
