"""Spend: who spent what, on what, when, and the CSV behind it.

Every figure is integer micro-cents from ``charge_expression`` (the API's cost,
else our estimate; nothing for refused, failed or cancelled jobs; unknown
outcomes count until resolved), summed in SQL. A report is one pass over one scope and
period on PostgreSQL (a fixed handful of grouped queries elsewhere), whatever the
size of the table; the ``job_team_created`` and ``job_owner_created`` indexes find
the period's rows.
"""

import calendar
import csv
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from . import pricing
from .models import NOT_CHARGED, Job, Profile, Status, Team, charge_expression, profile_or_none

PERIODS = [
    ("this_month", "This month"),
    ("last_month", "Last month"),
    ("30d", "Last 30 days"),
    ("90d", "Last 90 days"),
    ("custom", "Custom range"),
]
MAX_CUSTOM_DAYS = 366 * 2
CENT = 10_000  # micro-cents


@dataclass(frozen=True)
class Period:
    key: str
    label: str
    first_day: date
    last_day: date  # inclusive
    zone: object

    @property
    def start(self):
        return datetime.combine(self.first_day, time.min, tzinfo=self.zone)

    @property
    def end(self):
        return datetime.combine(self.last_day + timedelta(days=1), time.min, tzinfo=self.zone)

    @property
    def days(self):
        return (self.last_day - self.first_day).days + 1

    @property
    def is_calendar_month(self):
        return self.key in ("this_month", "last_month")


def period_for(key, today, zone, first=None, last=None):
    """The reporting period ``key`` as seen on ``today`` in ``zone``."""
    month_start = today.replace(day=1)
    if key == "last_month":
        last_day = month_start - timedelta(days=1)
        return Period(key, "Last month", last_day.replace(day=1), last_day, zone)
    if key in ("30d", "90d"):
        days = int(key[:-1])
        return Period(key, f"Last {days} days", today - timedelta(days=days - 1), today, zone)
    if key == "custom" and first and last and first <= last:
        return Period(key, f"{first:%b %-d, %Y} – {last:%b %-d, %Y}", first, last, zone)
    month_end = month_start.replace(day=calendar.monthrange(today.year, today.month)[1])
    return Period("this_month", "This month", month_start, month_end, zone)


@dataclass(frozen=True)
class Scope:
    """The jobs a person may account for: their own, their team's, or (staff) any team's."""

    jobs: object
    label: str
    team: Team | None = None
    is_team: bool = False


def scope_for(user, team_id=None):
    profile = profile_or_none(user)
    if user.is_staff:
        if team_id:
            team = Team.objects.filter(pk=team_id).first()
            if team is not None:
                return Scope(Job.objects.filter(team=team), f"Team {team.name}", team, True)
        return Scope(Job.objects.all(), "Every team", None, True)
    if profile is not None and profile.is_manager:
        return Scope(
            Job.objects.filter(team_id=profile.team_id), f"Team {profile.team.name}", profile.team, True
        )
    return Scope(Job.objects.filter(owner=user), "Your spend", profile.team if profile else None, False)


@dataclass
class Report:
    period: Period
    total: int = 0
    jobs: int = 0
    charged_jobs: int = 0
    videos: int = 0
    daily: list = field(default_factory=list)  # [(date, micro-cents, jobs)] for every day
    by_member: list = field(default_factory=list)
    by_project: list = field(default_factory=list)
    by_quality: list = field(default_factory=list)
    by_duration: list = field(default_factory=list)
    budget: int | None = None
    budget_name: str = ""
    projection: int | None = None
    today: date | None = None

    @property
    def average(self):
        return self.total // self.charged_jobs if self.charged_jobs else 0

    @property
    def budget_used_percent(self):
        if not self.budget:
            return None
        return self.total * 100 // self.budget


def _grouped(jobs, *fields):
    return list(
        jobs.values(*fields)
        .annotate(spend=Coalesce(Sum(charge_expression()), 0), count=Count("id"))
        .order_by("-spend", *fields)
    )


def report(scope, period, user, now=None):
    """Every figure of the dashboard for ``scope`` over ``period``: one pass over the
    period's rows on PostgreSQL, six grouped queries elsewhere."""
    jobs = scope.jobs.in_period(period.start, period.end)
    if connection.vendor == "postgresql":
        result, per_day = _one_pass(jobs, period)
    else:
        result, per_day = _per_breakdown(jobs, period)
    result.daily = [
        (day, per_day.get(day, {}).get("spend", 0), per_day.get(day, {}).get("count", 0))
        for day in (period.first_day + timedelta(days=i) for i in range(period.days))
    ]
    _add_budget(result, scope, user, period, now or timezone.now())
    return result


