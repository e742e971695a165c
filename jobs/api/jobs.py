"""The routes: jobs (submit, list, read, cancel), the price of a job before it is sent, and
who the token speaks for. Each reads the request, calls the action the page calls
(``submission``, the ``Viewer``'s access rule, ``budgets``), and says what happened;
errors are raised and answered by ``errors``.
"""

import hmac
import uuid

from django.conf import settings
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from ninja import Field, Header, Query, Router, Schema, Status

from .. import approvals, budgets, history, submission
from ..access import Viewer
from ..forms import STATUS_FILTERS, HistoryFilterForm
from ..models import Status as JobStatus
from ..models import TokenScope
from . import errors, present
from .auth import TokenAuth
from .forms import ApiJobForm
from .schemas import (
    AUTH_ERRORS,
    MAX_IDEMPOTENCY_KEY,
    BudgetError,
    Error,
    Estimate,
    Job,
    JobIn,
    JobPage,
    Me,
)

router = Router(tags=["jobs"])
READ = TokenAuth(TokenScope.READ)
SUBMIT = TokenAuth(TokenScope.SUBMIT)

# uuid5(<a namespace derived from SECRET_KEY>, "<token id>:<key>") is the job's submission key:
# a key names one job per token, for as long as the job is kept, and the unique submission key
# makes a retry racing the first request find its job instead of making a second
# (submission.submit_for_token). The secret namespace keeps anyone from computing the key of
# another person's request in advance (and posting the form with it to block it).
IDEMPOTENCY_LABEL = b"kling-studio idempotency keys"
# What a job's answer shows besides the job, read in the query that applies the access rule
# (its kept files only when there are some; a team only to name a request's approvers).
RELATED = ("api_token", "approval")
MAX_ID = 2**63 - 1  # the largest id a job can have


def submission_key(token, idempotency_key):
    if idempotency_key is None:
        return uuid.uuid4()  # without a key, each request is a new job
    namespace = uuid.UUID(
        bytes=hmac.new(settings.SECRET_KEY.encode(), IDEMPOTENCY_LABEL, "sha256").digest()[:16]
    )
    return uuid.uuid5(namespace, f"{token.pk}:{idempotency_key}")


def _valid(form):
    if not form.is_valid():
        raise errors.invalid(form)
    return form


def _visible(request, job_id):
    """The job, if the token's person may see it (404 otherwise, never 403)."""
    if not 0 < job_id <= MAX_ID:
        raise Http404("No such job.")
    jobs = Viewer.for_request(request).jobs_by_id([job_id])
    return get_object_or_404(jobs.select_related(*RELATED))


@router.post(
    "/jobs",
    auth=SUBMIT,
    url_name="jobs",
    summary="Submit a job",
    response={201: Job, 202: Job, 402: BudgetError, 409: Error, 422: Error, 503: Error, **AUTH_ERRORS},
)
def submit(
    request,
    payload: JobIn,
    response: HttpResponse,
    idempotency_key: str | None = Header(
        None,
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY,
        description="Makes retries safe: the same key with the same body answers the same job "
        "(nothing sent twice); with another body, 409 IDEMPOTENCY_KEY_REUSED.",
    ),
):
    """Check the job as the page's form does, then record and send it as the page does: the
    budgets (the token's own among them) under their locks, a manager's approval where the
    team asks for one (202), nothing sent when a budget does not fit (402)."""
    token = request.auth
    key = submission_key(token, idempotency_key)
    form = _valid(ApiJobForm.from_body(payload, key))
    job, created = submission.submit_for_token(
        token=token,
        model=form.model,
        params=form.params(),
        submission_key=key,
        project=form.cleaned_data["project"],
        callback_url=form.cleaned_data["webhook_url"],
        request=request,
    )
    if not form.same_job(job):
        raise errors.reused_key()
    if not created:
        response["Idempotent-Replayed"] = "true"
    body = present.job(job, request)
    response["Location"] = body["links"]["self"]
    return Status(202 if job.status == JobStatus.AWAITING else 201, body)


class JobFilters(Schema):
    """The history's filters (as the page's), and the page to read."""

    q: str | None = Field(None, description="Only jobs whose prompt contains this.")
    status: str | None = Field(
        None, json_schema_extra={"enum": [value for value, _ in STATUS_FILTERS if value]}
    )
    quality: str | None = None
    duration: str | None = None
    aspect_ratio: str | None = None
    date_from: str | None = Field(None, description="YYYY-MM-DD, in the studio's display zone.")
    date_to: str | None = None
    member: str | None = Field(None, description="Managers and staff: one person's jobs (their user id).")
    after: str | None = Field(None, description="A next_cursor from the previous page.")
    per_page: int = Field(history.PAGE_SIZE, ge=1, le=history.MAX_PAGE_SIZE)


