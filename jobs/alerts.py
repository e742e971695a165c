"""Budget alerts: each budget tells its holder (or its team's managers) once per line and month.

A budget (a person's own, a team's) has lines: the percentages of its team's
``alert_thresholds`` (a person in no team has the default 50, 80, 100), and "projected"
once the month-end projection (the dashboard's formula) passes the limit, judged from the
8th day of the month on, when the team asks for it (``alert_on_projection``; always for a
person in no team). A line is crossed when the month's committed spend (``SpendMonth``)
reaches it; the limit is the month's budget with the raises managers granted
(``budgets.Budget.alert_limit``): the per-job raise of approving a job over budget is a
manager's exception, not a new budget, so it neither moves the lines nor re-arms them.

The state machine is the ``BudgetAlert`` row, unique per holder, month, limit and line. The
process that inserts it (in a savepoint: an IntegrityError means another process already
did) queues its messages (``jobs.outbox``) in the same transaction, so an alert exists, with
its messages, exactly once however many web processes and workers look at the same time.
Rows are never deleted, so spend wobbling around a line (a refund, a failed job) does not
re-arm it; the next month has new keys, and so has a changed limit (a new budget, a granted
raise), which is judged afresh.

Evaluated twice over: ``spend_changed`` right after a commit that raised someone's spend (on
the lifecycle's ``spend_rose`` signal; a few queries per holder, and it never raises), and ``run_pass`` by the
worker on every pass for every holder with a budget (a fixed handful of queries in all),
which catches what a dying request missed and the projection, which moves with the calendar.
Sending is the worker's (``outbox.deliver_due``), so a slow mail server never holds up a submit.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Count, Q, Sum
from django.dispatch import receiver
from django.urls import reverse
from django.utils import timezone

from . import access, budgets, lifecycle, outbox, pricing
from .models import (
    DEFAULT_ALERT_THRESHOLDS,
    BudgetAlert,
    BudgetRaise,
    Profile,
    SpendMonth,
    Team,
    parse_thresholds,
)
from .rollup import month_start, zone_named
from .spend.report import CENT, month_end_projection

log = logging.getLogger(__name__)

PROJECTED = BudgetAlert.PROJECTED
# Before this day of its month a budget's projection rests on too few days to warn about.
PROJECTION_FROM_DAY = 8
# The most alerts /spend/ lists.
SHOWN = 50


@dataclass(frozen=True)
class Holder:
    """One budget with what its alerts need: the team whose alert settings apply (and whose
    chat hears them) and, for a person's own budget, the person."""

    budget: budgets.Budget
    team: Team | None
    user: object = None

    @property
    def is_team(self):
        return self.user is None

    @property
    def thresholds(self):
        text = self.team.alert_thresholds if self.team is not None else DEFAULT_ALERT_THRESHOLDS
        try:
            return parse_thresholds(text)
        except ValueError:  # forms validate it; a row edited by hand falls back to the default
            return parse_thresholds(DEFAULT_ALERT_THRESHOLDS)

    @property
    def watches_projection(self):
        return self.team.alert_on_projection if self.team is not None else True

    def key(self, line):
        return (*self.budget.holder, self.budget.month, self.budget.alert_limit, line)


# --- evaluating ----------------------------------------------------------------------------


@receiver(lifecycle.spend_rose)
def _on_spend_rose(sender, owner_id, team_id, **kwargs):
    spend_changed(owner_id, team_id)


def spend_changed(owner_id, team_id, now=None):
    """Committed spend of this person and team rose (called after the commit): raise the
    alerts of their budgets that it crossed. Never raises: the worker's pass tries again."""
    try:
        now = now or timezone.now()
        holders = _holders_of(owner_id, team_id, now)
        if holders:
            _raise_crossed(holders, now, _recorded(holders, narrow=True))
    except Exception:
        log.exception("Budget alerts of person %s and team %s not evaluated", owner_id, team_id)


def run_pass(now=None):
    """The worker's evaluation of every budget; returns how many alerts it raised."""
    now = now or timezone.now()
    holders = _every_holder(now)
    if not holders:
        return 0
    return len(_raise_crossed(holders, now, _recorded(holders, narrow=False)))


