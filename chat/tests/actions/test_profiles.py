"""chat/actions/profiles.py: the rules for display names and time zones, and saving them."""

import pytest
from django.core.exceptions import ValidationError

from chat.actions.profiles import (
    DISPLAY_NAME_MAX_LENGTH,
    clean_display_name,
    clean_time_zone,
    profile_update,
)
from chat.models import Message, Profile
from chat.selectors.people import display_name, profile_of, time_zone_of
from chat.tests.factories import make_message, make_room

pytestmark = pytest.mark.django_db


def refused(call):
    with pytest.raises(ValidationError) as caught:
        call()
    return caught.value.code


# --- display names ---


class CleanDisplayNameTests:
    def test_spaces_are_collapsed_and_trimmed(self, alice):
        assert clean_display_name(alice, "  Alice \t  Liddell \n") == "Alice Liddell"

    def test_any_script_and_emoji_are_names(self, alice):
        for name in ("Zoë", "李雷", "Ана-Мария", "Alice 🐇", "O'Brien"):
            assert clean_display_name(alice, name) == name

    @pytest.mark.parametrize("name", ["", "   ", "\n\t", None])
    def test_a_blank_name_is_refused(self, alice, name):
        assert refused(lambda: clean_display_name(alice, name)) == "blank"

    def test_the_longest_name_passes_and_one_more_character_is_refused(self, alice):
        longest = "a" * DISPLAY_NAME_MAX_LENGTH
        assert clean_display_name(alice, longest) == longest
        assert refused(lambda: clean_display_name(alice, longest + "a")) == "too_long"

    @pytest.mark.parametrize(
        "name",
        [
            "Alice\x00",  # NUL
            "Al\x07ice",  # bell
            "Alice\x1b[31m",  # a terminal escape
            "Ali\u202ece",  # right-to-left override: shows as someone else's name
            "Ali\u200bce",  # zero-width space: looks like "Alice"
            "Alice\x7f",  # DEL
        ],
    )
    def test_control_and_invisible_characters_are_refused(self, alice, name):
        assert refused(lambda: clean_display_name(alice, name)) == "control"

    @pytest.mark.parametrize("name", ["bob", "BOB", " Bob "])
    def test_another_persons_username_is_refused_in_any_case(self, alice, bob, name):
        assert refused(lambda: clean_display_name(alice, name)) == "impersonation"

    def test_ones_own_username_is_a_fine_display_name(self, alice, bob):
        assert clean_display_name(alice, "ALICE") == "ALICE"

    def test_errors_are_written_for_people(self, alice, bob):
        messages = {}
        for name in ("", "x" * 51, "a\x00", "bob"):
            with pytest.raises(ValidationError) as caught:
                clean_display_name(alice, name)
            messages[caught.value.code] = caught.value.messages[0]
        assert messages == {
            "blank": "Give a name people will see.",
            "too_long": "Names are at most 50 characters.",
            "control": "The name holds a character that cannot be shown.",
            "impersonation": "That is someone else's username: pick a name that is yours.",
        }


# --- time zones ---


class CleanTimeZoneTests:
    @pytest.mark.parametrize(
        "zone", ["Europe/Paris", "America/New_York", "Asia/Kolkata", "Pacific/Kiritimati", "UTC"]
    )
    def test_iana_names_pass(self, zone):
        assert clean_time_zone(zone) == zone

    def test_surrounding_spaces_are_trimmed(self):
        assert clean_time_zone("  Europe/Paris ") == "Europe/Paris"

    @pytest.mark.parametrize(
        "zone",
        [
            "",
            None,
            "Mars/Olympus_Mons",
            "europe/paris",  # IANA names are case-sensitive
            "CET+1",
            "+02:00",
            "../../etc/passwd",
            "Europe/Paris\x00",
            "Europe",
        ],
    )
    def test_anything_else_is_refused(self, zone):
        assert refused(lambda: clean_time_zone(zone)) == "unknown_zone"


# --- saving ---


class ProfileUpdateTests:
    def test_it_saves_every_choice(self, alice):
        profile_update(
            user=alice, display_name=" Alice  L. ", time_zone="Asia/Tokyo", show_presence=False
        )
        profile = Profile.objects.get(user=alice)
        assert (profile.display_name, profile.time_zone, profile.show_presence) == (
            "Alice L.",
            "Asia/Tokyo",
            False,
        )
        assert display_name(alice) == "Alice L."
        assert time_zone_of(alice) == "Asia/Tokyo"

    def test_presence_can_be_turned_back_on(self, alice):
        for shown in (False, True):
            profile_update(user=alice, display_name="alice", time_zone="UTC", show_presence=shown)
            assert Profile.objects.get(user=alice).show_presence is shown

    def test_no_profile_yet_means_the_username_and_the_operators_zone(self, alice, settings):
        settings.TIME_ZONE = "America/Chicago"
        assert not Profile.objects.filter(user=alice).exists()
        assert display_name(alice) == "alice"
        assert time_zone_of(alice) == "America/Chicago"
        assert profile_of(alice).display_name == ""

    @pytest.mark.parametrize(
        ("name", "zone"),
        [("", "UTC"), ("x" * 51, "UTC"), ("Al\x00", "UTC"), ("bob", "UTC"), ("Al", "Nowhere")],
    )
    def test_a_refused_value_changes_nothing(self, alice, bob, name, zone):
        profile_update(
            user=alice, display_name="Alice", time_zone="Europe/Paris", show_presence=True
        )
        message = make_message(room=make_room(), author=alice)
        version = Message.objects.get(pk=message.pk).version
        with pytest.raises(ValidationError):
            profile_update(user=alice, display_name=name, time_zone=zone, show_presence=False)
        profile = Profile.objects.get(user=alice)
        assert (profile.display_name, profile.time_zone, profile.show_presence) == (
            "Alice",
            "Europe/Paris",
            True,
        )
        assert Message.objects.get(pk=message.pk).version == version

    def test_a_rename_gives_the_persons_messages_a_new_version_and_nobody_elses(self, alice, bob):
        room = make_room()
        mine = [make_message(room=room, author=alice, text=f"mine {n}") for n in range(3)]
        theirs = make_message(room=room, author=bob, text="theirs")
        before = dict(Message.objects.values_list("pk", "version"))
        profile_update(user=alice, display_name="Alice L.", time_zone="UTC", show_presence=True)
        after = dict(Message.objects.values_list("pk", "version"))
        assert all(after[message.pk] == before[message.pk] + 1 for message in mine)
        assert after[theirs.pk] == before[theirs.pk]

    def test_other_changes_keep_the_versions(self, alice):
        message = make_message(room=make_room(), author=alice)
        profile_update(user=alice, display_name="Alice", time_zone="UTC", show_presence=True)
        version = Message.objects.get(pk=message.pk).version
        # Same name (spaces aside), another zone, presence off: nothing a message shows.
        profile_update(
            user=alice, display_name="  Alice ", time_zone="Asia/Tokyo", show_presence=False
        )
        assert Message.objects.get(pk=message.pk).version == version

    def test_naming_oneself_by_ones_username_is_no_rename(self, alice):
        # A blank display name already shows the username: the fragments are still right.
        message = make_message(room=make_room(), author=alice)
        version = Message.objects.get(pk=message.pk).version
        profile_update(user=alice, display_name="alice", time_zone="UTC", show_presence=True)
        assert Message.objects.get(pk=message.pk).version == version
