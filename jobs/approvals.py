"""Approvals: a job a manager must say yes to before anything is sent or charged.

A team may require approval for any single job above an amount
(``Team.approval_above_micro_cents``), and may let members ask instead of being refused
when a job would pass a budget (``Team.members_may_ask``). Such a job is recorded
*awaiting approval*: nothing sent, nothing charged, counted in no budget. Managers of
its team (and staff) decide on /approvals/:

- approving runs the normal path at that moment: the budgets are locked and checked
  (a job that no longer fits raises each budget it passes, for this month only, by
  exactly its price, recorded as a raise), the job is committed as sending, then sent;
- declining, or ``EXPIRES_AFTER`` without a decision (the worker), ends it *declined*.

The job row is locked while it is decided, so two managers clicking at once send it
once. The requester is told either way, by email and on their next page.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from . import access, audit, budgets, lifecycle, notices, outbox, pricing
from .models import (
    ApprovalReason,
    ApprovalRequest,
    AuditAction,
    BudgetRaise,
    Decision,
    Job,
    Profile,
    Role,
    Status,
)

EXPIRES_AFTER = timedelta(days=7)


class NotWaiting(Exception):
    """The request was already decided (by someone else, or by expiry); the message says how."""


@dataclass(frozen=True)
class Ask:
    reason: str  # an ApprovalReason
    explanation: str


def decides_for_team(user, profile):
    """Whether ``user`` decides (rather than asks) in their own team: staff and managers."""
    return user.is_staff or (profile is not None and profile.is_manager)


def reason_to_ask(user, locked, cost):
    """Why this job must wait for a manager (an ``Ask``), or None to take the normal path
    (where a budget it passes refuses it). ``locked`` is ``budgets.lock(user)``."""
    team = locked.team
    if team is None or decides_for_team(user, locked.profile):
        return None
    over = locked.over(cost, kinds=("user", "team"))  # a token's own cap is never asked past
    if over and not team.members_may_ask:
        return None  # a budget refuses it, whatever its price
    limit = team.approval_above_micro_cents
    if limit is not None and cost > limit:
        return Ask(
            ApprovalReason.ABOVE_THRESHOLD,
            f"It costs {pricing.format_dollars(cost)}; team {team.name} asks a manager to approve any video "
            f"above {pricing.format_dollars(limit)}.",
        )
    if over:
        return Ask(
            ApprovalReason.OVER_BUDGET, str(budgets.OverBudget(over[0], cost)).replace("Not sent: ", "")
        )
    return None


def form_rule(user, profile):
    """What the prompt form tells a member before they click: above which price a manager
    must approve, whether passing a budget asks instead of refusing, and who approves."""
    team = profile.team if profile is not None else None
    if team is None or decides_for_team(user, profile):
        return None
    if team.approval_above_micro_cents is None and not team.members_may_ask:
        return None
    names = ", ".join(person.get_username() for person in approvers(team)) or "a member of staff"
    return {
        "aboveMicroCents": team.approval_above_micro_cents,
        "mayAsk": team.members_may_ask,
        "approvers": names,
    }


def approvers(team):
    """Who may approve a job of ``team``: its managers (staff may too, from /approvals/)."""
    return access.managers_of(team)


def may_decide(user, job):
    """Staff, or a manager of the job's team; never the person who asked."""
    if job.owner_id == user.pk:
        return False
    if user.is_staff:
        return True
    return Profile.objects.filter(user_id=user.pk, team_id=job.team_id, role=Role.MANAGER).exists()


def waiting_for(viewer):
    """The jobs awaiting approval that this viewer may decide, oldest first."""
    jobs = Job.objects.filter(status=Status.AWAITING).exclude(owner_id=viewer.user.pk)
    if not viewer.user.is_staff:
        if not viewer.is_manager:
            return Job.objects.none()
        jobs = jobs.filter(team_id=viewer.profile.team_id)
    return jobs.select_related("owner", "team", "approval").order_by("created_at", "pk")


