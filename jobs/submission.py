"""Submitting a job: record first, call the API second, settle third.

The job row is committed before the API is called, so a crash or a timeout never
loses a paid request. The call runs outside any transaction. A submission is
never retried blindly: only a request that provably did not reach the API is
tried again (inside the client); an answer that may have created a job leaves
the row ``unknown`` until the API says what happened.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from . import approvals, audit, budgets, lifecycle, pixelbyte, pricing, stacks, throttle
from .models import ApprovalReason, Job, Status

log = logging.getLogger(__name__)

# When the worker first looks for a job whose submit answer never came.
STALLED_SUBMIT = timedelta(minutes=2)


class ForeignSubmissionKey(Exception):
    """The submission key belongs to someone else's job."""


def submit_job(
    *, user, model, params, submission_key, project="", client=None, request=None, token=None, callback_url=""
):
    """Create the job for this form post and send it; return the job.

    A second call with the same ``submission_key`` returns the first job and
    sends nothing. Raises ``budgets.OverBudget`` (nothing recorded, nothing sent)
    when the job does not fit a budget. A job that needs a manager's approval is
    recorded awaiting it and not sent (see jobs.approvals). ``token`` (an API token sending
    it; its own budget is checked with the others) and ``callback_url`` go on the job.
    """
    fields = {"model": model, "params": params, "project": project, "request": request}
    job, _ = _submit(user, submission_key, client, token=token, callback_url=callback_url, **fields)
    return job


def _submit(user, submission_key, client, *, model, params, **fields):
    """``submit_job``; return (the job, whether this call recorded it: False when an earlier
    or concurrent call with the same key did)."""
    made = _make(user, model, [(submission_key, params)], client=client, **fields)
    return made.jobs[0], made.recorded


@dataclass(frozen=True)
class Made:
    """What one post made: its jobs in the order made; whether this post recorded them (False:
    an earlier or concurrent post with the same key did, and nothing was sent now); and, when
    it did, the budgets they were checked against with what the jobs now count on them."""

    jobs: list
    recorded: bool
    budgets: list = field(default_factory=list)


def _make(user, model, members, *, client=None, stack_key=None, **fields):
    """Record ``members`` ((submission key, params) pairs) under the budgets' locks, judged as
    one, then send them (unless they wait for a manager): a ``Made``.

    The key is looked up first (as a stack's key or a job's): a post repeated after a pause
    began, or while the breaker lets one trial through, must find its jobs rather than be
    told to wait or take the trial; a repeat racing the first post is caught by the unique key."""
    key = stack_key or members[0][0]
    earlier = _made_from(key, user)
    if earlier:
        return Made(earlier, recorded=False)
    breaker = throttle.check_submit()
    try:
        jobs, locked = _record_together(user, model, members, stack_key=stack_key, **fields)
    except (IntegrityError, budgets.OverBudget):
        # The same form posted twice at once: the other request recorded it (and its spend
        # may be what now fills the budget).
        twins = _made_from(key, user)
        if not twins:
            raise
        return Made(twins, recorded=False)
    if jobs[0].status != Status.AWAITING:
        with pixelbyte.client_or_default(client) as api:
            jobs = _send_all(jobs, api, breaker)
    added = sum(job.billed_micro_cents for job in jobs)
    return Made(jobs, recorded=True, budgets=[budget.after(added) for budget in locked.budgets])


def approve_and_send(job_id, decider, note="", *, request=None, client=None):
    """A manager's approval: the job is checked against the budgets and committed as
    sending (``approvals.approve``), then sent like any other; return it as stored."""
    breaker = throttle.check_submit()
    job = approvals.approve(job_id, decider, note, request=request)
    with pixelbyte.client_or_default(client) as api:
        job = send(job, api, breaker)
    approvals.approved_and_sent(job, decider, note)
    return job


def _own(job, user):
    if job.owner_id != user.pk:
        raise ForeignSubmissionKey()
    return job


