"""Each budget holder's committed spend per month, kept exact beside the jobs.

A ``SpendMonth`` row holds what a person (every job they made), a team (every job made
for it) or an API token (every job sent with it) has committed in one month of its own time zone: the sum of the jobs' billed
micro-cents (``Job.billed_micro_cents``: PixelByte's cost, else the estimate; nothing for
refused, failed or cancelled jobs) and their count. The budget check reads one row per
holder instead of summing the month's jobs, so it costs the same whatever the history.

It is a second record of money, so it has exactly one writer: the lifecycle calls
``moved(job, before)`` in the same transaction as every change of a job's billed amount
(recording it, PixelByte's cost arriving, a refusal, a failure, a cancellation).
``recompute`` rebuilds the truth from the jobs; ``manage.py verify_spend`` compares the two
(and ``--fix`` rebuilds). A holder's month follows its zone (``Profile.time_zone``,
``Team.time_zone``, else ``DISPLAY_TIME_ZONE``): changing a zone rebuilds that holder's rows.
"""

import zoneinfo
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from .models import NOT_CHARGED, ApiToken, Job, Profile, SpendMonth, Team


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


@dataclass(frozen=True)
class Before:
    """A job's billed amount before a change (``None``: the job is new)."""

    amount: int | None


def before(job):
    return Before(billed(job.status, job.api_cost_micro_cents, job.estimated_micro_cents))


NEW = Before(None)


def moved(job, was):
    """Apply a job's change of billed amount to its holders' months; call it inside the
    transaction that saves the job. Returns the change in micro-cents."""
    now = billed(job.status, job.api_cost_micro_cents, job.estimated_micro_cents)
    delta, count = now - (was.amount or 0), 1 if was.amount is None else 0
    if not delta and not count:
        return 0
    for holder, zone_name in _holders(job):
        _add(holder, month_start(job.created_at, zone_named(zone_name)), delta, count)
    return delta


def removed(job, was):
    """Take a job out of its holders' months (before it moves to another month or team)."""
    for holder, zone_name in _holders(job):
        _add(holder, month_start(job.created_at, zone_named(zone_name)), -(was.amount or 0), -1)


def _holders(job):
    """(filter for the holder's rows, its zone name) for the job's person, team and API token
    (a token's months are its person's)."""
    profile = Profile.objects.filter(user_id=job.owner_id).values_list("time_zone", flat=True).first()
    found = [({"owner_id": job.owner_id}, profile or "")]
    if job.api_token_id is not None:
        found.append(({"token_id": job.api_token_id}, profile or ""))
    if job.team_id is not None:
        zone = Team.objects.filter(pk=job.team_id).values_list("time_zone", flat=True).first()
        found.append(({"team_id": job.team_id}, zone or ""))
    return found


def _add(holder, month, delta, count):
    rows = SpendMonth.objects.filter(month=month, **holder)
    change = {"billed_micro_cents": F("billed_micro_cents") + delta, "jobs": F("jobs") + count}
    if rows.update(**change):
        return
    try:
        with transaction.atomic():  # a savepoint: a racing first insert must not undo ours
            SpendMonth.objects.create(month=month, billed_micro_cents=delta, jobs=count, **holder)
    except IntegrityError:
        rows.update(**change)


def spent(month, **holder):
    """A holder's committed micro-cents in ``month`` (a date: the 1st, in its zone)."""
    return (
        SpendMonth.objects.filter(month=month, **holder).values_list("billed_micro_cents", flat=True).first()
        or 0
    )


# --- the truth, from the jobs -----------------------------------------------------------


def recompute(jobs=None):
    """{(holder key, month): (micro-cents, jobs)} computed from the jobs themselves."""
    people = dict(Profile.objects.values_list("user_id", "time_zone"))
    zones = {
        "owner": people,
        "team": dict(Team.objects.values_list("pk", "time_zone")),
        "token": {pk: people.get(user, "") for pk, user in ApiToken.objects.values_list("pk", "user_id")},
    }
    totals = defaultdict(lambda: [0, 0])
    fields = (
        "owner_id",
        "team_id",
        "api_token_id",
        "created_at",
        "status",
        "api_cost_micro_cents",
        "estimated_micro_cents",
    )
    for owner, team, token, created, status, cost, estimate in (
        (jobs or Job.objects.all()).values_list(*fields).iterator()
    ):
        amount = billed(status, cost, estimate)
        for kind, holder in (("owner", owner), ("team", team), ("token", token)):
            if holder is not None:
                key = (kind, holder, month_start(created, zone_named(zones[kind].get(holder, ""))))
                totals[key][0] += amount
                totals[key][1] += 1
    return {key: tuple(value) for key, value in totals.items()}


def stored():
    """The same map, from the rollup rows."""
    rows = SpendMonth.objects.values_list(
        "owner_id", "team_id", "token_id", "month", "billed_micro_cents", "jobs"
    )
    return {
        _kind(owner, team, token) + (month,): (amount, count)
        for owner, team, token, month, amount, count in rows.iterator()
    }


def _kind(owner, team, token):
    if owner is not None:
        return ("owner", owner)
    return ("team", team) if team is not None else ("token", token)


def differences():
    """Every (holder, month) whose row does not match the jobs: {key: (stored, truth)}."""
    truth, kept = recompute(), stored()
    return {
        key: (kept.get(key), truth.get(key))
        for key in truth.keys() | kept.keys()
        if kept.get(key, (0, 0)) != truth.get(key, (0, 0))
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
    truth = recompute(jobs)
    with transaction.atomic():
        SpendMonth.objects.filter(**holder).delete()
        SpendMonth.objects.bulk_create(
            [
                SpendMonth(**holder, month=month, billed_micro_cents=amount, jobs=count)
                for (each, holder_pk, month), (amount, count) in truth.items()
                if (each, holder_pk) == (kind, pk)
            ]
        )


def rebuild():
    """Replace every row with the truth (under the holders' budget locks' ordering, so no
    submit records a job halfway through)."""
    with transaction.atomic():
        list(Team.objects.select_for_update().order_by("pk").values_list("pk", flat=True))
        list(Profile.objects.select_for_update().order_by("pk").values_list("pk", flat=True))
        list(ApiToken.objects.select_for_update().order_by("pk").values_list("pk", flat=True))
        SpendMonth.objects.all().delete()
        SpendMonth.objects.bulk_create(
            [
                SpendMonth(**{f"{kind}_id": holder}, month=month, billed_micro_cents=amount, jobs=count)
                for (kind, holder, month), (amount, count) in recompute().items()
            ],
            batch_size=5000,
        )
