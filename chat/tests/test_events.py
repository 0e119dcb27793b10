"""Every event kind: its live frame and its catch-up frame leave a page as a fresh load shows it.

For each kind in `chat.events.CATALOGUE` a story builds a room through the actions, as
people change it. Before every step a viewer's room page is loaded (Django's test
client) and kept as htmx holds it (tests/support/htmx.py). Afterwards each kept page
gets, in every possible mix, what it missed:

- live: the HTML `chat.events` handed to the hub after commit (a recording publisher is
  connected here instead), one frame per event, in order;
- catch-up: `render_stored(events_after(...))`, what the consumer sends a page that was
  away, in one frame (as the consumer sends a batch) and one frame per event;
- the first k events live and the rest caught up, for every k.

Each result must equal, message by message (normalised, and to the attribute), the room
as a freshly loaded page shows it (the room page and its `?before=` pages), from the
first message the kept page showed; and its #last-seq must be the room's.
"""

import re
from dataclasses import dataclass

import pytest
from django.conf import settings as django_settings
from django.test import Client

from chat import events
from chat.actions import memberships
from chat.actions.messages import message_delete, message_edit, message_post
from chat.actions.reactions import reaction_set
from chat.localtime import localise
from chat.models import Membership, Profile, Room, RoomEvent
from chat.selectors.events import events_after
from chat.tests.factories import make_author, make_room
from tests.support.htmx import Document, normalised

pytestmark = pytest.mark.django_db

POSTED, EDITED, DELETED, REACTIONS = (
    events.MESSAGE_POSTED.name,
    events.MESSAGE_EDITED.name,
    events.MESSAGE_DELETED.name,
    events.REACTIONS_CHANGED.name,
)
# UTC+14: most messages fall on another day there than on the operator's clock.
FAR_ZONE = "Pacific/Kiritimati"
OLDER_LINK = re.compile(r'href="[^"]*\?before=(\d+)"')


@pytest.fixture(autouse=True)
def _no_rate_limit(settings):
    settings.CHAT_RATE_LIMIT = None


@pytest.fixture
def published():
    """[(room_id, seq, html)] of every event chat.events publishes (after commit), in order.

    A recording publisher instead of the hub's `publish_from_thread`, put back afterwards.
    """
    sent = []
    previous = events._publisher
    events.connect_publisher(lambda room_id, seq, html, **_: sent.append((room_id, seq, html)))
    yield sent
    events.connect_publisher(previous)


@dataclass(frozen=True)
class Kept:
    """A room page as it was loaded before a step."""

    before: str  # which step
    html: str
    last_seq: int
    first_seq: int  # the first message it showed (0: none)
    published: int  # events published before it was loaded