def record(*, user, model, params, submission_key, project="", request=None, token=None, callback_url=""):
    """Record the job under its budgets' locks: to be sent, or awaiting a manager's approval.
    Raises ``budgets.OverBudget`` when it passes a budget and may not ask (an API token's own
    budget is never asked past)."""
    (job,), _ = _record_together(
        user,
        model,
        [(submission_key, params)],
        project=project,
        request=request,
        token=token,
        callback_url=callback_url,
    )
    return job


def _record_together(
    user, model, members, *, stack_key=None, project="", request=None, token=None, callback_url=""
):
    """Record ``members`` ((submission key, params) pairs) in one transaction under the
    budgets' locks, judged as one (``_judge``): all to be sent, all awaiting approval, or
    none (``budgets.OverBudget``). Returns (the jobs in the order given, the ``budgets.Locked``
    they were judged against)."""
    rows = [(key, Job.input_fields(model, params)) for key, params in members]
    with transaction.atomic():
        locked = budgets.lock(user, token=token)
        ask = _judge(user, locked, [fields["estimated_micro_cents"] for _, fields in rows])
        jobs = [
            lifecycle.record(
                owner=user,
                team=locked.team,
                project=project,
                submission_key=key,
                stack_key=stack_key,
                api_token=token,
                callback_url=callback_url,
                **fields,
                status=Status.AWAITING if ask else Status.SUBMITTING,
                # Settling replaces this; it only matters if this process dies mid-call,
                # when the sync worker reconciles the row with PixelByte's list.
                next_check_at=None if ask else timezone.now() + STALLED_SUBMIT,
            )
            for key, fields in rows
        ]
        if ask is not None:
            # One request per job: a manager may still approve some and decline others.
            for job in jobs:
                approvals.open_request(job, ask, request=request)
        return jobs, locked


def _judge(user, locked, costs):
    """Why jobs costing ``costs`` must wait for a manager (an ``approvals.Ask``), or None to
    send them. Raises ``budgets.OverBudget`` when their total passes a budget they may not
    ask past. Several jobs are judged as one: every budget against their total."""
    total = sum(costs)
    refusal = budgets.OverBudget if len(costs) == 1 else partial(StackOverBudget, count=len(costs))
    for budget in locked.over(total, kinds=("token",)):
        raise refusal(budget, total)
    ask = approvals.reason_to_ask(user, locked, total) if len(costs) == 1 else _stack_ask(user, locked, costs)
    if ask is None:
        for budget in locked.over(total):
            raise refusal(budget, total)
    return ask


def _stack_ask(user, locked, costs):
    """``approvals.reason_to_ask`` for several jobs: their total against the budgets, each
    one's price against the team's threshold (which is per video)."""
    team, total = locked.team, sum(costs)
    if team is None or approvals.decides_for_team(user, locked.profile):
        return None
    over = locked.over(total, kinds=("user", "team"))
    if not over:
        return approvals.reason_to_ask(user, locked, max(costs))
    if not team.members_may_ask:
        return None  # a budget refuses them, whatever their price
    refusal = StackOverBudget(over[0], total, count=len(costs))
    return approvals.Ask(ApprovalReason.OVER_BUDGET, str(refusal).replace("Not sent: ", ""))


class StackOverBudget(budgets.OverBudget):
    """Several videos that together do not fit a budget: ``OverBudget``'s words, for all."""

    def __init__(self, budget, cost, count):
        super().__init__(budget, cost)
        self.count = count
        price = pricing.format_dollars(cost)
        text = str(self).replace(
            f"this video costs {price}, but", f"these {count} videos cost {price} together, but", 1
        )
        self.args = (text,)


def webhook_url_for(job):
    """Where PixelByte should call back for this job, or None when it cannot reach us.

    The API only calls https URLs. The sandbox also calls plain http on loopback,
    so the whole path runs on one machine.
    """
    base = settings.PUBLIC_BASE_URL
    parts = urlsplit(base)
    sandbox_loopback = not settings.PIXELBYTE_API_KEY and parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not sandbox_loopback:
        return None
    return f"{base}{reverse('jobs:webhook', args=[job.webhook_token])}"


