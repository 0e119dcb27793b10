from django import template

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
