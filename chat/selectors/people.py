"""Who people are: display names, avatars, profiles. Names fall back to the username."""

from django.conf import settings
from django.contrib.auth import get_user_model

from chat.models import Profile

AVATAR_HUES = 12  # chat.css has one avatar colour class per hue


def display_name(user):
    """The name a person chose, or their username."""
    try:
        chosen = user.profile.display_name
    except Profile.DoesNotExist:
        chosen = ""
    return chosen or user.get_username()


def initials(name):
    parts = [part for part in name.replace("_", " ").replace("-", " ").split() if part]
    letters = "".join(part[0] for part in parts[:2]) or name[:2]
    return letters.upper()


def avatar_hue(user_id):
    """A colour of the person's own, stable, from their id (no upload needed)."""
    return (user_id * 7) % AVATAR_HUES


def profile_of(user):
    profile, _ = Profile.objects.get_or_create(user=user)
    return profile


def time_zone_of(user):
    try:
        return user.profile.time_zone or settings.TIME_ZONE
    except Profile.DoesNotExist:
        return settings.TIME_ZONE


def people_by_id(user_ids):
    """{id: user (with profile)} for the given ids: one query."""
    users = get_user_model().objects.filter(pk__in=user_ids).select_related("profile")
    return {user.pk: user for user in users}


def user_by_username(username):
    return get_user_model().objects.filter(username=username).select_related("profile").first()


def members_named(room, start, *, limit):
    """People in `room` whose username or display name starts with `start`, by name:
    members (for a public room, those who joined)."""
    from django.db.models import Q

    people = get_user_model().objects.filter(chat_memberships__room=room, is_active=True)
    if start:
        people = people.filter(
            Q(username__istartswith=start) | Q(profile__display_name__istartswith=start)
        )
    return list(people.select_related("profile").order_by("username")[:limit])
