"""Pages about one message: its permalink, its edit form, replying to it."""

import uuid
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET

from chat.actions.messages import may_change
from chat.models import Message
from chat.selectors import rooms as room_selectors


def _shown_message(request, pk):
    """The message if it is shown and this person may read its room; else 404 (the same
    for a message in a private room, so its existence does not leak)."""
    message = get_object_or_404(Message.objects.select_related("room", "author"), pk=pk)
    if message.is_deleted or not room_selectors.may_read(request.user, message.room):
        raise Http404("No such message.")
    return message


@login_required
@require_GET
def permalink(request, pk):
    """The room around the message, the message highlighted (CSS :target)."""
    message = _shown_message(request, pk)
    query = urlencode({"around": message.seq})
    return redirect(f"{message.room.get_absolute_url()}?{query}#message-{message.pk}")


@login_required
@require_GET
def edit(request, pk):
    """The edit form: inside the Edit popover (htmx), or a page of its own."""
    message = _shown_message(request, pk)
    if not message.is_text or not may_change(request.user, message):
        raise Http404("No message of yours here.")
    context = {"room": message.room, "message_id": message.pk, "text": message.text}
    if request.htmx:
        return render(request, "chat/messages/_edit_form.html", context)
    return render(request, "chat/messages/edit.html", context)


@login_required
@require_GET
def reply(request, pk):
    """The composer, replying to the message (htmx), or the room with it (no JavaScript)."""
    message = _shown_message(request, pk)
    if request.htmx:
        context = {"room": message.room, "reply_to": message, "client_key": uuid.uuid4()}
        return render(request, "chat/rooms/_composer_fields.html", context)
    query = urlencode({"reply_to": message.pk})
    return redirect(f"{message.room.get_absolute_url()}?{query}#composer")
