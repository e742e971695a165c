"""Submitting a job: record first, call the API second, settle third.

The job row is committed before the API is called, so a crash or a timeout never
loses a paid request. The call runs outside any transaction. A submission is
never retried blindly: only a request that provably did not reach the API is
tried again (inside the client); an answer that may have created a job leaves
the row ``unknown`` until the API says what happened.
"""

import logging
import time
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from . import budgets, pixelbyte
from .lifecycle import REMOTE_STATUSES, Update, apply_to_locked, apply_update
from .models import Job, Status

log = logging.getLogger(__name__)

COOLDOWN_KEY = "pixelbyte:submit-cooldown-until"
# When the worker first looks for a job whose submit answer never came.
STALLED_SUBMIT = timedelta(minutes=2)
UNKNOWN_FIRST_CHECK = timedelta(seconds=30)


class SubmissionPaused(Exception):
    """Submissions are paused for a while (the API asked us to wait, or is failing)."""

    def __init__(self, seconds, reason="PixelByte asked the studio to slow down."):
        self.seconds = seconds
        super().__init__(f"{reason} Nothing was sent; try again in {seconds} s.")


# --- the circuit breaker (API-09) ------------------------------------------------------
# After BREAKER_THRESHOLD submits in a row fail for lack of an answer (network down,
# timeouts, 5xx), new submits fail at once without calling PixelByte, for a cool-off;
# then exactly one trial submit is let through, and its outcome closes or re-opens it.

BREAKER_KEY = "pixelbyte:breaker"
BREAKER_TRIAL_KEY = "pixelbyte:breaker-trial"
BREAKER_THRESHOLD = 5
BREAKER_FAILURES = (pixelbyte.NotSent, pixelbyte.NoAnswer, pixelbyte.ServerError)


