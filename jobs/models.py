import secrets
from datetime import datetime, time, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Case, Q, Sum, Value, When
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from . import pricing


class Status(models.TextChoices):
    # Local states around the submit call.
    SUBMITTING = "submitting", "Sending"
    REFUSED = "refused", "Not sent"
    UNKNOWN = "unknown", "Outcome unknown"
    # The API's own states.
    PENDING = "pending", "Queued"
    PROCESSING = "processing", "Generating"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL = frozenset({Status.REFUSED, Status.COMPLETED, Status.FAILED, Status.CANCELLED})
IN_FLIGHT = frozenset({Status.SUBMITTING, Status.UNKNOWN, Status.PENDING, Status.PROCESSING})
# A job in flight this many times longer than expected is shown as stuck.
STUCK_FACTOR = 3
# Nothing was charged, or the API refunded it.
NOT_CHARGED = frozenset({Status.REFUSED, Status.FAILED, Status.CANCELLED})


class ArchiveStatus(models.TextChoices):
    """Where the studio's own copy of a job's outputs stands."""

    NONE = "", "Not kept"  # not finished, or made before archiving existed
    QUEUED = "queued", "Being copied"
    ARCHIVED = "archived", "Kept by the studio"
    LOST = "lost", "Lost at source"
    DELETED = "deleted", "Files deleted"


class FileKind(models.TextChoices):
    VIDEO = "video", "Video"
    THUMBNAIL = "thumbnail", "Thumbnail"
    POSTER = "poster", "Poster"
    SIDECAR = "sidecar", "Sidecar (JSON)"


def new_webhook_token():
    return secrets.token_urlsafe(24)


class Role(models.TextChoices):
    MEMBER = "member", "Member"
    MANAGER = "manager", "Manager"


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True)
    monthly_budget_micro_cents = models.BigIntegerField(
        null=True, blank=True, help_text="Optional monthly limit for the whole team, in micro-cents."
    )
    time_zone = models.CharField(
        max_length=64,
        blank=True,
        help_text="Zone in which the team's budget month starts (default: DISPLAY_TIME_ZONE).",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(monthly_budget_micro_cents__isnull=True) | Q(monthly_budget_micro_cents__gte=0),
                name="team_budget_not_negative",
            ),
        ]

    def __str__(self):
        return self.name


