"""chat/notifications.py: the email about missed mentions and direct messages.

Data is made through the actions, as people make it; emails land in Django's locmem
outbox (pytest-django's `mailoutbox`). CHAT_MENTION_EMAIL_DELAY is 0 and each test
passes `now` to `missed_emails_send`, so nothing waits.
"""

import threading
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from chat.actions.memberships import (
    direct_open,
    member_add,
    member_remove,
    notify_set,
    room_open_or_create,
)
from chat.actions.messages import message_delete, message_edit, message_post
from chat.actions.reads import read_mark
from chat.models import Membership, MissedEmail, Profile
from chat.notifications import missed_emails_send
from chat.tests.factories import make_author, make_room, recorded_events
from chat.tests.test_settings import read_settings, run
from tests.support.redis import free_port

pytestmark = pytest.mark.django_db

SITE = "https://chat.example.com"


@pytest.fixture(autouse=True)
def _email_settings(settings):
    settings.CHAT_MENTION_EMAIL_DELAY = 0
    settings.CHAT_RATE_LIMIT = None
    settings.CHAT_SITE_URL = SITE


def person(username, *, email=True):
    user = make_author(username=username)
    if email:
        user.email = f"{username}@example.com"
        user.save(update_fields=["email"])
    return user


@pytest.fixture
def alice():
    return person("alice")


@pytest.fixture
def bob():
    return person("bob")


@pytest.fixture
def carol():
    return person("carol")


@pytest.fixture
def plans(alice, bob):
    """A private room of alice's that bob is in."""
    room, _ = room_open_or_create(user=alice, name="Plans", private=True)
    member_add(room=room, by=alice, username="bob")
    return room


def post(room, author, text):
    return message_post(room=room, author=author, text=text).message


def send():
    """What the worker does once the delay has passed."""
    return missed_emails_send(now=timezone.now() + timedelta(seconds=1))


def to(outbox, user):
    return [email for email in outbox if email.to == [user.email]]


def html_of(email):
    [(html, kind)] = email.alternatives
    assert kind == "text/html"
    return html


def permalink(message):
    return f"{SITE}/messages/{message.pk}/"


class SendingTests:
    def test_one_email_per_person_lists_every_missed_mention_with_room_author_and_link(
        self, mailoutbox, alice, bob, carol, plans
    ):
        general, _ = room_open_or_create(user=alice, name="General")
        room_open_or_create(user=bob, name="General")  # bob joins
        room_open_or_create(user=carol, name="General")
        first = post(plans, alice, "hi @bob, the plan is ready")
        second = post(general, alice, "lunch at noon, @bob and @carol?")

        assert send() == 2

        [email] = to(mailoutbox, bob)
        assert email.subject == "You missed 2 messages in 2 conversations"
        assert email.from_email == "chat@localhost"
        for room, message in ((plans, first), (general, second)):
            assert room.name in email.body
            assert f"{SITE}/chat/{room.slug}/" in email.body
            assert f"alice: {message.text}" in email.body
            assert permalink(message) in email.body
            assert f'href="{permalink(message)}"' in html_of(email)
        assert f"{SITE}/accounts/settings/" in email.body
        [email] = to(mailoutbox, carol)
        assert email.subject == "You missed 1 message in General"
        assert permalink(second) in email.body and permalink(first) not in email.body
        assert to(mailoutbox, alice) == []  # the author is never told about her own words

    def test_names_the_author_as_people_see_them_and_shortens_long_messages(
        self, mailoutbox, alice, bob, plans
    ):
        Profile.objects.create(user=alice, display_name="Alice Liddell")
        post(plans, alice, "@bob " + "very " * 40 + "long")

        send()

        [email] = mailoutbox
        assert "Alice Liddell: @bob very very" in email.body
        assert "…" in email.body and "long" not in email.body

    def test_the_text_part_is_plain_and_the_html_part_escapes_what_people_wrote(
        self, mailoutbox, alice, bob, plans
    ):
        post(plans, alice, "@bob look: <script>alert(1)</script> & more")

        send()

        [email] = mailoutbox
        assert "<script>alert(1)</script> & more" in email.body
        assert "<script>" not in html_of(email)
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html_of(email)

    def test_nothing_before_the_delay_has_passed(self, settings, mailoutbox, alice, bob, plans):
        settings.CHAT_MENTION_EMAIL_DELAY = 600
        message = post(plans, alice, "hi @bob")

        assert missed_emails_send(now=message.created_at + timedelta(seconds=599)) == 0
        assert mailoutbox == []
        assert missed_emails_send(now=message.created_at + timedelta(seconds=600)) == 1
        assert len(mailoutbox) == 1

    def test_nothing_is_emailed_twice(self, mailoutbox, alice, bob, plans):
        post(plans, alice, "hi @bob")

        assert send() == 1
        assert send() == 0
        assert len(mailoutbox) == 1
        assert not MissedEmail.objects.filter(sent_at__isnull=True).exists()

        later = post(plans, alice, "still there, @bob?")  # a new miss is a new email
        assert send() == 1
        assert permalink(later) in mailoutbox[1].body
        assert "hi @bob" not in mailoutbox[1].body

    def test_the_management_command_sends_what_is_due_once(self, mailoutbox, alice, bob, plans):
        post(plans, alice, "hi @bob")

        call_command("chat_worker", "--once")

        assert [email.to for email in mailoutbox] == [["bob@example.com"]]