def breaker_allows(state):
    """Raise ``SubmissionPaused`` while the breaker (``state``, as read from the cache) is
    open; let one trial through after."""
    if not state or state["failures"] < BREAKER_THRESHOLD:
        return
    left = state["open_until"] - time.time()
    reason = "PixelByte is not answering, so the studio paused submissions."
    if left > 0:
        raise SubmissionPaused(int(-(-left // 1)), reason)
    if not cache.add(BREAKER_TRIAL_KEY, True, timeout=settings.PIXELBYTE_BREAKER_COOLOFF):
        raise SubmissionPaused(5, reason + " A test submission is under way.")


def breaker_record(exc=None, seen=None):
    """Count a submit's outcome. ``seen`` is the breaker state read before the call
    (a trial is only ever let through with one): when there was none and PixelByte
    answered, there is nothing to clear."""
    if exc is None or not isinstance(exc, BREAKER_FAILURES):
        if seen:  # PixelByte answered: it is up
            cache.delete_many([BREAKER_KEY, BREAKER_TRIAL_KEY])
        return
    state = cache.get(BREAKER_KEY) or {"failures": 0, "open_until": 0}
    state["failures"] += 1
    if state["failures"] >= BREAKER_THRESHOLD:
        state["open_until"] = time.time() + settings.PIXELBYTE_BREAKER_COOLOFF
        cache.delete(BREAKER_TRIAL_KEY)
        log.warning("%s submits in a row got no answer: pausing submissions", state["failures"])
    cache.set(BREAKER_KEY, state, timeout=None)


class ForeignSubmissionKey(Exception):
    """The submission key belongs to someone else's job."""


def cooldown_remaining(until=...):
    """Whole seconds left before the studio may submit again (0 when free)."""
    if until is ...:
        until = cache.get(COOLDOWN_KEY)
    if until is None:
        return 0
    return max(0, int(-(-(until - time.time()) // 1)))


def _may_submit():
    """Raise ``SubmissionPaused`` during a pause PixelByte asked for or while the breaker
    is open; return the breaker state seen. One read of the shared cache."""
    found = cache.get_many([COOLDOWN_KEY, BREAKER_KEY])
    wait = cooldown_remaining(found.get(COOLDOWN_KEY))
    if wait:
        raise SubmissionPaused(wait)
    breaker_allows(found.get(BREAKER_KEY))
    return found.get(BREAKER_KEY)


def start_cooldown(retry_after):
    seconds = settings.PIXELBYTE_DEFAULT_COOLDOWN if retry_after is None else retry_after
    seconds = min(max(seconds, 1), settings.PIXELBYTE_MAX_COOLDOWN)
    cache.set(COOLDOWN_KEY, time.time() + seconds, timeout=seconds + 1)
    return seconds


def submit_job(*, user, model, params, submission_key, project="", client=None):
    """Create the job for this form post and send it; return the job.

    A second call with the same ``submission_key`` returns the first job and
    sends nothing. Raises ``budgets.OverBudget`` (nothing recorded, nothing sent)
    when the job does not fit a budget.
    """
    existing = Job.objects.filter(submission_key=submission_key).first()
    if existing is not None:
        return _own(existing, user)
    breaker = _may_submit()
    try:
        job = record(user=user, model=model, params=params, submission_key=submission_key, project=project)
    except (IntegrityError, budgets.OverBudget):
        # The same form posted twice at once: the other request recorded it (and
        # its spend may be what now fills the budget).
        twin = Job.objects.filter(submission_key=submission_key).first()
        if twin is None:
            raise
        return _own(twin, user)
    owns_client = client is None
    client = client or pixelbyte.client_from_settings()
    try:
        send(job, client, breaker)
    finally:
        if owns_client:
            client.close()
    return job


def _own(job, user):
    if job.owner_id != user.pk:
        raise ForeignSubmissionKey()
    return job


def record(*, user, model, params, submission_key, project=""):
    cost = model.cost(params)
    with transaction.atomic():
        team = budgets.lock_and_check(user, cost)
        return Job.objects.create(
            owner=user,
            team=team,
            project=project,
            submission_key=submission_key,
            model_slug=model.slug,
            prompt=params["prompt"],
            quality=params["quality"],
            duration=int(params["duration"]),
            aspect_ratio=params["aspect_ratio"],
            seed=params.get("seed"),
            params=params,
            estimated_micro_cents=cost,
            # Settling replaces this; it only matters if this process dies mid-call,
            # when the sync worker reconciles the row with PixelByte's list.
            next_check_at=timezone.now() + STALLED_SUBMIT,
        )


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
    """Call the API for a recorded job and store the outcome on it."""
    try:
        result = client.submit(job.model_slug, job.params, webhook_url=webhook_url_for(job))
    except pixelbyte.ApiError as exc:
        breaker_record(exc, breaker)
        settle_error(job, exc)
    else:
        breaker_record(None, breaker)
        settle_success(job, result)
    return job


def settle_success(job, result):
    """Store the submit answer. A webhook may already have moved the job on (its URL
    carries the job's token), so only what is still missing is written, under the lock."""
    now = timezone.now()
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
    status = result.status if result.status in REMOTE_STATUSES else Status.PENDING
    with transaction.atomic():
        locked = Job.objects.select_for_update().get(pk=job.pk)
        locked.remote_id = locked.remote_id or result.job_id
        locked.request_id = locked.request_id or result.request_id
        if locked.api_cost_micro_cents is None:
            locked.api_cost_micro_cents = result.cost_micro_cents
        locked.estimated_completion_at = locked.estimated_completion_at or result.estimated_completion_at
        locked.submitted_at = locked.submitted_at or now
        apply_to_locked(
            locked,
            Update(status=status),
            now=now,
            also_save=(
                "remote_id",
                "request_id",
                "api_cost_micro_cents",
                "estimated_completion_at",
                "submitted_at",
            ),
        )
    job.__dict__.update({f.attname: getattr(locked, f.attname) for f in Job._meta.concrete_fields})
    log.info(
        "job %s sent: remote id %s, request %s, charged %s µ¢",
        job.pk,
        job.remote_id,
        job.request_id or "-",
        job.api_cost_micro_cents,
    )
    if job.api_cost_micro_cents is not None and job.api_cost_micro_cents != job.estimated_micro_cents:
        log.warning(
            "job %s: PixelByte charged %s µ¢ but the studio estimated %s µ¢",
            job.pk,
            job.api_cost_micro_cents,
            job.estimated_micro_cents,
        )


def settle_error(job, exc):
    """Store a failed submit. Only a job still ``submitting`` is touched: a webhook that
    already reported the job's fate knows better than a lost answer."""
    if isinstance(exc, pixelbyte.RateLimited):
        start_cooldown(exc.retry_after)
    now = timezone.now()
    unknown = exc.maybe_processed
    Job.objects.filter(pk=job.pk, status=Status.SUBMITTING).update(
        status=Status.UNKNOWN if unknown else Status.REFUSED,
        error_code=(exc.code or type(exc).__name__)[:64],
        error_message=exc.message,
        request_id=(exc.request_id or "")[:128],
        updated_at=now,
        next_check_at=now + UNKNOWN_FIRST_CHECK if unknown else None,
    )
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


class CannotCancel(Exception):
    """The job cannot be cancelled (any more); the message says why."""


def cancel_job(job, client=None):
    """Cancel a job still pending at PixelByte and record its refund."""
    if job.status != Status.PENDING or not job.remote_id:
        raise CannotCancel("Only a video still waiting in the queue can be cancelled.")
    owns_client = client is None
    client = client or pixelbyte.client_from_settings()
    try:
        result = client.cancel(job.remote_id)
    except pixelbyte.ApiError as exc:
        log.warning("job %s: cancel refused: %s (code %s)", job.pk, exc.message, exc.code or "-")
        if exc.code == "JOB_CANNOT_BE_CANCELLED":
            # It started meanwhile: let the worker read its real state soon.
            Job.objects.filter(pk=job.pk).update(next_check_at=timezone.now())
            raise CannotCancel(
                "PixelByte has already started this video, so it can no longer be cancelled."
            ) from exc
        raise CannotCancel(f"The video was not cancelled: {exc.message}") from exc
    finally:
        if owns_client:
            client.close()
    job, _ = apply_update(job.pk, Update(status=Status.CANCELLED))
    if job.status == Status.CANCELLED:
        Job.objects.filter(pk=job.pk).update(refunded_micro_cents=result.refunded_micro_cents)
        job.refunded_micro_cents = result.refunded_micro_cents
    log.info("job %s cancelled; refunded %s µ¢", job.pk, result.refunded_micro_cents)
    return job