class Story:
    """A room changed step by step through the actions; a viewer's page kept before each."""

    def __init__(self, *, published, capture, zone=None, people=("alice", "bob", "carol")):
        self.room = make_room()
        self.people = {name: make_author(username=f"{name}-{self.room.pk}") for name in people}
        viewers = [make_author(), make_author()]
        if zone:  # readers on another clock: the hub and the consumer localise for them
            Profile.objects.bulk_create(Profile(user=user, time_zone=zone) for user in viewers)
        self.zone = zone or django_settings.TIME_ZONE
        self.viewer, self.other_viewer = (self.client_of(user) for user in viewers)
        self.published = published
        self.capture = capture
        self.kept = []
        self.kinds = set()  # kinds of the events the story made

    def client_of(self, user):
        client = Client()
        client.force_login(user)
        return client

    # --- reading the room as a page does ---

    def page_html(self, query="", client=None):
        response = (client or self.viewer).get(f"/chat/{self.room.slug}/{query}")
        assert response.status_code == 200
        return response.content.decode()

    def history(self, client=None):
        """[NormalMessage] of the whole room: the room page, then its ?before= pages."""
        html = self.page_html(client=client)
        shown = normalised(Document(html))
        while older := OLDER_LINK.search(html):
            html = self.page_html(f"?before={older[1]}", client=client)
            shown = normalised(Document(html)) + shown
        return shown

    # --- the steps ---

    def post(self, who, text, *, reply_to=None):
        return self._step(
            f"{who} posts {text!r}",
            message_post,
            room=self.room,
            author=self.people[who],
            text=text,
            reply_to_id=reply_to.pk if reply_to is not None else None,
        ).message

    def edit(self, who, message, text):
        return self._step(
            f"{who} edits {message.text!r} to {text!r}",
            message_edit,
            room=self.room,
            user=self.people[who],
            message_id=message.pk,
            text=text,
        )

    def delete(self, who, message):
        return self._step(
            f"{who} deletes {message.text!r}",
            message_delete,
            room=self.room,
            user=self.people[who],
            message_id=message.pk,
        )

    def react(self, who, message, emoji, *, on=True):
        return self._step(
            f"{who} {'sets' if on else 'unsets'} {emoji} on {message.text!r}",
            reaction_set,
            room=self.room,
            user=self.people[who],
            message_id=message.pk,
            emoji=emoji,
            on=on,
        )

    def act(self, label, action, **arguments):
        """Any other action on the room (joins, invitations, renames...)."""
        return self._step(label, action, **arguments)

    def make_private(self, owner):
        """The room becomes private, owned by `owner`; the viewers are members."""
        Room.objects.filter(pk=self.room.pk).update(kind=Room.PRIVATE)
        self.room.refresh_from_db()
        Membership.objects.create(room=self.room, user=self.people[owner], role="owner")
        for client in (self.viewer, self.other_viewer):
            Membership.objects.create(room=self.room, user_id=int(client.session["_auth_user_id"]))

    def _step(self, label, action, **arguments):
        self.room.refresh_from_db()
        html = self.page_html()
        page = Document(html)
        assert page.last_seq == self.room.last_seq
        shown = page.messages
        self.kept.append(
            Kept(
                before=label,
                html=html,
                last_seq=page.last_seq,
                first_seq=int(shown[0].get("data-seq")) if shown else 0,
                published=len(self.published),
            )
        )
        count = len(self.published)
        with self.capture(execute=True):
            done = action(**arguments)
        new = self.published[count:]
        if done.changed:  # one event, published once, with its number
            assert [(room_id, seq) for room_id, seq, _ in new] == [(self.room.pk, done.seq)]
            self.kinds.add(RoomEvent.objects.get(room=self.room, seq=done.seq).kind)
        else:  # nothing changed: nothing numbered, nothing published
            assert new == []
        return done

    # --- the check ---

    def check(self):
        """Every kept page, given what it missed in every mix, shows the room as it is."""
        self.room.refresh_from_db()
        history = self.history()
        assert history, "the story leaves no message to compare"
        fresh = normalised(Document(self.page_html()))
        assert fresh == history[-len(fresh) :]
        # One rendering for every reader: another person on the same clock sees the same.
        assert self.history(self.other_viewer) == history
        for kept in self.kept:
            self._check_kept(kept, history)

    def _check_kept(self, kept, history):
        live = self.published[kept.published :]
        assert [seq for _, seq, _ in live] == list(range(kept.last_seq + 1, self.room.last_seq + 1))
        expected = [message for message in history if message.seq >= kept.first_seq]
        for split in range(len(live) + 1):
            page = Document(kept.html)
            for _, _, html in live[:split]:
                page.apply(localise(html, self.zone))  # as the hub sends it to this reader
            after = live[split - 1][1] if split else kept.last_seq
            stored = events.render_stored(events_after(self.room.pk, after_seq=after, limit=10_000))
            assert [seq for seq, _ in stored] == [seq for _, seq, _ in live[split:]]
            # One batch, as the consumer sends it.
            page.apply(localise("".join(html for _, html in stored), self.zone))
            where = f"page loaded before {kept.before!r}, {split} events live, the rest caught up"
            assert normalised(page) == expected, where
            assert page.last_seq == self.room.last_seq, where
        # Caught up one frame per event (from the hub's memory, or several batches).
        page = Document(kept.html)
        for _, html in events.render_stored(
            events_after(self.room.pk, after_seq=kept.last_seq, limit=10_000)
        ):
            page.apply(localise(html, self.zone))
        assert normalised(page) == expected, f"{kept.before!r}: caught up event by event"
        assert page.last_seq == self.room.last_seq


