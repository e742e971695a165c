"""Stop watching a stuck job: the sync worker no longer asks PixelByte about it.

A job still in flight three times longer than expected (``Job.is_stuck``) may be one
PixelByte will never finish, and asking about it every minute forever helps nobody. Its
owner, a manager of its team or staff may stop watching it: its next check is cleared
(``next_check_at`` None is "nothing to ask", so ``sync_jobs`` never claims it again) and
the stop goes to the audit trail.

The job is not settled by this: its status and money belong to the lifecycle, so it keeps
counting at its price until PixelByte says otherwise. A webhook from PixelByte still
applies as ever, and a job that then finishes, fails or is cancelled shows it.
"""

from django.db import transaction
from django.utils import timezone

from . import audit, pricing
from .models import IN_FLIGHT, AuditAction, Job


class CannotStop(Exception):
    """The job is not stuck (any more), or nobody watches it already; the message says why."""


def may_stop(viewer, job):
    """Its owner, a manager of its team, or staff: the people who may delete its files."""
    return viewer.may_delete_files(job)


def stop_watching(job, by, *, request=None, now=None):
    """Stop asking PixelByte about ``job`` (stuck, in flight) and record who did; return the
    time it was stopped. Raises ``CannotStop`` when there is nothing to stop."""
    now = now or timezone.now()
    if job.watch_stopped_at is not None:
        raise CannotStop("The studio had already stopped watching this video.")
    if not job.remote_id or not job.is_stuck(now):
        raise CannotStop("This video is not stuck, so the studio keeps watching it.")
    with transaction.atomic():
        # Conditional, so a job that finished meanwhile (or was stopped by someone else
        # a moment ago) is left alone. A worker holding the job's lease hands it back only
        # while next_check_at still names that lease, so it cannot undo this.
        stopped = Job.objects.filter(pk=job.pk, status__in=IN_FLIGHT, watch_stopped_at__isnull=True).update(
            watch_stopped_at=now, watch_stopped_by=by, next_check_at=None
        )
        if not stopped:
            raise CannotStop("This video changed meanwhile: the page now shows where it stands.")
        _record(job, by, request, now)
    job.watch_stopped_at, job.watch_stopped_by, job.next_check_at = now, by, None
    return now


def _record(job, by, request, now):
    charge = job.billed_micro_cents
    waited = int((now - job.submitted_at).total_seconds() // 60)
    audit.record(
        AuditAction.WATCH_STOPPED,
        f"Stopped watching video #{job.pk} ({job.get_status_display().lower()} for {waited} min): the "
        f"studio no longer asks PixelByte about it; it still counts {pricing.format_dollars(charge)} "
        "until PixelByte says otherwise.",
        actor=by,
        request=request,
        team=job.team_id,
        subject=job.owner_id,
        job=job,
        detail={"status": job.status, "charge_micro_cents": charge, "minutes_since_sent": waited},
    )
