"""The one state machine: every change of a job's status, and of the money on it.

Nothing else in the code base writes ``Job.status``, ``api_cost_micro_cents`` or
``refunded_micro_cents``; a test walks the code to keep it so. Each change of what a job
counts against budgets, or of its status class, also moves its holders' ``SpendMonth`` and
``SpendDay`` rows (``jobs.rollup``), in the same transaction. ``TRANSITIONS`` is the
table of which status may follow which; every verb below moves a job only along it.

What PixelByte says (a submit answer, a webhook, a poll, a list item adopted for a lost
answer) arrives as a ``pixelbyte.RemoteJob`` and goes through ``apply_update``:

- a terminal state (completed, failed, cancelled, refused) never changes;
- an update that is behind what is stored (processing after completed, pending
  after processing) changes nothing;
- the same update applied twice changes nothing the second time;
- an update at the same stage may fill in what was missing (the outputs after a
  webhook that carried none, an error message, the completion time).

What the studio decides itself has a verb of its own: ``record`` (a new job, counted;
or one awaiting approval, counted at nothing), ``approved`` and ``declined`` (a manager's
decision),
``accept`` (the submit answer),
``mark_unknown`` (no usable answer: the outcome is unknown), ``mark_not_sent`` (it never
reached PixelByte), ``needs_decision`` (a lost answer the worker cannot match),
``adopt`` (staff name the PixelByte job) and ``cancelled`` (with its refund).

The row is locked while it changes, so a webhook and a poll arriving together cannot
interleave.
"""

import enum
import logging
from datetime import timedelta

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from . import rollup
from .models import TERMINAL, ArchiveStatus, Job, Status, Verdict
from .pixelbyte import RemoteJob

log = logging.getLogger(__name__)

_FORWARD = {Status.PENDING, Status.PROCESSING, Status.COMPLETED, Status.FAILED, Status.CANCELLED}
# Which status may follow which. Everything not listed is refused; a terminal status has
# no way out.
TRANSITIONS = {
    # Waiting for a manager: approved (then sent), or declined (or expired).
    Status.AWAITING: {Status.SUBMITTING, Status.DECLINED},
    Status.DECLINED: set(),
    Status.SUBMITTING: _FORWARD | {Status.UNKNOWN, Status.REFUSED},
    Status.UNKNOWN: _FORWARD | {Status.REFUSED},
    Status.PENDING: _FORWARD - {Status.PENDING},
    Status.PROCESSING: {Status.COMPLETED, Status.FAILED, Status.CANCELLED},
    Status.COMPLETED: set(),
    Status.FAILED: set(),
    Status.CANCELLED: set(),
    Status.REFUSED: set(),
}
REMOTE_STATUSES = frozenset(_FORWARD)
# Sent, but what PixelByte made of it is not known yet.
UNSETTLED = (Status.SUBMITTING, Status.UNKNOWN)
PROGRESS = {Status.PENDING: 0, Status.PROCESSING: 50, Status.COMPLETED: 100}
FILLABLE = (
    "output_url",
    "thumbnail_url",
    "poster_url",
    "outputs",
    "error_code",
    "error_message",
    "completed_at",
)
MEDIA = ("output_url", "thumbnail_url", "poster_url", "outputs")

# The sync worker's rhythm: young jobs often, old ones rarely.
MIN_CHECK_SECONDS = 3
MAX_CHECK_SECONDS = 60
# When the worker first looks for a job whose submit answer may have been lost.
UNKNOWN_FIRST_CHECK = timedelta(seconds=30)


class Outcome(enum.StrEnum):
    """What applying an update did; the values are the verdicts a webhook is stored with."""

    APPLIED = Verdict.APPLIED  # the status moved forward
    FILLED = Verdict.FILLED  # same status, missing details stored
    UNCHANGED = Verdict.UNCHANGED  # nothing new
    STALE = Verdict.STALE  # behind what is stored, or a terminal job asked to change
    INVALID = Verdict.INVALID_STATUS  # a status the contract does not know

    @property
    def changed(self):
        return self in (Outcome.APPLIED, Outcome.FILLED)


