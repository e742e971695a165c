import secrets
from datetime import datetime, time, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
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
    # A job a manager must approve before it is sent (see jobs.approvals).
    AWAITING = "awaiting", "Awaiting approval"
    DECLINED = "declined", "Declined"


TERMINAL = frozenset({Status.REFUSED, Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.DECLINED})
IN_FLIGHT = frozenset({Status.SUBMITTING, Status.UNKNOWN, Status.PENDING, Status.PROCESSING})
# A job in flight this many times longer than expected is shown as stuck.
STUCK_FACTOR = 3
# Nothing was charged, or the API refunded it.
# (A job awaiting approval is not charged yet: it counts once approved.)
NOT_CHARGED = frozenset({Status.REFUSED, Status.FAILED, Status.CANCELLED, Status.AWAITING, Status.DECLINED})


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


DEFAULT_ALERT_THRESHOLDS = "50, 80, 100"


def parse_thresholds(text):
    """The percentages written in ``text`` ("50, 80, 100"), sorted; ValueError if unreadable."""
    found = set()
    for part in (text or "").replace(";", ",").split(","):
        part = part.strip().removesuffix("%").strip()
        if not part:
            continue
        if not (part.isascii() and part.isdigit()) or not 1 <= int(part) <= 1000:
            raise ValueError(f"{part!r} is not a whole percentage from 1 to 1000.")
        found.add(int(part))
    return sorted(found)


