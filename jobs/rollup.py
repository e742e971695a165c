"""Each budget holder's committed spend, per month and per day, kept exact beside the jobs.

``SpendMonth``: what a person (every job they made), a team (every job made for it) or an
API token (every job sent with it) committed in one month of its own time zone: the sum of
the jobs' billed micro-cents (``Job.billed_micro_cents``: PixelByte's cost, else the
estimate; nothing for refused, failed, cancelled, declined or awaiting jobs) and their
count. The budget check reads one row per holder instead of summing the month's jobs.

``SpendDay``: the same money for the dashboard, per day of a team's or a person's zone and
per combination of its breakdowns (person, project, quality, duration), with the jobs
counted by status class. The dashboard reads these rows instead of the period's jobs.

Both are a second record of money, so they have exactly one writer: the lifecycle calls
``moved(job, before)`` in the same transaction as every change of a job's billed amount or
status class (recording it, PixelByte's cost arriving, a refusal, a failure, a
cancellation, an approval or a decline). ``recompute`` and ``recompute_days`` rebuild the
truth from the jobs; ``manage.py verify_spend`` compares the two (``--fix`` rebuilds). A
holder's months and days follow its zone (``Profile.time_zone``, ``Team.time_zone``, else
``DISPLAY_TIME_ZONE``): changing a zone rebuilds that holder's rows.
"""

import zoneinfo
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from .models import (
    NOT_CHARGED,
    ApiToken,
    ArchivedFile,
    Job,
    Profile,
    SpendDay,
    SpendMonth,
    Status,
    StorageKept,
    Team,
)

# The status classes a day row counts, beside ``charged`` (anything in NOT_CHARGED is not).
REFUNDED = frozenset({Status.FAILED, Status.CANCELLED})  # sent, then refunded by PixelByte
NOT_SENT = frozenset({Status.REFUSED, Status.DECLINED})  # never sent: refused or declined
NOTHING = (0, 0, 0, 0, 0, 0)


def zone_named(name):
    try:
        return zoneinfo.ZoneInfo(name or settings.DISPLAY_TIME_ZONE)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def month_start(moment, zone):
    """The first day of the month containing ``moment``, in ``zone``."""
    return moment.astimezone(zone).date().replace(day=1)


def billed(status, api_cost, estimate):
    """What a job in ``status`` counts against budgets (``Job.billed_micro_cents``)."""
    if status in NOT_CHARGED:
        return 0
    return estimate if api_cost is None else api_cost


def counts(status, api_cost, estimate):
    """What one job adds to a day row, in ``SpendDay.COUNTS`` order."""
    return (
        billed(status, api_cost, estimate),
        1,
        int(status not in NOT_CHARGED),
        int(status == Status.COMPLETED),
        int(status in REFUNDED),
        int(status in NOT_SENT),
    )


@dataclass(frozen=True)
class Before:
    """A job's billed amount and status before a change (``None``: the job is new)."""

    amount: int | None
    status: str | None = None


def before(job):
    return Before(billed(job.status, job.api_cost_micro_cents, job.estimated_micro_cents), job.status)


NEW = Before(None)


def moved(job, was):
    """Apply a job's change of billed amount or status class to its holders' months and days;
    call it inside the transaction that saves the job. Returns the change in micro-cents."""
    now = counts(job.status, job.api_cost_micro_cents, job.estimated_micro_cents)
    then = NOTHING if was.amount is None else counts(was.status, None, was.amount)
    change = tuple(a - b for a, b in zip(now, then, strict=True))
    if not any(change):
        return 0
    _apply(job, change)
    return change[0]


def removed(job, was):
    """Take a job out of its holders' months and days (before it moves to another month or
    team)."""
    _apply(job, tuple(-n for n in counts(was.status, None, was.amount)))