class ReadInTimeTests:
    def test_nothing_when_read_before_the_email_was_due(self, mailoutbox, alice, bob, plans):
        message = post(plans, alice, "hi @bob")
        read_mark(user=bob, room=plans, seq=message.seq)

        assert send() == 0
        assert mailoutbox == []
        assert MissedEmail.objects.get(user=bob).sent_at is not None  # handled, not waiting

    def test_lists_only_what_is_still_unread(self, mailoutbox, alice, bob, plans):
        read = post(plans, alice, "first, @bob")
        read_mark(user=bob, room=plans, seq=read.seq)
        unread = post(plans, alice, "second, @bob")

        send()

        [email] = mailoutbox
        assert permalink(unread) in email.body and permalink(read) not in email.body


class SkippedTests:
    def test_nothing_when_emails_are_turned_off(self, mailoutbox, alice, bob, plans):
        Profile.objects.create(user=bob, email_missed=False)
        post(plans, alice, "hi @bob")

        assert send() == 0
        assert mailoutbox == []
        assert MissedEmail.objects.get(user=bob).sent_at is not None

    def test_nothing_for_people_without_an_address_or_no_longer_active(
        self, mailoutbox, alice, plans
    ):
        person("dora", email=False)
        member_add(room=plans, by=alice, username="dora")
        post(plans, alice, "hi @bob and @dora")
        get_user_model().objects.filter(username="bob").update(is_active=False)

        assert send() == 0
        assert mailoutbox == []
        assert not MissedEmail.objects.filter(sent_at__isnull=True).exists()

    def test_nothing_from_a_muted_room(self, mailoutbox, alice, bob, plans):
        notify_set(room=plans, user=bob, notify=Membership.NOTIFY_NONE)
        post(plans, alice, "hi @bob")

        assert send() == 0
        assert mailoutbox == []

    def test_mentions_only_still_emails_mentions(self, mailoutbox, alice, bob, plans):
        notify_set(room=plans, user=bob, notify=Membership.NOTIFY_MENTIONS)
        post(plans, alice, "hi @bob")

        assert send() == 1
        assert to(mailoutbox, bob)

    def test_a_deleted_message_is_not_listed(self, mailoutbox, alice, bob, plans):
        gone = post(plans, alice, "oops, @bob")
        kept = post(plans, alice, "this one, @bob")
        message_delete(room=plans, user=alice, message_id=gone.pk)

        send()

        [email] = mailoutbox
        assert permalink(kept) in email.body
        assert permalink(gone) not in email.body and "oops" not in email.body

    def test_no_email_when_the_only_missed_message_was_deleted(self, mailoutbox, alice, bob, plans):
        gone = post(plans, alice, "oops, @bob")
        message_delete(room=plans, user=alice, message_id=gone.pk)

        assert send() == 0
        assert mailoutbox == []

    def test_a_mention_edited_away_is_not_listed(self, mailoutbox, alice, bob, plans):
        message = post(plans, alice, "hi @bob")
        message_edit(room=plans, user=alice, message_id=message.pk, text="hi everyone")

        assert send() == 0
        assert mailoutbox == []

    def test_nothing_from_a_private_room_they_were_removed_from(
        self, mailoutbox, alice, bob, plans
    ):
        post(plans, alice, "hi @bob")
        member_remove(room=plans, by=alice, user_id=bob.pk)

        assert send() == 0
        assert mailoutbox == []


