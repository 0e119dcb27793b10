"""The lobby, the room page (live, or a window into its history) and the no-JavaScript
path for every form the room page has."""

import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.messages import get_messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chat.actions import reads
from chat.actions.limits import RateLimited
from chat.forms import DirectForm, RoomForm
from chat.models import Membership
from chat.realtime.frames import FrameError, PostFrame, parse_fields
from chat.rendering import shown_messages
from chat.selectors import messages as message_selectors
from chat.selectors import presence as presence_selectors
from chat.selectors import rooms as room_selectors
from chat.selectors import unread as unread_selectors

# ValidationError codes that are not the sender's typing: HTTP statuses for them.
STATUS_BY_CODE = {"forbidden": 403, "not_found": 404}


@login_required
@require_http_methods(["GET", "POST"])
def lobby(request):
    form = RoomForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        return redirect(form.cleaned_data["room"])
    status = 400 if form.errors else 200
    mine = unread_selectors.my_rooms(request.user)
    joined = {room.pk for room in mine["my_rooms"]}
    others = [room for room in room_selectors.room_list() if room.pk not in joined]
    here = presence_selectors.people_counts([room.pk for room in others + mine["my_rooms"]])
    for room in others + mine["my_rooms"]:
        room.people_here = here.get(room.pk, 0)
    context = {
        "form": form,
        "direct_form": DirectForm(),
        "rooms": others,
        "drawn_at": int(time.time()),  # the socket redraws "Your rooms" on a reconnect
        "lobby": True,
        **mine,
    }
    return render(request, "chat/rooms/lobby.html", context, status=status)


def readable_room_or_404(request, slug):
    """The room if this person may read it; else 404, the same as a room that does not
    exist, so a private room's name and existence never leak."""
    room = room_selectors.readable_room(request.user, slug)
    if room is None:
        raise Http404("No such room.")
    return room


@login_required
@require_GET
def room(request, slug):
    """`?before=N` / `?after=N`: the page before or after a place (htmx asks for the
    fragment as the reader scrolls); `?around=N`: a permalink's place, highlighted."""
    room = readable_room_or_404(request, slug)
    page_size = settings.CHAT_PAGE_SIZE
    before, after, around = (
        _number(request.GET.get(name)) for name in ("before", "after", "around")
    )
    if before is not None:
        positions = message_selectors.message_positions_before(
            room, before_seq=before, limit=page_size
        )
        window = {"has_older": len(positions) == page_size}
        if request.htmx:  # the "older" link scrolled into view
            return render(request, "chat/rooms/_older.html", _window(room, positions, window))
    elif after is not None:
        positions = message_selectors.message_positions_after(
            room, after_seq=after, limit=page_size + 1
        )
        window = {"has_newer": len(positions) > page_size}
        positions = positions[:page_size]
        if request.htmx:  # the "newer" link scrolled into view
            return render(
                request, "chat/rooms/_newer.html", _window(room, positions, window, after=after)
            )
    elif around is not None:
        half = page_size // 2
        older = message_selectors.message_positions_before(room, before_seq=around, limit=half)
        newer = message_selectors.message_positions_after(
            room, after_seq=around - 1, limit=half + 1
        )
        positions = older + newer[:half]
        window = {"has_older": len(older) == half, "has_newer": len(newer) > half}
    else:
        # The page's place in the event stream first, then the messages up to it: an event
        # committed in between reaches the page through its socket, once.
        positions = message_selectors.message_positions_latest(
            room, limit=page_size, upto_seq=room.last_seq
        )
        window = {"has_older": len(positions) == page_size, "live": True}
        window.update(_opened(request.user, room, window))
    context = _room_context(request, room, _window(room, positions, window, after=after))
    return render(request, "chat/rooms/room.html", context)


@login_required
@require_GET
def composer(request, slug):
    """The composer's fields: fresh (htmx: "Cancel reply"), or with a picked mention."""
    room = readable_room_or_404(request, slug)
    # `text` (and its key, and a reply): a picked @mention suggestion, the name completed.
    reply_to_id = _number(request.GET.get("reply_to"))
    context = {
        "room": room,
        "client_key": _uuid(request.GET.get("client_key")),
        "text": request.GET.get("text", "")[: settings.CHAT_MAX_MESSAGE_LENGTH],
        "reply_to_id": reply_to_id,
    }
    return render(request, "chat/rooms/_composer_fields.html", context)