def projection(budget, now):
    """``budget``'s month-end spend at the pace so far, or None before the month's 8th day."""
    today = now.astimezone(budget.period_start.tzinfo).date()
    elapsed = (today - budget.month).days + 1
    if elapsed < PROJECTION_FROM_DAY:
        return None
    return month_end_projection(budget.spent, elapsed, (budget.resets_at.date() - budget.month).days)


def crossed(holder, now):
    """The lines ``holder``'s budget has crossed this month, lowest first."""
    spent, limit = holder.budget.spent, holder.budget.alert_limit
    lines = [str(p) for p in holder.thresholds if spent > 0 and spent * 100 >= limit * p]
    if holder.watches_projection:
        projected = projection(holder.budget, now)
        if projected is not None and projected > limit:
            lines.append(PROJECTED)
    return lines


def _raise_crossed(holders, now, recorded):
    """Record every crossed line not yet recorded; return the alerts this process made."""
    keys, told = recorded
    made = []
    for holder in holders:
        try:
            for line in crossed(holder, now):
                if holder.key(line) not in keys:
                    made.append(_record(holder, line, now, tell=_news(holder, line, told)))
        except Exception:  # one holder's trouble must not silence the others
            log.exception("Budget alerts of %s not evaluated", holder.budget.name)
    return [alert for alert in made if alert is not None]


def _news(holder, line, told):
    """Whether crossing ``line`` tells the holder something. Not when only a changed limit
    moved it under spend they were already told of this month by as high a line (a raise
    after the 80 % alert brings no "50 % used"); a line never reached before always is."""
    if line == PROJECTED:
        return True
    percent, limit = int(line), holder.budget.alert_limit
    earlier = [
        spent
        for told_limit, told_line, spent in told.get(holder.key(line)[:3], ())
        if told_limit != limit and told_line != PROJECTED and int(told_line) >= percent
    ]
    return not earlier or limit * percent // 100 > max(earlier)


def _record(holder, line, now, tell=True):
    """Create the alert and queue its messages (none when ``tell`` is False), or return None
    when another process has."""
    budget = holder.budget
    with transaction.atomic():  # the alert and its messages: both or neither
        try:
            with transaction.atomic():  # a savepoint: a racing twin's insert must not abort ours
                alert = BudgetAlert.objects.create(
                    **budget.holder_filter,
                    month=budget.month,
                    limit_micro_cents=budget.alert_limit,
                    line=line,
                    spent_micro_cents=budget.spent,
                    told=tell,
                    created_at=now,
                )
        except IntegrityError:
            return None
        if tell:
            _queue(holder, alert, now)
    return alert


def _recorded(holders, narrow):
    """(the keys already recorded for the holders' months, {(holder, month): [(limit, line,
    spent)]} of the alerts that were told); ``narrow``: the holders' own rows only."""
    rows = BudgetAlert.objects.filter(month__in={holder.budget.month for holder in holders})
    if narrow:
        owners = [h.budget.holder[1] for h in holders if not h.is_team]
        teams = [h.budget.holder[1] for h in holders if h.is_team]
        rows = rows.filter(Q(owner_id__in=owners) | Q(team_id__in=teams))
    fields = ("owner_id", "team_id", "month", "limit_micro_cents", "line", "spent_micro_cents", "told")
    keys, told = set(), {}
    for owner, team, month, limit, line, spent, was_told in rows.values_list(*fields):
        holder = ("owner_id", owner) if owner is not None else ("team_id", team)
        keys.add((*holder, month, limit, line))
        if was_told:
            told.setdefault((*holder, month), []).append((limit, line, spent))
    return keys, told


# --- the holders and their budgets ---------------------------------------------------------


def _holders_of(owner_id, team_id, now):
    """The budgets of one person and one team, with the per-holder helpers (a few queries)."""
    profile = Profile.objects.select_related("user", "team").filter(user_id=owner_id).first()
    team = None
    if team_id is not None:
        team = profile.team if profile is not None and profile.team_id == team_id else None
        team = team or Team.objects.filter(pk=team_id).first()
    user = profile.user if profile is not None else None
    # Both budgets' spend and raises in one statement.
    person, team_budget = budgets.person_and_team(user, profile, team, now)
    holders = [Holder(person, profile.team, profile.user)] if person is not None else []
    if team_budget is not None:
        holders.append(Holder(team_budget, team))
    return holders


