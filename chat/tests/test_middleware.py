"""chat/middleware.py ReaderTimeZoneMiddleware and the backend that loads profiles with users."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory
from django.utils import timezone

from chat.accounts.backends import ProfileModelBackend
from chat.actions.profiles import profile_update
from chat.middleware import ReaderTimeZoneMiddleware
from chat.tests.factories import make_author

pytestmark = pytest.mark.django_db


def zone_seen_by_the_view(user):
    """The current time zone inside the view, and after the response."""
    seen = []

    def view(request):
        seen.append(timezone.get_current_timezone_name())
        return "response"

    request = RequestFactory().get("/")
    request.user = user
    assert ReaderTimeZoneMiddleware(view)(request) == "response"
    return seen[0], timezone.get_current_timezone_name()


def test_a_reader_gets_their_own_zone_for_the_request_only(settings):
    settings.TIME_ZONE = "Europe/Paris"
    reader = make_author()
    profile_update(user=reader, display_name="R", time_zone="Asia/Tokyo", show_presence=True)
    assert zone_seen_by_the_view(reader) == ("Asia/Tokyo", "Europe/Paris")


def test_without_a_profile_or_a_zone_the_operators_zone(settings):
    settings.TIME_ZONE = "Europe/Paris"
    assert zone_seen_by_the_view(make_author()) == ("Europe/Paris", "Europe/Paris")
    assert zone_seen_by_the_view(AnonymousUser()) == ("Europe/Paris", "Europe/Paris")


def test_a_zone_left_active_elsewhere_does_not_leak_into_an_anonymous_request(settings):
    settings.TIME_ZONE = "UTC"
    timezone.activate("Asia/Kolkata")
    try:
        assert zone_seen_by_the_view(AnonymousUser()) == ("UTC", "UTC")
    finally:
        timezone.deactivate()


def test_the_zone_is_reset_even_when_the_view_fails(settings):
    settings.TIME_ZONE = "UTC"
    reader = make_author()
    profile_update(user=reader, display_name="R", time_zone="Asia/Tokyo", show_presence=True)

    def failing(request):
        raise RuntimeError("boom")

    request = RequestFactory().get("/")
    request.user = reader
    with pytest.raises(RuntimeError):
        ReaderTimeZoneMiddleware(failing)(request)
    assert timezone.get_current_timezone_name() == "UTC"


def test_the_backend_loads_the_profile_with_the_user_in_one_query(django_assert_num_queries):
    reader = make_author()
    profile_update(user=reader, display_name="R", time_zone="Asia/Tokyo", show_presence=True)
    with django_assert_num_queries(1):
        user = ProfileModelBackend().get_user(reader.pk)
        assert user.profile.time_zone == "Asia/Tokyo"
    assert ProfileModelBackend().get_user(10**9) is None
