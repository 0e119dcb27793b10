from django.contrib import admin

from chat.models import Message, Room, RoomEvent


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "last_seq", "last_message_at", "created_at"]
    search_fields = ["name", "slug"]
    list_filter = ["created_at"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["last_seq", "last_message_at"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Shown, never changed here: a change made in the admin would bypass the room's
    event stream, so open pages would never see it."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    """People edit and delete in the chat; staff can change any message there."""

    list_display = ["room", "seq", "author", "short_text", "created_at", "edited_at", "deleted_at"]
    list_filter = ["room", "created_at"]
    search_fields = ["text", "author__username", "room__name"]
    list_select_related = ["room", "author"]
    ordering = ["-created_at"]

    @admin.display(description="text")
    def short_text(self, message):
        return message.text if len(message.text) <= 80 else message.text[:79] + "…"


@admin.register(RoomEvent)
class RoomEventAdmin(ReadOnlyAdmin):
    list_display = ["room", "seq", "kind", "message", "created_at"]
    list_filter = ["kind"]
    list_select_related = ["room"]
    raw_id_fields = ["message"]