@router.get("/jobs", auth=READ, summary="List jobs", response={200: JobPage, 422: Error, **AUTH_ERRORS})
def job_list(request, filters: Query[JobFilters]):
    """The jobs the token's person may see, newest first, a page at a time: theirs, or their
    team's for a manager (everyone's for staff)."""
    viewer = Viewer.for_request(request)
    data = filters.model_dump(exclude={"after", "per_page"}, exclude_none=True)
    form = _valid(HistoryFilterForm(data, members=viewer.members()))
    cursor = history.Cursor.decode(filters.after)
    if filters.after and cursor is None:
        raise errors.ApiError(
            422,
            "VALIDATION_FAILED",
            "The cursor is not one this API gave.",
            fields={"after": ["Not a cursor."]},
        )
    jobs = form.apply(viewer.jobs()).select_related(*RELATED).prefetch_related("files")
    page = history.page_of(jobs, after=cursor, size=filters.per_page)
    approvers = present.Approvers()
    return {
        "jobs": [present.job(job, request, approvers=approvers, attempts=False) for job in page.jobs],
        "next_cursor": page.older.encode() if page.older else None,
        "next": _next_url(request, page.older),
    }


def _next_url(request, cursor):
    if cursor is None:
        return None
    query = request.GET.copy()
    query["after"] = cursor.encode()
    return request.build_absolute_uri("?" + query.urlencode())


@router.get(
    "/jobs/{job_id}",
    auth=READ,
    url_name="job",
    summary="Read a job",
    response={200: Job, 404: Error, **AUTH_ERRORS},
)
def job_detail(request, job_id: int):
    """Status, progress, costs, times, the studio's copies of the outputs, the callback's attempts."""
    return present.job(_visible(request, job_id), request)


@router.post(
    "/jobs/{job_id}/cancel",
    auth=SUBMIT,
    url_name="job_cancel",
    summary="Cancel a queued job",
    response={200: Job, 404: Error, 409: Error, **AUTH_ERRORS},
)
def job_cancel(request, job_id: int):
    """Cancel a job still waiting in PixelByte's queue; PixelByte refunds it. Once it has
    started it cannot be cancelled (409 JOB_CANNOT_BE_CANCELLED)."""
    viewer = Viewer.for_request(request)
    job = _visible(request, job_id)
    if not viewer.may_cancel(job):
        raise Http404("No such job.")
    submission.cancel_and_record(job, request)
    return present.job(_visible(request, job_id), request)


@router.post(
    "/estimate", auth=READ, summary="Price a job", response={200: Estimate, 422: Error, **AUTH_ERRORS}
)
def estimate(request, payload: JobIn):
    """The price of a job, and what a submit would do now: each budget that applies and
    whether it would take it, and whether a manager would have to approve it. Nothing is
    recorded; a submit made meanwhile may change the answer."""
    form = _valid(ApiJobForm.from_body(payload, uuid.uuid4()))
    cost = form.model.cost(form.params())
    viewer = Viewer.for_request(request)
    seen = submission.outlook(request.user, viewer.profile, cost, token=request.auth)
    ask = seen.ask
    if seen.refused_by is not None:
        outcome, message = "refused", str(budgets.OverBudget(seen.refused_by, cost))
    elif ask is not None:
        outcome, message = "approval", f"It would wait for a manager's approval: {ask.explanation}"
    else:
        outcome, message = "send", "It fits every budget that applies and would be sent at once."
    team = viewer.profile.team if viewer.profile is not None else None
    return {
        "estimate": present.money(cost),
        "outcome": outcome,
        "message": message,
        "budgets": [_check(budget, cost) for budget in seen.budgets],
        "approval": {
            "reason": ask.reason,
            "explanation": ask.explanation,
            "approvers": present.approver_names(team),
        }
        if ask is not None
        else None,
    }


def _check(budget, cost):
    return {
        **present.budget(budget),
        "fits": budget.fits(cost),
        "left_after": present.money(budget.remaining - cost),
    }


@router.get(
    "/me", auth=READ, tags=["account"], summary="Who this token speaks for", response={200: Me, **AUTH_ERRORS}
)
def me(request):
    """The person, their team and role, this token, and every budget that applies to its
    jobs (the token's own first) with what is spent and left this month."""
    user, token = request.user, request.auth
    profile = Viewer.for_request(request).profile
    team = profile.team if profile is not None else None
    return {
        "user": {"username": user.get_username(), "name": user.get_full_name(), "email": user.email},
        "team": {"id": team.pk, "name": team.name} if team is not None else None,
        "role": profile.role if team is not None else None,
        "is_staff": user.is_staff,
        "token": {
            "name": token.name,
            "prefix": token.prefix,
            "scopes": token.scopes,
            "created_at": present.utc(token.created_at),
            "expires_at": present.utc(token.expires_at),
            "monthly_budget": present.money(token.monthly_budget_micro_cents)
            if token.monthly_budget_micro_cents is not None
            else None,
        },
        "budgets": [present.budget(b) for b in budgets.budgets_of(user, profile, token=token)],
        "approval_rule": _rule(user, profile, team),
    }


def _rule(user, profile, team):
    rule = approvals.form_rule(user, profile)
    if rule is None:
        return None
    above = rule["aboveMicroCents"]
    return {
        "above": present.money(above) if above is not None else None,
        "may_ask": rule["mayAsk"],
        "approvers": present.approver_names(team),
    }
