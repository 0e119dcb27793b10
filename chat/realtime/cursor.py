"""What one page has seen of its room's event stream, and what it still needs."""

from dataclasses import dataclass


@dataclass
class PageCursor:
    """The page's position in its room's sequence of events.

    `shown` is the newest number the page has applied: unknown (None) until the page
    says where it is (its #catch-up form on every (re)connect) or the wait for that runs
    out. `wanted` is the newest number the room is known to have. `reread` asks for a
    read from the database to the room's end: after the page said where it is, or when a
    long absence filled a whole batch.
    """

    shown: int | None = None
    wanted: int = 0
    reread: bool = False

    @property
    def known(self):
        return self.shown is not None

    def page_says(self, last_seq):
        """The page reports it shows up to `last_seq`. Never moves back: frames already
        in flight may be newer than what the page reported."""
        self.shown = last_seq if self.shown is None else max(self.shown, last_seq)
        self.reread = True

    def room_reached(self, seq):
        """The room has events up to `seq`. True if this page still lacks some of them."""
        self.wanted = max(self.wanted, seq)
        return self.known and seq > self.shown

    def next_read(self):
        """What to fetch next: (True, None) to the room's end, (True, upto) for a known
        range, (False, None) when the page is current."""
        if self.reread:
            self.reread = False
            return True, None
        if self.wanted > self.shown:
            return True, self.wanted
        return False, None

    def sent(self, upto_seq):
        self.shown = max(self.shown, upto_seq)
