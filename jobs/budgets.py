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

from dataclasses import dataclass, replace
from datetime import datetime, time

from django.db import connection, transaction
from django.utils import timezone

from . import access, pricing
from .models import ApiToken, BudgetRaise, Profile, SpendMonth, Team
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

    def after(self, cost):
        """This budget once ``cost`` more is committed against it."""
        return replace(self, spent=self.spent + cost)

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
    """A holder's (``owner_id=`` or ``team_id=``) raises for ``month`` (its first day), in
    micro-cents."""
    ((field, pk),) = holder.items()
    return _figures([(field, pk, month)])[0][1]


@dataclass(frozen=True)
class _Holder:
    """A budget before its month's figures are read: who holds it, and its base limit."""

    kind: str
    name: str
    base: int
    zone_name: str
    field: str  # "owner_id", "team_id" or "token_id"
    pk: int


def _user_holder(user, profile, name="your monthly budget"):
    return _Holder("user", name, profile.monthly_budget_micro_cents, profile.time_zone, "owner_id", user.pk)


def _theirs(user):
    """A person's own budget, named for others to read."""
    return f"{user.get_username()}'s monthly budget"


def _team_holder(team):
    name = f"the team budget ({team.name})"
    return _Holder("team", name, team.monthly_budget_micro_cents, team.time_zone, "team_id", team.pk)


def _token_holder(token, profile):
    zone = profile.time_zone if profile is not None else ""
    name = f"the token's monthly budget ({token.name})"
    return _Holder("token", name, token.monthly_budget_micro_cents, zone, "token_id", token.pk)


def _read(holders, now):
    """The budgets of ``holders`` this month (each in its holder's zone), with their spend and
    raises read in one statement, in the order given."""
    if not holders:
        return []
    months = [month_of(now, zone_named(holder.zone_name)) for holder in holders]
    keys = [
        (holder.field, holder.pk, start.date()) for holder, (start, _) in zip(holders, months, strict=True)
    ]
    return [
        Budget(
            holder.kind,
            holder.name,
            holder.base + extra,
            spent,
            start,
            end,
            raised=extra,
            approval_raised=approvals,
            holder=(holder.field, holder.pk),
        )
        for holder, (start, end), (spent, extra, approvals) in zip(
            holders, months, _figures(keys), strict=True
        )
    ]


# One branch of ``_figures``' statement each: only table and column names from the models
# and row numbers go into the text; every value is a parameter.
SPENT_SQL = "SELECT {tag}, billed_micro_cents, 0 FROM {table} WHERE month = %s AND {field} = %s"
RAISED_SQL = (
    "SELECT {tag}, CAST(COALESCE(SUM(amount_micro_cents), 0) AS BIGINT), "
    "CAST(COALESCE(SUM(CASE WHEN job_id IS NOT NULL THEN amount_micro_cents ELSE 0 END), 0) AS BIGINT) "
    "FROM {table} WHERE month = %s AND {field} = %s"
)


def _figures(keys):
    """[(committed spend, raises, raises made by approvals)] of each (holder column, holder
    id, month) in ``keys``, in micro-cents: the ``SpendMonth`` row (kept by jobs.rollup) and the
    month's ``BudgetRaise`` rows of every holder, in one round trip. A token has no raises:
    they are granted to people and teams; a token's own budget is its person's to set."""
    parts, params = [], []
    for index, (field, pk, month) in enumerate(keys):
        value = connection.ops.adapt_datefield_value(month)
        parts.append(SPENT_SQL.format(tag=2 * index, table=SpendMonth._meta.db_table, field=field))
        params += [value, pk]
        if field != "token_id":
            parts.append(RAISED_SQL.format(tag=2 * index + 1, table=BudgetRaise._meta.db_table, field=field))
            params += [value, pk]
    found = [[0, 0, 0] for _ in keys]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        for tag, first, second in cursor.fetchall():
            index, branch = divmod(tag, 2)
            if branch == 0:
                found[index][0] = int(first)
            else:
                found[index][1:] = [int(first), int(second)]
    return [tuple(row) for row in found]


def token_budget(token, profile, now=None):
    """An API token's own budget this month (None without one); its month is its person's."""
    if token is None or token.monthly_budget_micro_cents is None:
        return None
    return _read([_token_holder(token, profile)], now or timezone.now())[0]


def person_budget(user, profile, now=None, name=None):
    """A person's own budget this month (None without one), named for others to read."""
    if profile is None or profile.monthly_budget_micro_cents is None:
        return None
    return _read([_user_holder(user, profile, name or _theirs(user))], now or timezone.now())[0]