def send(job, client, breaker=None):
    """Call the API for a recorded job, store the outcome, and return the job as stored."""
    try:
        result = client.submit(job.model_slug, job.params, webhook_url=webhook_url_for(job))
    except pixelbyte.ApiError as exc:
        throttle.record_submit(exc, breaker)
        return settle_error(job, exc)
    throttle.record_submit(None, breaker)
    return settle_success(job, result)


def settle_success(job, result):
    """Store the submit answer (see ``lifecycle.accept``); return the job."""
    try:
        job = lifecycle.accept(job.pk, result)
    except IntegrityError:
        # Never seen from PixelByte, but a unique remote id is the schema's invariant (so it is
        # not looked up before every answer): the change was rolled back; keep both rows intact.
        taken = (
            Job.objects.filter(remote_id=result.job_id)
            .exclude(pk=job.pk)
            .values_list("pk", flat=True)
            .first()
        )
        if taken is None:
            raise
        return settle_error(
            job,
            pixelbyte.BadResponse(
                f"PixelByte answered with job id {result.job_id}, which already belongs to video #{taken}; "
                "the outcome of this one is unknown.",
                code="DUPLICATE_JOB_ID",
                request_id=result.request_id,
            ),
        )
    cost = job.api_cost_micro_cents
    log.info(
        "job %s sent: remote id %s, request %s, cost %s µ¢",
        job.pk,
        job.remote_id,
        job.request_id or "-",
        cost,
    )
    if cost is not None and cost != job.estimated_micro_cents:
        log.warning(
            "job %s: PixelByte charged %s µ¢ but the studio estimated %s µ¢",
            job.pk,
            cost,
            job.estimated_micro_cents,
        )
    return job


def settle_error(job, exc):
    """Store a failed submit: outcome unknown when PixelByte may have acted on it, else not
    sent; return the job. A webhook that already reported the job's fate wins."""
    verb = lifecycle.mark_unknown if exc.maybe_processed else lifecycle.mark_not_sent
    verb(job.pk, code=exc.code or type(exc).__name__, message=exc.message, request_id=exc.request_id or "")
    job.refresh_from_db()
    log.warning(
        "job %s %s: %s (code %s, HTTP %s, request %s)",
        job.pk,
        "outcome unknown" if exc.maybe_processed else "not sent",
        exc.message,
        job.error_code,
        exc.http_status or "-",
        exc.request_id or "-",
    )
    return job


class CannotCancel(Exception):
    """The job cannot be cancelled (any more); the message says why."""


def cancel_job(job, client=None):
    """Cancel a job still pending at PixelByte and record its refund."""
    if job.status != Status.PENDING or not job.remote_id:
        raise CannotCancel("Only a video still waiting in the queue can be cancelled.")
    try:
        with pixelbyte.client_or_default(client) as api:
            result = api.cancel(job.remote_id)
    except pixelbyte.ApiError as exc:
        log.warning("job %s: cancel refused: %s (code %s)", job.pk, exc.message, exc.code or "-")
        if exc.code == "JOB_CANNOT_BE_CANCELLED":
            # It started meanwhile: let the worker read its real state soon.
            Job.objects.filter(pk=job.pk).update(next_check_at=timezone.now())
            raise CannotCancel(
                "PixelByte has already started this video, so it can no longer be cancelled."
            ) from exc
        raise CannotCancel(f"The video was not cancelled: {exc.message}") from exc
    job, _ = lifecycle.cancelled(job.pk, result.refunded_micro_cents)
    log.info("job %s cancelled; refunded %s µ¢", job.pk, result.refunded_micro_cents)
    return job


# --- several videos from one form post (a stack) ------------------------------------------


