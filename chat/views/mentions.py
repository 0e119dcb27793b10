"""Suggestions while typing "@al": the room's members whose name starts so. htmx asks
as the person types; picking one puts "@alice " in the composer (the composer's fields
come back from the server with the text completed: no script of ours). Without
JavaScript, typing the whole name works the same."""

import re
import uuid
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from chat.selectors import people as people_selectors
from chat.views.rooms import readable_room_or_404

TYPED_MENTION = re.compile(r"(?:^|(?<=\s))@([\w.@+-]{0,30})$")
MAX_SUGGESTIONS = 6


@login_required
@require_GET
def suggestions(request, slug):
    room = readable_room_or_404(request, slug)
    text = request.GET.get("message", "")[:4000]
    typed = TYPED_MENTION.search(text)
    context = {"room": room, "people": []}
    if typed:
        people = people_selectors.members_named(room, typed.group(1), limit=MAX_SUGGESTIONS)
        start = typed.start(0) if text[typed.start(0)] == "@" else typed.start(0) + 1
        key = request.GET.get("client_key", "")
        context["people"] = [
            (
                person,
                _completed_url(room, text[:start] + f"@{person.get_username()} ", key, request),
            )
            for person in people
            if person.pk != request.user.pk
        ]
    return render(request, "chat/rooms/_mention_suggestions.html", context)


def _completed_url(room, text, client_key, request):
    query = {"text": text, "client_key": _uuid(client_key)}
    if request.GET.get("reply_to", "").isdigit():
        query["reply_to"] = request.GET["reply_to"]
    return f"{reverse('composer', args=[room.slug])}?{urlencode(query)}"


def _uuid(value):
    try:
        return str(uuid.UUID(value))
    except (TypeError, ValueError):
        return str(uuid.uuid4())
