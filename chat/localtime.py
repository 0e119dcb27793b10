"""Each reader's own clock, without rendering a message once per reader.

A message is rendered once, on the operator's clock (settings.TIME_ZONE). Every time in
it is a `<time class="local">` element made by `time_element`, which carries the
instant in UTC. `localise` rewrites just those elements for another zone: the hub does it
once per zone in use per event (chat/realtime/hub/hub.py), pages once per message shown,
so the cost of an event does not grow with the number of readers, only with the zones.

A day divider leads every message; it carries when the message before it was posted and
is `hidden` unless the two fall on different days in the zone at hand.
"""

import functools
import re
import zoneinfo
from datetime import UTC, datetime

from django.conf import settings
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.html import format_html
from django.utils.safestring import mark_safe

FORMATS = {"time": "H:i", "full": "j M Y, H:i", "day": "l j F Y", "date": "Y-m-d"}
LOCAL_TIME = re.compile(
    r'<time class="local[^"]*" datetime="([^"]+)" data-format="(\w+)"'
    r'(?: data-previous="([^"]*)")?[^>]*>[^<]*</time>'
)


def time_element(instant, kind, zone=None, *, previous=None):
    """The one way a time is written in a message: `kind` is time, edited or day."""
    zone = zone or timezone.get_current_timezone()
    local = instant.astimezone(zone)
    iso = instant.astimezone(UTC).isoformat(timespec="seconds")
    if kind == "time":
        return format_html(
            '<time class="local" datetime="{}" data-format="time" title="{}">{}</time>',
            iso,
            date_format(local, FORMATS["full"]),
            date_format(local, FORMATS["time"]),
        )
    if kind == "edited":
        return format_html(
            '<time class="local edited" datetime="{}" data-format="edited" title="Edited {}">'
            "(edited)</time>",
            iso,
            date_format(local, FORMATS["full"]),
        )
    if kind == "day":
        same_day = previous is not None and previous.astimezone(zone).date() == local.date()
        return format_html(
            '<time class="local" datetime="{}" data-format="day" data-previous="{}"'
            ' data-day="{}"{}>{}</time>',
            iso,
            previous.astimezone(UTC).isoformat(timespec="seconds") if previous else "",
            date_format(local, FORMATS["date"]),
            mark_safe(" hidden") if same_day else "",
            date_format(local, FORMATS["day"]),
        )
    raise ValueError(f"unknown time kind {kind!r}")


def localise(html, zone_name):
    """`html` (rendered on the operator's clock) with its times on `zone_name`'s clock."""
    if not html or zone_name == settings.TIME_ZONE or '<time class="local' not in html:
        return html
    zone = _zone(zone_name)

    def rewrite(match):
        previous = datetime.fromisoformat(match[3]) if match[3] else None
        return time_element(datetime.fromisoformat(match[1]), match[2], zone, previous=previous)

    return mark_safe(LOCAL_TIME.sub(rewrite, html))  # noqa: S308 - our own elements, rebuilt


@functools.cache
def _zone(name):
    return zoneinfo.ZoneInfo(name)


def operator_clock():
    """Render on the operator's clock: what is kept and broadcast is the same for all."""
    return timezone.override(settings.TIME_ZONE)
