"""Finished while you were away: telling a person that one of their videos is ready or failed.

In the studio. Every signed-in page runs ``static/js/notify.js``, which asks ``/jobs/finished/``
every few seconds while the page is visible (less often while hidden) which of the person's
own jobs ended since its last look (``ended_since``): one query, on the studio's own clock.
The page shows a toast for each, counts them in the tab title, and (if the person allowed it
in the browser) shows a notification; the browser's tabs share what was shown, so a job is
announced once.

``updated_at`` is the cursor, not ``completed_at``: the end time a job carries is PixelByte's
(``completedAt``), which may be well before the studio heard of it (a job the worker looks at
once a minute, a late webhook), so a cursor on it would skip jobs. ``updated_at`` is stamped
by the lifecycle when it applies the end; the page asks again with a minute of overlap, which
covers a change stamped just before it committed, and drops jobs it already announced.

By email. A person who turned it on (``Profile.mail_long_jobs``, on /account/) gets one email
when a job of theirs that took longer than ``LONG_JOB`` ends (completed or failed): the
lifecycle's ``job_ended`` signal, sent once per job, queues it (``jobs.outbox``) and the worker
delivers it.
"""

import logging
from datetime import timedelta

from django.core.exceptions import ObjectDoesNotExist
from django.dispatch import receiver
from django.urls import reverse
from django.utils import timezone
from django.utils.text import Truncator

from . import lifecycle, outbox
from .models import Job, Status

log = logging.getLogger(__name__)

ENDED = (Status.COMPLETED, Status.FAILED)
LONG_JOB = timedelta(minutes=10)
# The oldest moment a page may ask about, and how many jobs one answer carries at most.
LOOKBACK = timedelta(hours=1)
MAX_JOBS = 20
PROMPT_CHARS = 80
FIELDS = ("pk", "status", "prompt", "updated_at", "owner_id", "team_id")


# --- in the studio ------------------------------------------------------------------------


def ended_since(viewer, since, now=None):
    """The viewer's own jobs that ended (completed or failed) and changed after ``since``
    (at most ``LOOKBACK`` ago), newest first, in one query, through the access rule."""
    now = now or timezone.now()
    since = max(since, now - LOOKBACK)
    own = Job.objects.filter(owner_id=viewer.user.pk, status__in=ENDED, updated_at__gt=since)
    jobs = viewer.jobs_by_id(own.values("pk")).only(*FIELDS)
    return list(jobs.order_by("-updated_at", "-id")[:MAX_JOBS])


def headline(job):
    if job.status == Status.COMPLETED:
        return f"Video #{job.pk} is ready"
    return f"Video #{job.pk} failed"


def as_json(job):
    return {
        "id": job.pk,
        "status": job.status,
        "label": headline(job),
        "prompt": Truncator(job.prompt).chars(PROMPT_CHARS),
        "url": job.get_absolute_url(),
        "updatedAt": job.updated_at.isoformat(),
    }


# --- by email -----------------------------------------------------------------------------


@receiver(lifecycle.job_ended)
def mail_on_end(sender, job_id, **kwargs):
    try:
        mail_if_long(job_id)
    except Exception:  # a signal receiver must never break the lifecycle's caller
        log.exception("job %s: the long-job email could not be queued", job_id)


def mail_if_long(job_id):
    """Queue the owner's email if ``job_id`` ended after more than ``LONG_JOB`` and they asked
    for it; return the message, or None."""
    job = Job.objects.select_related("owner__profile").filter(pk=job_id, status__in=ENDED).first()
    if job is None or not wants_mail(job.owner):
        return None
    took = job.total_seconds
    if took is None or took <= LONG_JOB.total_seconds():
        return None
    return outbox.queue_email([job.owner.email], f"Your {headline(job).lower()}", mail_body(job, took))


def wants_mail(user):
    try:
        asked = user.profile.mail_long_jobs
    except ObjectDoesNotExist:
        return False
    return asked and user.is_active and bool(user.email)


def mail_body(job, seconds):
    minutes = round(seconds / 60)
    if job.status == Status.COMPLETED:
        opening = f"Your video #{job.pk} is ready. It took {minutes} minutes."
    else:
        reason = f" {job.error_message}" if job.error_message else ""
        opening = (
            f"Your video #{job.pk} failed after {minutes} minutes.{reason} Failed videos are not charged."
        )
    return (
        f"{opening}\n\n"
        f"Prompt: {job.prompt}\n\n"
        f"Open it: {outbox.studio_link(job.get_absolute_url())}\n\n"
        "You get this email because you asked to hear about videos that take longer than "
        f"{int(LONG_JOB.total_seconds() // 60)} minutes. "
        f"Turn it off on {outbox.studio_link(reverse('jobs:account'))}\n"
    )