def validate_thresholds(text):
    try:
        parse_thresholds(text)
    except ValueError as exc:
        raise ValidationError(f"Alert thresholds: {exc} Write them like 50, 80, 100.") from None


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
    # Approvals (see jobs.approvals).
    approval_above_micro_cents = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="A member's job costing more than this waits for a manager's approval (empty: never).",
    )
    members_may_ask = models.BooleanField(
        default=False,
        help_text="A member whose job would pass a budget asks a manager instead of being refused.",
    )
    # Alerts (see jobs.alerts).
    alert_thresholds = models.CharField(
        max_length=100,
        default=DEFAULT_ALERT_THRESHOLDS,
        blank=True,
        validators=[validate_thresholds],
        help_text="Percentages of a budget at which its holder (or the team's managers) are told, "
        "e.g. 50, 80, 100. Empty: no threshold alerts.",
    )
    alert_on_projection = models.BooleanField(
        default=True,
        help_text="Also warn once a month when the month-end projection passes the budget (after the 7th).",
    )
    chat_webhook_url = models.URLField(
        max_length=500,
        blank=True,
        help_text="Optional Slack-compatible incoming webhook: budget alerts are posted there too.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(monthly_budget_micro_cents__isnull=True) | Q(monthly_budget_micro_cents__gte=0),
                name="team_budget_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(approval_above_micro_cents__isnull=True) | Q(approval_above_micro_cents__gte=0),
                name="team_approval_above_not_negative",
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
    # The history's layout, remembered: "list" or "grid".
    history_view = models.CharField(max_length=8, default="list")
    # Mail me when a job that took longer than 10 minutes ends.
    mail_long_jobs = models.BooleanField(default=False)

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
    # Sent through the JSON API with this token (None: from the form).
    api_token = models.ForeignKey(
        "ApiToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    # Where the studio posts the job's JSON when it ends (an API submit's ``webhook_url``).
    callback_url = models.URLField(max_length=2000, blank=True)
    # Jobs made together from one form post (``count`` > 1) share the post's key: a stack.
    stack_key = models.UUIDField(null=True, blank=True)
    # A stuck job its owner or a manager stopped watching: the worker no longer asks about
    # it (it keeps counting until PixelByte says otherwise, by webhook or a later look).
    watch_stopped_at = models.DateTimeField(null=True, blank=True)
    watch_stopped_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

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
            # Finished while you were away: a person's jobs that ended since a moment.
            models.Index(
                fields=["owner", "updated_at"],
                name="job_owner_updated",
                condition=Q(status__in=["completed", "failed"]),
            ),
            # The history's stacks: the members of one form post.
            models.Index(fields=["stack_key"], name="job_stack", condition=Q(stack_key__isnull=False)),
            # Job callbacks: API jobs with a callback URL that ended lately (a lost signal).
            models.Index(
                fields=["updated_at"],
                name="job_callback_ended",
                condition=Q(api_token__isnull=False) & ~Q(callback_url=""),
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
    def may_still_change(self):
        """Worth watching live: in flight, or waiting for a manager's decision."""
        return self.status in IN_FLIGHT or self.status == Status.AWAITING

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


class TokenScope(models.TextChoices):
    SUBMIT = "submit", "Submit jobs"
    READ = "read", "Read jobs, spend and files"


class ApiToken(models.Model):
    """A person's key to the JSON API (see jobs.tokens): only its hash and first characters
    are kept; it acts as its person, within its scopes and its own budget."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="The token's first characters, to tell it apart.")
    key_hash = models.CharField(max_length=64, unique=True, help_text="sha256 of the token.")
    scopes = models.JSONField(default=list)
    expires_at = models.DateTimeField(null=True, blank=True)
    monthly_budget_micro_cents = models.BigIntegerField(
        null=True, blank=True, help_text="Optional monthly limit of the token's own, in micro-cents."
    )
    # Signs the job callbacks of jobs sent with this token (Standard Webhooks); shown once.
    webhook_secret = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # /tokens/: a person's tokens, newest first.
            models.Index(fields=["user", "-created_at"], name="token_user_created"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(monthly_budget_micro_cents__isnull=True) | Q(monthly_budget_micro_cents__gte=0),
                name="token_budget_not_negative",
            ),
        ]

    def __str__(self):
        # Unique per token: the API's rate limit counts requests under this name.
        return f"token {self.pk} ({self.prefix}…)"

    def is_live(self, now=None):
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def allows(self, scope):
        return scope in self.scopes


class RateWindow(models.Model):
    """How many API requests one token made in one minute: counted with one atomic
    ``INSERT … ON CONFLICT … RETURNING`` per request (jobs.api.auth), so every web process
    counts together and no burst slips past; the sync worker forgets old minutes."""

    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, related_name="+")
    minute = models.BigIntegerField(help_text="Unix time // 60.")
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            # The counter's conflict target: one row per token and minute.
            models.UniqueConstraint(fields=["token", "minute"], name="rate_window_one_per_minute"),
        ]
        # Retention: old minutes are deleted by minute.
        indexes = [models.Index(fields=["minute"], name="rate_window_minute")]

    def __str__(self):
        return f"token {self.token_id}: {self.count} in minute {self.minute}"


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
    # An API token's own budget (its month follows its person's zone).
    token = models.ForeignKey("ApiToken", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
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
            models.UniqueConstraint(
                fields=["token", "month"], condition=Q(token__isnull=False), name="spend_month_one_per_token"
            ),
            models.CheckConstraint(
                condition=Q(owner__isnull=True, team__isnull=False, token__isnull=True)
                | Q(owner__isnull=False, team__isnull=True, token__isnull=True)
                | Q(owner__isnull=True, team__isnull=True, token__isnull=False),
                name="spend_month_one_holder",
            ),
            models.CheckConstraint(condition=Q(billed_micro_cents__gte=0), name="spend_month_not_negative"),
        ]

    def __str__(self):
        return f"{self.month:%Y-%m}: {self.billed_micro_cents} µ¢ in {self.jobs} job(s)"


SPEND_DAY_COUNTS = ("billed_micro_cents", "jobs", "charged", "completed", "refunded", "unsent")


class SpendDay(models.Model):
    """One day of one holder's jobs with one combination of the dashboard's breakdowns
    (person, project, quality, duration), counted by status class; kept by the lifecycle
    beside ``SpendMonth`` (see jobs.rollup). A team's rows (``team`` set) are in the team's
    zone, one per member; a person's rows (``team`` empty) hold every job they made, in
    their own zone. A day's rows add up to its holder's month."""

    # Found by the indexes below, which lead with the holder.
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    day = models.DateField(help_text="A day in the holder's time zone.")
    project = models.CharField(max_length=100, blank=True)
    quality = models.CharField(max_length=16)
    duration = models.PositiveSmallIntegerField()
    billed_micro_cents = models.BigIntegerField(default=0)
    jobs = models.IntegerField(default=0)
    # By status class: charged (anything but NOT_CHARGED), completed, refunded (failed or
    # cancelled), never sent (refused or declined); the rest are awaiting approval.
    charged = models.IntegerField(default=0)
    completed = models.IntegerField(default=0)
    refunded = models.IntegerField(default=0)
    unsent = models.IntegerField(default=0)

    COUNTS = SPEND_DAY_COUNTS

    class Meta:
        constraints = [
            # One row per combination; the dashboard's look-up is the leading columns.
            models.UniqueConstraint(
                fields=["team", "day", "owner", "project", "quality", "duration"],
                condition=Q(team__isnull=False),
                name="spend_day_one_per_team_combination",
            ),
            models.UniqueConstraint(
                fields=["owner", "day", "project", "quality", "duration"],
                condition=Q(team__isnull=True),
                name="spend_day_one_per_person_combination",
            ),
            models.CheckConstraint(condition=Q(billed_micro_cents__gte=0), name="spend_day_not_negative"),
        ]
        # The dashboard's read: a holder's days, answered from the index alone.
        indexes = [
            models.Index(
                fields=["team", "day"],
                include=["owner", "project", "quality", "duration", *SPEND_DAY_COUNTS],
                condition=Q(team__isnull=False),
                name="spend_day_team_days",
            ),
            models.Index(
                fields=["owner", "day"],
                include=["project", "quality", "duration", *SPEND_DAY_COUNTS],
                condition=Q(team__isnull=True),
                name="spend_day_person_days",
            ),
        ]

    def __str__(self):
        return f"{self.day}: {self.billed_micro_cents} µ¢ in {self.jobs} job(s)"


class StorageKept(models.Model):
    """What the studio keeps of one holder's jobs, per person and project: the bytes and
    files of their ``ArchivedFile`` rows, moved by jobs.archive in the same transaction as
    the rows (see jobs.rollup). A team's rows have ``team`` set; a person's own rows (every
    job they made) have it empty."""

    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    project = models.CharField(max_length=100, blank=True)
    bytes = models.BigIntegerField(default=0)
    files = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["team", "owner", "project"],
                condition=Q(team__isnull=False),
                name="storage_kept_one_per_team_combination",
            ),
            models.UniqueConstraint(
                fields=["owner", "project"],
                condition=Q(team__isnull=True),
                name="storage_kept_one_per_person_project",
            ),
            models.CheckConstraint(condition=Q(bytes__gte=0, files__gte=0), name="storage_kept_not_negative"),
        ]

    def __str__(self):
        return f"{self.bytes} bytes in {self.files} file(s)"


# --- spend control: raises, approvals, alerts, the audit trail, the whole bill ----------------


def holder_constraints(prefix):
    """A row belongs to exactly one budget holder: a person (``owner``) or a team."""
    return [
        models.CheckConstraint(
            condition=Q(owner__isnull=True, team__isnull=False) | Q(owner__isnull=False, team__isnull=True),
            name=f"{prefix}_one_holder",
        ),
    ]


class BudgetRaise(models.Model):
    """Extra budget for one holder for one month only: it ends at the month's reset by itself,
    because a budget's limit for a month is its base plus that month's raises."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="raises")
    month = models.DateField(help_text="The first day of the month it applies to, in the holder's zone.")
    amount_micro_cents = models.BigIntegerField()
    reason = models.TextField()
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    granted_at = models.DateTimeField(default=timezone.now)
    # Set when approving a job over budget raised the budget by exactly its price.
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-granted_at", "-id"]
        indexes = [
            # The budget check: a holder's raises in one month.
            models.Index(fields=["owner", "month"], name="raise_owner_month"),
            models.Index(fields=["team", "month"], name="raise_team_month"),
        ]
        constraints = [
            *holder_constraints("raise"),
            models.CheckConstraint(condition=Q(amount_micro_cents__gt=0), name="raise_amount_positive"),
        ]

    def __str__(self):
        return f"+{pricing.format_dollars(self.amount_micro_cents)} for {self.month:%B %Y}"


class ApprovalReason(models.TextChoices):
    ABOVE_THRESHOLD = "above_threshold", "Costs more than the team's approval limit"
    OVER_BUDGET = "over_budget", "Would pass a budget"


class Decision(models.TextChoices):
    WAITING = "", "Waiting"
    APPROVED = "approved", "Approved"
    DECLINED = "declined", "Declined"
    EXPIRED = "expired", "Expired (no decision in time)"


class ApprovalRequest(models.Model):
    """A job recorded but not sent until a manager approves it (see jobs.approvals)."""

    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="approval")
    reason = models.CharField(max_length=20, choices=ApprovalReason.choices)
    # What the person was told at the time, e.g. which budget it passes and by how much.
    explanation = models.TextField(blank=True)
    requested_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    decision = models.CharField(max_length=16, choices=Decision.choices, blank=True, default="")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True, help_text="The manager's reason.")

    class Meta:
        ordering = ["requested_at", "id"]
        indexes = [
            # The worker: requests still waiting past their expiry.
            models.Index(fields=["expires_at"], name="approval_waiting_expiry", condition=Q(decision="")),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(reason__in=ApprovalReason.values), name="approval_reason_allowed"
            ),
            models.CheckConstraint(
                condition=Q(decision__in=Decision.values), name="approval_decision_allowed"
            ),
        ]

    def __str__(self):
        return f"Approval of job {self.job_id}: {self.get_decision_display()}"

    @property
    def approver_names(self):
        """Who can decide, as the requester reads it: the managers of the job's team."""
        managers = Profile.objects.filter(team_id=self.job.team_id, role=Role.MANAGER, user__is_active=True)
        return ", ".join(managers.order_by("user__username").values_list("user__username", flat=True))