def decided_for(viewer, limit=20):
    """The latest decisions on requests this viewer may decide."""
    requests = ApprovalRequest.objects.exclude(decision=Decision.WAITING)
    if not viewer.user.is_staff:
        if not viewer.is_manager:
            return ApprovalRequest.objects.none()
        requests = requests.filter(job__team_id=viewer.profile.team_id)
    return requests.select_related("job", "job__owner", "decided_by").order_by("-decided_at", "-pk")[:limit]


# --- asking ---------------------------------------------------------------------------


def open_request(job, ask, *, request=None, now=None):
    """Record ``job``'s request (inside the transaction that recorded the job) and tell its
    approvers."""
    now = now or timezone.now()
    ApprovalRequest.objects.create(
        job=job,
        reason=ask.reason,
        explanation=ask.explanation,
        requested_at=now,
        expires_at=now + EXPIRES_AFTER,
    )
    price = pricing.format_dollars(job.estimated_micro_cents)
    owner = job.owner.get_username()
    audit.record(
        AuditAction.APPROVAL_REQUESTED,
        f"{owner} asked for approval of video #{job.pk} ({price}): {ask.explanation}",
        actor=job.owner,
        request=request,
        team=job.team_id,
        subject=job.owner_id,
        job=job,
        detail={"price": job.estimated_micro_cents, "reason": ask.reason},
    )
    link = outbox.studio_link(reverse("jobs:approvals"))
    body = (
        f"{owner} asks to make a video that needs a manager's approval.\n\n"
        f"Prompt: {job.prompt}\nOptions: {job.quality}, {job.duration} s, {job.aspect_ratio}\n"
        f"Price: {price}\nWhy it waits: {ask.explanation}\n\n"
        f"Approve or decline it here: {link}\n"
        f"Without a decision it is declined on {timezone.localtime(now + EXPIRES_AFTER):%B %-d}."
    )
    outbox.queue_email(access.told_of(job.team), f"{owner} asks to make a {price} video", body)


# --- deciding -------------------------------------------------------------------------


def _locked_waiting(job_id, decider):
    job = Job.objects.select_for_update().filter(pk=job_id).select_related("owner").first()
    if job is None or not may_decide(decider, job):
        raise Job.DoesNotExist
    if job.status != Status.AWAITING:
        request = ApprovalRequest.objects.filter(job=job).select_related("decided_by").first()
        raise NotWaiting(_already(job, request))
    return job


def _already(job, request):
    if request is None or not request.decision:
        return f"Video #{job.pk} is no longer waiting for approval."
    by = f" by {request.decided_by.get_username()}" if request.decided_by else ""
    return f"Video #{job.pk} was already {request.get_decision_display().lower()}{by}."


def approve(job_id, decider, note="", *, request=None, now=None):
    """Approve the job and commit it as sending (``submission.approve_and_send`` sends it and
    tells the requester); return it. Raises ``NotWaiting`` (decided already, or its owner has
    left the team since asking, which declines it), or ``Job.DoesNotExist`` when it is not
    the decider's to decide."""
    now = now or timezone.now()
    with transaction.atomic():
        job = _locked_waiting(job_id, decider)
        try:
            locked = budgets.lock(job.owner, now, token=job.api_token)
        except budgets.TokenNotLive:
            locked = None
        gone = _owner_gone(job, locked)
        if gone:
            lifecycle.declined(job, now=now)
            _decide(job, Decision.DECLINED, decider, gone, now)
            _record_decision(job, AuditAction.DECLINED, decider, gone, request)
            _tell_requester(job, "declined", decider, gone)
        else:
            raises = _raise_for(job, locked, decider, now)
            lifecycle.approved(job, team=locked.team, now=now)
            _decide(job, Decision.APPROVED, decider, note, now)
            _record_decision(job, AuditAction.APPROVED, decider, note, request, raises)
    if gone:
        raise NotWaiting(f"Video #{job.pk} was not sent: {gone}")
    return job


