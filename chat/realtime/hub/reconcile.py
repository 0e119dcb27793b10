"""Deliver from the database what the channel layer did not bring (outage, drop)."""

import asyncio
import logging

from channels.db import database_sync_to_async
from django.conf import settings

from chat import metrics
from chat.selectors import rooms as room_selectors

logger = logging.getLogger(__name__)


class Reconciler:
    def __init__(self, hub):
        self.hub = hub

    async def run(self, channel):
        """Compare each served room's last_seq with what this process fanned out.

        Only numbers the database already had at the previous pass count as missing:
        under load some event is always committed with its broadcast still in flight.
        """
        hub = self.hub
        committed_before = {}  # room id -> the room's last_seq at the previous pass
        while True:
            await asyncio.sleep(settings.CHAT_RECONCILE_SECONDS)
            if hub.channel != channel:
                return  # this hub was stopped (a cancel may have been swallowed)
            if not hub.listeners:
                committed_before = {}
                continue
            try:
                rooms = list(hub.listeners)
                latest = await database_sync_to_async(room_selectors.room_last_seqs)(rooms)
                for room_id, overdue in committed_before.items():
                    seen = hub.seen.get(room_id, 0)
                    if room_id in hub.listeners and overdue > seen:
                        logger.warning(
                            "room %s: seq %s..%s did not come through the channel layer; "
                            "delivering from the database",
                            room_id,
                            seen + 1,
                            overdue,
                        )
                        metrics.reconciled(overdue - seen)
                        await hub.deliver(room_id, overdue)
                committed_before = latest
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("reconcile pass failed; retrying", exc_info=True)
