"""Applying a remote update to a job: the one state machine.

Every status change (a submit answer, a webhook, a poll) goes through
``apply_update``. Its rules:

- a terminal state (completed, failed, cancelled, refused) never changes;
- an update that is behind what is stored (processing after completed, pending
  after processing) changes nothing;
- the same update applied twice changes nothing the second time;
- an update at the same stage may fill in what was missing (the outputs after a
  webhook that carried none, an error message, the completion time).

The row is locked while the update is applied, so a webhook and a poll arriving
together cannot interleave.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from .models import TERMINAL, Job, Status

log = logging.getLogger(__name__)

# How far along the lifecycle each status is; an update may only move forward.
STAGE = {
    Status.SUBMITTING: 0,
    Status.UNKNOWN: 0,
    Status.PENDING: 1,
    Status.PROCESSING: 2,
    Status.COMPLETED: 3,
    Status.FAILED: 3,
    Status.CANCELLED: 3,
    Status.REFUSED: 3,
}
REMOTE_STATUSES = {Status.PENDING, Status.PROCESSING, Status.COMPLETED, Status.FAILED, Status.CANCELLED}
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

# The sync worker's rhythm: young jobs often, old ones rarely.
MIN_CHECK_SECONDS = 3
MAX_CHECK_SECONDS = 60


@dataclass(frozen=True)
class Update:
    """What the API says about a job, from any source."""

    status: str
    progress: int | None = None
    output_url: str = ""
    thumbnail_url: str = ""
    poster_url: str = ""
    outputs: list | None = None
    error_code: str = ""
    error_message: str = ""
    completed_at: object = None
    remote_id: str = ""

    @classmethod
    def from_remote(cls, remote):
        """From a ``pixelbyte.RemoteJob``."""
        return cls(
            status=remote.status,
            progress=remote.progress,
            output_url=remote.output_url,
            thumbnail_url=remote.thumbnail_url,
            poster_url=remote.poster_url,
            outputs=remote.outputs,
            error_code=remote.error_code,
            error_message=remote.error_message,
            completed_at=remote.completed_at,
            remote_id=remote.job_id,
        )


class Outcome:
    APPLIED = "applied"  # the status moved forward
    FILLED = "filled"  # same status, missing details stored
    UNCHANGED = "unchanged"  # nothing new
    STALE = "stale"  # behind what is stored, or a terminal job asked to change
    INVALID = "invalid"  # a status the contract does not know


def apply_update(job_id, update, *, now=None, refetch=False, authoritative=False):
    """Apply ``update`` to the job; return (job, outcome).

    ``authoritative`` marks a read of ``GET /v1/jobs/{id}``: its media links replace
    what a webhook suggested (the contract documents the webhook's ``output`` only
    for images, so that is a guess).

    ``refetch`` asks the sync worker to read the job back from the API at once
    (after a webhook, whose payload is only a signal) when the update told us
    something new; a stale or repeated update changes nothing at all.
    """
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        outcome = apply_to_locked(job, update, now=now, refetch=refetch, authoritative=authoritative)
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
)


def apply_to_locked(job, update, *, now=None, refetch=False, authoritative=False, also_save=()):
    """``apply_update`` for a job the caller has already locked (``select_for_update``)
    inside its own transaction; return the outcome. ``also_save`` names fields the
    caller changed, written in the same statement."""
    now = now or timezone.now()
    before = {name: getattr(job, name) for name in UPDATED_FIELDS}
    outcome = _apply(job, update, now, authoritative)
    changed = list(also_save)
    if outcome in (Outcome.APPLIED, Outcome.FILLED):
        job.updated_at = now
        job.next_check_at = now if refetch and job.remote_id else next_check_at(job, now)
        changed += [name for name in UPDATED_FIELDS if getattr(job, name) != before[name]]
    if changed:
        job.save(update_fields=list(dict.fromkeys(changed)))
    if outcome == Outcome.INVALID:
        log.warning(
            "job %s: PixelByte reported an unknown status %r; left as %s", job.pk, update.status, job.status
        )
    elif outcome == Outcome.APPLIED:
        log.info("job %s is now %s", job.pk, job.status)
    return outcome


def _apply(job, update, now, authoritative=False):
    if update.status not in REMOTE_STATUSES:
        return Outcome.INVALID
    adopted = bool(update.remote_id and not job.remote_id)
    if adopted:
        job.remote_id = update.remote_id
    new, old = Status(update.status), Status(job.status)
    if new == old:
        filled = _fill(job, update, authoritative)
        return Outcome.FILLED if filled or adopted else Outcome.UNCHANGED
    if old in TERMINAL or STAGE[new] < STAGE[old]:
        return Outcome.STALE
    if new != Status.FAILED:
        # An earlier problem (no answer, not found) is over now that the job moved on.
        job.error_code = job.error_message = ""
    job.status = new
    job.progress = max(job.progress, _progress(update))
    if new == Status.PROCESSING or (new in TERMINAL and job.started_at is None and old == Status.PROCESSING):
        job.started_at = job.started_at or now
    if new in TERMINAL:
        job.completed_at = update.completed_at or now
    _fill(job, update, authoritative)
    return Outcome.APPLIED


def _progress(update):
    if isinstance(update.progress, int) and 0 <= update.progress <= 100:
        return update.progress
    return PROGRESS.get(update.status, 0)


MEDIA = ("output_url", "thumbnail_url", "poster_url", "outputs")


def _fill(job, update, authoritative=False):
    """Store details the job lacks (or, from an authoritative read, media links that
    differ); return whether anything was stored."""
    changed = False
    progress = max(job.progress, _progress(update))
    if progress != job.progress:
        job.progress, changed = progress, True
    for name in FILLABLE:
        value, current = getattr(update, name), getattr(job, name)
        if value and (not current or (authoritative and name in MEDIA and value != current)):
            setattr(job, name, value)
            changed = True
    return changed


# --- timing -------------------------------------------------------------------------


def next_check_at(job, now):
    """When the sync worker should next ask about this job (None once it is finished)."""
    if job.status in TERMINAL or not job.remote_id:
        return None
    age = (now - (job.submitted_at or job.created_at)).total_seconds()
    delay = min(MAX_CHECK_SECONDS, max(MIN_CHECK_SECONDS, age / 6))
    return now + timedelta(seconds=delay)
