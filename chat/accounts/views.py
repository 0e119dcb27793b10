import zoneinfo

from django.conf import settings as django_settings
from django.contrib.auth import login, update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods

from chat.accounts.forms import ProfileForm, SignUpForm
from chat.actions import profiles
from chat.selectors import people


@require_http_methods(["GET", "POST"])
def signup(request):
    if request.user.is_authenticated:
        return redirect("lobby")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        people.profile_of(user)
        login(request, user, backend="chat.accounts.backends.ProfileModelBackend")
        next_url = request.GET.get("next", "")
        if url_has_allowed_host_and_scheme(next_url, {request.get_host()}, request.is_secure()):
            return redirect(next_url)
        return redirect("lobby")
    return render(
        request, "registration/signup.html", {"form": form}, status=400 if form.errors else 200
    )


@login_required
@require_http_methods(["GET", "POST"])
def settings_page(request):
    """Display name, time zone, presence visibility, and the password."""
    profile = people.profile_of(request.user)
    initial = {
        "display_name": profile.display_name or request.user.get_username(),
        "time_zone": profile.time_zone or django_settings.TIME_ZONE,
        "show_presence": profile.show_presence,
        "email": request.user.email,
        "email_missed": profile.email_missed,
    }
    profile_form = ProfileForm(initial=initial, user=request.user)
    password_form = PasswordChangeForm(request.user)
    saved = None
    if request.method == "POST" and "change_password" in request.POST:
        password_form = PasswordChangeForm(request.user, request.POST)
        if password_form.is_valid():
            update_session_auth_hash(request, password_form.save())
            saved = "Your password is changed."
    elif request.method == "POST":
        profile_form = ProfileForm(request.POST, user=request.user)
        if profile_form.is_valid():
            profiles.profile_update(user=request.user, **profile_form.cleaned_data)
            saved = "Saved."
    failed = profile_form.errors or password_form.errors
    context = {
        "profile_form": profile_form,
        "password_form": password_form,
        "saved": saved,
        "time_zones": sorted(zoneinfo.available_timezones()),
    }
    return render(request, "registration/settings.html", context, status=400 if failed else 200)


@login_required
@require_GET
def person(request, username):
    """A person's card: name, username, their local time, member since."""
    user = people.user_by_username(username)
    if user is None:
        raise Http404("No such person.")
    zone = zoneinfo.ZoneInfo(people.time_zone_of(user))
    context = {"person": user, "local_time": timezone.now().astimezone(zone), "zone": zone}
    return render(request, "chat/people/person.html", context)