# Sent once a change that raised someone's committed spend is committed (a refund sends
# nothing): budget alerts listen (``jobs.alerts``), with ``owner_id`` and ``team_id``.
spend_rose = Signal()
# Sent once a job reached a final status (completed, failed, cancelled, refused, declined)
# and that is committed, with ``job_id``: job callbacks listen (``jobs.callbacks``).
job_ended = Signal()


def _ended(job):
    job_id = job.pk
    transaction.on_commit(lambda: job_ended.send_robust(Job, job_id=job_id), robust=True)


def _moved(job, was):
    """Move the job's holders' spend rows; when spend rose, say so once it is committed."""
    if rollup.moved(job, was) > 0:
        owner_id, team_id = job.owner_id, job.team_id
        transaction.on_commit(
            lambda: spend_rose.send_robust(Job, owner_id=owner_id, team_id=team_id), robust=True
        )


def may_move(old, new):
    return Status(new) in TRANSITIONS[Status(old)]


# --- what PixelByte says ----------------------------------------------------------------


def apply_update(job_id, remote, *, now=None, refetch=False, authoritative=False):
    """Apply ``remote`` (a ``pixelbyte.RemoteJob``) to the job; return (job, outcome).

    ``authoritative`` marks a read of ``GET /v1/jobs/{id}``: its media links replace
    what a webhook suggested (the contract documents the webhook's ``output`` only
    for images, so that is a guess).

    ``refetch`` asks the sync worker to read the job back from the API at once
    (after a webhook, whose payload is only a signal) when the update told us
    something new; a stale or repeated update changes nothing at all.
    """
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        outcome = apply_to_locked(job, remote, now=now, refetch=refetch, authoritative=authoritative)
    return job, outcome


# What an update may change on a job row: only the columns that did change are written.
UPDATED_FIELDS = (
    "remote_id",
    "status",
    "progress",
    "error_code",
    "error_message",
    "started_at",
    "completed_at",
    "output_url",
    "thumbnail_url",
    "poster_url",
    "outputs",
    "updated_at",
    "next_check_at",
    "archive_status",
    "archive_next_at",
)


def apply_to_locked(job, remote, *, now=None, refetch=False, authoritative=False, also_save=(), was=None):
    """``apply_update`` for a job the caller has already locked (``select_for_update``)
    inside its own transaction; return the outcome. ``also_save`` names fields this module
    changed on the row first, written in the same statement; ``was`` is the job's billed
    amount before those changes (``rollup.before``)."""
    now = now or timezone.now()
    was = was or rollup.before(job)
    before = {name: getattr(job, name) for name in UPDATED_FIELDS}
    outcome = _apply(job, remote, now, authoritative)
    changed = list(also_save)
    if outcome.changed:
        job.updated_at = now
        job.next_check_at = now if refetch and job.remote_id else next_check_at(job, now)
        changed += [name for name in UPDATED_FIELDS if getattr(job, name) != before[name]]
    if changed:
        job.save(update_fields=list(dict.fromkeys(changed)))
        _moved(job, was)
    if outcome == Outcome.APPLIED and job.status in TERMINAL:
        _ended(job)
    if outcome == Outcome.INVALID:
        log.warning(
            "job %s: PixelByte reported an unknown status %r; left as %s", job.pk, remote.status, job.status
        )
    elif outcome == Outcome.APPLIED:
        log.info("job %s is now %s", job.pk, job.status)
    return outcome


