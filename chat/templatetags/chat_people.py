import functools
from urllib.parse import quote

from django import template
from django.urls import reverse

from chat.selectors import people

register = template.Library()


@register.filter
def display_name(user):
    return people.display_name(user)


@register.inclusion_tag("chat/people/_avatar.html")
def avatar(user, size="small"):
    name = people.display_name(user)
    return {"initials": people.initials(name), "hue": people.avatar_hue(user.pk), "size": size}


@register.filter
def initials(user):
    return people.initials(people.display_name(user))


@register.filter
def avatar_hue(user):
    return people.avatar_hue(user.pk)


@register.filter
def person_url(user):
    """The person's page: one reverse() per process, not one per name in a long list."""
    return f"{_people_root()}{quote(user.get_username())}/"


@functools.cache
def _people_root():
    return reverse("person", kwargs={"username": "_"})[:-2]
