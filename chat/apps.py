from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from chat import events
        from chat.realtime.hub import publish_from_thread

        events.connect_publisher(publish_from_thread)