def _apply(job, change):
    person_zone, team_zone = (zone_named(name) for name in _zone_names(job))
    amount, jobs = change[0], change[1]
    if amount or jobs:
        month = month_start(job.created_at, person_zone)
        _add_month({"owner_id": job.owner_id}, month, amount, jobs)
        if job.api_token_id is not None:
            _add_month({"token_id": job.api_token_id}, month, amount, jobs)
        if job.team_id is not None:
            _add_month({"team_id": job.team_id}, month_start(job.created_at, team_zone), amount, jobs)
    _add_day(job, None, job.created_at.astimezone(person_zone).date(), change)
    if job.team_id is not None:
        _add_day(job, job.team_id, job.created_at.astimezone(team_zone).date(), change)


def _zone_names(job):
    """The zone names of the job's person and team, in one round trip."""
    people, teams = Profile._meta.db_table, Team._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT time_zone FROM {people} WHERE user_id = %s), "  # noqa: S608
            f"(SELECT time_zone FROM {teams} WHERE id = %s)",
            [job.owner_id, job.team_id],
        )
        return cursor.fetchone()


def _add_month(holder, month, delta, count):
    rows = SpendMonth.objects.filter(month=month, **holder)
    change = {"billed_micro_cents": F("billed_micro_cents") + delta, "jobs": F("jobs") + count}
    if rows.update(**change):
        return
    try:
        with transaction.atomic():  # a savepoint: a racing first insert must not undo ours
            SpendMonth.objects.create(month=month, billed_micro_cents=delta, jobs=count, **holder)
    except IntegrityError:
        rows.update(**change)


def _day_upsert_sql():
    """One statement that adds to a day row, creating it when it is the first of its kind
    (the same on SQLite and PostgreSQL). Only table and column names go into the text."""
    table = SpendDay._meta.db_table
    columns = ("team_id", "owner_id", "day", "project", "quality", "duration", *SpendDay.COUNTS)
    added = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in SpendDay.COUNTS)
    insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"  # noqa: S608
    return {
        True: f"{insert} ON CONFLICT (team_id, day, owner_id, project, quality, duration) "
        f"WHERE team_id IS NOT NULL DO UPDATE SET {added}",
        False: f"{insert} ON CONFLICT (owner_id, day, project, quality, duration) "
        f"WHERE team_id IS NULL DO UPDATE SET {added}",
    }


DAY_UPSERT = _day_upsert_sql()


def _holder(team_id):
    """A team's rows, or (no team) a person's own."""
    return {"team_id": team_id} if team_id is not None else {"team__isnull": True}


def _add_day(job, team_id, day, change):
    key = {"day": day, "owner_id": job.owner_id, "project": job.project, "quality": job.quality}
    key.update(duration=job.duration, **_holder(team_id))
    # Taking away: the job was counted in this row, which exists (a row is never inserted
    # with a negative amount: its check constraint would refuse it).
    added = {name: F(name) + value for name, value in zip(SpendDay.COUNTS, change, strict=True) if value}
    if min(change) < 0 and SpendDay.objects.filter(**key).update(**added):
        return
    params = [team_id, job.owner_id, day, job.project, job.quality, job.duration, *change]
    with connection.cursor() as cursor:
        cursor.execute(DAY_UPSERT[team_id is not None], params)


# --- the files kept -----------------------------------------------------------------------


def files_kept(job, size, files):
    """Count ``files`` files of ``size`` bytes in all (negative: deleted) of ``job`` in its
    person's and its team's storage rows; call it in the transaction that writes or deletes
    their ``ArchivedFile`` rows (jobs.archive does)."""
    for team_id in (None, job.team_id) if job.team_id is not None else (None,):
        rows = StorageKept.objects.filter(owner_id=job.owner_id, project=job.project, **_holder(team_id))
        if rows.update(bytes=F("bytes") + size, files=F("files") + files):
            continue
        try:
            with transaction.atomic():  # a savepoint: a racing first insert must not undo ours
                StorageKept.objects.create(
                    team_id=team_id, owner_id=job.owner_id, project=job.project, bytes=size, files=files
                )
        except IntegrityError:
            rows.update(bytes=F("bytes") + size, files=F("files") + files)