def team_budget(team, now=None):
    """A team's budget this month (None without one)."""
    if team is None or team.monthly_budget_micro_cents is None:
        return None
    return _read([_team_holder(team)], now or timezone.now())[0]


def person_and_team(user, profile, team, now=None):
    """(``person_budget``, ``team_budget``) of ``user`` and ``team``, each None without one,
    read in one statement."""
    holders = []
    if profile is not None and profile.monthly_budget_micro_cents is not None:
        holders.append(_user_holder(user, profile, _theirs(user)))
    if team is not None and team.monthly_budget_micro_cents is not None:
        holders.append(_team_holder(team))
    found = {budget.kind: budget for budget in _read(holders, now or timezone.now())}
    return found.get("user"), found.get("team")


def budgets_for(user, now=None):
    """Every budget that applies to ``user`` now, with its spend (for showing; takes no lock)."""
    return budgets_of(user, access.profile_of(user), now)


def budgets_of(user, profile, now=None, token=None):
    """``budgets_for`` with the user's profile (or None) already read, as a viewer has it;
    with ``token``, the token's own budget first. One statement reads them all."""
    team = profile.team if profile is not None else None
    return _read(_holders(user, profile, team, token, token_first=True), now or timezone.now())


def _holders(user, profile, team, token, token_first=False):
    """The holders whose budgets apply to a job of ``user`` (sent with ``token``, or None)."""
    found = []
    if profile is not None and profile.monthly_budget_micro_cents is not None:
        found.append(_user_holder(user, profile))
    if team is not None and team.monthly_budget_micro_cents is not None:
        found.append(_team_holder(team))
    if token is not None and token.monthly_budget_micro_cents is not None:
        found.insert(0 if token_first else len(found), _token_holder(token, profile))
    return found


def _lock(user):
    """Lock the rows holding the budgets: team first, then person, one order everywhere so
    two submissions cannot deadlock. Returns the locked (team or None, profile or None).

    Two statements: the team is found through the person's row, read without a lock, so
    should the person move to another team between the two (an administrator's change),
    the new team is locked too and the pair read again."""
    while True:
        team = next(iter(Team.objects.raw(_locking(TEAM_OF_PERSON_SQL), [user.pk])), None)
        profile = next(iter(Profile.objects.raw(_locking(PERSON_SQL), [user.pk])), None)
        if profile is None:
            return None, None
        if profile.team_id == (team.pk if team is not None else None):
            break
    if team is not None:
        profile.team = team  # the locked row, so nothing reads it again
    return team, profile


# The two locks are written out: every paid submit waits on them, and the ORM takes longer
# to build these queries than the database takes to answer them.
TEAM_OF_PERSON_SQL = (
    f"SELECT * FROM {Team._meta.db_table} "  # noqa: S608 (names from the models only)
    f"WHERE id = (SELECT team_id FROM {Profile._meta.db_table} WHERE user_id = %s)"
)
PERSON_SQL = f"SELECT * FROM {Profile._meta.db_table} WHERE user_id = %s"  # noqa: S608


def _locking(sql):
    """``sql`` locking the rows it reads, where the database has row locks (SQLite has none:
    its IMMEDIATE transaction already lets one writer in at a time)."""
    return f"{sql} FOR UPDATE" if connection.features.has_select_for_update else sql


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
    submissions can never share the same headroom. Order: team, person, token.

    The budgets are read by a statement of their own, after every lock is held: on
    PostgreSQL a statement sees what was committed when it began, so a read inside a locking
    statement that had to wait could miss the spend of the submission it waited for."""
    if not connection.in_atomic_block:
        raise transaction.TransactionManagementError(
            "Budgets must be checked inside the transaction that records the job."
        )
    now = now or timezone.now()
    team, profile = _lock(user)
    if token is not None:
        token = ApiToken.objects.select_for_update().get(pk=token.pk)
        if not token.is_live(now):
            raise TokenNotLive(token)  # revoked (or expired) while this request was on its way
    return Locked(team, profile, _read(_holders(user, profile, team, token), now))


def lock_and_check(user, cost, now=None):
    """Lock the budget holders and raise ``OverBudget`` unless ``cost`` fits every budget.

    Must run inside the transaction that records the job; returns the profile's
    team (or None), which the job is charged to.
    """
    locked = lock(user, now)
    for budget in locked.over(cost):
        raise OverBudget(budget, cost)
    return locked.team