def _owner_gone(job, locked):
    """Why the job can no longer be made as it was asked for, or ""."""
    owner = job.owner.get_username()
    if not job.owner.is_active:
        return f"{owner}'s account has been closed since asking."
    if locked is None:
        return "the API token that asked for it has been revoked or has expired since."
    if (locked.team.pk if locked.team else None) != job.team_id:
        return f"{owner} has changed teams since asking; they can send it again from their new team."
    for budget in locked.over(job.estimated_micro_cents, kinds=("token",)):
        return f"it no longer fits {budget.name}, which only its owner can change."
    return ""


def _raise_for(job, locked, decider, now):
    """Raise each budget the job no longer fits by exactly its price, for this month."""
    return [
        BudgetRaise.objects.create(
            **budget.holder_filter,
            month=budget.month,
            amount_micro_cents=job.estimated_micro_cents,
            reason=f"Approved video #{job.pk} over {budget.name}",
            granted_by=decider,
            granted_at=now,
            job=job,
        )
        for budget in locked.over(job.estimated_micro_cents, kinds=("user", "team"))
    ]


def approved_and_sent(job, decider, note):
    """Tell the requester what became of their approved job once it was sent (or refused)."""
    _tell_requester(job, "approved" if job.status != Status.REFUSED else "refused", decider, note)


def decline(job_id, decider, note="", *, request=None, now=None):
    now = now or timezone.now()
    with transaction.atomic():
        job = _locked_waiting(job_id, decider)
        lifecycle.declined(job, now=now)
        _decide(job, Decision.DECLINED, decider, note, now)
        _record_decision(job, AuditAction.DECLINED, decider, note, request)
        _tell_requester(job, "declined", decider, note)
    return job


def expire_due(now=None):
    """Decline every request nobody decided within ``EXPIRES_AFTER``; return how many."""
    now = now or timezone.now()
    due = ApprovalRequest.objects.filter(decision=Decision.WAITING, expires_at__lte=now).values_list(
        "job_id", flat=True
    )
    expired = 0
    for job_id in list(due[:200]):
        with transaction.atomic():
            job = Job.objects.select_for_update().filter(pk=job_id, status=Status.AWAITING).first()
            if job is None:
                continue
            lifecycle.declined(job, now=now)
            _decide(job, Decision.EXPIRED, None, "", now)
            _record_decision(job, AuditAction.EXPIRED, None, "No manager decided within 7 days.", None)
            _tell_requester(job, "expired", None, "")
        expired += 1
    return expired


def _decide(job, decision, decider, note, now):
    ApprovalRequest.objects.filter(job=job).update(
        decision=decision, decided_by=decider, decided_at=now, note=note[:2000]
    )


def _record_decision(job, action, decider, note, request, raises=()):
    price = pricing.format_dollars(job.estimated_micro_cents)
    verb = {AuditAction.APPROVED: "approved", AuditAction.DECLINED: "declined"}.get(action, "let expire")
    summary = (
        f"{'The studio' if decider is None else decider.get_username()} {verb} video #{job.pk} ({price}) "
    )
    summary += f"for {job.owner.get_username()}"
    summary += f": {note}" if note else "."
    for made in raises:
        summary += (
            f" Raised {'the team budget' if made.team_id else 'their own budget'} for this month by {price}."
        )
    audit.record(
        action,
        summary,
        actor=decider,
        request=request,
        team=job.team_id,
        subject=job.owner_id,
        job=job,
        detail={
            "price": job.estimated_micro_cents,
            "note": note,
            "raises": [
                {"team": r.team_id, "owner": r.owner_id, "amount": r.amount_micro_cents} for r in raises
            ],
        },
    )


