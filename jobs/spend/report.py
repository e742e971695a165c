"""The dashboard's figures: periods, the report of one scope and period, member rows.

Every figure is integer micro-cents (the API's cost, else our estimate; nothing for
refused, failed, cancelled, declined or awaiting jobs; unknown outcomes count until
resolved), summed in SQL.

A report reads the holder's day rows (``SpendDay``, kept by the lifecycle: see
jobs.rollup) whenever the viewer's days are the holder's days, that is whenever every
midnight of the period falls at the same instant in both zones: then its cost depends on
the days and the breakdown rows, never on the number of jobs. Otherwise (a viewer whose
zone cuts the days elsewhere) it sums the period's jobs themselves, exactly, in one pass
on PostgreSQL (GROUPING SETS) or a handful of grouped queries elsewhere.
"""

import calendar
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from ..budgets import budgets_of, raised, team_budget
from ..models import NOT_CHARGED, Profile, SpendDay, Status, StorageKept, charge_expression
from ..rollup import NOT_SENT, REFUNDED, zone_named

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


@dataclass
class Report:
    period: Period
    total: int = 0
    jobs: int = 0
    charged_jobs: int = 0
    videos: int = 0  # completed
    refunded_jobs: int = 0  # failed or cancelled: sent, then refunded
    unsent_jobs: int = 0  # refused or declined: never sent
    daily: list = field(default_factory=list)  # [(date, micro-cents, charged jobs)] for every day
    by_member: list = field(default_factory=list)
    by_project: list = field(default_factory=list)
    by_quality: list = field(default_factory=list)
    by_duration: list = field(default_factory=list)
    budget: int | None = None  # for a calendar month only
    budget_name: str = ""
    raised: int = 0  # the month's temporary raises, included in ``budget``
    projection: int | None = None
    today: date | None = None

    @property
    def awaiting_jobs(self):
        """Jobs waiting for a manager's approval: not charged, not refused either (yet)."""
        return self.jobs - self.charged_jobs - self.refunded_jobs - self.unsent_jobs

    @property
    def average(self):
        return self.total // self.charged_jobs if self.charged_jobs else 0

    @property
    def budget_used_percent(self):
        if not self.budget:
            return None
        return self.total * 100 // self.budget


# The breakdowns of the report, as (name on Report, the columns grouped by).
BREAKDOWNS = (
    ("by_member", ("owner_id", "owner__username")),
    ("by_project", ("project",)),
    ("by_quality", ("quality",)),
    ("by_duration", ("duration",)),
)


def report(scope, period, now=None, held=()):
    """Every figure of the dashboard for ``scope`` (a ``jobs.access.Scope``) over ``period``.
    ``held``: the scope's budgets as ``scope_budgets`` read them, whose raises it reuses."""
    days = day_rows(scope, period)
    if days is not None:
        result, per_day = from_days(days, period)
    else:
        result, per_day = rollup(scope.jobs.in_period(period.start, period.end), period)
    result.daily = [
        (day, per_day.get(day, {}).get("spend", 0), per_day.get(day, {}).get("charged", 0))
        for day in (period.first_day + timedelta(days=i) for i in range(period.days))
    ]
    _add_budget(result, scope, period, now or timezone.now(), held)
    return result


def day_rows(scope, period):
    """The ``SpendDay`` rows that hold exactly ``scope``'s jobs of ``period``, or None when
    the viewer's days (``period.zone``) are not the holder's."""
    if scope.is_team and scope.team is not None:
        rows, zones = SpendDay.objects.filter(team=scope.team), [scope.team.time_zone]
    elif scope.is_team:  # every team: everyone's own rows hold every job once
        rows = SpendDay.objects.filter(team__isnull=True)
        zones = list(Profile.objects.values_list("time_zone", flat=True).distinct())
        if get_user_model().objects.filter(profile__isnull=True).exists():
            zones.append("")  # people without a profile live in the display zone
    elif scope.owner_id is not None:
        rows = SpendDay.objects.filter(owner_id=scope.owner_id, team__isnull=True)
        zones = [scope.profile.time_zone if scope.profile is not None else ""]
    else:
        return None
    if not all(same_days(period, zone_named(name)) for name in set(zones)):
        return None
    # A row left empty by a job that moved (an approval made it anew in another month).
    return rows.filter(day__gte=period.first_day, day__lte=period.last_day, jobs__gt=0)