class PublicRoomTests:
    def test_someone_mentioned_in_a_public_room_they_never_joined_is_emailed(
        self, mailoutbox, alice, bob
    ):
        room = make_room(name="Lobby chat")
        message = post(room, alice, "ask @bob")

        assert send() == 1
        [email] = to(mailoutbox, bob)
        assert permalink(message) in email.body

    def test_unmentioned_members_of_a_public_room_get_nothing(self, mailoutbox, alice, bob):
        room, _ = room_open_or_create(user=alice, name="General")
        room_open_or_create(user=bob, name="General")
        post(room, alice, "hello everyone")

        assert send() == 0
        assert mailoutbox == []


class DirectTests:
    def test_everyone_else_in_the_conversation_is_emailed_under_its_name_for_them(
        self, mailoutbox, alice, bob, carol
    ):
        room, _ = direct_open(user=alice, usernames=["bob", "carol"])
        message = post(room, alice, "are you free tonight?")

        assert send() == 2

        [to_bob] = to(mailoutbox, bob)
        assert to_bob.subject == "You missed 1 message in alice, carol"
        assert "alice: are you free tonight?" in to_bob.body
        assert permalink(message) in to_bob.body
        [to_carol] = to(mailoutbox, carol)
        assert to_carol.subject == "You missed 1 message in alice, bob"
        assert to(mailoutbox, alice) == []

    def test_mentions_only_still_emails_direct_messages_and_muting_stops_them(
        self, mailoutbox, alice, bob, carol
    ):
        room, _ = direct_open(user=alice, usernames=["bob", "carol"])
        notify_set(room=room, user=bob, notify=Membership.NOTIFY_MENTIONS)
        notify_set(room=room, user=carol, notify=Membership.NOTIFY_NONE)
        post(room, alice, "are you free tonight?")

        assert send() == 1
        assert [email.to for email in mailoutbox] == [["bob@example.com"]]


class MailServer:
    """A real SMTP server (aiosmtpd) whose answer to each recipient the test chooses."""

    def __init__(self):
        self.answers = {}  # address -> "550 ..." / "450 ..."; anyone else is accepted
        self.delivered = []  # [address]

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        answer = self.answers.get(address)
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.delivered.extend(envelope.rcpt_tos)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server(settings):
    """Django's SMTP backend, talking to a real SMTP server on a free port."""
    server = MailServer()
    controller = Controller(server, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    yield server
    controller.stop()


class MailServerAnswersTests:
    """What the mail server says about one address never holds up the others."""

    @pytest.fixture
    def missed(self, alice, bob, carol, plans):
        person("dora")
        for name in ("carol", "dora"):
            member_add(room=plans, by=alice, username=name)
        post(plans, alice, "hi @bob @carol @dora")

    def test_a_refused_address_is_handled_for_good_and_the_others_are_sent(
        self, smtp_server, missed
    ):
        smtp_server.answers["bob@example.com"] = "550 5.1.1 No such mailbox"

        assert send() == 2

        assert sorted(smtp_server.delivered) == ["carol@example.com", "dora@example.com"]
        assert not MissedEmail.objects.filter(sent_at__isnull=True).exists()
        assert send() == 0  # bob is not tried again, every round

    def test_try_later_keeps_that_email_for_the_next_round_and_sends_the_others(
        self, smtp_server, missed
    ):
        smtp_server.answers["carol@example.com"] = "450 4.2.1 Try again later"

        assert send() == 2
        assert sorted(smtp_server.delivered) == ["bob@example.com", "dora@example.com"]
        assert list(
            MissedEmail.objects.filter(sent_at__isnull=True).values_list(
                "user__username", flat=True
            )
        ) == ["carol"]

        del smtp_server.answers["carol@example.com"]
        assert send() == 1
        assert smtp_server.delivered.count("carol@example.com") == 1

    def test_no_mail_server_marks_nothing(self, settings, alice, bob, plans):
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nobody there
        post(plans, alice, "hi @bob")

        with pytest.raises(OSError):
            send()

        assert MissedEmail.objects.get(user=bob).sent_at is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row locks: SQLite serialises writers instead"
)
def test_a_person_another_worker_holds_is_skipped_not_emailed_twice(mailoutbox):
    """Worker A holds bob (his user row, locked as the sending code locks it); worker B
    passes him over instead of waiting or emailing him too; once A is done, B finds his
    rows handled."""
    with recorded_events():  # commits publish: keep them off the channel layer
        alice, bob = person("alice"), person("bob")
        room, _ = room_open_or_create(user=alice, name="Plans", private=True)
        member_add(room=room, by=alice, username="bob")
        post(room, alice, "hi @bob")
    holding, release, done = threading.Event(), threading.Event(), threading.Event()

    def worker_a():
        try:
            with transaction.atomic():
                get_user_model().objects.select_for_update(no_key=True).get(pk=bob.pk)
                holding.set()
                release.wait(30)
                MissedEmail.objects.filter(user=bob).update(sent_at=timezone.now())
        finally:
            connection.close()
            done.set()

    thread = threading.Thread(target=worker_a)
    thread.start()
    try:
        assert holding.wait(30)
        assert send() == 0  # returns at once: SKIP LOCKED, not a wait
        assert MissedEmail.objects.get(user=bob).sent_at is None
    finally:
        release.set()
        thread.join(30)
    assert done.is_set()
    assert send() == 0
    assert mailoutbox == []


