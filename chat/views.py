import uuid

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chat import selectors, services
from chat.forms import MessageForm, RoomForm, SignUpForm
from chat.models import Room
from chat.rendering import shown_messages


@login_required
@require_http_methods(["GET", "POST"])
def lobby(request):
    form = RoomForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        return redirect(form.cleaned_data["room"])
    status = 400 if form.errors else 200
    return render(
        request, "chat/lobby.html", {"form": form, "rooms": selectors.room_list()}, status=status
    )


@login_required
@require_GET
def room(request, slug):
    room = get_object_or_404(Room, slug=slug)
    before = _sequence_number(request.GET.get("before"))
    if before is not None:
        messages = shown_messages(
            selectors.message_positions_before(
                room, before_seq=before, limit=settings.CHAT_PAGE_SIZE
            )
        )
        if request.htmx:  # the "older" sentinel revealed at the top of the list
            context = {"room": room, "messages": messages, "page_size": settings.CHAT_PAGE_SIZE}
            return render(request, "chat/_older.html", context)
    else:
        messages = shown_messages(
            selectors.message_positions_latest(room, limit=settings.CHAT_PAGE_SIZE)
        )
    return render(request, "chat/room.html", _room_context(room, messages, before=before))


@login_required
@require_POST
def send(request, slug):
    """The composer without JavaScript: the same service, then back to the room."""
    room = get_object_or_404(Room, slug=slug)
    form = MessageForm(request.POST)
    if form.is_valid():
        try:
            services.message_post(
                room=room,
                author=request.user,
                text=form.cleaned_data["message"],
                client_key=form.cleaned_data["client_key"],
            )
        except services.RateLimited as error:
            form.add_error("message", str(error))
        except ValidationError as error:
            form.add_error("message", error)
    if form.errors:
        # Shown again with the text kept and the same key, so a corrected resend is one message.
        messages = shown_messages(
            selectors.message_positions_latest(room, limit=settings.CHAT_PAGE_SIZE)
        )
        context = _room_context(
            room,
            messages,
            error=" ".join(error for errors in form.errors.values() for error in errors),
            text=request.POST.get("message", ""),
            client_key=form.cleaned_data.get("client_key"),
        )
        return render(request, "chat/room.html", context, status=400)
    return redirect(f"{room.get_absolute_url()}#composer")


def _room_context(room, messages, *, before=None, error=None, text="", client_key=None):
    return {
        "room": room,
        "messages": messages,
        "before": before,
        # The page's newest message: where its socket's catch-up starts.
        "last_seq": messages[-1].seq if messages else room.last_seq,
        "page_size": settings.CHAT_PAGE_SIZE,
        "client_key": client_key or uuid.uuid4(),
        "error": error,
        "text": text,
    }


def _sequence_number(value):
    if value and value.isascii() and value.isdigit() and len(value) < 19:
        return int(value)
    return None


@require_http_methods(["GET", "POST"])
def signup(request):
    if request.user.is_authenticated:
        return redirect("lobby")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        next_url = request.GET.get("next", "")
        if url_has_allowed_host_and_scheme(next_url, {request.get_host()}, request.is_secure()):
            return redirect(next_url)
        return redirect("lobby")
    return render(
        request, "registration/signup.html", {"form": form}, status=400 if form.errors else 200
    )


def not_found(request, exception):
    return render(request, "404.html", status=404)