def _every_holder(now):
    """Every budget this month, read in bulk: the holders, then their months' spend and raises
    in one query each, whatever the number of holders."""
    people = Profile.objects.filter(monthly_budget_micro_cents__isnull=False).select_related("user", "team")
    teams = Team.objects.filter(monthly_budget_micro_cents__isnull=False)
    found = [
        *(
            (("owner_id", p.user_id), f"{p.user.get_username()}'s monthly budget", p, p.team, p.user)
            for p in people
        ),
        *((("team_id", t.pk), f"the team budget ({t.name})", t, t, None) for t in teams),
    ]
    months = {_month_of(now, row)[0].date() for _, _, row, _, _ in found}
    if not months:
        return []
    spent, raised = _spend_by_holder(months), _raises_by_holder(months)
    holders = []
    for holder, name, row, team, user in found:
        start, end = _month_of(now, row)
        key = (*holder, start.date())
        extra, approvals = raised.get(key, (0, 0))
        kind = "user" if user is not None else "team"
        budget = budgets.Budget(
            kind,
            name,
            row.monthly_budget_micro_cents + extra,
            spent.get(key, 0),
            start,
            end,
            raised=extra,
            approval_raised=approvals,
            holder=holder,
        )
        holders.append(Holder(budget, team, user))
    return holders


def _month_of(now, row):
    """The month of a holder (a profile or a team) at ``now``, in its zone."""
    return budgets.month_of(now, zone_named(row.time_zone))


def _spend_by_holder(months):
    budgeted = Profile.objects.filter(monthly_budget_micro_cents__isnull=False).values("user_id")
    rows = SpendMonth.objects.filter(month__in=months).filter(
        Q(owner_id__in=budgeted) | Q(team__monthly_budget_micro_cents__isnull=False)
    )
    return {
        _holder_key(owner, team, month): amount
        for owner, team, month, amount in rows.values_list(
            "owner_id", "team_id", "month", "billed_micro_cents"
        )
    }


def _raises_by_holder(months):
    rows = (
        BudgetRaise.objects.filter(month__in=months)
        .values("owner_id", "team_id", "month")
        .annotate(
            total=Sum("amount_micro_cents"), approvals=Sum("amount_micro_cents", filter=Q(job__isnull=False))
        )
        .order_by()
    )
    return {
        _holder_key(row["owner_id"], row["team_id"], row["month"]): (row["total"], row["approvals"] or 0)
        for row in rows
    }


def _holder_key(owner, team, month):
    return ("owner_id", owner, month) if owner is not None else ("team_id", team, month)


# --- the messages --------------------------------------------------------------------------


@dataclass(frozen=True)
class Wording:
    subject: str
    body: str
    chat: str


def _queue(holder, alert, now):
    wording = wording_for(holder, alert)
    outbox.queue_email(_recipients(holder), wording.subject, wording.body, alert=alert, now=now)
    outbox.queue_chat(holder.team, wording.chat, alert=alert, now=now)


def _recipients(holder):
    """A person's own budget tells the person; a team's, the team's managers (or staff)."""
    if not holder.is_team:
        return [holder.user.email] if holder.user.is_active else []
    return access.told_of(holder.team)


def wording_for(holder, alert):
    """What the email and the chat post say, in words for people who do not read code."""
    budget = holder.budget
    month, resets = budget.period_start.strftime("%B"), budget.resets_at.strftime("%B %-d")
    if holder.is_team:
        team = f"Team {holder.team.name}"
        subject = chat_headline = _headline(alert, team, "its")
        who, whose = team, "its"
        reason = f"You receive this because you manage {team} in Kling Studio."
    else:  # the email speaks to the person; the chat, to their team, about them
        subject = _headline(alert, "You", "your")
        chat_headline = _headline(alert, _person(holder.user), "their")
        who, whose = "you", "your"
        reason = "You receive this because you have a monthly budget in Kling Studio."
    figures = _figures(alert, month)
    link = outbox.studio_link(reverse("jobs:spend"))
    paragraphs = [f"Hello,\n\n{subject}."]
    if alert.line == PROJECTED:
        paragraphs.append(
            f"At the pace so far, {who} will spend about "
            f"{pricing.format_dollars(_projection_shown(budget, alert))} by the end of {month}, "
            f"more than {whose} budget of {pricing.format_dollars(alert.limit_micro_cents)}."
        )
    paragraphs += [
        f"So far: {figures}\nThe budget starts again on {resets}.",
        f"See what was spent, and on what: {link}",
        reason,
    ]
    chat = f"{chat_headline}: {figures} The budget starts again on {resets}. {link}"
    return Wording(subject, "\n\n".join(paragraphs) + "\n", chat)


