"""What a server process counts, for Prometheus at /metrics (chat/views/health.py).

Every metric of the chat is defined here, with the one-line helpers the code that sees
the value calls (`metrics.event_published(...)`, `metrics.layer_error("publish")`, ...).
What the hub already keeps (its open sockets, its failures in a row) is read when
scraped (`HubCollector`): the fan-out path pays nothing for it.

Each web process is one daphne process with prometheus-client's default registry of its
own: scrape every process as a target of its own and let Prometheus add them up.
"""

import logging
import time

from prometheus_client import REGISTRY, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder

# No `_created` series beside each counter and histogram: a third of the output, and
# Prometheus does not need them to compute rates.
disable_created_metrics()

# One INFO line per durable event (README "Operations"); JSON with CHAT_LOG_FORMAT=json.
event_logger = logging.getLogger("chat.events.published")

# Processes may run on different machines: wall-clock seconds, not the loop's clock.
SENT_AT = "sent_at"
LAYER_OPERATIONS = ("publish", "notify", "receive", "subscribe")

EVENTS_PUBLISHED = Counter(
    "chat_events_published",
    "Durable room events committed and handed to this process's hub to publish, by kind.",
    ["kind"],
)
FANOUT_LAG = Histogram(
    "chat_fanout_lag_seconds",
    "Seconds from a process publishing an event to the channel layer until this process "
    "received it: each process serving the room counts each event once (the publisher "
    "its own echo).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
FANOUT_PASS = Histogram(
    "chat_fanout_pass_seconds",
    "Seconds one fan-out pass took to write a room's new events to this process's sockets.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
CATCH_UP_READS = Counter(
    "chat_catch_up_reads",
    "Database reads of events a page lacked and memory did not hold (reconnects, gaps, reconcile).",
)
CATCH_UP_EVENTS = Counter("chat_catch_up_events", "Events returned by those catch-up reads.")
RECONCILED = Counter(
    "chat_reconciled_events",
    "Events the channel layer did not bring, delivered from the database by the reconcile pass.",
)
LAYER_ERRORS = Counter(
    "chat_channel_layer_errors",
    "Channel-layer operations that failed (publish and notify after their one retry), by "
    "operation.",
    ["op"],
)
RATE_LIMITED = Counter("chat_rate_limited", "Changes refused by CHAT_RATE_LIMIT.")

for _operation in LAYER_OPERATIONS:
    LAYER_ERRORS.labels(_operation)  # present at 0 from the start, so rate() sees the first


# --- called where the value is seen (one line each) ---


def event_published(kind, room_id, seq):
    """A durable event was committed and handed to the hub: count it, log one line."""
    EVENTS_PUBLISHED.labels(kind).inc()
    event_logger.info(
        "event published room=%s seq=%s kind=%s",
        room_id,
        seq,
        kind,
        extra={"room": room_id, "seq": seq, "kind": kind},
    )


def stamp(event):
    """Mark a channel-layer message with when it was sent (see `event_arrived`)."""
    event[SENT_AT] = time.time()


def event_arrived(event):
    """A stamped channel-layer message reached this process: observe its lag."""
    sent_at = event.get(SENT_AT)
    if sent_at is not None:  # a process of the previous release sends none
        fanout_lag(time.time() - sent_at)


def fanout_lag(seconds):
    FANOUT_LAG.observe(max(0.0, seconds))  # clocks of two machines may disagree a little


def fanout_pass(seconds):
    FANOUT_PASS.observe(seconds)


def catch_up_read(events):
    """One database read of missed events, which returned `events` of them."""
    CATCH_UP_READS.inc()
    CATCH_UP_EVENTS.inc(events)


def reconciled(events):
    RECONCILED.inc(events)


def layer_error(operation):
    """A channel-layer operation failed: one of LAYER_OPERATIONS."""
    LAYER_ERRORS.labels(operation).inc()


def rate_limited():
    RATE_LIMITED.inc()


# --- read when scraped ---


class HubCollector:
    """Sockets and failure streaks, read from the hubs of this process when scraped
    (one hub per event loop: one in a daphne process)."""

    def describe(self):
        # Without this the registry would call collect() on registering, at import time,
        # and the hub's modules import this one.
        return self._families(hubs=None)

    def collect(self):
        return self._families(hubs=_live_hubs())

    def _families(self, *, hubs):
        sockets = GaugeMetricFamily(
            "chat_open_sockets", "WebSockets open on this process (each a page kept live)."
        )
        rooms = GaugeMetricFamily(
            "chat_rooms_served", "Rooms with at least one open socket on this process."
        )
        streak = GaugeMetricFamily(
            "chat_channel_layer_failing",
            "Channel-layer sends that failed in a row just now, by operation (0 once one "
            "succeeds): non-zero while the broker is unreachable.",
            labels=["op"],
        )
        if hubs is not None:
            sockets.add_metric([], sum(len(hub.all_sockets()) for hub in hubs))
            rooms.add_metric([], sum(len(hub.listeners) for hub in hubs))
            for operation in ("publish", "notify"):
                failing = (getattr(hub.link, f"{operation}_failures", 0) for hub in hubs)
                streak.add_metric([operation], max(failing, default=0))
        return [sockets, rooms, streak]


# Where the hubs of this process are: set by chat.realtime.hub when it is imported, so
# this module imports neither the hub nor the events (they import it).
_hubs_of_process = list


def watch_hubs(hubs):
    """`hubs()` lists this process's hubs (one per event loop) when scraped."""
    global _hubs_of_process
    _hubs_of_process = hubs


def _live_hubs():
    for _ in range(3):
        try:
            return list(_hubs_of_process())
        except RuntimeError:  # a loop added its hub while we copied (a scrape off the loop)
            continue
    return []


REGISTRY.register(HubCollector())


def exposition(accept_header, kinds=()):
    """(body, content type) of every metric of this process, in the format asked for;
    `kinds`: every durable event kind, shown at 0 until its first event."""
    for kind in kinds:
        EVENTS_PUBLISHED.labels(kind)  # every durable kind, at 0 until its first event
    encoder, content_type = choose_encoder(accept_header)
    return encoder(REGISTRY), content_type