class Profile(models.Model):
    """A person's place in the studio: their team and role, their own budget, their zone."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="profiles")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    monthly_budget_micro_cents = models.BigIntegerField(
        null=True, blank=True, help_text="Optional monthly limit for this person, in micro-cents."
    )
    time_zone = models.CharField(max_length=64, blank=True, help_text="Default: the browser's zone.")

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(monthly_budget_micro_cents__isnull=True) | Q(monthly_budget_micro_cents__gte=0),
                name="profile_budget_not_negative",
            ),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="profile_role_allowed"),
        ]

    def __str__(self):
        return f"{self.user} ({self.get_role_display()}{f' of {self.team}' if self.team_id else ''})"

    @property
    def is_manager(self):
        return self.team_id is not None and self.role == Role.MANAGER


class JobQuerySet(models.QuerySet):
    def unfinished(self):
        return self.filter(status__in=IN_FLIGHT)

    def in_period(self, start, end):
        return self.filter(created_at__gte=start, created_at__lt=end)

    def in_local_dates(self, first=None, last=None):
        """Jobs created from the start of ``first`` to the end of ``last``, in the active time zone."""
        jobs = self
        if first:
            jobs = jobs.filter(created_at__gte=local_midnight(first))
        if last:
            jobs = jobs.filter(created_at__lt=local_midnight(last + timedelta(days=1)))
        return jobs

    def spend(self):
        """Total charged micro-cents (int) of these jobs, refunds taken off."""
        return self.aggregate(total=Coalesce(Sum(charge_expression()), 0))["total"]


def local_midnight(day):
    """The first instant of ``day`` in the active time zone."""
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


def charge_expression():
    """SQL for one job's charge: the API's cost, else our estimate; zero when refunded."""
    return Case(
        When(status__in=NOT_CHARGED, then=Value(0)),
        default=Coalesce("api_cost_micro_cents", "estimated_micro_cents"),
        output_field=models.BigIntegerField(),
    )


class Job(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="jobs")
    # The owner's team when the job was made: spend stays with the team it was made for.
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.PROTECT, related_name="jobs")
    project = models.CharField(max_length=100, blank=True, help_text="A label to charge the spend to.")
    # One per rendered form: a second post with the same key finds this job.
    submission_key = models.UUIDField(unique=True)

    model_slug = models.CharField(max_length=200)
    prompt = models.TextField()
    quality = models.CharField(max_length=16)
    duration = models.PositiveSmallIntegerField(help_text="Seconds of video.")
    aspect_ratio = models.CharField(max_length=16)
    seed = models.BigIntegerField(null=True, blank=True)
    # The exact `input` object sent to the API.
    params = models.JSONField(default=dict)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SUBMITTING)
    progress = models.PositiveSmallIntegerField(default=0)

    # Money, in integer micro-cents (1,000,000 = US$1.00).
    estimated_micro_cents = models.BigIntegerField(help_text="Our price when submitted.")
    api_cost_micro_cents = models.BigIntegerField(
        null=True, blank=True, help_text="costMicroCents reported by the API."
    )
    refunded_micro_cents = models.BigIntegerField(default=0)

    remote_id = models.CharField(max_length=128, unique=True, null=True, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    webhook_token = models.CharField(max_length=64, unique=True, default=new_webhook_token, editable=False)

    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)

    output_url = models.URLField(max_length=2000, blank=True)
    thumbnail_url = models.URLField(max_length=2000, blank=True)
    poster_url = models.URLField(max_length=2000, blank=True)
    outputs = models.JSONField(null=True, blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    estimated_completion_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    # When the sync worker should next ask the API about this job; None when
    # there is nothing more to learn.
    next_check_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    check_failures = models.PositiveSmallIntegerField(default=0)

    # The studio's own copy of the outputs (see jobs.archive).
    archive_status = models.CharField(max_length=16, choices=ArchiveStatus.choices, blank=True, default="")
    # When the archiver should next try; None when there is nothing to do.
    archive_next_at = models.DateTimeField(null=True, blank=True)
    archive_attempts = models.PositiveSmallIntegerField(default=0)
    archive_error = models.TextField(blank=True)
    archive_lost_at = models.DateTimeField(null=True, blank=True, help_text="When the source was found gone.")
    files_deleted_at = models.DateTimeField(null=True, blank=True)
    files_deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # History: one person's jobs, newest first, paged by (created_at, id). On
            # PostgreSQL the included columns let a person's monthly spend (the budget
            # check) be summed from the index alone.
            models.Index(
                fields=["owner", "-created_at", "-id"],
                name="job_owner_created",
                include=["status", "api_cost_micro_cents", "estimated_micro_cents"],
            ),
            # A manager's history, and the team's spend and budget for a period: the
            # dashboard's grouped sums and the budget check read only this index.
            models.Index(
                fields=["team", "-created_at", "-id"],
                name="job_team_created",
                include=[
                    "status",
                    "api_cost_micro_cents",
                    "estimated_micro_cents",
                    "owner",
                    "project",
                    "quality",
                    "duration",
                ],
            ),
            # sync_jobs: jobs whose next check is due (only unfinished jobs have one).
            models.Index(
                fields=["next_check_at"],
                name="job_check_due",
                condition=Q(next_check_at__isnull=False),
            ),
            # The archiver: jobs whose outputs are due to be copied.
            models.Index(
                fields=["archive_next_at"],
                name="job_archive_due",
                condition=Q(archive_next_at__isnull=False),
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=Status.values), name="job_status_allowed"),
            models.CheckConstraint(
                condition=Q(estimated_micro_cents__gte=0), name="job_estimate_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(api_cost_micro_cents__isnull=True) | Q(api_cost_micro_cents__gte=0),
                name="job_charge_not_negative",
            ),
            models.CheckConstraint(condition=Q(refunded_micro_cents__gte=0), name="job_refund_not_negative"),
            models.CheckConstraint(condition=Q(progress__lte=100), name="job_progress_at_most_100"),
            models.CheckConstraint(
                condition=Q(archive_status__in=ArchiveStatus.values), name="job_archive_status_allowed"
            ),
        ]

    def __str__(self):
        return f"Job {self.pk} ({self.get_status_display()})"

    def get_absolute_url(self):
        return reverse("jobs:detail", args=[self.pk])

    @staticmethod
    def input_fields(model, params):
        """The columns that record what was asked for: a catalog model and its cleaned input."""
        return {
            "model_slug": model.slug,
            "prompt": params["prompt"],
            "quality": params["quality"],
            "duration": int(params["duration"]),
            "aspect_ratio": params["aspect_ratio"],
            "seed": params.get("seed"),
            "params": params,
            "estimated_micro_cents": model.cost(params),
        }

    @property
    def catalog_model(self):
        return pricing.MODELS.get(self.model_slug)

    @property
    def in_flight(self):
        return self.status in IN_FLIGHT

    @property
    def billed_micro_cents(self):
        """What this job costs the team: the API's cost, else our estimate; 0 if refunded."""
        if self.status in NOT_CHARGED:
            return 0
        if self.api_cost_micro_cents is not None:
            return self.api_cost_micro_cents
        return self.estimated_micro_cents

    @property
    def was_charged(self):
        return self.status not in NOT_CHARGED

    # --- timing (a job is never shown as running forever) ---------------------------

    @property
    def queue_seconds(self):
        if self.submitted_at and self.started_at:
            return max(0, (self.started_at - self.submitted_at).total_seconds())
        return None

    @property
    def total_seconds(self):
        if self.completed_at:
            return max(0, (self.completed_at - self.created_at).total_seconds())
        return None

    def expected_seconds(self):
        """How long this job should take: the API's estimate, else the catalog's."""
        if self.estimated_completion_at and self.submitted_at:
            seconds = (self.estimated_completion_at - self.submitted_at).total_seconds()
            if seconds > 0:
                return seconds
        model = self.catalog_model
        return model.typical_seconds if model else 180

    def _running_for(self, now):
        """Seconds since it was sent, while it is still in flight (None otherwise)."""
        if not self.in_flight or self.submitted_at is None:
            return None
        return ((now or timezone.now()) - self.submitted_at).total_seconds()

    def kept_bytes(self):
        """The size of the files the studio keeps for this job (None when it keeps none)."""
        if self.archive_status != ArchiveStatus.ARCHIVED:
            return None
        return self.files.aggregate(total=Sum("size"))["total"]

    def is_slow(self, now=None):
        """Still in flight after its estimated completion time."""
        running = self._running_for(now)
        return running is not None and running > self.expected_seconds()

    def is_send_overdue(self, now=None):
        """Still sending after the submit deadline: the process that sent it gave no answer,
        so the sync worker is finding out from PixelByte whether the job was created."""
        if self.status != Status.SUBMITTING:
            return False
        return (
            (now or timezone.now()) - self.created_at
        ).total_seconds() > settings.PIXELBYTE_SUBMIT_DEADLINE

    def is_stuck(self, now=None):
        """Still in flight after three times its expected duration."""
        running = self._running_for(now)
        return running is not None and running > STUCK_FACTOR * self.expected_seconds()


