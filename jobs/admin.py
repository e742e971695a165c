from django.contrib import admin

from .models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "owner",
        "status",
        "quality",
        "duration",
        "estimated_micro_cents",
        "charged_micro_cents",
        "created_at",
    ]
    list_filter = ["status", "quality", "duration", "aspect_ratio"]
    search_fields = ["prompt", "remote_id", "request_id", "owner__username"]
    list_select_related = ["owner"]
    date_hierarchy = "created_at"
    readonly_fields = ["submission_key", "webhook_token", "params", "outputs", "created_at", "updated_at"]
    raw_id_fields = ["owner"]