class Notice(models.Model):
    """Something a person is told on their next page (a decision on their request, say)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notices")
    text = models.TextField()
    url = models.CharField(max_length=500, blank=True)
    level = models.CharField(max_length=16, default="info")  # info, success, warning
    created_at = models.DateTimeField(default=timezone.now)
    seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            # Every page: a person's unseen notices.
            models.Index(fields=["user"], name="notice_unseen", condition=Q(seen_at__isnull=True)),
        ]

    def __str__(self):
        return self.text[:80]


class BudgetAlert(models.Model):
    """One alert line crossed by one budget in one month, against one limit: the unique row is
    the state machine that makes each alert go out exactly once (see jobs.alerts)."""

    PROJECTED = "projected"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts")
    month = models.DateField(help_text="The first day of the budget's month, in the holder's zone.")
    limit_micro_cents = models.BigIntegerField(
        help_text="The budget (with raises) the line was judged against."
    )
    line = models.CharField(max_length=16, help_text='A percentage ("80") or "projected".')
    spent_micro_cents = models.BigIntegerField(help_text="The month's spend when the line was crossed.")
    # False: crossed only because the limit changed, at spend the holder was already told of
    # this month (after a raise, say): kept so it is not raised again, but not sent.
    told = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["team", "-created_at"], name="alert_team_created")]
        constraints = [
            *holder_constraints("alert"),
            models.UniqueConstraint(
                fields=["owner", "month", "limit_micro_cents", "line"],
                condition=Q(owner__isnull=False),
                name="alert_once_per_person_line",
            ),
            models.UniqueConstraint(
                fields=["team", "month", "limit_micro_cents", "line"],
                condition=Q(team__isnull=False),
                name="alert_once_per_team_line",
            ),
        ]

    def __str__(self):
        return f"{self.line} alert for {self.month:%B %Y}"


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    CHAT = "chat", "Chat webhook"
    CALLBACK = "callback", "Job callback"


class OutgoingMessage(models.Model):
    """A message the worker delivers (and retries) so that sending never blocks a request."""

    channel = models.CharField(max_length=8, choices=Channel.choices)
    # Email addresses; for a chat message, empty (the team's webhook URL is read when sending).
    recipients = models.JSONField(default=list)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    # An email's subject; for a job callback, its receiver (scheme, host and port), so the
    # delivery loop can leave a silent receiver alone for a while.
    subject = models.CharField(max_length=200, blank=True)
    body = models.TextField()
    alert = models.ForeignKey(
        BudgetAlert, null=True, blank=True, on_delete=models.CASCADE, related_name="messages"
    )
    # A job callback: the job it reports (posted to the job's ``callback_url``).
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.CASCADE, related_name="callbacks")
    created_at = models.DateTimeField(default=timezone.now)
    # When the worker should next try; None once sent or given up.
    next_attempt_at = models.DateTimeField(null=True, blank=True, default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The worker: messages due for a (first or next) attempt.
            models.Index(
                fields=["next_attempt_at"], name="message_due", condition=Q(next_attempt_at__isnull=False)
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(channel__in=Channel.values), name="message_channel_allowed"),
            # A job's callback is queued once, whoever hears that it ended.
            models.UniqueConstraint(
                fields=["job"], condition=Q(channel="callback"), name="message_one_callback_per_job"
            ),
        ]

    def __str__(self):
        return f"{self.get_channel_display()}: {self.subject or self.body[:60]}"


class DeliveryAttempt(models.Model):
    """One try at delivering a job callback, shown to the token's owner."""

    message = models.ForeignKey(OutgoingMessage, on_delete=models.CASCADE, related_name="tries")
    at = models.DateTimeField(default=timezone.now)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self):
        return f"{self.at:%H:%M:%S} {self.http_status or self.error}"