@login_required
@require_POST
def send(request, slug):
    """Every form of the room page without JavaScript: the same frames, the same actions."""
    room = readable_room_or_404(request, slug)
    fields = _fields(request.POST)
    try:
        frame = parse_fields(fields)
        if not hasattr(frame, "perform"):
            raise FrameError("That form cannot be sent here.")
        done = frame.perform(room=room, user=request.user)
    except (FrameError, ValidationError, RateLimited) as error:
        return _refused(request, room, fields, error)
    if isinstance(frame, PostFrame):
        # No #composer anchor: Chromium ignores autofocus when the address has one.
        return redirect(room.get_absolute_url())
    return redirect(f"{room.get_absolute_url()}#message-{done.message.pk}")


def _refused(request, room, fields, error):
    """The page again, saying what went wrong, with what was typed kept."""
    text = " ".join(error.messages) if isinstance(error, ValidationError) else str(error)
    status = STATUS_BY_CODE.get(getattr(error, "code", None), 400)
    typed = fields.get("message", "")
    if "edit" in fields:
        frame_id = _number(fields.get("edit"))
        context = {"room": room, "message_id": frame_id, "text": typed, "error": text}
        return render(request, "chat/messages/edit.html", context, status=status)
    if "message" not in fields or room.is_archived:  # an archived room has no composer
        context = {"notice": text}
    elif "\n" in typed.strip():  # from the longer composer: back there, line breaks and all
        context = {"long_error": text, "long_text": typed, "long_open": True}
    else:
        context = {"error": text, "text": typed}
    if "message" in fields:
        context["client_key"] = _uuid(fields.get("client_key"))
        context["reply_to_id"] = _number(fields.get("reply_to"))
    positions = message_selectors.message_positions_latest(
        room, limit=settings.CHAT_PAGE_SIZE, upto_seq=room.last_seq
    )
    page = _window(
        room, positions, {"has_older": len(positions) == settings.CHAT_PAGE_SIZE, "live": True}
    )
    return render(
        request,
        "chat/rooms/room.html",
        _room_context(request, room, {**page, **context}),
        status=status,
    )


def _window(room, positions, window, *, after=None):
    messages = shown_messages(positions)
    newest = messages[-1].seq if messages else after or 0
    return {"room": room, "messages": messages, "newest_seq": newest, **window}


def _opened(user, room, window):
    """The live page opens: where the "New messages" line goes, then the room is read
    (the person's other pages redraw their counts)."""
    membership = room_selectors.membership_of(user, room)
    if membership is None:
        return {"membership": None}
    first_unread = unread_selectors.first_unread_seq(user, room, membership.last_read_seq)
    if reads.read_mark(user=user, room=room, seq=room.last_seq):
        membership.last_read_seq = room.last_seq
    return {"first_unread_seq": first_unread, "membership": membership}


def _room_context(request, room, page):
    reply_to_id = _number(request.GET.get("reply_to"))
    reply_to = message_selectors.message_in_room(room, reply_to_id) if reply_to_id else None
    today = timezone.localdate()
    if "membership" in page:  # read already by the live page
        membership = page["membership"]
    else:
        membership = room_selectors.membership_of(request.user, room)
    return {
        **unread_selectors.my_rooms(request.user),
        "current": room.pk,
        "membership": membership,
        "drawn_at": int(time.time()),
        "notify_choices": Membership.NOTIFY_CHOICES,
        # What the last form (join, leave, notify) said; `messages` is the room's list here.
        "flashes": list(get_messages(request)),
        "room_title": room_selectors.title_for(room, request.user),
        # The live page lists its reader too: their socket is about to open.
        "people_here": presence_selectors.people_here(
            room.pk, viewer=request.user if page.get("live") else None
        ),
        "last_seq": room.last_seq,  # where the socket's catch-up starts
        "page_size": settings.CHAT_PAGE_SIZE,
        "client_key": uuid.uuid4(),
        "long_client_key": uuid.uuid4(),  # each composer its own: the same text from both is two messages
        "reply_to": reply_to if reply_to and not reply_to.is_deleted else None,
        "today": today,
        "yesterday": today - timedelta(days=1),
        "stale_after": settings.CHAT_HEARTBEAT_SECONDS * 2.5,
        **page,
    }


def _fields(post):
    """A POST's fields as a frame's: one value each (the last, as a form sends one)."""
    return {name: post.get(name) for name in post}


def _number(value):
    if value and value.isascii() and value.isdigit() and len(value) < 19:
        return int(value)
    return None


def _uuid(value):
    try:
        return uuid.UUID(value)
    except (TypeError, ValueError):
        return uuid.uuid4()