def _apply(job, remote, now, authoritative=False):
    if remote.status not in REMOTE_STATUSES:
        return Outcome.INVALID
    adopted = bool(remote.job_id and not job.remote_id)
    if adopted:
        job.remote_id = remote.job_id
    new, old = Status(remote.status), Status(job.status)
    if new == old:
        filled = _fill(job, remote, authoritative)
        return Outcome.FILLED if filled or adopted else Outcome.UNCHANGED
    if not may_move(old, new):
        return Outcome.STALE
    if new != Status.FAILED:
        # An earlier problem (no answer, not found) is over now that the job moved on.
        job.error_code = job.error_message = ""
    job.status = new
    job.progress = max(job.progress, _progress(remote))
    if new == Status.PROCESSING or (new in TERMINAL and job.started_at is None and old == Status.PROCESSING):
        job.started_at = job.started_at or now
    if new in TERMINAL:
        job.completed_at = remote.completed_at or now
    if new == Status.COMPLETED:
        # What was paid for is copied into the studio's storage by the archiver.
        job.archive_status, job.archive_next_at = ArchiveStatus.QUEUED, now
    _fill(job, remote, authoritative)
    return Outcome.APPLIED


def _progress(remote):
    if isinstance(remote.progress, int) and 0 <= remote.progress <= 100:
        return remote.progress
    return PROGRESS.get(remote.status, 0)


def _fill(job, remote, authoritative=False):
    """Store details the job lacks (or, from an authoritative read, media links that
    differ); return whether anything was stored."""
    changed = False
    progress = max(job.progress, _progress(remote))
    if progress != job.progress:
        job.progress, changed = progress, True
    for name in FILLABLE:
        value, current = getattr(remote, name), getattr(job, name)
        if value and (not current or (authoritative and name in MEDIA and value != current)):
            setattr(job, name, value)
            changed = True
    return changed


# --- what the studio decides --------------------------------------------------------------


def accept(job_id, submitted, *, now=None):
    """Store a submit answer (``pixelbyte.Submitted``) and apply its status; return the job.

    A webhook may already have moved the job on (its URL carries the job's token), so
    only what is still missing is written."""
    now = now or timezone.now()
    status = submitted.status if submitted.status in REMOTE_STATUSES else Status.PENDING
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        was = rollup.before(job)
        job.remote_id = job.remote_id or submitted.job_id
        job.request_id = job.request_id or submitted.request_id
        if job.api_cost_micro_cents is None:
            job.api_cost_micro_cents = submitted.cost_micro_cents
        job.estimated_completion_at = job.estimated_completion_at or submitted.estimated_completion_at
        job.submitted_at = job.submitted_at or now
        answered = (
            "remote_id",
            "request_id",
            "api_cost_micro_cents",
            "estimated_completion_at",
            "submitted_at",
        )
        apply_to_locked(
            job, RemoteJob(job_id=submitted.job_id, status=status), now=now, also_save=answered, was=was
        )
    return job


def record(**fields):
    """Create a job (still sending) and count it in its holders' months, inside the caller's
    transaction (the one that checked its budgets)."""
    job = Job.objects.create(**fields)
    _moved(job, rollup.NEW)
    return job


def approved(job, *, team, now=None):
    """A manager approved a job awaiting approval (locked by the caller, in its transaction):
    it is made now, for the owner's team now, and counts from this moment, in this month."""
    now = now or timezone.now()
    if job.status != Status.AWAITING:
        raise ValueError(f"job {job.pk} is {job.status}, not awaiting approval")
    was = rollup.before(job)
    rollup.removed(job, was)
    job.status, job.team, job.created_at, job.updated_at = Status.SUBMITTING, team, now, now
    # As at a submit: if the sending process dies, the worker reconciles the row.
    job.next_check_at = now + timedelta(minutes=2)
    job.save(update_fields=["status", "team", "created_at", "updated_at", "next_check_at"])
    _moved(job, rollup.NEW)
    return job


def declined(job, *, now=None):
    """A request was declined (or expired) before anything was sent: nothing is charged."""
    now = now or timezone.now()
    if job.status != Status.AWAITING:
        raise ValueError(f"job {job.pk} is {job.status}, not awaiting approval")
    was = rollup.before(job)
    job.status, job.completed_at, job.updated_at, job.next_check_at = Status.DECLINED, now, now, None
    job.save(update_fields=["status", "completed_at", "updated_at", "next_check_at"])
    _moved(job, was)  # nothing charged; counted now as never sent
    _ended(job)
    return job