def same_days(period, zone):
    """Whether every midnight of ``period`` (in the viewer's zone) is the same instant in
    ``zone``, so that the holder's day rows are the viewer's days."""
    if getattr(period.zone, "key", None) == zone.key:
        return True
    midnights = (period.first_day + timedelta(days=n) for n in range(period.days + 1))
    return all(
        datetime.combine(day, time.min, tzinfo=period.zone) == datetime.combine(day, time.min, tzinfo=zone)
        for day in midnights
    )


def from_days(rows, period):
    """``rollup``'s answer from day rows: one grouped query on PostgreSQL, six elsewhere."""
    if connection.vendor == "postgresql":
        inner, params = rows.values(
            "day", "owner_id", "project", "quality", "duration", *SpendDay.COUNTS
        ).query.sql_with_params()
        # The rows are read from the covering index alone; names are joined to the few groups.
        sql = f"""
            SELECT g.*, people.{get_user_model().USERNAME_FIELD} FROM (
                SELECT GROUPING("day") AS by_day, GROUPING("owner_id"), GROUPING("project"),
                       GROUPING("quality"), GROUPING("duration"), "day", "owner_id", "project", "quality",
                       "duration", COALESCE(SUM("billed_micro_cents"), 0)::bigint,
                       COALESCE(SUM("jobs"), 0)::int, COALESCE(SUM("charged"), 0)::int,
                       COALESCE(SUM("completed"), 0)::int, COALESCE(SUM("refunded"), 0)::int,
                       COALESCE(SUM("unsent"), 0)::int
                FROM ({inner}) AS period_days
                GROUP BY GROUPING SETS (("day"), ("owner_id"), ("project"), ("quality"), ("duration"), ())
            ) AS g LEFT JOIN {get_user_model()._meta.db_table} AS people ON people.id = g.owner_id
        """  # noqa: S608
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            # In the order the one pass over the jobs answers: the name after the person.
            found = [(*row[:7], row[-1], *row[7:-1]) for row in cursor.fetchall()]
        return _decode_grouping_sets(found, period)
    figures = {"spend": Sum("billed_micro_cents"), "count": Sum("jobs"), "charged": Sum("charged")}
    totals = rows.aggregate(
        total=Coalesce(Sum("billed_micro_cents"), 0),
        jobs=Coalesce(Sum("jobs"), 0),
        charged_jobs=Coalesce(Sum("charged"), 0),
        videos=Coalesce(Sum("completed"), 0),
        refunded_jobs=Coalesce(Sum("refunded"), 0),
        unsent_jobs=Coalesce(Sum("unsent"), 0),
    )
    result = Report(period, **totals)
    per_day = {row["day"]: row for row in rows.values("day").annotate(**figures).order_by("day")}
    for name, columns in BREAKDOWNS:
        setattr(result, name, list(rows.values(*columns).annotate(**figures).order_by("-spend", *columns)))
    return result, per_day


def rollup(jobs, period):
    """(a Report with the totals and breakdowns filled in, {day: {"spend", "count"}}).

    The one place the database decides the method: a single pass on PostgreSQL, six
    grouped queries elsewhere. Both answer the same; tests/test_spend.py proves it
    under ``make test-postgres``."""
    if connection.vendor == "postgresql":
        return _rollup_postgres(jobs, period)
    return _rollup_portable(jobs, period)


def _rollup_portable(jobs, period):
    """Any database: one aggregate for the totals, one grouped query per day and breakdown."""
    totals = jobs.aggregate(
        total=Coalesce(Sum(charge_expression()), 0),
        jobs=Count("id"),
        charged_jobs=_charged_count(),
        videos=Count("id", filter=Q(status=Status.COMPLETED)),
        refunded_jobs=Count("id", filter=Q(status__in=REFUNDED)),
        unsent_jobs=Count("id", filter=Q(status__in=NOT_SENT)),
    )
    result = Report(period, **totals)
    per_day = {
        row["day"]: row
        for row in jobs.annotate(day=TruncDate("created_at", tzinfo=period.zone))
        .values("day")
        .annotate(spend=Coalesce(Sum(charge_expression()), 0), count=Count("id"), charged=_charged_count())
        .order_by("day")
    }
    for name, columns in BREAKDOWNS:
        setattr(result, name, _grouped(jobs, *columns))
    return result, per_day


