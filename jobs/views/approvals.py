"""Approvals (/approvals/) and temporary raises (from /spend/): a manager's decisions."""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from .. import approvals, budgets, pricing, rollup
from ..access import Viewer
from ..forms import DecisionForm, RaiseForm
from ..models import Job, Profile
from ..submission import approve_and_send
from ..throttle import SubmissionPaused

TEAM_HOLDER = "team"


def _decider(request):
    viewer = Viewer.for_request(request)
    if not viewer.decides:
        raise Http404("Only managers and staff decide approvals.")
    return viewer


def _request_rows(jobs):
    """What a manager needs to decide each request: the budgets it affects after approval and
    the requester's month so far, read once per requester and per team."""
    people, teams, rows = {}, {}, []
    for job in jobs:
        if job.owner_id not in people:
            people[job.owner_id] = _person_now(job.owner)
        profile, person_budget, so_far = people[job.owner_id]
        team = profile.team if profile else None
        if team not in teams:
            teams[team] = budgets.team_budget(team)
        shown = ((person_budget, None), (teams[team], f"Team budget ({team.name})" if team else ""))
        affected = [
            {
                "name": label or budget.name,
                "budget": budget,
                "after": budget.spent + job.estimated_micro_cents,
                "over_by": budget.over_by(job.estimated_micro_cents),
            }
            for budget, label in shown
            if budget is not None
        ]
        rows.append({"job": job, "affected": affected, "month_so_far": so_far})
    return rows


def _person_now(user):
    """(profile, own budget or None, spend this month) of a requester, now."""
    profile = Profile.objects.filter(user_id=user.pk).select_related("team").first()
    zone = rollup.zone_named(profile.time_zone if profile else "")
    month = budgets.month_of(timezone.now(), zone)[0].date()
    return profile, budgets.person_budget(user, profile), rollup.spent(month, owner_id=user.pk)


@require_GET
def approval_list(request):
    viewer = _decider(request)
    waiting = list(approvals.waiting_for(viewer)[:100])
    context = {
        "rows": _request_rows(waiting),
        "decided": approvals.decided_for(viewer),
        "form": DecisionForm(),
    }
    return render(request, "jobs/approvals.html", context)


def _decide(request, job_id, verb):
    _decider(request)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(error for errors in form.errors.values() for error in errors))
        return redirect("jobs:approvals")
    try:
        job = verb(job_id, request.user, form.cleaned_data["note"])
    except Job.DoesNotExist:
        raise Http404("No such request.") from None
    except approvals.NotWaiting as exc:
        messages.warning(request, str(exc))
        return redirect("jobs:approvals")
    except SubmissionPaused as exc:
        messages.error(request, f"Not approved yet: {exc}")
        return redirect("jobs:approvals")
    return job


@require_POST
def approve(request, job_id):
    def verb(pk, user, note):
        return approve_and_send(pk, user, note, request=request)

    job = _decide(request, job_id, verb)
    if not isinstance(job, Job):
        return job
    messages.success(
        request, f"Approved video #{job.pk} for {job.owner.get_username()}: {job.get_status_display()}."
    )
    return redirect("jobs:approvals")


@require_POST
def decline(request, job_id):
    def verb(pk, user, note):
        return approvals.decline(pk, user, note, request=request)

    job = _decide(request, job_id, verb)
    if not isinstance(job, Job):
        return job
    messages.success(request, f"Declined video #{job.pk}; {job.owner.get_username()} has been told.")
    return redirect("jobs:approvals")


# --- raises -------------------------------------------------------------------------------


def _raise_holders(viewer, scope):
    """(value, label) of the budgets this viewer may raise on this page: the team's and its
    members' own, for a manager of it or staff."""
    if not viewer.decides or scope.team is None or not scope.is_team:
        return []
    if not viewer.user.is_staff and scope.team.pk != viewer.profile.team_id:
        return []
    holders = []
    if scope.team.monthly_budget_micro_cents is not None:
        holders.append((TEAM_HOLDER, f"Team budget ({scope.team.name})"))
    people = Profile.objects.filter(team=scope.team, monthly_budget_micro_cents__isnull=False)
    for profile in people.select_related("user").order_by("user__username"):
        holders.append((str(profile.user_id), f"{profile.user.get_username()}'s own budget"))
    return holders


def raises_context(request, viewer, scope, form=None):
    """The raises part of /spend/: this month's raises, and the form for those who may grant."""
    holders = _raise_holders(viewer, scope)
    return {
        "raises": approvals.raises_this_month(scope),
        "raise_form": form or (RaiseForm(holders=holders) if holders else None),
        "raise_team": scope.team.pk if holders else None,
    }


@require_POST
def grant_raise(request):
    viewer = Viewer.for_request(request)
    team_id = request.POST.get("team", "")
    scope = viewer.spend_scope(int(team_id) if team_id.isascii() and team_id.isdigit() else None)
    holders = _raise_holders(viewer, scope)
    if not holders:
        raise Http404("Only a team's managers and staff grant raises.")
    form = RaiseForm(request.POST, holders=holders)
    back = reverse("jobs:spend") + (f"?team={scope.team.pk}" if viewer.user.is_staff else "")
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, f"No raise granted: {error}")
        return redirect(back)
    holder = form.cleaned_data["holder"]
    target = (
        {"team": scope.team} if holder == TEAM_HOLDER else {"person": get_user_model().objects.get(pk=holder)}
    )
    try:
        made = approvals.grant_raise(
            granter=request.user,
            amount=form.micro_cents(),
            reason=form.cleaned_data["reason"],
            request=request,
            **target,
        )
    except ValueError as exc:
        messages.error(request, f"No raise granted: {exc}")
        return redirect(back)
    amount = pricing.format_dollars(made.amount_micro_cents)
    messages.success(request, f"Raised by {amount} until the budget resets: {made.reason}")
    return redirect(back)
