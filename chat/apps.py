from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from chat import events
        from chat.realtime.hub import publish_from_thread, tell_people_from_thread

        events.connect_publisher(publish_from_thread, tell_people_from_thread)

        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_save, pre_save

        from chat.actions import revocations

        user_model = get_user_model()
        pre_save.connect(revocations.remember_access, sender=user_model, dispatch_uid="chat-access")
        post_save.connect(
            revocations.revoke_if_changed, sender=user_model, dispatch_uid="chat-revoke"
        )
