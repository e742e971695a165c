from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.db import models

from . import lifecycle, pricing, rollup, webhooks
from .accounts import StudioAdminAuthenticationForm
from .models import Job, Profile, Status, Team, WebhookDelivery, WebhookTally

# The admin's sign-in says so when sign-in is paused (the count itself is in the backend).
admin.site.login_form = StudioAdminAuthenticationForm


class BudgetInDollars(forms.ModelForm):
    """Budgets are set in dollars and stored as integer micro-cents."""

    monthly_budget_dollars = forms.DecimalField(
        label="Monthly budget (US$)",
        required=False,
        min_value=Decimal("0"),
        max_digits=12,
        decimal_places=6,
        help_text="Leave empty for no limit.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stored = self.instance.monthly_budget_micro_cents
        if stored is not None:
            self.initial["monthly_budget_dollars"] = Decimal(stored) / pricing.MICRO_CENTS_PER_DOLLAR

    def save(self, commit=True):
        dollars = self.cleaned_data.get("monthly_budget_dollars")
        self.instance.monthly_budget_micro_cents = (
            None if dollars is None else pricing.dollars_to_micro_cents(dollars)
        )
        return super().save(commit)


class RebuildsSpendOnZoneChange:
    """A budget holder's months follow its time zone: changing a zone rebuilds that
    holder's spend rows, so the budget check keeps counting the right months."""

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and "time_zone" in form.changed_data:
            rebuild_for(obj)

    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)
        for inline in formset.forms:
            if inline.instance.pk and "time_zone" in inline.changed_data:
                rebuild_for(inline.instance)


def rebuild_for(holder):
    if isinstance(holder, Team):
        rollup.rebuild_holder(team_id=holder.pk)
    else:
        rollup.rebuild_holder(owner_id=holder.user_id)


class ProfileInline(admin.TabularInline):
    model = Profile
    form = BudgetInDollars
    fields = ["user", "role", "monthly_budget_dollars", "time_zone"]
    raw_id_fields = ["user"]
    extra = 0


@admin.register(Team)
class TeamAdmin(RebuildsSpendOnZoneChange, admin.ModelAdmin):
    form = BudgetInDollars
    fields = ["name", "monthly_budget_dollars", "time_zone"]
    list_display = ["name", "budget", "members"]
    search_fields = ["name"]
    inlines = [ProfileInline]

    def get_queryset(self, request):
        from django.db.models import Count

        return super().get_queryset(request).annotate(member_count=Count("profiles"))

    @admin.display(description="Monthly budget")
    def budget(self, team):
        if team.monthly_budget_micro_cents is None:
            return "no limit"
        return pricing.format_dollars(team.monthly_budget_micro_cents)

    @admin.display(description="Members", ordering="member_count")
    def members(self, team):
        return team.member_count


@admin.register(Profile)
class ProfileAdmin(RebuildsSpendOnZoneChange, admin.ModelAdmin):
    form = BudgetInDollars
    fields = ["user", "team", "role", "monthly_budget_dollars", "time_zone"]
    list_display = ["user", "team", "role", "budget"]
    list_filter = ["role", "team"]
    list_select_related = ["user", "team"]
    search_fields = ["user__username", "team__name"]
    raw_id_fields = ["user"]

    @admin.display(description="Monthly budget")
    def budget(self, profile):
        if profile.monthly_budget_micro_cents is None:
            return "no limit"
        return pricing.format_dollars(profile.monthly_budget_micro_cents)


class NeedsDecisionFilter(admin.SimpleListFilter):
    """Lost submits the sync worker could not match with certainty: staff set the
    PixelByte job id (or mark the job not sent) by hand."""

    title = "needs a decision"
    parameter_name = "decision"

    def lookups(self, request, model_admin):
        return [("needed", "Outcome unknown, needs a decision")]

    def queryset(self, request, queryset):
        if self.value() == "needed":
            return queryset.filter(status=Status.UNKNOWN, error_code="NEEDS_DECISION")
        return queryset


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "owner",
        "team",
        "project",
        "status",
        "quality",
        "duration",
        "estimated_micro_cents",
        "api_cost_micro_cents",
        "created_at",
    ]
    list_filter = [NeedsDecisionFilter, "status", "team", "quality", "duration", "aspect_ratio"]
    search_fields = ["prompt", "remote_id", "request_id", "owner__username", "project"]
    list_select_related = ["owner", "team"]
    date_hierarchy = "created_at"
    # Status and money change only through the lifecycle: here, by naming the PixelByte job
    # of an outcome-unknown row (the worker then reads its status) or marking it not sent.
    readonly_fields = [
        "owner",
        "team",
        "submission_key",
        "params",
        "status",
        "progress",
        "estimated_micro_cents",
        "api_cost_micro_cents",
        "refunded_micro_cents",
        "outputs",
        "created_at",
        "updated_at",
    ]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    actions = ["mark_not_sent"]

    # Jobs are made by submitting and kept as the record of what was spent.
    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and (obj.status != Status.UNKNOWN or obj.remote_id):
            fields.append("remote_id")
        return fields

    def save_model(self, request, obj, form, change):
        """Write only what staff changed (never the status a worker may be moving), and hand
        a newly named PixelByte job to the lifecycle."""
        if not change:
            return super().save_model(request, obj, form, change)
        fields = [name for name in form.changed_data if name != "remote_id"]
        if fields:
            obj.save(update_fields=fields)
        if "remote_id" in form.changed_data and obj.remote_id and lifecycle.adopt(obj.pk, obj.remote_id):
            self.message_user(
                request, f"Job {obj.pk} is now {obj.remote_id}; the sync worker reads its status."
            )
        return None

    @admin.action(description="Mark selected outcome-unknown jobs as never sent (nothing charged)")
    def mark_not_sent(self, request, queryset):
        message = "A member of staff found that PixelByte never created this job: nothing was charged."
        moved = sum(
            lifecycle.mark_not_sent(pk, code="NOT_SENT", message=message)
            for pk in queryset.values_list("pk", flat=True)
        )
        self.message_user(request, f"{moved} job(s) marked not sent; others were left as they were.")


class ReadOnlyAdmin(admin.ModelAdmin):
    """A record kept to explain what happened: shown, never added or edited here."""

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    """Every callback for one of our jobs, and a sample of refused ones, so a missing or
    refused one can be seen and explained (all refused ones are counted under tallies)."""

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


@admin.register(WebhookTally)
class WebhookTallyAdmin(ReadOnlyAdmin):
    """Requests refused before they reached a job, counted per minute: the traffic the
    delivery log only samples. Read-only; the sync worker forgets them after a week."""

    list_display = ["minute", "verdict", "count"]
    list_filter = ["verdict"]
    date_hierarchy = "minute"

    def has_delete_permission(self, request, obj=None):
        return False