# --- The settings block (project/settings.py), read in fresh processes ---

EMAIL_SETTINGS = [
    "EMAIL_BACKEND",
    "EMAIL_HOST",
    "EMAIL_PORT",
    "EMAIL_USE_TLS",
    "EMAIL_HOST_USER",
    "DEFAULT_FROM_EMAIL",
    "CHAT_SITE_URL",
    "CHAT_WORKER_POLL_SECONDS",
]


def test_email_settings_print_to_the_console_on_a_laptop_and_use_smtp_when_a_host_is_set():
    assert read_settings(EMAIL_SETTINGS) == {
        "EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend",
        "EMAIL_HOST": "",
        "EMAIL_PORT": 25,
        "EMAIL_USE_TLS": False,
        "EMAIL_HOST_USER": "",
        "DEFAULT_FROM_EMAIL": "chat@localhost",
        "CHAT_SITE_URL": "http://127.0.0.1:8000",
        "CHAT_WORKER_POLL_SECONDS": 5.0,
    }
    assert read_settings(
        EMAIL_SETTINGS,
        EMAIL_HOST="smtp.example.com",
        EMAIL_USE_TLS="true",
        EMAIL_HOST_USER="chat",
        EMAIL_HOST_PASSWORD="secret",
        DEFAULT_FROM_EMAIL="Chat <chat@example.com>",
        CHAT_SITE_URL="https://chat.example.com/",
        CHAT_WORKER_POLL_SECONDS="0.5",
    ) == {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "smtp.example.com",
        "EMAIL_PORT": 587,
        "EMAIL_USE_TLS": True,
        "EMAIL_HOST_USER": "chat",
        "DEFAULT_FROM_EMAIL": "Chat <chat@example.com>",
        "CHAT_SITE_URL": "https://chat.example.com",
        "CHAT_WORKER_POLL_SECONDS": 0.5,
    }


@pytest.mark.parametrize(
    ("variables", "says"),
    [
        ({"CHAT_SITE_URL": "chat.example.com"}, "CHAT_SITE_URL must start with http://"),
        ({"CHAT_SITE_URL": "ftp://chat.example.com"}, "CHAT_SITE_URL must start with http://"),
        ({"EMAIL_USE_TLS": "true", "EMAIL_USE_SSL": "true"}, "EMAIL_USE_TLS or EMAIL_USE_SSL"),
        ({"EMAIL_PORT": "70000"}, "EMAIL_PORT must be a port number"),
        ({"EMAIL_PORT": "smtp"}, "EMAIL_PORT must be a whole number"),
        ({"DEFAULT_FROM_EMAIL": "chat"}, "DEFAULT_FROM_EMAIL must be an address"),
        ({"CHAT_WORKER_POLL_SECONDS": "0"}, "CHAT_WORKER_POLL_SECONDS must be at least"),
    ],
    ids=[
        "no scheme",
        "not http",
        "tls and ssl",
        "port too big",
        "port not a number",
        "from",
        "poll",
    ],
)
def test_bad_email_settings_fail_clearly(variables, says):
    result = run(["-c", "import project.settings"], **variables)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured"), result.stderr
    assert says in last_line