def _headline(alert, who, whose):
    has, are = ("have", "are") if who == "You" else ("has", "is")
    if alert.line == PROJECTED:
        return f"{who} {are} on track to go over {whose} monthly budget"
    return f"{who} {has} used {alert.line}% of {whose} monthly budget"


def _figures(alert, month):
    """ "$0.90 of $1.00 spent in May, $0.10 left." (or "… over.")"""
    spent, limit = alert.spent_micro_cents, alert.limit_micro_cents
    rest = (
        f"{pricing.format_dollars(limit - spent)} left."
        if spent <= limit
        else f"{pricing.format_dollars(spent - limit)} over."
    )
    share = f" ({spent * 100 // limit}%)" if limit > 0 else ""
    return (
        f"{pricing.format_dollars(spent)} of {pricing.format_dollars(limit)} spent in {month}{share}, {rest}"
    )


def _projection_shown(budget, alert):
    today = alert.created_at.astimezone(budget.period_start.tzinfo).date()
    elapsed = (today - budget.month).days + 1
    days = (budget.resets_at.date() - budget.month).days
    return month_end_projection(alert.spent_micro_cents, elapsed, days) // CENT * CENT


def _person(user):
    return user.get_full_name() or user.get_username()


# --- what /spend/ shows --------------------------------------------------------------------


@dataclass(frozen=True)
class Shown:
    """One alert as /spend/ lists it."""

    when: datetime
    budget: str
    line: str
    spent: int
    limit: int
    delivery: str
    delivered: bool

    @property
    def over(self):
        return self.spent >= self.limit


def sent_for(viewer, scope, now=None):
    """Alerts raised this month that ``viewer`` may see on /spend/ for ``scope``, newest first:
    staff on every team see all; a manager (or staff choosing a team) the team's budget and its
    members' own budgets; everyone else their own."""
    now = now or timezone.now()
    # Each holder's month follows its zone: read the one or two months that are "this month"
    # somewhere on Earth, then keep each row whose month is its holder's current one.
    months = {month_start(now + timedelta(hours=hours), zone_named("UTC")) for hours in (-12, 14)}
    rows = (
        _visible(viewer, scope)
        .filter(month__in=months, told=True)
        .select_related("team", "owner__profile")
        .annotate(
            messages_count=Count("messages"),
            sent_count=Count("messages", filter=Q(messages__sent_at__isnull=False)),
            waiting_count=Count("messages", filter=Q(messages__next_attempt_at__isnull=False)),
        )
        .order_by("-created_at", "-id")[: SHOWN * 2]
    )
    return [_shown(alert, viewer) for alert in rows if alert.month == _current_month(alert, now)][:SHOWN]


def _visible(viewer, scope):
    user = viewer.user
    if user.is_staff and scope.team is None:
        return BudgetAlert.objects.all()
    team = scope.team if scope.is_team else None
    if team is not None and (user.is_staff or (viewer.is_manager and viewer.profile.team_id == team.pk)):
        return BudgetAlert.objects.filter(Q(team=team) | Q(owner__profile__team=team))
    return BudgetAlert.objects.filter(owner=user)


def _current_month(alert, now):
    if alert.team_id is not None:
        zone = alert.team.time_zone
    else:
        profile = getattr(alert.owner, "profile", None)
        zone = profile.time_zone if profile is not None else ""
    return month_start(now, zone_named(zone))


def _shown(alert, viewer):
    if alert.team_id is not None:
        budget = f"Team {alert.team.name}"
    elif alert.owner_id == viewer.user.pk:
        budget = "Your budget"
    else:
        budget = f"{_person(alert.owner)}'s own budget"
    line = "On track to go over" if alert.line == PROJECTED else f"{alert.line}% used"
    return Shown(
        alert.created_at, budget, line, alert.spent_micro_cents, alert.limit_micro_cents, *_delivery(alert)
    )


def _delivery(alert):
    """(what happened to the alert's messages, whether all arrived)."""
    if not alert.messages_count:
        return "Nobody to tell (no email address or chat)", False
    if alert.sent_count == alert.messages_count:
        return "Sent", True
    if alert.waiting_count:
        return "Sending", False
    return "Could not be delivered", False
