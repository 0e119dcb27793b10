"""What the message templates need that a template cannot say well on its own."""

from dataclasses import dataclass

from django import template
from django.utils.safestring import mark_safe

from chat import formatting
from chat.actions.reactions import REACTION_EMOJI

register = template.Library()


@register.filter
def formatted(text, mentions=()):
    """A message's text as formatted, sanitised HTML (chat/formatting.py), its
    `mentions` ([[id, username], ...]) linked."""
    return mark_safe(formatting.message_html(text, mentions or ()))  # noqa: S308 - nh3-sanitised


@register.filter
def mention_marks(mentions):
    """ " u3 u5 ": who a message mentions, matched per reader by CSS ([data-mentions~="u5"])."""
    return " ".join(f"u{pk}" for pk, _ in mentions or ())


@register.filter
def has_line_breaks(text):
    return "\n" in (text or "")


@register.filter
def excerpt(text):
    return formatting.excerpt(text)


@dataclass(frozen=True)
class ReactionButton:
    emoji: str
    count: int
    names: str  # who reacted, for the title
    reactors: str  # " u3 u5 ": matched per reader by CSS ([data-reactors~="u5"])


@dataclass(frozen=True)
class ReactionButtons:
    chosen: list  # emoji someone chose, in the offered order
    offered: list  # the rest


@register.filter
def reaction_buttons(message):
    """The offered emoji of a message, split into those chosen and the rest."""
    chosen, offered = [], []
    for emoji in REACTION_EMOJI:
        people = message.reactions.get(emoji, ())
        button = ReactionButton(
            emoji=emoji,
            count=len(people),
            names=", ".join(name for _, name in people),
            reactors=" ".join(f"u{user_id}" for user_id, _ in people),
        )
        (chosen if people else offered).append(button)
    return ReactionButtons(chosen=chosen, offered=offered)
