from django import forms

from chat.actions.memberships import ROOM_NAME_MAX_LENGTH, room_open_or_create


class RoomForm(forms.Form):
    """The lobby's form: open or create a public room, or create a private one."""

    name = forms.CharField(max_length=ROOM_NAME_MAX_LENGTH, strip=True, required=False)
    private = forms.BooleanField(required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean(self):
        cleaned = super().clean()
        if not self.errors:
            # Validated and opened in one step, so the rules live in the action only.
            cleaned["room"], cleaned["created"] = room_open_or_create(
                user=self.user, name=cleaned.get("name", ""), private=cleaned.get("private")
            )
        return cleaned


class DirectForm(forms.Form):
    """ "New message": the people to write to, by username, separated by spaces or commas."""

    usernames = forms.CharField(max_length=400, strip=True)

    def names(self):
        return self.cleaned_data["usernames"].replace(",", " ").split()
