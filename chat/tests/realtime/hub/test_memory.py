"""EventMemory (chat/realtime/hub/memory.py): the rendered events a process keeps per room."""

from chat.realtime.hub.memory import RECENT_PER_ROOM, EventMemory


class EventMemoryTests:
    def test_a_kept_range_comes_back_in_order(self):
        memory = EventMemory()
        for seq in (3, 1, 2):
            memory.remember(7, seq, f"<e{seq}>")
        assert memory.range(7, 0, 3) == [(1, "<e1>"), (2, "<e2>"), (3, "<e3>")]
        assert memory.range(7, 1, 2) == [(2, "<e2>")]

    def test_an_empty_range_is_empty_not_missing(self):
        memory = EventMemory()
        assert memory.range(7, 5, 5) == []
        assert memory.range(7, 5, 4) == []

    def test_a_range_with_any_number_missing_is_none(self):
        memory = EventMemory()
        memory.remember(7, 1, "<e1>")
        memory.remember(7, 3, "<e3>")
        assert memory.range(7, 0, 3) is None
        assert memory.range(7, 2, 3) == [(3, "<e3>")]
        assert memory.range(8, 0, 1) is None  # a room never seen

    def test_rooms_are_kept_apart_and_forgotten_one_at_a_time(self):
        memory = EventMemory()
        memory.remember(1, 1, "<room 1>")
        memory.remember(2, 1, "<room 2>")
        assert memory.range(1, 0, 1) == [(1, "<room 1>")]
        memory.forget(1)
        memory.forget(99)  # nothing kept: nothing happens
        assert memory.range(1, 0, 1) is None
        assert memory.range(2, 0, 1) == [(1, "<room 2>")]

    def test_the_same_number_again_replaces_its_html(self):
        memory = EventMemory()
        memory.remember(1, 1, "<first>")
        memory.remember(1, 1, "<again>")
        assert memory.range(1, 0, 1) == [(1, "<again>")]

    def test_only_the_newest_are_kept_per_room(self):
        memory = EventMemory(per_room=3)
        for seq in range(1, 6):
            memory.remember(1, seq, f"<e{seq}>")
        memory.remember(2, 1, "<other>")
        assert memory.range(1, 1, 2) is None  # 1 and 2 dropped, oldest first
        assert memory.range(1, 2, 5) == [(3, "<e3>"), (4, "<e4>"), (5, "<e5>")]
        assert memory.range(2, 0, 1) == [(1, "<other>")]
        assert EventMemory().per_room == RECENT_PER_ROOM