class JobMark(models.Model):
    """One person's star and rating (1–5) of a job."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="job_marks")
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="marks")
    starred = models.BooleanField(default=False)
    rating = models.PositiveSmallIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "job"], name="job_mark_one_per_person"),
            models.CheckConstraint(
                condition=Q(rating__isnull=True) | Q(rating__gte=1, rating__lte=5),
                name="job_mark_rating_1_to_5",
            ),
        ]
        indexes = [
            # The history's "starred" filter and the team's favourites.
            models.Index(fields=["job"], name="job_mark_starred", condition=Q(starred=True)),
        ]

    def __str__(self):
        return f"{self.user} on job {self.job_id}: {'★' if self.starred else ''}{self.rating or ''}"


class ShareLink(models.Model):
    """A link under /s/ showing one video to anyone who has it, until it expires or is revoked."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="share_links")
    token = models.CharField(max_length=64, unique=True)
    show_prompt = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    views = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"Share of job {self.job_id}"

    def is_live(self, now=None):
        now = now or timezone.now()
        return self.revoked_at is None and self.expires_at > now


class SavedPrompt(models.Model):
    """A prompt (with its options) in a team's library; ``{variables}`` are filled in at use."""

    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="prompts")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_prompts"
    )
    title = models.CharField(max_length=100)
    prompt = models.TextField()
    options = models.JSONField(default=dict)
    uses = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-uses", "title"]

    def __str__(self):
        return self.title