def _charged_count():
    return Count("id", filter=~Q(status__in=NOT_CHARGED))


def _grouped(jobs, *fields):
    return list(
        jobs.values(*fields)
        .annotate(spend=Coalesce(Sum(charge_expression()), 0), count=Count("id"), charged=_charged_count())
        .order_by("-spend", *fields)
    )


def _rollup_postgres(jobs, period):
    """PostgreSQL: the totals, the days and every breakdown from a single scan of the
    period's rows (GROUPING SETS), which the covering ``job_team_created`` and
    ``job_owner_created`` indexes answer without reading the table."""
    sql, params = _grouping_sets_sql(jobs, period)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return _decode_grouping_sets(cursor.fetchall(), period)


def _grouping_sets_sql(jobs, period):
    """(SQL, parameters) of the one-pass query: each row is one group, with five
    GROUPING() flags first saying which column it groups by (all set: the totals)."""
    rows = jobs.annotate(day=TruncDate("created_at", tzinfo=period.zone), charge=charge_expression()).values(
        "day", "owner_id", "owner__username", "project", "quality", "duration", "status", "charge"
    )
    inner, params = rows.query.sql_with_params()
    not_charged, refunded, not_sent = sorted(NOT_CHARGED), sorted(REFUNDED), sorted(NOT_SENT)

    def one_of(values):
        return ", ".join(["%s"] * len(values))

    # Only Django's compiled SQL and placeholders are put into the text; every value is a parameter.
    sql = f"""
        SELECT GROUPING("day"), GROUPING("owner_id"), GROUPING("project"), GROUPING("quality"),
               GROUPING("duration"), "day", "owner_id", MAX("owner__username"), "project", "quality",
               "duration", COALESCE(SUM("charge"), 0)::bigint, COUNT(*),
               COUNT(*) FILTER (WHERE "status" NOT IN ({one_of(not_charged)})),
               COUNT(*) FILTER (WHERE "status" = %s),
               COUNT(*) FILTER (WHERE "status" IN ({one_of(refunded)})),
               COUNT(*) FILTER (WHERE "status" IN ({one_of(not_sent)}))
        FROM ({inner}) AS period_jobs
        GROUP BY GROUPING SETS (("day"), ("owner_id"), ("project"), ("quality"), ("duration"), ())
    """  # noqa: S608
    return sql, [*not_charged, Status.COMPLETED, *refunded, *not_sent, *params]


def _decode_grouping_sets(found, period):
    """The one-pass rows as ``_rollup_portable`` returns its figures."""
    result, per_day = Report(period), {}
    groups = {name: [] for name, _ in BREAKDOWNS}
    for row in found:
        flags, (day, owner_id, username, project, quality, duration, spend, count, charged) = (
            row[:5],
            row[5:14],
        )
        figures = {"spend": spend, "count": count, "charged": charged}
        if all(flags):
            result.total, result.jobs, result.charged_jobs = spend, count, charged
            result.videos, result.refunded_jobs, result.unsent_jobs = row[14:]
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


def month_end_projection(spent, elapsed_days, days):
    """What a month of ``days`` days will have cost if the pace of its first ``elapsed_days``
    holds: the dashboard's projection, and the budget alerts' "on track to exceed"."""
    return spent * days // elapsed_days if elapsed_days > 0 else spent


def _add_budget(result, scope, period, now, held):
    result.today = now.astimezone(period.zone).date()
    if period.key == "this_month":
        elapsed = (result.today - period.first_day).days + 1
        spent = sum(spend for day, spend, _ in result.daily if day <= result.today)
        # An estimate: whole cents are enough.
        result.projection = month_end_projection(spent, elapsed, period.days) // CENT * CENT
    if not period.is_calendar_month:
        return  # a monthly budget drawn over another span of days would mislead
    if scope.is_team and scope.team is not None:
        result.budget, result.budget_name = scope.team.monthly_budget_micro_cents, "Team budget"
        holder = ("team_id", scope.team.pk)
    elif not scope.is_team and scope.profile is not None:
        result.budget, result.budget_name = scope.profile.monthly_budget_micro_cents, "Your budget"
        holder = ("owner_id", scope.profile.user_id)
    else:
        return  # every team at once: no one budget
    if result.budget is not None:
        # The month's temporary raises sit on top of the budget until it resets.
        known = [b.raised for b in held if b.holder == holder and b.month == period.first_day]
        result.raised = known[0] if known else raised(period.first_day, **{holder[0]: holder[1]})
        result.budget += result.raised