def jobs_counted(**holders):
    """How many jobs the holders' months count in all (every job, in any status), as an
    expression: a subquery a page's own query can carry."""
    months = SpendMonth.objects.filter(**holders).order_by().values(every=Value(1))
    return Coalesce(Subquery(months.annotate(n=Sum("jobs")).values("n")), 0)


def spent(month, **holder):
    """A holder's committed micro-cents in ``month`` (a date: the 1st, in its zone)."""
    return (
        SpendMonth.objects.filter(month=month, **holder).values_list("billed_micro_cents", flat=True).first()
        or 0
    )


# --- the truth, from the jobs -----------------------------------------------------------

JOB_FIELDS = (
    "owner_id",
    "team_id",
    "api_token_id",
    "created_at",
    "status",
    "api_cost_micro_cents",
    "estimated_micro_cents",
    "project",
    "quality",
    "duration",
)


def _zones():
    """({user id: zone}, {team id: zone}); a person without a profile is in the display zone."""
    people = {user: zone_named(name) for user, name in Profile.objects.values_list("user_id", "time_zone")}
    teams = {pk: zone_named(name) for pk, name in Team.objects.values_list("pk", "time_zone")}
    return defaultdict(lambda: zone_named(""), people), teams


def _truth(jobs):
    """({(holder kind, holder, month): [micro-cents, jobs]}, {day key: [counts…]}) computed
    from the jobs one at a time (any database)."""
    (people, teams), months, days = _zones(), defaultdict(lambda: [0, 0]), defaultdict(lambda: [0] * 6)
    for owner, team, token, created, status, cost, estimate, project, quality, duration in (
        (jobs if jobs is not None else Job.objects.all()).values_list(*JOB_FIELDS).iterator()
    ):
        adds = counts(status, cost, estimate)
        for kind, holder in (("owner", owner), ("team", team), ("token", token)):
            if holder is None:
                continue
            # A token's months are its person's, as the lifecycle counts them.
            local = created.astimezone(teams[team] if kind == "team" else people[owner]).date()
            if kind != "token":
                day = days[(team if kind == "team" else None, owner, local, project, quality, duration)]
                day[:] = [a + b for a, b in zip(day, adds, strict=True)]
            month = months[(kind, holder, local.replace(day=1))]
            month[0] += adds[0]
            month[1] += 1
    return months, days


STORAGE_KEY = ("team_id", "owner_id", "project")


def recompute_storage():
    """{(team or None, person, project): (bytes, files)} from the ``ArchivedFile`` rows."""
    found = defaultdict(lambda: [0, 0])
    groups = ArchivedFile.objects.values_list("job__team_id", "job__owner_id", "job__project").annotate(
        bytes=Sum("size"), files=Count("id")
    )
    for team, owner, project, size, files in groups.order_by().iterator():
        for key in (
            ((None, owner, project), (team, owner, project))
            if team is not None
            else ((None, owner, project),)
        ):
            found[key][0] += size
            found[key][1] += files
    return {key: tuple(value) for key, value in found.items()}


def stored_storage():
    return {row[:3]: row[3:] for row in StorageKept.objects.values_list(*STORAGE_KEY, "bytes", "files")}


def recompute(jobs=None):
    """{(holder kind, holder, month): (micro-cents, jobs)} computed from the jobs themselves."""
    return {key: tuple(value) for key, value in _truth(jobs)[0].items()}


def recompute_days(jobs=None):
    """{(team or None, person, day, project, quality, duration): counts} from the jobs."""
    return {key: tuple(value) for key, value in _truth(jobs)[1].items()}


def stored():
    """The months, from the rollup rows."""
    rows = SpendMonth.objects.values_list(
        "owner_id", "team_id", "token_id", "month", "billed_micro_cents", "jobs"
    )
    return {
        _kind(owner, team, token) + (month,): (amount, count)
        for owner, team, token, month, amount, count in rows.iterator()
    }


DAY_KEY = ("team_id", "owner_id", "day", "project", "quality", "duration")


def stored_days():
    """The days, from the rollup rows."""
    return {row[:6]: row[6:] for row in SpendDay.objects.values_list(*DAY_KEY, *SpendDay.COUNTS).iterator()}


