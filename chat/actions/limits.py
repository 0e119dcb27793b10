"""Flood control shared by every write: one budget per person, across all processes."""

import logging
import time

from django.conf import settings

from chat import metrics
from chat.caching import shared_cache

logger = logging.getLogger(__name__)


class RateLimited(Exception):
    def __init__(self, retry_after):
        self.retry_after = retry_after
        super().__init__(f"Slow down: you can send again in {retry_after} s.")


def rate_limit_check(user):
    """Count one write for `user`; raise RateLimited past CHAT_RATE_LIMIT (N per S seconds).

    Counted in the cache, which is Redis when REDIS_URL is set, so every process shares
    one budget per user. A sliding window: the previous S-second window counts for the
    part of it that still lies within the last S seconds, so no burst of 2N fits across
    a window boundary. If the cache is down, writes go through (and it is logged).
    """
    rate = settings.CHAT_RATE_LIMIT
    if rate is None or user.get_username() in settings.CHAT_RATE_LIMIT_EXEMPT:
        return
    limit, seconds = rate
    now = time.time()
    window = int(now // seconds)
    key, previous_key = f"rate:{user.pk}:{window}", f"rate:{user.pk}:{window - 1}"
    try:
        cache = shared_cache()
        cache.add(key, 0, timeout=2 * seconds + 1)
        count = cache.incr(key)
        previous = cache.get(previous_key, 0)
        overlap = 1 - (now - window * seconds) / seconds
        if count + previous * overlap <= limit:
            return
        cache.decr(key)  # a refused write uses up no budget
    except Exception:
        logger.warning(
            "rate limit not checked for user %s: cache unavailable", user.pk, exc_info=True
        )
        return
    metrics.rate_limited()
    # Budget frees up as the previous window slides out, or at the latest when this one ends.
    raise RateLimited(retry_after=max(1, int((window + 1) * seconds - now) + 1))