@pytest.fixture(params=[None, FAR_ZONE], ids=["operator-clock", "reader-clock"])
def story(request, published, django_capture_on_commit_callbacks):
    """A story whose viewer reads on the operator's clock, or on a far zone's."""
    return Story(
        published=published, capture=django_capture_on_commit_callbacks, zone=request.param
    )


# --- one story per situation; together they cover every kind in the catalogue ---


def posts_and_replies(story):
    first = story.post("alice", "hello")
    story.post("alice", "still me")  # continues alice's group
    story.post("bob", "**bold** and `code`\n\n- a\n- b")
    story.post("carol", "an answer", reply_to=first)
    story.post("alice", "<script>alert(1)</script> stays text")


def edits(story):
    message = story.post("alice", "helo")
    story.post("bob", "between")
    story.edit("alice", message, "hello")
    story.edit("alice", message, "hello")  # the same text again: nothing changes
    story.edit("alice", message, "hello, see [the docs](https://example.com)")


def edits_of_a_quoted_message(story):
    quoted = story.post("alice", "the original")
    story.post("bob", "a reply", reply_to=quoted)
    story.post("carol", "another reply", reply_to=quoted)
    story.edit("alice", quoted, "the original, corrected")


def deletes(story):
    first = story.post("alice", "going away")
    story.post("bob", "staying")
    story.react("bob", first, "👍")
    story.delete("alice", first)
    story.post("alice", "after the deletion")  # its group and day as posted


def deletes_of_a_quoted_message(story):
    quoted = story.post("alice", "about to go")
    story.post("bob", "a reply to it", reply_to=quoted)
    story.delete("alice", quoted)


def reactions(story):
    message = story.post("alice", "react to me")
    other = story.post("bob", "and me")
    story.react("alice", message, "👍")
    story.react("bob", message, "👍")
    story.react("bob", message, "👍")  # already set: nothing changes
    story.react("carol", message, "❤️")
    story.react("alice", other, "🎉")
    story.react("alice", message, "👍", on=False)
    story.react("alice", message, "👍", on=False)  # already unset: nothing changes
    story.react("bob", message, "👍", on=False)  # the last one: the count goes


def reply_whose_quoted_message_is_edited_then_deleted(story):
    quoted = story.post("alice", "first version")
    reply = story.post("bob", "I agree", reply_to=quoted)
    story.post("carol", "me too", reply_to=quoted)
    story.edit("alice", quoted, "second version")
    story.react("carol", reply, "🙏")
    story.edit("bob", reply, "I agree, mostly")
    story.delete("alice", quoted)
    story.react("alice", reply, "😮")
    story.edit("bob", reply, "I agreed")  # the quote still says the original is gone


def a_whole_life_missed(story):
    message = story.post("alice", "born")
    story.react("bob", message, "😂")
    story.edit("alice", message, "grown")
    story.react("carol", message, "😂")
    story.delete("alice", message)
    story.post("bob", "still here")


def joins_and_leaves(story):
    room, bob = story.room, story.people["bob"]
    story.post("alice", "hello")
    story.act("bob joins", memberships.room_join, room=room, user=bob)
    story.post("bob", "hi, I joined")
    story.act("bob joins again", memberships.room_join, room=room, user=bob)  # nothing
    story.act("bob leaves", memberships.room_leave, room=room, user=bob)
    story.post("alice", "bye bob")