class Verdict(models.TextChoices):
    APPLIED = "applied", "Applied"
    FILLED = "filled", "Details added"
    UNCHANGED = "unchanged", "Nothing new"
    STALE = "stale", "Stale (ignored)"
    DUPLICATE = "duplicate", "Duplicate (ignored)"
    UNKNOWN_JOB = "unknown_job", "Unknown job id (acknowledged)"
    INVALID_STATUS = "invalid_status", "Unknown status (ignored)"
    BAD_SIGNATURE = "bad_signature", "Refused: signature"
    BAD_TIMESTAMP = "bad_timestamp", "Refused: timestamp"
    BAD_TOKEN = "bad_token", "Refused: unknown URL token"
    MALFORMED = "malformed", "Refused: not JSON"
    TOO_LARGE = "too_large", "Refused: too large"
    JOB_MISMATCH = "job_mismatch", "Refused: does not name this job"


# Refused before the request is tied to a job: anyone can send these, so they are
# counted (``WebhookTally``) and only a bounded sample is kept as deliveries.
ANONYMOUS_VERDICTS = (Verdict.BAD_SIGNATURE, Verdict.BAD_TIMESTAMP, Verdict.BAD_TOKEN, Verdict.TOO_LARGE)
# Verdicts whose body may not be applied to the delivery's job (refused, or about another job).
NOT_APPLICABLE_VERDICTS = (*ANONYMOUS_VERDICTS, Verdict.MALFORMED, Verdict.JOB_MISMATCH, Verdict.UNKNOWN_JOB)


