from django.contrib import admin

from chat.models import Message, Room


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "last_seq", "last_message_at", "created_at"]
    search_fields = ["name", "slug"]
    list_filter = ["created_at"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["last_seq", "last_message_at"]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["room", "seq", "author", "short_text", "created_at"]
    list_filter = ["room", "created_at"]
    search_fields = ["text", "author__username", "room__name"]
    list_select_related = ["room", "author"]
    raw_id_fields = ["author"]
    readonly_fields = ["room", "seq", "client_key", "created_at"]

    def has_add_permission(self, request):
        return False  # messages get their sequence number from the chat, not the admin

    ordering = ["-created_at"]

    @admin.display(description="text")
    def short_text(self, message):
        return message.text if len(message.text) <= 80 else message.text[:79] + "…"
