"""Changing how a person appears: display name, time zone, presence visibility."""

import zoneinfo

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import F, Q

from chat.models import Message, Profile

DISPLAY_NAME_MAX_LENGTH = Profile._meta.get_field("display_name").max_length


def clean_display_name(user, name):
    name = " ".join((name or "").split())
    if not name:
        raise ValidationError("Give a name people will see.", code="blank")
    if len(name) > DISPLAY_NAME_MAX_LENGTH:
        raise ValidationError(
            f"Names are at most {DISPLAY_NAME_MAX_LENGTH} characters.", code="too_long"
        )
    if any(not character.isprintable() for character in name):
        raise ValidationError("The name holds a character that cannot be shown.", code="control")
    taken = get_user_model().objects.filter(username__iexact=name).exclude(pk=user.pk).exists()
    if taken:
        raise ValidationError(
            "That is someone else's username: pick a name that is yours.", code="impersonation"
        )
    return name


def clean_time_zone(name):
    name = (name or "").strip()
    if name not in zoneinfo.available_timezones():
        raise ValidationError(
            "Pick a time zone from the list (an IANA name such as Europe/Paris).",
            code="unknown_zone",
        )
    return name


def clean_email(email):
    email = (email or "").strip()
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise ValidationError(
                "That does not look like an email address (name@example.com).", code="email"
            ) from None
    return email


def profile_update(*, user, display_name, time_zone, show_presence, email=None, email_missed=None):
    """Save a person's choices. Their kept messages show the new name from now on.
    `email`, `email_missed`: None leaves them as they are."""
    display_name = clean_display_name(user, display_name)
    time_zone = clean_time_zone(time_zone)
    email = clean_email(email) if email is not None else None
    with transaction.atomic():
        profile, _ = Profile.objects.select_for_update().get_or_create(user=user)
        renamed = (
            profile.display_name != display_name
            and (profile.display_name or user.get_username()) != display_name
        )
        profile.display_name = display_name
        profile.time_zone = time_zone
        profile.show_presence = bool(show_presence)
        if email_missed is not None:
            profile.email_missed = bool(email_missed)
        profile.save()
        if email is not None and email != user.email:
            user.email = email
            user.save(update_fields=["email"])
        if renamed:  # kept fragments carry the old name (theirs, and quotes of theirs)
            Message.objects.filter(Q(author=user) | Q(reply_to__author=user)).update(
                version=F("version") + 1
            )
    user.profile = profile
    return profile