def _tell_requester(job, outcome, decider, note):
    price = pricing.format_dollars(job.estimated_micro_cents)
    who = decider.get_username() if decider is not None else ""
    text = {
        "approved": f"{who} approved your {price} video #{job.pk}; it is being made now.",
        "refused": f"{who} approved your {price} video #{job.pk}, but PixelByte refused it: "
        f"{job.error_message} Nothing was charged.",
        "declined": f"{who} declined your {price} video #{job.pk}; nothing was charged.",
        "expired": f"Your {price} video #{job.pk} was not approved within 7 days, so it was not made; "
        "nothing was charged.",
    }[outcome]
    if note:
        text += f" Reason: {note}"
    url = reverse("jobs:detail", args=[job.pk])
    notices.tell(job.owner_id, text, url=url, level="success" if outcome == "approved" else "warning")
    outbox.queue_email(
        [job.owner.email],
        f"Your video #{job.pk} was {'approved' if outcome in ('approved', 'refused') else 'not approved'}",
        f"{text}\n\nPrompt: {job.prompt}\n\n{outbox.studio_link(url)}",
    )


# --- raises ---------------------------------------------------------------------------


def _raisable(team, person, now):
    """(budget, holder filter, name, team, person) of the budget a raise is for."""
    if team is not None:
        return (
            budgets.team_budget(team, now),
            {"team_id": team.pk},
            f"the team budget of {team.name}",
            team,
            None,
        )
    profile = Profile.objects.select_related("team").get(user=person)
    name = f"{person.get_username()}'s budget"
    return budgets.person_budget(person, profile, now), {"owner_id": person.pk}, name, profile.team, person


def grant_raise(*, granter, amount, reason, team=None, person=None, request=None, now=None):
    """Raise ``team``'s or ``person``'s budget by ``amount`` micro-cents for the current month
    (the holder's month); return the raise. The caller has checked the granter may."""
    now = now or timezone.now()
    with transaction.atomic():
        budget, holder, name, team, subject = _raisable(team, person, now)
        if budget is None:
            raise ValueError(f"{name[0].upper()}{name[1:]} has no monthly limit to raise.")
        made = BudgetRaise.objects.create(
            **holder,
            month=budget.month,
            amount_micro_cents=amount,
            reason=reason,
            granted_by=granter,
            granted_at=now,
        )
        resets = timezone.localtime(budget.resets_at, budget.resets_at.tzinfo)
        before, after = pricing.format_dollars(budget.limit), pricing.format_dollars(budget.limit + amount)
        audit.record(
            AuditAction.RAISE_GRANTED,
            f"{granter.get_username()} raised {name} by {pricing.format_dollars(amount)} until {resets:%B %-d} "
            f"({before} → {after}): {reason}",
            actor=granter,
            request=request,
            team=team,
            subject=subject,
            detail={
                "before": budget.limit,
                "after": budget.limit + amount,
                "month": budget.month.isoformat(),
            },
        )
        if subject is not None and subject.pk != granter.pk:
            text = f"{granter.get_username()} raised your budget by {pricing.format_dollars(amount)} for this month"
            notices.tell(subject, f"{text}: {reason}", url=reverse("jobs:spend"), level="success")
    return made


def raises_this_month(scope, now=None):
    """The raises in force this month for the scope's budget holders (a team and its members,
    or one person), newest first."""
    now = now or timezone.now()
    raises = BudgetRaise.objects.select_related("owner", "team", "granted_by")
    if scope.team is not None and scope.is_team:
        members = Profile.objects.filter(team=scope.team).values("user_id")
        raises = raises.filter(team=scope.team) | raises.filter(owner_id__in=members)
        zone = scope.team.time_zone
    elif scope.profile is not None:
        raises = raises.filter(owner_id=scope.profile.user_id)
        zone = scope.profile.time_zone
    else:
        return []  # every team at once: each team's page lists its own
    # The month in the team's (or person's) zone; members in other zones are a day off at most.
    month = budgets.month_of(now, budgets.zone_named(zone))[0].date()
    return list(raises.filter(month=month).order_by("-granted_at")[:50])