def _kind(owner, team, token):
    if owner is not None:
        return ("owner", owner)
    return ("team", team) if team is not None else ("token", token)


def differences():
    """Every month, day and storage row that does not match the jobs and their files:
    {key: (stored, truth)}. A month's key is (holder kind, holder, month); a day's ("day",
    team or None, person, day, project, quality, duration); a storage row's ("storage", team
    or None, person, project)."""
    if connection.vendor == "postgresql":
        from . import rollup_sql

        return rollup_sql.differences()
    months, days = _truth(None)
    found = _compare(stored(), {k: tuple(v) for k, v in months.items()}, (0, 0))
    found.update(
        {("storage", *k): pair for k, pair in _compare(stored_storage(), recompute_storage(), (0, 0)).items()}
    )
    found.update(
        {
            ("day", *key): pair
            for key, pair in _compare(stored_days(), {k: tuple(v) for k, v in days.items()}, NOTHING).items()
        }
    )
    return found


def _compare(kept, truth, empty):
    return {
        key: (kept.get(key), truth.get(key))
        for key in truth.keys() | kept.keys()
        if kept.get(key, empty) != truth.get(key, empty)
    }


def rebuild_holder(**holder):
    """Recompute one holder's rows (``owner_id=``, ``team_id=`` or ``token_id=``), after its
    zone changed (a person's tokens follow them): only its own jobs are read, so this stays
    quick whatever the size of the studio."""
    ((field, pk),) = holder.items()
    if field == "owner_id":
        for token in ApiToken.objects.filter(user_id=pk).values_list("pk", flat=True):
            rebuild_holder(token_id=token)
    kind = field.removesuffix("_id")
    jobs = Job.objects.filter(api_token_id=pk) if kind == "token" else Job.objects.filter(**holder)
    months, days = _truth(jobs)
    with transaction.atomic():
        SpendMonth.objects.filter(**holder).delete()
        SpendMonth.objects.bulk_create(
            [
                SpendMonth(**holder, month=month, billed_micro_cents=amount, jobs=count)
                for (each, holder_pk, month), (amount, count) in months.items()
                if (each, holder_pk) == (kind, pk)
            ]
        )
        if kind == "token":
            return
        mine = {"team_id": pk} if kind == "team" else {"owner_id": pk, "team__isnull": True}
        SpendDay.objects.filter(**mine).delete()
        SpendDay.objects.bulk_create(
            [
                _day_row(key, values)
                for key, values in days.items()
                if (key[0] == pk if kind == "team" else key[0] is None)
            ]
        )


def _day_row(key, values):
    return SpendDay(**dict(zip(DAY_KEY, key, strict=True)), **dict(zip(SpendDay.COUNTS, values, strict=True)))


def rebuild():
    """Replace every row with the truth (under the holders' budget locks' ordering, so no
    submit records a job halfway through)."""
    with transaction.atomic():
        list(Team.objects.select_for_update().order_by("pk").values_list("pk", flat=True))
        list(Profile.objects.select_for_update().order_by("pk").values_list("pk", flat=True))
        list(ApiToken.objects.select_for_update().order_by("pk").values_list("pk", flat=True))
        SpendMonth.objects.all().delete()
        SpendDay.objects.all().delete()
        StorageKept.objects.all().delete()
        StorageKept.objects.bulk_create(
            [
                StorageKept(**dict(zip(STORAGE_KEY, k, strict=True)), bytes=b, files=f)
                for k, (b, f) in recompute_storage().items()
            ]
        )
        if connection.vendor == "postgresql":
            from . import rollup_sql

            rollup_sql.insert_truth()
            return
        months, days = _truth(None)
        SpendMonth.objects.bulk_create(
            [
                SpendMonth(**{f"{kind}_id": holder}, month=month, billed_micro_cents=amount, jobs=count)
                for (kind, holder, month), (amount, count) in months.items()
            ],
            batch_size=5000,
        )
        SpendDay.objects.bulk_create([_day_row(k, v) for k, v in days.items()], batch_size=5000)
