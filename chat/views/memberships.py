"""Who is in a room: joining and leaving, the members page (invite, remove, rename,
archive), what notifies me, and direct conversations. Plain forms, no JavaScript needed;
every refusal says why and changes nothing."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chat.actions import memberships
from chat.actions.limits import RateLimited
from chat.forms import DirectForm
from chat.models import Membership
from chat.selectors import rooms as room_selectors
from chat.views.rooms import STATUS_BY_CODE, readable_room_or_404


@login_required
@require_http_methods(["GET", "POST"])
def members(request, slug):
    """Members of a room; its owners (and staff) add, remove, rename and archive here.

    Readable by those who may read the room; a private room's page is a 404 to others,
    as the room itself is."""
    room = room_selectors.managed_room(request.user, slug) or readable_room_or_404(request, slug)
    if room.is_direct:
        raise Http404("Direct conversations have no members page.")
    manages = room_selectors.managed_room(request.user, slug) is not None
    error = saved = None
    status = 200
    if request.method == "POST":
        try:
            saved = _manage(request, room)
        except (ValidationError, RateLimited) as refusal:
            error = (
                " ".join(refusal.messages) if isinstance(refusal, ValidationError) else str(refusal)
            )
            status = STATUS_BY_CODE.get(getattr(refusal, "code", None), 400)
        else:
            return redirect("room_members", slug=room.slug)
    context = {
        "room": room,
        "members": room_selectors.members(room),
        "manages": manages,
        "error": error,
        "saved": saved,
        "typed": request.POST.get("username", "") if error else "",
    }
    return render(request, "chat/rooms/members.html", context, status=status)


def _manage(request, room):
    by, post = request.user, request.POST
    if "remove" in post:
        user_id = post["remove"]
        if not user_id.isdigit():
            raise ValidationError("That person is not in this room.", code="not_member")
        return memberships.member_remove(room=room, by=by, user_id=int(user_id))
    if "rename" in post:
        return memberships.room_rename(room=room, by=by, name=post.get("name", ""))
    if "archive" in post:
        return memberships.room_archive(room=room, by=by, archived=post["archive"] == "on")
    return memberships.member_add(room=room, by=by, username=post.get("username", ""))


@login_required
@require_POST
def join(request, slug):
    room = readable_room_or_404(request, slug)
    try:
        memberships.room_join(room=room, user=request.user)
    except (ValidationError, RateLimited) as refusal:
        _tell(request, refusal)
    return redirect(room)


@login_required
@require_POST
def leave(request, slug):
    room = readable_room_or_404(request, slug)
    try:
        memberships.room_leave(room=room, user=request.user)
    except ValidationError as refusal:
        _tell(request, refusal)
        return redirect(room)
    return redirect("lobby")


@login_required
@require_POST
def notify(request, slug):
    room = readable_room_or_404(request, slug)
    try:
        memberships.notify_set(room=room, user=request.user, notify=request.POST.get("notify"))
    except ValidationError as refusal:
        _tell(request, refusal)
    else:
        messages.success(request, "Saved: what notifies you in this room.")
    return redirect(room)


def _tell(request, refusal):
    """Say what went wrong on the page the person lands on (the room's notice)."""
    text = " ".join(refusal.messages) if isinstance(refusal, ValidationError) else str(refusal)
    messages.error(request, text)


@login_required
@require_GET
def direct_with(request, username):
    """`/dm/<username>/`: the conversation with that person, started if new."""
    try:
        room, _ = memberships.direct_open(user=request.user, usernames=[username])
    except (ValidationError, RateLimited) as refusal:
        return _direct_form(request, DirectForm(initial={"usernames": username}), refusal)
    return redirect(room)


@login_required
@require_http_methods(["GET", "POST"])
def direct_new(request):
    """ "New message": write to one to seven people at once."""
    form = DirectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            room, _ = memberships.direct_open(user=request.user, usernames=form.names())
        except (ValidationError, RateLimited) as refusal:
            return _direct_form(request, form, refusal)
        return redirect(room)
    return _direct_form(request, form, None)


def _direct_form(request, form, refusal):
    error = None
    if isinstance(refusal, ValidationError):
        error = " ".join(refusal.messages)
    elif refusal is not None:
        error = str(refusal)
    status = 400 if error or form.errors else 200
    context = {"form": form, "error": error, "notify_choices": Membership.NOTIFY_CHOICES}
    return render(request, "chat/rooms/direct_new.html", context, status=status)
