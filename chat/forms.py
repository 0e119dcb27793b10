from django import forms

from chat.actions.rooms import ROOM_NAME_MAX_LENGTH, room_get_or_create


class RoomForm(forms.Form):
    name = forms.CharField(max_length=ROOM_NAME_MAX_LENGTH, strip=True, required=False)

    def clean(self):
        cleaned = super().clean()
        if not self.errors:
            # Validated and opened in one step, so the rules live in the action only.
            cleaned["room"], cleaned["created"] = room_get_or_create(name=cleaned.get("name", ""))
        return cleaned
