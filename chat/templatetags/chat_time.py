from django import template

from chat import localtime

register = template.Library()


@register.simple_tag
def local_time(instant, kind, previous=None):
    """A `<time>` that each reader's page shows on their own clock (chat/localtime.py)."""
    return localtime.time_element(instant, kind, previous=previous)