# The breakdowns of the report, as (name on Report, the columns grouped by).
BREAKDOWNS = (
    ("by_member", ("owner_id", "owner__username")),
    ("by_project", ("project",)),
    ("by_quality", ("quality",)),
    ("by_duration", ("duration",)),
)


def _one_pass(jobs, period):
    """PostgreSQL: the totals, the days and every breakdown from a single scan of the
    period's rows (GROUPING SETS), which the covering ``job_team_created`` and
    ``job_owner_created`` indexes answer without reading the table."""
    rows = jobs.annotate(day=TruncDate("created_at", tzinfo=period.zone), charge=charge_expression()).values(
        "day", "owner_id", "owner__username", "project", "quality", "duration", "status", "charge"
    )
    inner, params = rows.query.sql_with_params()
    not_charged = sorted(NOT_CHARGED)
    # Only Django's compiled SQL and placeholders are put into the text; every value is a parameter.
    sql = f"""
        SELECT GROUPING("day"), GROUPING("owner_id"), GROUPING("project"), GROUPING("quality"),
               GROUPING("duration"), "day", "owner_id", MAX("owner__username"), "project", "quality",
               "duration", COALESCE(SUM("charge"), 0)::bigint, COUNT(*),
               COUNT(*) FILTER (WHERE "status" NOT IN ({", ".join(["%s"] * len(not_charged))})),
               COUNT(*) FILTER (WHERE "status" = %s)
        FROM ({inner}) AS period_jobs
        GROUP BY GROUPING SETS (("day"), ("owner_id"), ("project"), ("quality"), ("duration"), ())
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [*not_charged, Status.COMPLETED, *params])
        found = cursor.fetchall()
    result, per_day = Report(period), {}
    groups = {name: [] for name, _ in BREAKDOWNS}
    for row in found:
        flags, (day, owner_id, username, project, quality, duration, spend, count, charged, videos) = (
            row[:5],
            row[5:],
        )
        figures = {"spend": spend, "count": count}
        if all(flags):
            result.total, result.jobs, result.charged_jobs, result.videos = spend, count, charged, videos
        elif not flags[0]:
            per_day[day] = figures
        elif not flags[1]:
            groups["by_member"].append({"owner_id": owner_id, "owner__username": username, **figures})
        elif not flags[2]:
            groups["by_project"].append({"project": project, **figures})
        elif not flags[3]:
            groups["by_quality"].append({"quality": quality, **figures})
        else:
            groups["by_duration"].append({"duration": duration, **figures})
    for name, columns in BREAKDOWNS:
        # The order _grouped gives: most spent first, then by the grouped values.
        setattr(result, name, sorted(groups[name], key=lambda g: (-g["spend"], *(g[c] for c in columns))))
    return result, per_day


def _per_breakdown(jobs, period):
    totals = jobs.aggregate(
        total=Coalesce(Sum(charge_expression()), 0),
        jobs=Count("id"),
        charged=Count("id", filter=~Q(status__in=NOT_CHARGED)),
        videos=Count("id", filter=Q(status=Status.COMPLETED)),
    )
    result = Report(period, totals["total"], totals["jobs"], totals["charged"], totals["videos"])
    per_day = {
        row["day"]: row
        for row in jobs.annotate(day=TruncDate("created_at", tzinfo=period.zone))
        .values("day")
        .annotate(spend=Coalesce(Sum(charge_expression()), 0), count=Count("id"))
        .order_by("day")
    }
    for name, columns in BREAKDOWNS:
        setattr(result, name, _grouped(jobs, *columns))
    return result, per_day


def _add_budget(result, scope, user, period, now):
    if scope.is_team and scope.team is not None:
        result.budget, result.budget_name = scope.team.monthly_budget_micro_cents, "Team budget"
    elif not scope.is_team:
        profile = profile_or_none(user)
        if profile is not None:
            result.budget, result.budget_name = profile.monthly_budget_micro_cents, "Your budget"
    result.today = now.astimezone(period.zone).date()
    if period.key == "this_month":
        elapsed = (result.today - period.first_day).days + 1
        spent = sum(spend for day, spend, _ in result.daily if day <= result.today)
        projected = spent * period.days // elapsed if elapsed > 0 else spent
        result.projection = projected // CENT * CENT  # an estimate: whole cents are enough


def member_rows(scope, result):
    """For a team: every member with spend, job count and use of their own monthly budget."""
    if scope.team is None:
        return []
    spent = {row["owner_id"]: row for row in result.by_member}
    rows = []
    for profile in Profile.objects.filter(team=scope.team).select_related("user").order_by("user__username"):
        row = spent.get(profile.user_id, {"spend": 0, "count": 0})
        limit = profile.monthly_budget_micro_cents
        use = row["spend"] * 100 // limit if limit and result.period.is_calendar_month else None
        rows.append(
            {
                "user": profile.user,
                "role": profile.get_role_display(),
                "spend": row["spend"],
                "count": row["count"],
                "budget": limit,
                "use": use,
            }
        )
    return sorted(rows, key=lambda r: (-r["spend"], r["user"].username))


# --- the chart, drawn on the server as SVG ------------------------------------------------

CHART_W, CHART_H, PAD_L, PAD_B, PAD_T = 720, 240, 64, 28, 16


def chart(result):
    """Geometry for the daily bars, the running total, the budget and the projection."""
    days = result.daily
    running, total = [], 0
    for day, spend, _ in days:
        total += spend
        if result.today is None or day <= result.today:  # the running total stops at today
            running.append(total)
    peak = nice_ceiling(max([total, result.budget or 0, result.projection or 0, CENT]))
    plot_w, plot_h = CHART_W - PAD_L - 8, CHART_H - PAD_B - PAD_T
    step = plot_w / max(len(days), 1)

    def y(value):
        return round(PAD_T + plot_h - plot_h * value / peak, 1)

    bars = []
    for i, (day, spend, count) in enumerate(days):
        top = y(spend)
        bars.append(
            {
                "x": round(PAD_L + i * step + step * 0.15, 1),
                "y": top,
                "w": round(max(step * 0.7, 1), 1),
                "h": round(PAD_T + plot_h - top, 1),
                "title": f"{day:%b %-d}: {pricing.format_dollars(spend)} ({count} job{'s' if count != 1 else ''})",
            }
        )
    points = " ".join(f"{round(PAD_L + (i + 0.5) * step, 1)},{y(v)}" for i, v in enumerate(running))
    ticks = [{"y": y(peak * k // 4), "label": pricing.format_dollars(peak * k // 4)} for k in range(5)]
    labels = [
        {"x": round(PAD_L + (i + 0.5) * step, 1), "text": f"{day:%b %-d}"}
        for i, (day, _, _) in enumerate(days)
        if len(days) <= 10 or i % max(len(days) // 6, 1) == 0
    ]
    return {
        "width": CHART_W,
        "height": CHART_H,
        "left": PAD_L,
        "right": CHART_W - 8,
        "bottom": PAD_T + plot_h,
        "bars": bars,
        "running": points,
        "ticks": ticks,
        "labels": labels,
        "budget_y": y(result.budget) if result.budget else None,
        "projection_y": y(result.projection) if result.projection is not None else None,
    }


def nice_ceiling(value):
    """The top of the axis: four round steps (1, 2 or 5 × 10^k cents each) that reach ``value``."""
    step = CENT
    while True:
        for factor in (1, 2, 5):
            if step * factor * 4 >= value:
                return step * factor * 4
        step *= 10


# --- CSV -----------------------------------------------------------------------------------

CSV_COLUMNS = [
    "created_at",
    "user",
    "team",
    "project",
    "prompt",
    "model",
    "quality",
    "duration_s",
    "aspect_ratio",
    "seed",
    "status",
    "estimated_micro_cents",
    "api_cost_micro_cents",
    "billed_micro_cents",
    "billed_usd",
    "refunded_micro_cents",
    "pixelbyte_job_id",
    "request_id",
]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value):
    """A cell a spreadsheet shows as text: one starting like a formula gets a leading quote."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class _Echo:
    def write(self, value):
        return value


def csv_rows(jobs, zone):
    """The CSV, a line at a time, reading the jobs in chunks (never all at once)."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    rows = jobs.select_related("owner", "team").order_by("created_at", "pk").iterator(chunk_size=2000)
    for job in rows:
        billed = job.billed_micro_cents
        yield writer.writerow(
            [
                safe_cell(timezone.localtime(job.created_at, zone).isoformat()),
                safe_cell(job.owner.get_username()),
                safe_cell(job.team.name if job.team else ""),
                safe_cell(job.project),
                safe_cell(job.prompt),
                safe_cell(job.model_slug),
                safe_cell(job.quality),
                job.duration,
                safe_cell(job.aspect_ratio),
                "" if job.seed is None else job.seed,
                job.status,
                job.estimated_micro_cents,
                "" if job.api_cost_micro_cents is None else job.api_cost_micro_cents,
                billed,
                f"{Decimal(billed) / pricing.MICRO_CENTS_PER_DOLLAR:f}",
                job.refunded_micro_cents,
                safe_cell(job.remote_id or ""),
                safe_cell(job.request_id),
            ]
        )