class AuditAction(models.TextChoices):
    BUDGET_CHANGED = "budget_changed", "Budget changed"
    ALERTS_CHANGED = "alerts_changed", "Alert settings changed"
    APPROVAL_RULE_CHANGED = "approval_rule_changed", "Approval rule changed"
    RAISE_GRANTED = "raise_granted", "Temporary raise granted"
    APPROVAL_REQUESTED = "approval_requested", "Approval requested"
    APPROVED = "approved", "Job approved"
    DECLINED = "declined", "Job declined"
    EXPIRED = "expired", "Request expired"
    CANCELLED = "cancelled", "Job cancelled"
    WEBHOOK_REAPPLIED = "webhook_reapplied", "Webhook re-applied"
    JOB_ADOPTED = "job_adopted", "PixelByte job named"
    MARKED_NOT_SENT = "marked_not_sent", "Marked never sent"
    ROLE_CHANGED = "role_changed", "Role changed"
    TEAM_CHANGED = "team_changed", "Team membership changed"
    ACCESS_CHANGED = "access_changed", "Staff access changed"
    TEAM_CREATED = "team_created", "Team created"
    TEAM_DELETED = "team_deleted", "Team deleted"
    FILES_DELETED = "files_deleted", "Files deleted"
    TOKEN_CREATED = "token_created", "API token created"
    TOKEN_REVOKED = "token_revoked", "API token revoked"
    SHARE_CREATED = "share_created", "Share link created"
    SHARE_REVOKED = "share_revoked", "Share link revoked"
    WATCH_STOPPED = "watch_stopped", "Stopped watching a job"


class AuditEntryQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("Audit entries are never changed.")

    def delete(self):
        raise TypeError("Audit entries are never deleted.")


class AuditEntry(models.Model):
    """One action that changed money or access: who, when, what, from where. Written once
    (jobs.audit.record); the app has no way to change or delete one."""

    at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    # Kept as written, so the entry still says who after the account is gone ("the studio"
    # for the worker's own actions).
    actor_name = models.CharField(max_length=150)
    address = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=32, choices=AuditAction.choices)
    # Whose the change is: the team it concerns (a manager sees its entries) and the person.
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    summary = models.TextField(help_text="What changed, in a sentence.")
    detail = models.JSONField(default=dict, blank=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "audit entries"
        ordering = ["-at", "-id"]
        indexes = [
            # /audit/ for staff, newest first; for a manager, one team's.
            models.Index(fields=["-at", "-id"], name="audit_at"),
            models.Index(fields=["team", "-at", "-id"], name="audit_team_at"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(action__in=AuditAction.values), name="audit_action_allowed"),
        ]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_name}: {self.summary}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise TypeError("Audit entries are never changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("Audit entries are never deleted.")


class OutsideJob(models.Model):
    """A job PixelByte made with the studio's key that the studio never sent (found by
    ``manage.py reconcile``): part of the bill, in no person's budget."""

    remote_id = models.CharField(max_length=128, unique=True)
    model_slug = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(help_text="When PixelByte created it.")
    completed_at = models.DateTimeField(null=True, blank=True)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        # /spend/: the month's outside jobs.
        indexes = [models.Index(fields=["created_at"], name="outside_job_created")]

    def __str__(self):
        return f"{self.remote_id} ({self.status or 'unknown'})"


class PriceDrift(models.Model):
    """An option combination PixelByte charged differently from the catalog (``reconcile``)."""

    model_slug = models.CharField(max_length=200)
    quality = models.CharField(max_length=16)
    duration = models.PositiveSmallIntegerField()
    catalog_micro_cents = models.BigIntegerField()
    charged_micro_cents = models.BigIntegerField()
    jobs = models.PositiveIntegerField(default=0)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-last_seen_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["model_slug", "quality", "duration", "catalog_micro_cents", "charged_micro_cents"],
                name="price_drift_one_per_pair",
            ),
        ]

    def __str__(self):
        return f"{self.quality} {self.duration}s: {self.charged_micro_cents} vs {self.catalog_micro_cents} µ¢"