def a_private_rooms_members(story):
    story.make_private(owner="alice")
    room, alice = story.room, story.people["alice"]
    bob, carol = story.people["bob"], story.people["carol"]
    story.post("alice", "welcome")
    story.act("alice adds bob", memberships.member_add, room=room, by=alice, username=bob.username)
    story.post("bob", "thanks")
    story.act(
        "alice adds carol", memberships.member_add, room=room, by=alice, username=carol.username
    )
    story.act(
        "alice removes carol", memberships.member_remove, room=room, by=alice, user_id=carol.pk
    )
    story.act("bob leaves", memberships.room_leave, room=room, user=bob)
    story.act("alice renames", memberships.room_rename, room=room, by=alice, name="Renamed")
    story.act("alice archives", memberships.room_archive, room=room, by=alice, archived=True)
    story.act("alice unarchives", memberships.room_archive, room=room, by=alice, archived=False)
    story.post("alice", "back again")


JOINED, LEFT, ADDED, REMOVED = (
    events.MEMBER_JOINED.name,
    events.MEMBER_LEFT.name,
    events.MEMBER_ADDED.name,
    events.MEMBER_REMOVED.name,
)
ROOM_LINES = {events.ROOM_RENAMED.name, events.ROOM_ARCHIVED.name, events.ROOM_UNARCHIVED.name}

STORIES = {
    joins_and_leaves: {POSTED, JOINED, LEFT},
    a_private_rooms_members: {POSTED, ADDED, REMOVED, LEFT} | ROOM_LINES,
    posts_and_replies: {POSTED},
    edits: {POSTED, EDITED},
    edits_of_a_quoted_message: {POSTED, EDITED},
    deletes: {POSTED, REACTIONS, DELETED},
    deletes_of_a_quoted_message: {POSTED, DELETED},
    reactions: {POSTED, REACTIONS},
    reply_whose_quoted_message_is_edited_then_deleted: {POSTED, EDITED, REACTIONS, DELETED},
    a_whole_life_missed: {POSTED, EDITED, REACTIONS, DELETED},
}


def test_the_stories_cover_every_kind_in_the_catalogue():
    assert set().union(*STORIES.values()) == set(events.CATALOGUE)
    assert all(kind.durable for kind in events.CATALOGUE.values())  # ephemeral kinds: not here


@pytest.mark.parametrize("tell", list(STORIES), ids=lambda tell: tell.__name__)
def test_live_and_catch_up_give_the_page_a_fresh_load_shows(story, tell):
    tell(story)
    assert story.kinds == STORIES[tell]
    story.check()


def test_quotes_of_a_message_outside_the_page_follow_it(story, settings):
    """A page shows the newest few; the quoted message is older than all of them: its
    edit and deletion have no element to replace, and still reach every quote of it."""
    settings.CHAT_PAGE_SIZE = 3
    quoted = story.post("alice", "long ago")
    for number in range(4):
        story.post("bob", f"filler {number}")
    story.post("carol", "replying to the old one", reply_to=quoted)
    story.react("bob", quoted, "👍")
    story.edit("alice", quoted, "long ago, edited")
    story.delete("alice", quoted)
    assert story.kinds == {POSTED, REACTIONS, EDITED, DELETED}
    story.check()
    (reply,) = [m for m in story.history() if m.text == "replying to the old one"]
    assert reply.quote.deleted and reply.quote.text == "Original message deleted"


def test_a_staff_member_changing_someone_elses_message_reaches_pages_alike(story):
    staff = story.people["staff"] = make_author(username=f"staff-{story.room.pk}")
    staff.is_staff = True
    staff.save(update_fields=["is_staff"])
    message = story.post("alice", "needs moderation")
    story.post("bob", "quoting it", reply_to=message)
    story.edit("staff", message, "moderated")
    story.delete("staff", message)
    assert story.kinds == {POSTED, EDITED, DELETED}
    story.check()