def submit_stack(*, user, model, params, count, submission_key, project="", client=None, request=None):
    """Create ``count`` jobs for this form post, with the same prompt and options, each with
    its own seed (``stacks.seeds``: the seed sent is stored on each), and send them; return
    them in the order made. A count of 1 is ``submit_job``.

    One post, one key: the jobs of a stack share ``submission_key`` as their ``stack_key``,
    each with a key of its own derived from it, and a second call with the same key returns
    the jobs the first made and sends nothing. They are recorded together, checked against
    every budget as one (``budgets.OverBudget``, for their total: all or none), all awaiting
    a manager when the team's rule makes them wait; then each is sent.
    """
    made = submit_form(
        user=user,
        model=model,
        params=params,
        count=count,
        submission_key=submission_key,
        project=project,
        client=client,
        request=request,
    )
    return made.jobs


def submit_form(*, user, model, params, count, submission_key, project="", client=None, request=None):
    """``submit_stack``, answered as a ``Made``: the jobs, whether this post recorded them, and
    the budgets as they stand after them (which the form shows without reading them again)."""
    fields = {"project": project, "request": request, "client": client}
    if count == 1:
        return _make(user, model, [(submission_key, params)], **fields)
    spec = model.input("seed")
    chosen = stacks.seeds(params.get(spec.name), count, spec.max_value)
    members = [
        (stacks.member_key(submission_key, i), {**params, spec.name: seed}) for i, seed in enumerate(chosen)
    ]
    return _make(user, model, members, stack_key=submission_key, **fields)


def _made_from(submission_key, user):
    """The jobs an earlier post of this form made (a stack, or one job), in the order made.
    Almost every post is a new one: whether there are any is asked first, a query far cheaper
    to build than one of every column."""
    made = Job.objects.filter(Q(stack_key=submission_key) | Q(submission_key=submission_key))
    if not made.exists():
        return []
    jobs = list(made.order_by("pk"))
    for job in jobs:
        _own(job, user)
    return jobs


def _send_all(jobs, api, breaker):
    """Send recorded jobs one after the other. Once PixelByte asks the studio to wait (or the
    breaker opens), the rest are not sent, which charges nothing, rather than sent into a
    refusal."""
    sent = []
    for job in jobs:
        if sent:
            try:
                breaker = throttle.check_submit()
            except throttle.SubmissionPaused as exc:
                lifecycle.mark_not_sent(job.pk, code="PAUSED", message=str(exc))
                job.refresh_from_db()
                sent.append(job)
                continue
        sent.append(send(job, api, breaker))
    return sent


# --- the JSON API's doors into the same path ----------------------------------------------


def submit_for_token(
    *, token, model, params, submission_key, project="", callback_url="", client=None, request=None
):
    """``submit_job`` for an API token's person, with the token; returns (the job, whether this
    call recorded it), which the API reports as a replay when False."""
    fields = {"model": model, "params": params, "project": project, "request": request}
    job, recorded = _submit(
        token.user, submission_key, client, token=token, callback_url=callback_url, **fields
    )
    if job.api_token_id == token.pk:
        job.api_token = token  # the answer names it, and the request has read it already
    return job, recorded


@dataclass(frozen=True)
class Outlook:
    """What submitting a job would do now (``outlook``)."""

    budgets: list  # every budget that applies, with its spend
    refused_by: object  # the budget that would refuse it (a ``budgets.Budget``), or None
    ask: object  # why it would wait for a manager (an ``approvals.Ask``), or None


def outlook(user, profile, cost, token=None, now=None):
    """What ``record`` would decide for a job of ``cost`` now (refuse it, ask a manager, or
    send it), read without locking or recording anything: an estimate, which a submit made
    meanwhile may change. ``profile`` as ``access.profile_of`` reads it (or None)."""
    found = budgets.budgets_of(user, profile, now, token=token)
    seen = budgets.Locked(profile.team if profile is not None else None, profile, found)
    for budget in seen.over(cost, kinds=("token",)):
        return Outlook(found, budget, None)
    ask = approvals.reason_to_ask(user, seen, cost)
    refused_by = None if ask is not None else next(iter(seen.over(cost)), None)
    return Outlook(found, refused_by, ask)


def cancel_and_record(job, request):
    """``cancel_job``, then the cancellation in the audit trail with the charge it took off."""
    billed = job.billed_micro_cents
    job = cancel_job(job)
    audit.job_cancelled(request, job, billed)
    return job
