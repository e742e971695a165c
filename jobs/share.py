"""Share links: one video shown to anyone who has its link (``/s/<token>/``), without signing in.

Whoever looks after a job (its owner, a manager of its team, staff: the people
``Viewer.may_delete_files`` names) makes a link; it shows the studio's own copy of the video
(never PixelByte's link), the prompt only when they chose so, and nothing else: no price, no
names, no other job. A link works until it expires (a day, a week, a month, or the end of a
chosen day) or is revoked, and stops at once: every request for the page, the video or the
poster reads the link row again, nothing about a link is cached. Each load of the page is
counted as a view (the video's range requests are not).

The token is ``secrets.token_urlsafe(24)``: 32 URL-safe characters, 192 bits. A token of any
other shape is refused before the database is asked.

Making and revoking a link are written to the audit trail, one entry each (a second revoke of
the same link changes nothing and writes nothing).
"""

import re
import secrets
from datetime import UTC, timedelta

from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import dateformat, timezone

from . import audit, outbox
from .models import ArchiveStatus, AuditAction, Job, ShareLink, Status, local_midnight

TOKEN_BYTES = 24
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32}", re.ASCII)
# The lifetimes a person may choose, by the form's value.
LIFETIMES = {
    "day": timedelta(days=1),
    "week": timedelta(days=7),
    "month": timedelta(days=30),
}
DEFAULT_LIFETIME = "week"
# A chosen day may be at most this far ahead.
MAX_DAYS = 366
# The job page lists this many of a job's links, newest first.
SHOWN = 20


def new_token():
    return secrets.token_urlsafe(TOKEN_BYTES)


def well_formed(token):
    """Whether ``token`` could be one of ours (checked before any query)."""
    return bool(_TOKEN.fullmatch(token or ""))


def expiry(lifetime=DEFAULT_LIFETIME, day=None, now=None):
    """When a link made now stops working: after ``lifetime``, or (``lifetime`` "date") as
    the day after ``day`` begins in the active time zone, so the chosen day is included."""
    if lifetime == "date":
        return local_midnight(day + timedelta(days=1))
    return (now or timezone.now()) + LIFETIMES[lifetime]


def may_share(viewer, job):
    """The people who look after a job's files decide who else may watch it."""
    return viewer.may_delete_files(job)


def why_not(job):
    """Why ``job`` cannot be shared (a sentence for the person), or None when it can: a link
    shows only the studio's own copy, which never expires the way PixelByte's link does."""
    if job.archive_status == ArchiveStatus.ARCHIVED:
        return None
    if job.archive_status == ArchiveStatus.DELETED:
        return "The studio's copy of this video was deleted, so there is nothing left to share."
    if job.archive_status == ArchiveStatus.LOST:
        return "PixelByte no longer has this video and the studio kept no copy, so it cannot be shared."
    if job.archive_status == ArchiveStatus.QUEUED:
        return "The studio is still copying this video into its storage; it can be shared once that is done."
    if job.may_still_change:
        return "The video is not finished yet: it can be shared once it is ready and kept by the studio."
    if job.status == Status.COMPLETED:
        return "The studio has not kept its own copy of this video, and a link shows only that copy."
    return "There is no video to share."


def create(job, *, by, expires_at, show_prompt=False, request=None):
    """Make a link to ``job`` (the caller checked ``may_share`` and ``why_not``); one audit entry."""
    with transaction.atomic():
        link = ShareLink.objects.create(
            job=job, token=new_token(), show_prompt=show_prompt, created_by=by, expires_at=expires_at
        )
        prompt = "the prompt shown" if show_prompt else "the prompt hidden"
        audit.record(
            AuditAction.SHARE_CREATED,
            f"{by.get_username()} made a share link to video #{job.pk}, working until "
            f"{_when(expires_at)}, {prompt}.",
            actor=by,
            request=request,
            team=job.team_id,
            subject=job.owner_id,
            job=job,
            detail={"link": link.pk, "expires_at": expires_at.isoformat(), "show_prompt": show_prompt},
        )
    return link


def revoke(link, *, by, request=None, now=None):
    """Stop ``link`` now; return whether this call stopped it (False: it already was)."""
    now = now or timezone.now()
    with transaction.atomic():
        stopped = ShareLink.objects.filter(pk=link.pk, revoked_at__isnull=True).update(
            revoked_at=now, revoked_by=by
        )
        if stopped:
            job = link.job
            audit.record(
                AuditAction.SHARE_REVOKED,
                f"{by.get_username()} revoked a share link to video #{job.pk} "
                f"(viewed {link.views} time{'' if link.views == 1 else 's'}).",
                actor=by,
                request=request,
                team=job.team_id,
                subject=job.owner_id,
                job=job,
                detail={"link": link.pk, "views": link.views},
            )
    return bool(stopped)


def _when(moment):
    # In UTC: an entry is read by people in other zones than its writer's.
    return dateformat.format(moment.astimezone(UTC), "M j, Y H:i") + " UTC"


# --- what a visitor gets ---------------------------------------------------------------------


def live(token, now=None):
    """The working link ``token`` names, with its job, in one query; None otherwise (a token
    of the wrong shape costs no query)."""
    if not well_formed(token):
        return None
    now = now or timezone.now()
    return (
        ShareLink.objects.select_related("job")
        .filter(token=token, revoked_at__isnull=True, expires_at__gt=now)
        .filter(job__archive_status=ArchiveStatus.ARCHIVED)
        .first()
    )


def shared_jobs(token, now=None):
    """The job a working ``token`` shows, as a queryset for ``media.find`` (empty when the
    link does not work); None for a token of the wrong shape."""
    if not well_formed(token):
        return None
    now = now or timezone.now()
    return Job.objects.filter(
        share_links__token=token,
        share_links__revoked_at__isnull=True,
        share_links__expires_at__gt=now,
    )


def count_view(link):
    ShareLink.objects.filter(pk=link.pk).update(views=F("views") + 1)


def address(link):
    """The link as a person sends it: absolute, on the studio's public address."""
    return outbox.studio_link(reverse("jobs:shared", args=[link.token]))
