"""Monthly budgets, enforced before money is spent.

A budget applies to a person (on their profile) and to their team. A job fits
when, for every budget that applies, the spend committed this month plus the
job's price stays within the limit. "Committed" is what ``charge_expression``
counts: the API's cost, else our estimate, nothing for refused, failed or
cancelled jobs, and jobs whose outcome is unknown until they are resolved.

``lock_and_check`` runs inside the transaction that creates the job and first
locks the rows that hold the budgets (team, then person), so two submissions can
never both see the same headroom. On SQLite the transaction is IMMEDIATE, which
takes the database's write lock at BEGIN and serialises them the same way.
Months start at midnight on the 1st in the budget holder's time zone; there is
no reset job, the month boundary is simply part of the query.
"""

from dataclasses import dataclass
from datetime import datetime, time

from django.db import connection, transaction
from django.utils import timezone

from . import access, pricing, rollup
from .models import Profile, Team
from .rollup import zone_named

WARN_AT_PERCENT = 80


@dataclass(frozen=True)
class Budget:
    kind: str  # "user" or "team"
    name: str  # how a person reads it: "your monthly budget"
    limit: int
    spent: int
    period_start: datetime
    resets_at: datetime

    @property
    def remaining(self):
        return self.limit - self.spent

    def fits(self, cost):
        return self.spent + cost <= self.limit

    def over_by(self, cost):
        return max(0, self.spent + cost - self.limit)

    def as_json(self):
        return {
            "kind": self.kind,
            "name": self.name,
            "limitMicroCents": self.limit,
            "spentMicroCents": self.spent,
            "resetsOn": timezone.localtime(self.resets_at, self.resets_at.tzinfo).strftime("%b %-d"),
        }


class OverBudget(Exception):
    def __init__(self, budget, cost):
        self.budget, self.cost = budget, cost
        reset = timezone.localtime(budget.resets_at, budget.resets_at.tzinfo).strftime("%B %-d")
        super().__init__(
            f"Not sent: this video costs {pricing.format_dollars(cost)}, but {budget.name} has "
            f"{pricing.format_dollars(max(0, budget.remaining))} left of {pricing.format_dollars(budget.limit)} "
            f"this month, so it would go over by {pricing.format_dollars(budget.over_by(cost))}. "
            f"The budget starts again on {reset}."
        )


def month_of(moment, zone):
    """(first instant of the month containing ``moment``, first instant of the next), in ``zone``."""
    first = moment.astimezone(zone).date().replace(day=1)
    following = (
        first.replace(year=first.year + 1, month=1)
        if first.month == 12
        else first.replace(month=first.month + 1)
    )
    return datetime.combine(first, time.min, tzinfo=zone), datetime.combine(following, time.min, tzinfo=zone)


def _user_budget(user, profile, now):
    zone = zone_named(profile.time_zone)
    start, end = month_of(now, zone)
    spent = rollup.spent(start.date(), owner_id=user.pk)
    return Budget("user", "your monthly budget", profile.monthly_budget_micro_cents, spent, start, end)


def _team_budget(team, now):
    zone = zone_named(team.time_zone)
    start, end = month_of(now, zone)
    spent = rollup.spent(start.date(), team_id=team.pk)
    return Budget(
        "team", f"the team budget ({team.name})", team.monthly_budget_micro_cents, spent, start, end
    )


def budgets_for(user, now=None):
    """Every budget that applies to ``user`` now, with its spend (for showing; takes no lock)."""
    return budgets_of(user, access.profile_of(user), now)


def budgets_of(user, profile, now=None):
    """``budgets_for`` with the user's profile (or None) already read, as a viewer has it."""
    now = now or timezone.now()
    found = []
    if profile is not None and profile.monthly_budget_micro_cents is not None:
        found.append(_user_budget(user, profile, now))
    if (
        profile is not None
        and profile.team is not None
        and profile.team.monthly_budget_micro_cents is not None
    ):
        found.append(_team_budget(profile.team, now))
    return found


def _lock(profile):
    """Lock the rows holding the budgets: team first, then person, one order everywhere
    so two submissions cannot deadlock. Returns the locked (team or None, profile)."""
    team = Team.objects.select_for_update().get(pk=profile.team_id) if profile.team_id else None
    return team, Profile.objects.select_for_update().get(pk=profile.pk)


def lock_and_check(user, cost, now=None):
    """Lock the budget holders and raise ``OverBudget`` unless ``cost`` fits every budget.

    Must run inside the transaction that records the job; returns the profile's
    team (or None), which the job is charged to.
    """
    if not connection.in_atomic_block:
        raise transaction.TransactionManagementError(
            "lock_and_check must run inside the transaction that records the job."
        )
    now = now or timezone.now()
    profile = Profile.objects.filter(user_id=user.pk).first()
    if profile is None:
        return None
    team, profile = _lock(profile)
    budgets = []
    if profile.monthly_budget_micro_cents is not None:
        budgets.append(_user_budget(user, profile, now))
    if team is not None and team.monthly_budget_micro_cents is not None:
        budgets.append(_team_budget(team, now))
    for budget in budgets:
        if not budget.fits(cost):
            raise OverBudget(budget, cost)
    return team