def _settle(job_id, status, fields, *, now):
    """Move a job that is still unsettled (sending, or outcome unknown, with no remote id)
    to ``status`` with ``fields``; return whether it moved."""
    sources = [s for s in UNSETTLED if s == status or may_move(s, status)]
    with transaction.atomic():
        job = (
            Job.objects.select_for_update()
            .filter(pk=job_id, remote_id__isnull=True, status__in=sources)
            .first()
        )
        if job is None:
            return False
        was = rollup.before(job)
        for name, value in {"status": status, "updated_at": now, **fields}.items():
            setattr(job, name, value)
        job.save(update_fields=["status", "updated_at", *fields])
        _moved(job, was)
        if status in TERMINAL:
            _ended(job)
    return True


def mark_unknown(job_id, *, code, message, request_id="", now=None):
    """A submit got no usable answer: it may have been created (and charged), so it counts
    until the worker finds out. Only a job still sending is touched: a webhook that
    already reported the job's fate knows better than a lost answer."""
    now = now or timezone.now()
    return bool(
        Job.objects.filter(pk=job_id, status=Status.SUBMITTING).update(
            status=Status.UNKNOWN,
            error_code=code[:64],
            error_message=message,
            request_id=request_id[:128],
            updated_at=now,
            next_check_at=now + UNKNOWN_FIRST_CHECK,
        )
    )


def mark_not_sent(job_id, *, code, message, request_id="", now=None):
    """The job never reached PixelByte (refused, or never created): nothing is charged."""
    now = now or timezone.now()
    fields = {
        "error_code": code[:64],
        "error_message": message,
        "next_check_at": None,
        "last_checked_at": now,
    }
    if request_id:
        fields["request_id"] = request_id[:128]
    return _settle(job_id, Status.REFUSED, fields, now=now)


NEEDS_DECISION = "NEEDS_DECISION"


def needs_decision(job_id, message, *, recheck_at, now=None):
    """A lost answer the worker cannot match with certainty: the job stays outcome unknown,
    counting in spend, until staff name its PixelByte job or mark it not sent."""
    now = now or timezone.now()
    fields = {"error_code": NEEDS_DECISION, "error_message": message, "next_check_at": recheck_at}
    return _settle(job_id, Status.UNKNOWN, {**fields, "last_checked_at": now}, now=now)


def adopt(job_id, remote_id, *, now=None):
    """Staff name the PixelByte job of an unknown row: the worker reads its status at once."""
    now = now or timezone.now()
    fields = {"remote_id": remote_id, "error_code": "", "error_message": "", "next_check_at": now}
    return _settle(job_id, Status.UNKNOWN, fields, now=now)


def cancelled(job_id, refunded_micro_cents, *, now=None):
    """PixelByte cancelled the job and refunded it; return (job, outcome)."""
    now = now or timezone.now()
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        refund = ()
        if may_move(job.status, Status.CANCELLED):
            job.refunded_micro_cents, refund = refunded_micro_cents, ("refunded_micro_cents",)
        outcome = apply_to_locked(job, _status_only(job, Status.CANCELLED), now=now, also_save=refund)
    return job, outcome


def _status_only(job, status):
    return RemoteJob(job_id=job.remote_id or "", status=status)


# --- timing -------------------------------------------------------------------------


def next_check_at(job, now):
    """When the sync worker should next ask about this job (None once it is finished)."""
    if job.status in TERMINAL or not job.remote_id or job.watch_stopped_at is not None:
        return None  # finished, unknown to PixelByte, or a stuck job its people stopped watching
    age = (now - (job.submitted_at or job.created_at)).total_seconds()
    delay = min(MAX_CHECK_SECONDS, max(MIN_CHECK_SECONDS, age / 6))
    return now + timedelta(seconds=delay)
