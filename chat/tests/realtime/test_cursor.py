"""PageCursor (chat/realtime/cursor.py): what one page has seen of its room's events.

The consumer drives it like this: the hub announces each event number (`room_reached`),
the page reports its position on every (re)connect (`page_says`), the filler asks what
to read next (`next_read`) and records what it sent (`sent`).
"""

from chat.realtime.cursor import PageCursor


def drain(cursor, *, room_end=None):
    """The reads the consumer's filler makes until the page is current, each answered in
    full; a read to the room's end finds `room_end` (default: where the page is)."""
    reads = []
    while True:
        more, upto = cursor.next_read()
        if not more:
            return reads
        reads.append(upto)
        cursor.sent(upto if upto is not None else max(room_end or 0, cursor.shown))


class PageCursorTests:
    def test_a_new_cursor_knows_nothing_and_wants_nothing(self):
        cursor = PageCursor()
        assert not cursor.known
        assert cursor.shown is None and cursor.wanted == 0 and not cursor.reread

    def test_events_before_the_page_says_where_it_is_are_only_counted(self):
        cursor = PageCursor()
        assert cursor.room_reached(3) is False
        assert cursor.room_reached(5) is False
        assert cursor.wanted == 5 and cursor.shown is None

    def test_the_page_saying_where_it_is_asks_for_a_read_to_the_rooms_end(self):
        cursor = PageCursor()
        cursor.room_reached(5)
        cursor.page_says(2)
        assert cursor.known and cursor.shown == 2
        # First to the room's end (the database may hold more than the hub announced).
        assert cursor.next_read() == (True, None)
        cursor.sent(5)
        assert cursor.next_read() == (False, None)

    def test_a_page_at_the_end_needs_nothing_more_after_the_first_read(self):
        cursor = PageCursor()
        cursor.page_says(0)
        assert cursor.next_read() == (True, None)
        assert cursor.next_read() == (False, None)

    def test_each_new_event_is_wanted_once(self):
        cursor = PageCursor()
        cursor.page_says(4)
        drain(cursor)
        assert cursor.room_reached(5) is True
        cursor.sent(5)
        assert cursor.room_reached(5) is False  # the same number again: already shown
        assert cursor.room_reached(4) is False  # an older one: already shown
        assert cursor.room_reached(6) is True

    def test_a_gap_is_read_up_to_the_newest_number_known(self):
        cursor = PageCursor()
        cursor.page_says(1)
        drain(cursor)
        for seq in (3, 7, 5):  # announced out of order
            cursor.room_reached(seq)
        assert cursor.wanted == 7
        assert cursor.next_read() == (True, 7)
        cursor.sent(7)
        assert cursor.next_read() == (False, None)

    def test_a_read_that_falls_short_is_read_on(self):
        cursor = PageCursor()
        cursor.page_says(0)
        drain(cursor)
        cursor.room_reached(1000)
        assert cursor.next_read() == (True, 1000)
        cursor.sent(500)  # one batch of the limit
        assert cursor.next_read() == (True, 1000)
        cursor.sent(1000)
        assert cursor.next_read() == (False, None)

    def test_reread_asks_for_the_rooms_end_once(self):
        cursor = PageCursor()
        cursor.page_says(0)
        drain(cursor)
        cursor.reread = True  # a long absence filled a whole batch
        assert cursor.next_read() == (True, None)
        assert cursor.next_read() == (False, None)

    def test_the_position_never_moves_back(self):
        cursor = PageCursor()
        cursor.page_says(5)
        cursor.sent(9)
        # A reconnecting page reports what it had applied; frames already in flight
        # may be newer: nothing is sent twice.
        cursor.page_says(7)
        assert cursor.shown == 9
        cursor.sent(8)
        assert cursor.shown == 9
        assert cursor.room_reached(9) is False

    def test_a_reconnect_reports_its_position_and_reads_again(self):
        cursor = PageCursor()
        cursor.page_says(3)
        drain(cursor)
        cursor.page_says(3)  # the page's catch-up form, on the next (re)connect
        assert cursor.next_read() == (True, None)

    def test_a_page_ahead_of_the_hub_waits_for_it(self):
        cursor = PageCursor()
        cursor.room_reached(2)
        cursor.page_says(6)  # the page saw events this process has not fanned out yet
        drain(cursor)
        assert cursor.room_reached(5) is False
        assert cursor.room_reached(6) is False
        assert cursor.room_reached(7) is True
        assert cursor.next_read() == (True, 7)

    def test_a_whole_session_sends_every_number_once_in_order(self):
        cursor = PageCursor()
        sent = []
        for seq in (1, 2):
            cursor.room_reached(seq)  # before the page reports: only counted
        cursor.page_says(0)
        assert drain(cursor, room_end=2) == [None]  # one read to the room's end: 1..2
        sent.append((0, 2))
        for seq in range(3, 9):
            if cursor.room_reached(seq):
                sent.append((cursor.shown, seq))
                cursor.sent(seq)
        assert sent == [(0, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7), (7, 8)]
        assert cursor.next_read() == (False, None)
