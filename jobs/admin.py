from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db import models, transaction

from . import audit, lifecycle, pricing, rollup, webhooks
from .accounts import StudioAdminAuthenticationForm
from .models import (
    ApprovalRequest,
    AuditEntry,
    BudgetAlert,
    BudgetRaise,
    Job,
    OutgoingMessage,
    OutsideJob,
    PriceDrift,
    Profile,
    Status,
    Team,
    WebhookDelivery,
    WebhookTally,
)

# The admin's sign-in says so when sign-in is paused (the count itself is in the backend).
admin.site.login_form = StudioAdminAuthenticationForm
admin.site.site_header = "Kling Studio admin"
admin.site.site_title = "Kling Studio admin"
admin.site.index_title = "Teams, people, budgets and jobs"


def dollars_or_dash(micro_cents):
    """A list column's money: exact dollars (staff reconcile here), or a dash for none."""
    return "—" if micro_cents is None else pricing.format_dollars(micro_cents)


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


class TeamForm(BudgetInDollars):
    """The team's budget and approval limit in dollars (stored as micro-cents)."""

    approval_above_dollars = forms.DecimalField(
        label="Approval needed above (US$)",
        required=False,
        min_value=Decimal("0"),
        max_digits=12,
        decimal_places=6,
        help_text="A member's job costing more than this waits for a manager's approval. Empty: never.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stored = self.instance.approval_above_micro_cents
        if stored is not None:
            self.initial["approval_above_dollars"] = Decimal(stored) / pricing.MICRO_CENTS_PER_DOLLAR

    def save(self, commit=True):
        dollars = self.cleaned_data.get("approval_above_dollars")
        self.instance.approval_above_micro_cents = (
            None if dollars is None else pricing.dollars_to_micro_cents(dollars)
        )
        return super().save(commit)


class ProfileInline(admin.TabularInline):
    model = Profile
    form = BudgetInDollars
    fields = ["user", "role", "monthly_budget_dollars", "time_zone"]
    raw_id_fields = ["user"]
    extra = 0


@admin.register(Team)
class TeamAdmin(RebuildsSpendOnZoneChange, admin.ModelAdmin):
    form = TeamForm
    fieldsets = [
        (None, {"fields": ["name", "monthly_budget_dollars", "time_zone"]}),
        ("Approvals", {"fields": ["approval_above_dollars", "members_may_ask"]}),
        ("Alerts", {"fields": ["alert_thresholds", "alert_on_projection", "chat_webhook_url"]}),
    ]
    list_display = ["name", "budget", "members"]
    search_fields = ["name"]
    inlines = [ProfileInline]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    # Every change of money or access is written to the audit trail (jobs.audit) in the
    # admin's own transaction: the entry and the change are kept together or not at all.

    def save_model(self, request, obj, form, change):
        before = Team.objects.get(pk=obj.pk) if change else None
        super().save_model(request, obj, form, change)
        if before is None:
            audit.team_created(request, obj)
        else:
            audit.team_changed(request, before, obj)

    def save_formset(self, request, form, formset, change):
        """The people added, changed or removed in the team's rows: one entry per change."""
        if formset.model is not Profile:
            return super().save_formset(request, form, formset, change)
        initial = {f.instance.pk: f.instance for f in formset.initial_forms}
        stored = Profile.objects.select_related("team", "user").in_bulk(list(initial))
        deleting = {f.instance.pk for f in formset.deleted_forms}
        super().save_formset(request, form, formset, change)
        for pk, old in stored.items():
            record_profile_change(request, old, None if pk in deleting else initial[pk])
        for profile in formset.new_objects:
            record_profile_change(request, None, profile)
        return None

    def delete_model(self, request, obj):
        with transaction.atomic():
            audit.team_deleted(request, obj, list(obj.profiles.values_list("user_id", flat=True)))
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for team in queryset:
                audit.team_deleted(request, team, list(team.profiles.values_list("user_id", flat=True)))
            super().delete_queryset(request, queryset)

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

    def save_model(self, request, obj, form, change):
        old = Profile.objects.select_related("team", "user").get(pk=obj.pk) if change else None
        super().save_model(request, obj, form, change)
        record_profile_change(request, old, obj)

    def delete_model(self, request, obj):
        with transaction.atomic():
            record_profile_change(request, obj, None)
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for profile in queryset.select_related("team", "user"):
                record_profile_change(request, profile, None)
            super().delete_queryset(request, queryset)


def record_profile_change(request, old, new):
    """Audit a person's team, role and own budget: ``old`` as stored (None: a new profile),
    ``new`` as saved (None: deleted). A profile handed to another user counts as one
    person leaving and another arriving."""
    if old is not None and new is not None and old.user_id != new.user_id:
        record_profile_change(request, old, None)
        record_profile_change(request, None, new)
        return
    user = (new or old).user
    audit.person_changed(request, user, audit.person_state(old), audit.person_state(new))


User = get_user_model()
admin.site.unregister(User)


def _team_id_of(user):
    return Profile.objects.filter(user_id=user.pk).values_list("team_id", flat=True).first()


@admin.register(User)
class StudioUserAdmin(UserAdmin):
    """Django's user admin, with sign-in, staff and superuser changes in the audit trail."""

    def save_model(self, request, obj, form, change):
        flags = list(audit.ACCESS_FLAGS)
        before = User.objects.filter(pk=obj.pk).values(*flags).first() if change else None
        super().save_model(request, obj, form, change)
        audit.access_changed(request, obj, before, _team_id_of(obj))

    def delete_model(self, request, obj):
        with transaction.atomic():
            audit.account_deleted(request, obj, _team_id_of(obj))
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for user in queryset:
                audit.account_deleted(request, user, _team_id_of(user))
            super().delete_queryset(request, queryset)


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


# What an audit entry about a job reads: whose it is and what it was charged.
JOB_AUDIT_FIELDS = ("pk", "owner", "team", "status", "estimated_micro_cents", "api_cost_micro_cents")


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
        "estimate",
        "api_cost",
        "created_at",
    ]
    list_filter = [NeedsDecisionFilter, "status", "team", "quality", "duration", "aspect_ratio"]
    search_fields = ["prompt", "remote_id", "request_id", "owner__username", "project"]
    list_select_related = ["owner", "team"]
    date_hierarchy = "created_at"
    # Status and money change only through the lifecycle: here, by naming the PixelByte job
    # of an outcome-unknown row (the worker then reads its status) or marking it not sent.
    # What a job was made as (person, team, project, options) is what its spend is counted
    # under in the rollup: it is never edited here either.
    readonly_fields = [
        "owner",
        "team",
        "project",
        "quality",
        "duration",
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
            audit.job_adopted(request, obj, obj.remote_id)
            self.message_user(
                request, f"Job {obj.pk} is now {obj.remote_id}; the sync worker reads its status."
            )
        return None

    @admin.display(description="Estimate", ordering="estimated_micro_cents")
    def estimate(self, job):
        return dollars_or_dash(job.estimated_micro_cents)

    @admin.display(description="API cost", ordering="api_cost_micro_cents")
    def api_cost(self, job):
        return dollars_or_dash(job.api_cost_micro_cents)

    @admin.action(description="Mark selected outcome-unknown jobs as never sent (nothing charged)")
    def mark_not_sent(self, request, queryset):
        message = "A member of staff found that PixelByte never created this job: nothing was charged."
        moved = 0
        for job in queryset.only(*JOB_AUDIT_FIELDS):
            billed = job.billed_micro_cents
            with transaction.atomic():
                if lifecycle.mark_not_sent(job.pk, code="NOT_SENT", message=message):
                    audit.marked_not_sent(request, job, billed)
                    moved += 1
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
            billed = delivery.job.billed_micro_cents
            with transaction.atomic():  # re-applying calls nothing outside the database
                outcome = webhooks.reapply(delivery)
                job = Job.objects.only(*JOB_AUDIT_FIELDS).get(pk=delivery.job_id)
                audit.webhook_reapplied(request, delivery, job, billed, outcome)
            applied += 1
            self.message_user(request, f"Delivery {delivery.pk} → job {delivery.job_id}: {outcome}.")
        if skipped:
            self.message_user(
                request,
                f"{skipped} delivery(ies) skipped: only verified deliveries for a known job can be re-applied.",
                messages.WARNING,
            )


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """Who changed money or access, when and from where (jobs.audit). Shown, never added,
    changed or deleted here: no delete permission and no actions, so no "delete selected"."""

    list_display = ["at", "actor_name", "address", "action", "team", "subject", "summary"]
    list_filter = ["action"]
    list_select_related = ["team", "subject"]
    search_fields = ["summary", "actor_name"]
    date_hierarchy = "at"
    actions = None

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(WebhookTally)
class WebhookTallyAdmin(ReadOnlyAdmin):
    """Requests refused before they reached a job, counted per minute: the traffic the
    delivery log only samples. Read-only; the sync worker forgets them after a week."""

    list_display = ["minute", "verdict", "count"]
    list_filter = ["verdict"]
    date_hierarchy = "minute"

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(BudgetAlert)
class BudgetAlertAdmin(ReadOnlyAdmin):
    """Each alert line a budget crossed, once per month and limit (see jobs.alerts)."""

    list_display = ["created_at", "team", "owner", "month", "line", "limit", "spent"]
    list_filter = ["line", "team"]
    date_hierarchy = "created_at"

    @admin.display(description="Budget", ordering="limit_micro_cents")
    def limit(self, alert):
        return dollars_or_dash(alert.limit_micro_cents)

    @admin.display(description="Spent then", ordering="spent_micro_cents")
    def spent(self, alert):
        return dollars_or_dash(alert.spent_micro_cents)

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(OutgoingMessage)
class OutgoingMessageAdmin(ReadOnlyAdmin):
    """Email and chat messages: sent, waiting for a retry, or given up (with the last error)."""

    list_display = [
        "created_at",
        "channel",
        "subject",
        "attempts",
        "sent_at",
        "next_attempt_at",
        "last_error",
    ]
    list_filter = ["channel"]
    date_hierarchy = "created_at"


@admin.register(BudgetRaise)
class BudgetRaiseAdmin(ReadOnlyAdmin):
    """Temporary raises: granted on /spend/ or by approving a job over budget."""

    list_display = ["granted_at", "team", "owner", "month", "amount", "reason", "granted_by"]
    list_filter = ["team"]

    @admin.display(description="Amount", ordering="amount_micro_cents")
    def amount(self, item):
        return dollars_or_dash(item.amount_micro_cents)

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(ReadOnlyAdmin):
    """Jobs that waited for a manager; decided on /approvals/."""

    list_display = ["requested_at", "job", "reason", "decision", "decided_by", "decided_at"]
    list_filter = ["decision", "reason"]

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(OutsideJob)
class OutsideJobAdmin(ReadOnlyAdmin):
    """Jobs PixelByte made with the studio's key that the studio never sent (``reconcile``)."""

    list_display = ["remote_id", "status", "created_at", "last_seen_at"]
    list_filter = ["status"]
    date_hierarchy = "created_at"


@admin.register(PriceDrift)
class PriceDriftAdmin(ReadOnlyAdmin):
    """Option combinations PixelByte charged differently from the catalog (``reconcile``)."""

    list_display = [
        "quality",
        "duration",
        "catalog_price",
        "charged",
        "jobs",
        "last_seen_at",
    ]

    @admin.display(description="Catalog price", ordering="catalog_micro_cents")
    def catalog_price(self, drift):
        return dollars_or_dash(drift.catalog_micro_cents)

    @admin.display(description="PixelByte charged", ordering="charged_micro_cents")
    def charged(self, drift):
        return dollars_or_dash(drift.charged_micro_cents)
