from django.contrib import admin, messages

from . import webhooks
from .models import Job, WebhookDelivery


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
    readonly_fields = ["submission_key", "params", "outputs", "created_at", "updated_at"]
    raw_id_fields = ["owner"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """Every callback, so a missing or refused one can be seen and explained."""

    list_display = [
        "received_at",
        "verdict",
        "http_status",
        "job",
        "remote_job_id",
        "reported_status",
        "source_ip",
    ]
    list_filter = ["verdict", "http_status", "signature_valid"]
    search_fields = ["remote_job_id", "job__id"]
    list_select_related = ["job"]
    date_hierarchy = "received_at"
    actions = ["reapply"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Re-apply selected verified deliveries to their jobs")
    def reapply(self, request, queryset):
        applied = skipped = 0
        for delivery in queryset.select_related("job"):
            if not delivery.trusted:
                skipped += 1
                continue
            outcome = webhooks.reapply(delivery)
            applied += 1
            self.message_user(request, f"Delivery {delivery.pk} → job {delivery.job_id}: {outcome}.")
        if skipped:
            self.message_user(
                request,
                f"{skipped} delivery(ies) skipped: only verified deliveries for a known job can be re-applied.",
                messages.WARNING,
            )
