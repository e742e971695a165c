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

A month's limit is the holder's budget plus that month's raises (``BudgetRaise``): a
raise granted by a manager, or made by approving a job over budget, ends at the reset
by itself because the next month has none.
"""

from dataclasses import dataclass
from datetime import datetime, time

from django.db import connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from . import access, pricing, rollup
from .models import ApiToken, BudgetRaise, Profile, Team
from .rollup import zone_named

WARN_AT_PERCENT = 80


@dataclass(frozen=True)
class Budget:
    kind: str  # "user", "team" or "token"
    name: str  # how a person reads it: "your monthly budget"
    limit: int  # the base budget plus this month's raises
    spent: int
    period_start: datetime
    resets_at: datetime
    raised: int = 0  # this month's raises (in ``limit``)
    holder: tuple = ()  # ("owner_id", pk) or ("team_id", pk)
    approval_raised: int = 0  # the part of ``raised`` made by approving jobs over budget

    @property
    def alert_limit(self):
        """What alerts judge spend against: the budget and the raises managers granted, but not
        the per-job raises of approvals (a manager's exception re-arms no alert)."""
        return self.limit - self.approval_raised

    @property
    def base(self):
        return self.limit - self.raised

    @property
    def month(self):
        """The budget's month as its first day (in the holder's zone)."""
        return self.period_start.date()

    @property
    def holder_filter(self):
        return {self.holder[0]: self.holder[1]}

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
            "raisedMicroCents": self.raised,
            "resetsOn": timezone.localtime(self.resets_at, self.resets_at.tzinfo).strftime("%b %-d"),
        }


class TokenNotLive(Exception):
    """The API token sending a job was revoked or expired before the job was recorded."""

    def __init__(self, token):
        self.token = token
        super().__init__(f"The API token “{token.name}” was revoked or has expired: nothing was sent.")


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


def raised(month, **holder):
    """A holder's raises for ``month`` (its first day), in micro-cents."""
    return raises_of(month, **holder)[0]


def raises_of(month, **holder):
    """(all raises, those made by approving a job over budget) of a holder for ``month``."""
    sums = BudgetRaise.objects.filter(month=month, **holder).aggregate(
        total=Sum("amount_micro_cents"), approvals=Sum("amount_micro_cents", filter=Q(job__isnull=False))
    )
    return sums["total"] or 0, sums["approvals"] or 0


def _budget(kind, name, base, zone_name, now, **holder):
    start, end = month_of(now, zone_named(zone_name))
    # Raises are granted to people and teams; a token's own budget is its person's to set.
    extra, approvals = (0, 0) if "token_id" in holder else raises_of(start.date(), **holder)
    spent = rollup.spent(start.date(), **holder)
    ((field, pk),) = holder.items()
    return Budget(
        kind,
        name,
        base + extra,
        spent,
        start,
        end,
        raised=extra,
        approval_raised=approvals,
        holder=(field, pk),
    )


def _user_budget(user, profile, now, name="your monthly budget"):
    return _budget("user", name, profile.monthly_budget_micro_cents, profile.time_zone, now, owner_id=user.pk)


def _team_budget(team, now):
    name = f"the team budget ({team.name})"
    return _budget("team", name, team.monthly_budget_micro_cents, team.time_zone, now, team_id=team.pk)


def _token_budget(token, profile, now):
    zone = profile.time_zone if profile is not None else ""
    name = f"the token's monthly budget ({token.name})"
    return _budget("token", name, token.monthly_budget_micro_cents, zone, now, token_id=token.pk)


def token_budget(token, profile, now=None):
    """An API token's own budget this month (None without one); its month is its person's."""
    if token is None or token.monthly_budget_micro_cents is None:
        return None
    return _token_budget(token, profile, now or timezone.now())


def person_budget(user, profile, now=None, name=None):
    """A person's own budget this month (None without one), named for others to read."""
    if profile is None or profile.monthly_budget_micro_cents is None:
        return None
    return _user_budget(
        user, profile, now or timezone.now(), name or f"{user.get_username()}'s monthly budget"
    )


def team_budget(team, now=None):
    """A team's budget this month (None without one)."""
    if team is None or team.monthly_budget_micro_cents is None:
        return None
    return _team_budget(team, now or timezone.now())


def budgets_for(user, now=None):
    """Every budget that applies to ``user`` now, with its spend (for showing; takes no lock)."""
    return budgets_of(user, access.profile_of(user), now)


def budgets_of(user, profile, now=None, token=None):
    """``budgets_for`` with the user's profile (or None) already read, as a viewer has it;
    with ``token``, the token's own budget first."""
    now = now or timezone.now()
    found = [b for b in [token_budget(token, profile, now)] if b is not None]
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


@dataclass(frozen=True)
class Locked:
    """The budget holders of a person, locked for the transaction, with their budgets."""

    team: Team | None
    profile: Profile | None
    budgets: list

    def over(self, cost, kinds=("user", "team", "token")):
        """The budgets (of ``kinds``) ``cost`` would pass, in the order they are checked."""
        return [budget for budget in self.budgets if budget.kind in kinds and not budget.fits(cost)]


def lock(user, now=None, token=None):
    """Lock ``user``'s budget holders (and ``token``, an API token sending the job) and read
    their budgets; must run inside the transaction that records (or sends) the job, so two
    submissions can never share the same headroom. Order: team, person, token."""
    if not connection.in_atomic_block:
        raise transaction.TransactionManagementError(
            "Budgets must be checked inside the transaction that records the job."
        )
    now = now or timezone.now()
    profile = Profile.objects.filter(user_id=user.pk).first()
    team, budgets = None, []
    if profile is not None:
        team, profile = _lock(profile)
        if profile.monthly_budget_micro_cents is not None:
            budgets.append(_user_budget(user, profile, now))
        if team is not None and team.monthly_budget_micro_cents is not None:
            budgets.append(_team_budget(team, now))
    if token is not None:
        token = ApiToken.objects.select_for_update().get(pk=token.pk)
        if not token.is_live(now):
            raise TokenNotLive(token)  # revoked (or expired) while this request was on its way
        if token.monthly_budget_micro_cents is not None:
            budgets.append(_token_budget(token, profile, now))
    return Locked(team, profile, budgets)


def lock_and_check(user, cost, now=None):
    """Lock the budget holders and raise ``OverBudget`` unless ``cost`` fits every budget.

    Must run inside the transaction that records the job; returns the profile's
    team (or None), which the job is charged to.
    """
    locked = lock(user, now)
    for budget in locked.over(cost):
        raise OverBudget(budget, cost)
    return locked.team