def scope_budgets(user, scope, now=None):
    """The budgets ``scope``'s spend counts against this month, as the budget check sees
    them: a team's own; for one person (``user``), their own and their team's; none for
    every team at once."""
    if not scope.is_team:
        return budgets_of(user, scope.profile, now)
    found = team_budget(scope.team, now) if scope.team is not None else None
    return [found] if found is not None else []


def member_rows(scope, result):
    """The people of a team scope (or, for every team, everyone who spent): each with spend,
    jobs and use of their own monthly budget. A team's rows are its members and anyone who
    spent in it since moving on, so their spend adds up to the team's. Nothing for a
    personal scope. One query, whatever the number of people."""
    if not scope.is_team:
        return []
    people = Q(pk__in=[row["owner_id"] for row in result.by_member])  # who spent in the period
    if scope.team is not None:
        people |= Q(profile__team=scope.team)
    found = get_user_model().objects.filter(people).select_related("profile__team")
    spent = {row["owner_id"]: row for row in result.by_member}
    rows = [_member_row(user, spent.get(user.pk), scope, result.period) for user in found]
    return sorted(rows, key=lambda r: (-r["spend"], r["user"].get_username()))


def _member_row(user, figures, scope, period):
    figures = figures or {"spend": 0, "count": 0, "charged": 0}
    profile = getattr(user, "profile", None)
    team = profile.team if profile is not None else None
    limit = profile.monthly_budget_micro_cents if profile is not None else None
    if scope.team is None:
        role = team.name if team is not None else "No team"  # every team: which one
    elif team is not None and team.pk == scope.team.pk:
        role = profile.get_role_display()
    else:
        role = "Former member"  # spent in the team, since moved on
    return {
        "user": user,
        "role": role,
        "spend": figures["spend"],
        "count": figures["count"],
        "charged": figures["charged"],
        "budget": limit,
        "use": figures["spend"] * 100 // limit if limit and period.is_calendar_month else None,
    }


@dataclass
class Storage:
    """The bytes the studio keeps for a scope's jobs, now (whatever the period)."""

    total: int = 0
    files: int = 0
    by_member: list = field(default_factory=list)  # [{"owner__username", "bytes", "files"}]
    by_project: list = field(default_factory=list)  # [{"project", "bytes", "files"}]


def storage_report(scope):
    """What ``scope``'s kept files weigh, in all, per person and per project: one query over
    the holder's ``StorageKept`` rows (one per person and project, kept by jobs.archive), so
    it costs the same however many files there are."""
    if scope.is_team and scope.team is not None:
        rows = StorageKept.objects.filter(team=scope.team)
    elif scope.is_team:
        rows = StorageKept.objects.filter(team__isnull=True)  # every person's own: every file once
    elif scope.owner_id is not None:
        rows = StorageKept.objects.filter(team__isnull=True, owner_id=scope.owner_id)
    else:
        return Storage()
    result, members, projects = Storage(), {}, {}
    for group in rows.filter(files__gt=0).values("owner__username", "project", "bytes", "files"):
        result.total += group["bytes"]
        result.files += group["files"]
        _add_to(members, group["owner__username"], group)
        _add_to(projects, group["project"], group)
    result.by_member = _heaviest_first(members, "owner__username")
    result.by_project = _heaviest_first(projects, "project")
    return result


def _add_to(totals, key, group):
    bytes_, files = totals.get(key, (0, 0))
    totals[key] = (bytes_ + group["bytes"], files + group["files"])


def _heaviest_first(totals, name):
    rows = [{name: key, "bytes": bytes_, "files": files} for key, (bytes_, files) in totals.items()]
    return sorted(rows, key=lambda row: (-row["bytes"], row[name]))