class WebhookDelivery(models.Model):
    """A callback for one of our jobs, or a sample of refused ones, kept to explain what happened."""

    received_at = models.DateTimeField(default=timezone.now)
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries")
    verdict = models.CharField(max_length=20, choices=Verdict.choices)
    http_status = models.PositiveSmallIntegerField()
    signature_valid = models.BooleanField(
        null=True, help_text="None when no webhook secret is configured (the URL token is the only check)."
    )
    remote_job_id = models.CharField(max_length=128, blank=True)
    reported_status = models.CharField(max_length=32, blank=True)
    body = models.TextField(blank=True)
    # The request's own headers (timestamp, signature, type, agent); never the secret.
    headers = models.JSONField(default=dict)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    # sha256 of what was signed: one row per distinct delivery that was processed.
    dedup_key = models.CharField(max_length=64, unique=True, null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        ordering = ["-received_at", "-id"]
        indexes = [
            # Admin list and a job's deliveries, newest first; retention of job deliveries.
            models.Index(fields=["-received_at"], name="delivery_received"),
            # The receiver's count of refused samples in the last hour; their retention.
            models.Index(fields=["verdict", "received_at"], name="delivery_verdict_received"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(verdict__in=Verdict.values), name="delivery_verdict_allowed"),
        ]

    def __str__(self):
        return f"{self.get_verdict_display()} at {self.received_at:%Y-%m-%d %H:%M:%S}"

    @property
    def trusted(self):
        """Verified (or token-matched without a secret), readable and about its own job: safe to re-apply."""
        return (
            self.job_id is not None
            and self.signature_valid is not False
            and self.verdict not in NOT_APPLICABLE_VERDICTS
        )


class SignInThrottle(models.Model):
    """Passwords tried for one (normalised user name, client address) in the current window.

    A row is reserved (its count raised under the lock) before a password is checked,
    so concurrent guesses cannot all slip in before the count catches up."""

    key = models.CharField(max_length=64, unique=True, help_text="sha256 of the name and the address.")
    failures = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField(help_text="When this count is forgotten.")

    class Meta:
        indexes = [
            # Retention: forget expired counts.
            models.Index(fields=["expires_at"], name="signin_throttle_expiry"),
        ]

    def __str__(self):
        return f"{self.failures} attempt(s) until {self.expires_at:%Y-%m-%d %H:%M}"


class WebhookTally(models.Model):
    """How many webhook requests were refused, per minute and verdict, before they could
    be tied to a job: a flood adds one row a minute, not one a request."""

    minute = models.DateTimeField(help_text="The minute (UTC) the requests arrived in.")
    verdict = models.CharField(max_length=20, choices=Verdict.choices)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name_plural = "webhook tallies"
        ordering = ["-minute", "verdict"]
        constraints = [
            # One counter per minute and verdict; its index also serves the admin list and retention.
            models.UniqueConstraint(fields=["minute", "verdict"], name="tally_minute_verdict_unique"),
            models.CheckConstraint(condition=Q(verdict__in=Verdict.values), name="tally_verdict_allowed"),
        ]

    def __str__(self):
        return f"{self.count} × {self.get_verdict_display()} at {self.minute:%Y-%m-%d %H:%M}"


class ArchivedFile(models.Model):
    """One file of a job kept in the studio's storage, written whole before this row exists."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="files")
    kind = models.CharField(max_length=16, choices=FileKind.choices)
    # The name in the default storage (a path on disk, or a key in the bucket).
    name = models.CharField(max_length=500, unique=True)
    size = models.BigIntegerField()
    content_type = models.CharField(max_length=100)
    sha256 = models.CharField(max_length=64)
    archived_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "kind"], name="archived_file_one_per_kind"),
            models.CheckConstraint(condition=Q(size__gte=0), name="archived_file_size_not_negative"),
            models.CheckConstraint(condition=Q(kind__in=FileKind.values), name="archived_file_kind_allowed"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} of job {self.job_id}: {self.name}"


class SpendMonth(models.Model):
    """What one budget holder (a person, or a team) committed in one of its months; kept by
    the lifecycle beside every change of a job's billed amount (see jobs.rollup)."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    month = models.DateField(help_text="The first day of the month, in the holder's time zone.")
    billed_micro_cents = models.BigIntegerField(default=0)
    jobs = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            # The budget check's look-ups: one row per holder and month.
            models.UniqueConstraint(
                fields=["owner", "month"], condition=Q(owner__isnull=False), name="spend_month_one_per_person"
            ),
            models.UniqueConstraint(
                fields=["team", "month"], condition=Q(team__isnull=False), name="spend_month_one_per_team"
            ),
            models.CheckConstraint(
                condition=Q(owner__isnull=True, team__isnull=False)
                | Q(owner__isnull=False, team__isnull=True),
                name="spend_month_one_holder",
            ),
            models.CheckConstraint(condition=Q(billed_micro_cents__gte=0), name="spend_month_not_negative"),
        ]

    def __str__(self):
        return f"{self.month:%Y-%m}: {self.billed_micro_cents} µ¢ in {self.jobs} job(s)"
