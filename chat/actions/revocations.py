"""Closing a person's open sockets when their access ends account-wide: the account is
deactivated or its password changes (in settings, the admin or a shell). Wired to the
user model's saves in ChatConfig.ready, so no path that changes them is missed; removal
from one room travels that room's stream instead (chat/actions/memberships.py)."""

from chat import events

DEACTIVATED = "Your account was deactivated."
PASSWORD_CHANGED = "Your password was changed: reload the page to keep chatting."


def remember_access(sender, instance, update_fields=None, **kwargs):
    """pre_save: note what the row held, to compare after the save."""
    if instance.pk is None or (
        update_fields and not {"password", "is_active"} & set(update_fields)
    ):
        instance._access_before = None  # a login's last_login update, or a new user
        return
    instance._access_before = (
        sender.objects.filter(pk=instance.pk).values_list("password", "is_active").first()
    )


def revoke_if_changed(sender, instance, created=False, **kwargs):
    """post_save: a deactivation or a new password closes every socket of theirs."""
    before = getattr(instance, "_access_before", None)
    instance._access_before = None
    if created or before is None:
        return
    password, was_active = before
    if was_active and not instance.is_active:
        events.person_revoked(instance.pk, DEACTIVATED)
    elif password != instance.password:
        events.person_revoked(instance.pk, PASSWORD_CHANGED)
