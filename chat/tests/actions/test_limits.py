"""chat/actions/limits.py: one write budget per person, shared by every kind of write."""

import pytest

from chat.actions.limits import RateLimited, rate_limit_check
from chat.actions.messages import message_edit, message_post
from chat.actions.reactions import reaction_set
from chat.models import Message
from chat.tests.factories import make_author, make_message, make_room

pytestmark = pytest.mark.django_db


def test_refuses_the_excess_and_says_when_to_come_back(settings):
    settings.CHAT_RATE_LIMIT = (2, 60)
    room, author, other = make_room(), make_author(), make_author()
    message_post(room=room, author=author, text="1")
    message_post(room=room, author=author, text="2")
    with pytest.raises(RateLimited) as error:
        message_post(room=room, author=author, text="3")
    assert "Slow down" in str(error.value)
    assert 1 <= error.value.retry_after <= 61
    assert message_post(room=room, author=other, text="others go on").changed
    assert Message.objects.filter(author=author).count() == 2
    room.refresh_from_db()
    assert room.last_seq == 3  # the refused post took no number


def test_edits_and_reactions_spend_the_same_budget(settings):
    settings.CHAT_RATE_LIMIT = (3, 60)
    room, author = make_room(), make_author()
    message = message_post(room=room, author=author, text="one").message
    message_edit(room=room, user=author, message_id=message.pk, text="two")
    reaction_set(room=room, user=author, message_id=message.pk, emoji="👍", on=True)
    with pytest.raises(RateLimited):
        reaction_set(room=room, user=author, message_id=message.pk, emoji="🎉", on=True)
    with pytest.raises(RateLimited):
        message_edit(room=room, user=author, message_id=message.pk, text="three")
    message.refresh_from_db()
    assert message.text == "two" and message.reactions == {"👍": [[author.pk, author.username]]}


def test_a_change_that_changes_nothing_spends_no_budget(settings):
    settings.CHAT_RATE_LIMIT = (2, 60)
    room, author = make_room(), make_author()
    message = message_post(room=room, author=author, text="same").message
    for _ in range(5):
        assert not message_edit(room=room, user=author, message_id=message.pk, text="same").changed
    assert message_post(room=room, author=author, text="still allowed").changed


def test_exempts_named_users(settings):
    settings.CHAT_RATE_LIMIT = (1, 60)
    settings.CHAT_RATE_LIMIT_EXEMPT = {"bench"}
    room, author = make_room(), make_author(username="bench")
    for number in range(3):
        message_post(room=room, author=author, text=str(number))
    assert Message.objects.count() == 3


def test_off_means_no_limit(settings):
    settings.CHAT_RATE_LIMIT = None
    room, author = make_room(), make_author()
    for number in range(15):
        make_message(room=room, author=author, text=str(number))
    assert Message.objects.count() == 15


def test_the_budget_is_per_person(settings):
    settings.CHAT_RATE_LIMIT = (1, 60)
    first, second = make_author(), make_author()
    rate_limit_check(first)
    rate_limit_check(second)
    with pytest.raises(RateLimited):
        rate_limit_check(first)
