"""The project's settings with `RedisPubSubChannelLayer` instead of `RedisChannelLayer`.

Only for the bench's `project-pubsub` system (`--systems project-pubsub`): the same
Procfile command, DJANGO_SETTINGS_MODULE pointed here, everything else unchanged.
"""

from project.settings import *  # noqa: F403
from project.settings import REDIS_URL

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": None}]},
    }
}
