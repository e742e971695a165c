"""Submitting a job: record first, call the API second, settle third.

The job row is committed before the API is called, so a crash or a timeout never
loses a paid request. The call runs outside any transaction. A submission is
never retried blindly: only a request that provably did not reach the API is
tried again (inside the client); an answer that may have created a job leaves
the row ``unknown`` until the API says what happened.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from . import approvals, audit, budgets, lifecycle, pixelbyte, throttle
from .models import Job, Status

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


def _submit(user, submission_key, client, **fields):
    """``submit_job``; return (the job, whether this call recorded it: False when an earlier
    or concurrent call with the same key did)."""
    existing = Job.objects.filter(submission_key=submission_key).first()
    if existing is not None:
        return _own(existing, user), False
    breaker = throttle.check_submit()
    try:
        job = record(user=user, submission_key=submission_key, **fields)
    except (IntegrityError, budgets.OverBudget):
        # The same form posted twice at once: the other request recorded it (and
        # its spend may be what now fills the budget).
        twin = Job.objects.filter(submission_key=submission_key).first()
        if twin is None:
            raise
        return _own(twin, user), False
    if job.status == Status.AWAITING:
        return job, True
    with pixelbyte.client_or_default(client) as api:
        return send(job, api, breaker), True


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
    fields = Job.input_fields(model, params)
    cost = fields["estimated_micro_cents"]
    with transaction.atomic():
        locked = budgets.lock(user, token=token)
        for budget in locked.over(cost, kinds=("token",)):
            raise budgets.OverBudget(budget, cost)
        ask = approvals.reason_to_ask(user, locked, cost)
        if ask is None:
            for budget in locked.over(cost):
                raise budgets.OverBudget(budget, cost)
        job = lifecycle.record(
            owner=user,
            team=locked.team,
            project=project,
            submission_key=submission_key,
            api_token=token,
            callback_url=callback_url,
            **fields,
            status=Status.AWAITING if ask else Status.SUBMITTING,
            # Settling replaces this; it only matters if this process dies mid-call,
            # when the sync worker reconciles the row with PixelByte's list.
            next_check_at=None if ask else timezone.now() + STALLED_SUBMIT,
        )
        if ask is not None:
            approvals.open_request(job, ask, request=request)
        return job


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
    taken = (
        Job.objects.filter(remote_id=result.job_id).exclude(pk=job.pk).values_list("pk", flat=True).first()
    )
    if taken is not None:
        # Never seen from PixelByte, but a unique id is our invariant: keep both rows intact.
        return settle_error(
            job,
            pixelbyte.BadResponse(
                f"PixelByte answered with job id {result.job_id}, which already belongs to video #{taken}; "
                "the outcome of this one is unknown.",
                code="DUPLICATE_JOB_ID",
                request_id=result.request_id,
            ),
        )
    job = lifecycle.accept(job.pk, result)
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


# --- the JSON API's doors into the same path ----------------------------------------------


def submit_for_token(
    *, token, model, params, submission_key, project="", callback_url="", client=None, request=None
):
    """``submit_job`` for an API token's person, with the token; returns (the job, whether this
    call recorded it), which the API reports as a replay when False."""
    fields = {"model": model, "params": params, "project": project, "request": request}
    return _submit(token.user, submission_key, client, token=token, callback_url=callback_url, **fields)


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
