"""The studio's own copy of what it paid for: each completed job's video, thumbnail and
poster, and a JSON sidecar saying what made them, kept in the default storage (a folder on
disk, or a bucket through django-storages).

The lifecycle queues a job when it completes (``archive_status`` queued, ``archive_next_at``
now). The archiver then works in small steps, so several workers share the queue:

- ``claim`` takes the most overdue job with a conditional update of ``archive_next_at``
  (a lease; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL);
- ``archive_job`` reads the job's media links from ``GET /v1/jobs/{id}`` (never a webhook
  guess), downloads each file into a temporary file and saves it whole through the storage
  API, then records every ``ArchivedFile`` and marks the job archived in one transaction;
- a failure hands the job back with a backoff (``archive_attempts``, ``archive_error``).
  The files saved by a failed attempt are deleted, so what the rows name is always whole.

A video its host says is gone (404, 403, 410) marks the output lost and is not retried; a
video over ``ARCHIVE_MAX_BYTES`` is not retried either until ``archive_outputs`` runs again.
A missing thumbnail or poster is left out. Jobs whose files were deleted are never queued.
The lifecycle queues a job when it completes; apart from that, only this module writes the
archive fields, a person's deletion of the files included.
"""

import enum
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections import Counter
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.text import slugify

from . import pixelbyte, pricing, rollup, throttle
from .models import ArchivedFile, ArchiveStatus, FileKind, Job, Status

log = logging.getLogger(__name__)

# A lease outlasts one file's download and its save (each bounded by the deadline), and is
# renewed before every file, so a job is held no longer than its slowest file needs.
LEASE_MARGIN = timedelta(minutes=5)
BACKOFF_BASE_SECONDS = 60
MAX_BACKOFF = timedelta(hours=6)
# How often the worker's thread looks for due jobs.
LOOP_INTERVAL = 5.0
# Where downloads land on a local storage before they are moved into place; never served
# (only files with an ArchivedFile row are), and a killed worker's leftovers are removed
# by the next pass.
INCOMING = ".incoming"

DEFAULT_TYPES = {FileKind.VIDEO: "video/mp4", FileKind.THUMBNAIL: "image/jpeg", FileKind.POSTER: "image/jpeg"}
# Hosts that do not know what they serve say so with these; the kind's default is better.
GENERIC_TYPES = frozenset({"application/octet-stream", "binary/octet-stream"})
EXTENSIONS = {
    "video/mp4": ".mp4",
    "video/webm": ".webm",
    "video/quicktime": ".mov",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
}
SUFFIXES = {FileKind.VIDEO: "", FileKind.THUMBNAIL: ".thumb", FileKind.POSTER: ".poster"}


class Outcome(enum.StrEnum):
    ARCHIVED = "archived"
    LOST = "lost"  # the host no longer has the video
    FAILED = "failed"  # recorded on the job; retried later unless the error is permanent
    SKIPPED = "skipped"  # nothing to do, or another worker holds the job


class Stopped(BaseException):
    """The worker is shutting down: the job goes back to the queue as it was. A
    ``BaseException``, like ``KeyboardInterrupt``, so no ``except Exception`` on the way up
    takes it for a failed attempt."""


class LeaseLost(Exception):
    """The job is no longer this worker's (its lease ran out, or its files were deleted)."""


@dataclass(frozen=True)
class Stored:
    kind: str
    name: str
    size: int
    sha256: str
    content_type: str


# --- queueing -------------------------------------------------------------------------


def queue_unarchived(now=None):
    """Queue every completed job the studio has no copy of and nobody is working on: made
    before archiving existed, or stopped by a permanent error. Return how many."""
    waiting = Job.objects.filter(
        status=Status.COMPLETED,
        remote_id__isnull=False,
        archive_status__in=(ArchiveStatus.NONE, ArchiveStatus.QUEUED),
        archive_next_at__isnull=True,
    )
    return waiting.update(archive_status=ArchiveStatus.QUEUED, archive_next_at=now or timezone.now())


def due(now):
    return Job.objects.filter(archive_status=ArchiveStatus.QUEUED, archive_next_at__lte=now)


def lease_length():
    return timedelta(seconds=2 * settings.ARCHIVE_DOWNLOAD_DEADLINE) + LEASE_MARGIN


def claim(now, exclude=()):
    """Take the most overdue job for this worker; return (id, lease), or None."""
    candidates = due(now).exclude(pk__in=exclude)
    # A plain read first: an idle worker then never takes SQLite's write lock.
    if not candidates.exists():
        return None
    lease = now + lease_length()
    with transaction.atomic():
        pk = (
            candidates.order_by("archive_next_at")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)
            .first()
        )
        if pk is None or not due(now).filter(pk=pk).update(archive_next_at=lease):
            return None
    return pk, lease


def renew(job_id, lease):
    """Extend this worker's lease before a long step; return the new one."""
    new = timezone.now() + lease_length()
    held = Job.objects.filter(pk=job_id, archive_next_at=lease, archive_status=ArchiveStatus.QUEUED)
    if not held.update(archive_next_at=new):
        raise LeaseLost
    return new


def release(job_id, lease, **fields):
    """Hand a claimed job back with ``fields``, unless it is no longer this worker's."""
    return Job.objects.filter(pk=job_id, archive_next_at=lease).update(**fields)


# --- one job ----------------------------------------------------------------------------


def archive_job(job_id, lease, client, *, on_chunk=None):
    """Copy one claimed job's outputs into the default storage; return an ``Outcome``."""
    job = Job.objects.select_related("owner", "team").filter(pk=job_id).first()
    if job is None:
        return Outcome.SKIPPED
    if job.archive_status != ArchiveStatus.QUEUED or job.status != Status.COMPLETED or not job.remote_id:
        release(job_id, lease, archive_next_at=None)
        return Outcome.SKIPPED
    attempt = Attempt(job, lease, on_chunk)
    try:
        return attempt.run(client)
    except (pixelbyte.MediaGone, pixelbyte.TooLarge) as exc:
        attempt.discard()
        return given_up(job, attempt.lease, exc)
    except LeaseLost:
        attempt.discard()
        return Outcome.SKIPPED
    except Exception as exc:
        attempt.discard()
        return failed(job, attempt.lease, exc)
    except BaseException:
        # Stopped, Ctrl+C, SystemExit: nothing half-done stays, and the job is due again.
        attempt.discard()
        with suppress(Exception):
            release(job_id, attempt.lease, archive_next_at=timezone.now())
        raise


def given_up(job, lease, exc):
    """The video is gone at its host, or too large to copy: stop retrying, and say why."""
    now = timezone.now()
    fields = {"archive_next_at": None, "archive_error": exc.message, "archive_attempts": _more(job)}
    if isinstance(exc, pixelbyte.MediaGone):
        fields.update(archive_status=ArchiveStatus.LOST, archive_lost_at=now)
    log.warning("job %s: not archived, and not retried: %s", job.pk, exc.message)
    release(job.pk, lease, **fields)
    return Outcome.LOST if isinstance(exc, pixelbyte.MediaGone) else Outcome.FAILED


def failed(job, lease, exc):
    """Record a failure the next attempt may not meet, and back off."""
    attempts = _more(job)
    delay = min(MAX_BACKOFF, timedelta(seconds=BACKOFF_BASE_SECONDS * 2 ** min(attempts - 1, 12)))
    message = describe(exc)
    if isinstance(exc, pixelbyte.RateLimited):
        delay = max(delay, timedelta(seconds=throttle.pause(exc.retry_after)))
    elif not isinstance(exc, (pixelbyte.ApiError, OSError)):
        log.exception("job %s: archiving failed unexpectedly", job.pk)
    log.warning("job %s: archiving failed (attempt %s): %s", job.pk, attempts, message)
    release(
        job.pk,
        lease,
        archive_next_at=timezone.now() + delay,
        archive_attempts=attempts,
        archive_error=message,
    )
    return Outcome.FAILED


def _more(job):
    return min(job.archive_attempts + 1, 30000)


def describe(exc):
    """A line a person can act on; no paths, URLs or credentials."""
    if isinstance(exc, pixelbyte.ApiError):
        return exc.message
    if isinstance(exc, OSError) and exc.strerror:
        return f"The studio could not store the files ({exc.strerror}); it will try again."
    return f"The studio could not store the files ({type(exc).__name__}); it will try again."


class Attempt:
    """One try at archiving a job: what it saved, so a failure can take it back."""

    def __init__(self, job, lease, on_chunk=None):
        self.job, self.lease, self.on_chunk = job, lease, on_chunk
        self.stored = []
        self.pending = []  # names in storage this attempt wrote, or may have begun to write

    def run(self, client):
        remote = client.get_job(self.job.remote_id)
        if remote.status != Status.COMPLETED or not remote.output_url:
            raise pixelbyte.BadResponse("PixelByte gave no video link for this job; trying again later.")
        self.fetch(FileKind.VIDEO, remote.output_url)
        for kind, url in ((FileKind.THUMBNAIL, remote.thumbnail_url), (FileKind.POSTER, remote.poster_url)):
            if url:
                self.fetch_optional(kind, url)
        archived_at = timezone.now()
        self.save_sidecar(archived_at)
        return self.commit(archived_at)

    def fetch_optional(self, kind, url):
        try:
            self.fetch(kind, url)
        except (pixelbyte.MediaGone, pixelbyte.TooLarge) as exc:
            log.info("job %s: %s left out: %s", self.job.pk, kind, exc.message)

    def fetch(self, kind, url):
        """Download one file into a temporary file, then save it whole."""
        self.lease = renew(self.job.pk, self.lease)
        with incoming_file() as tmp:
            got = pixelbyte.download(
                url,
                tmp,
                max_bytes=settings.ARCHIVE_MAX_BYTES,
                deadline=settings.ARCHIVE_DOWNLOAD_DEADLINE,
                connect_timeout=settings.PIXELBYTE_CONNECT_TIMEOUT,
                read_timeout=settings.PIXELBYTE_READ_TIMEOUT,
                on_chunk=self.on_chunk,
            )
            tmp.seek(0)
            content_type = media_type(got.content_type, kind)
            wanted = file_name(self.job, kind, content_type)
            content = Incoming(tmp, name=wanted)
            content.content_type = content_type  # django-storages sends it as the object's type
            name = self.save(wanted, content)
        self.stored.append(Stored(kind, name, got.size, got.sha256, content_type))

    def save(self, wanted, content):
        name = default_storage.get_available_name(
            wanted, max_length=ArchivedFile._meta.get_field("name").max_length
        )
        # Noted before saving: a save that fails midway may leave part of a file behind.
        self.pending.append(name)
        saved = default_storage.save(name, content)
        self.pending.append(saved)
        return saved

    def save_sidecar(self, archived_at):
        body = sidecar(self.job, self.stored, archived_at)
        content = ContentFile(body)
        content.content_type = "application/json"
        name = self.save(file_name(self.job, FileKind.SIDECAR, "application/json"), content)
        digest = hashlib.sha256(body).hexdigest()
        self.stored.append(Stored(FileKind.SIDECAR, name, len(body), digest, "application/json"))

    def commit(self, archived_at):
        """Record every file and mark the job archived, all at once, if it is still ours."""
        rows = [ArchivedFile(job=self.job, archived_at=archived_at, **vars(s)) for s in self.stored]
        held = Job.objects.filter(
            pk=self.job.pk, archive_next_at=self.lease, archive_status=ArchiveStatus.QUEUED
        )
        try:
            with transaction.atomic():
                ArchivedFile.objects.bulk_create(rows)
                # Conditional, so a lapsed lease or a deletion meanwhile rolls the rows back.
                if not held.update(
                    archive_status=ArchiveStatus.ARCHIVED, archive_next_at=None, archive_error=""
                ):
                    raise LeaseLost
                rollup.files_kept(self.job, sum(row.size for row in rows), len(rows))
        except IntegrityError:
            raise LeaseLost from None  # another worker recorded this job's files first
        log.info("job %s archived (%s files)", self.job.pk, len(rows))
        return Outcome.ARCHIVED

    def discard(self):
        """Delete what this attempt saved (best effort: the rows never name these files)."""
        for name in dict.fromkeys(self.pending):
            try:
                if default_storage.exists(name):
                    default_storage.delete(name)
            except Exception:
                log.warning("job %s: could not delete %s after a failed attempt", self.job.pk, name)
        self.pending, self.stored = [], []


# --- names and the sidecar ------------------------------------------------------------------


class Incoming(File):
    """A downloaded file on the storage's own disk: a local storage moves it into place
    (one rename) instead of copying its bytes a second time."""

    def temporary_file_path(self):
        return self.file.name


@contextmanager
def incoming_file():
    """A temporary file for a download: beside the archive for local storage (so saving is a
    rename on the same disk), anywhere for object storage. Removed if it was not moved."""
    folder = None
    if isinstance(default_storage, FileSystemStorage):
        folder = Path(default_storage.location) / INCOMING
        folder.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.NamedTemporaryFile(dir=folder, prefix="download-", delete=False)  # noqa: SIM115
    try:
        with tmp:
            yield tmp
    finally:
        with suppress(FileNotFoundError):
            os.unlink(tmp.name)


def sweep_incoming():
    """Remove downloads a killed worker left behind: older than any download may take."""
    if not isinstance(default_storage, FileSystemStorage):
        return
    oldest = time.time() - settings.ARCHIVE_DOWNLOAD_DEADLINE - LEASE_MARGIN.total_seconds()
    for path in (Path(default_storage.location) / INCOMING).glob("download-*"):
        with suppress(FileNotFoundError):
            if path.stat().st_mtime < oldest:
                path.unlink()


def media_type(reported, kind):
    """The type the host named, or the kind's usual one when it named none that helps."""
    return reported if reported and reported not in GENERIC_TYPES else DEFAULT_TYPES[kind]


def file_name(job, kind, content_type):
    """``videos/<yyyy>/<mm>/<id>-<slug of the prompt>`` and the kind's ending."""
    when = (job.completed_at or job.created_at).astimezone(UTC)
    slug = slugify(job.prompt)[:40].strip("-") or "video"
    if kind == FileKind.SIDECAR:
        ending = ".json"
    else:
        ending = SUFFIXES[kind] + EXTENSIONS.get(content_type, EXTENSIONS[DEFAULT_TYPES[kind]])
    return f"videos/{when:%Y}/{when:%m}/{job.pk}-{slug}{ending}"


def sidecar(job, stored, archived_at):
    """What made the video, readable without the studio's database."""
    files = {s.kind: s for s in stored}
    video = files[FileKind.VIDEO]
    data = {
        "studio_job_id": job.pk,
        "prompt": job.prompt,
        "model": job.model_slug,
        "quality": job.quality,
        "duration_seconds": job.duration,
        "aspect_ratio": job.aspect_ratio,
        "seed": job.seed,
        "project": job.project,
        "owner": job.owner.get_username(),
        "team": job.team.name if job.team_id else None,
        "pixelbyte": {"job_id": job.remote_id, "request_id": job.request_id},
        "cost": cost_of(job),
        "times": {
            "created": iso(job.created_at),
            "submitted": iso(job.submitted_at),
            "completed": iso(job.completed_at),
            "archived": iso(archived_at),
        },
        "video": {"file": base(video.name), "sha256": video.sha256, "size": video.size},
        "files": {kind: base(s.name) for kind, s in files.items()},
    }
    return json.dumps(data, indent=2, ensure_ascii=False).encode() + b"\n"


def cost_of(job):
    billed = job.billed_micro_cents
    return {
        "estimated_micro_cents": job.estimated_micro_cents,
        "api_cost_micro_cents": job.api_cost_micro_cents,
        "billed_micro_cents": billed,
        "billed_dollars": pricing.format_dollars(billed).lstrip("$").replace(",", ""),
    }


def iso(moment):
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def base(name):
    return name.rsplit("/", 1)[-1]


# --- passes -----------------------------------------------------------------------------


def run_pass(*, client=None, stop=None, on_chunk=None, on_done=None):
    """Archive due jobs one at a time until none is due (each at most once a pass) or
    ``stop`` (a ``threading.Event``) is set; return a ``Counter`` of outcomes."""
    tally = Counter()
    if throttle.pause_remaining():  # PixelByte asked every caller to wait
        return tally
    sweep_incoming()
    tried = set()
    claimed = claim(timezone.now())
    if claimed is None:
        return tally
    with pixelbyte.client_or_default(client) as api:
        while claimed is not None:
            if stop is not None and stop.is_set():
                release(*claimed, archive_next_at=timezone.now())
                break
            outcome = archive_job(*claimed, api, on_chunk=watching(stop, on_chunk))
            tally[outcome] += 1
            tried.add(claimed[0])
            if on_done is not None:
                on_done(claimed[0], outcome)
            claimed = claim(timezone.now(), exclude=tried)
    return tally


def watching(stop, on_chunk):
    """``on_chunk``, which also ends a download when the worker is asked to stop."""
    if stop is None:
        return on_chunk

    def step(size):
        if stop.is_set():
            raise Stopped
        if on_chunk is not None:
            on_chunk(size)

    return step


class Loop(threading.Thread):
    """Archive passes beside ``sync_jobs --watch``, in a thread of the same process: a
    download of minutes never delays the status checks, and a thread costs no second
    service to run. Django gives the thread its own database connection, closed after
    every pass so an idle worker holds none."""

    def __init__(self, interval=LOOP_INTERVAL):
        super().__init__(name="archiver", daemon=True)
        self.interval = interval
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            try:
                run_pass(stop=self.stopping)
            except Stopped:
                pass
            except Exception:
                # A database or storage hiccup must not end the thread; the next pass retries.
                log.exception("archive pass failed; trying again shortly")
            finally:
                connection.close()
            self.stopping.wait(self.interval)

    def stop(self):
        """Ask the thread to stop: a download in progress ends at its next piece (at most
        one read timeout away) and its job is due again at once."""
        self.stopping.set()
        self.join(settings.PIXELBYTE_READ_TIMEOUT + 5)


# --- a person deletes the studio's copy ---------------------------------------------


class NothingToDelete(Exception):
    """The job has no kept files (never archived, lost, or deleted already)."""


def delete_files(job, by, now=None):
    """Delete the studio's copy of ``job``'s files; the job, its charge and its record stay.

    The job is marked deleted first (a conditional update, so two clicks delete once),
    which stops every file being served; then each file leaves the storage and its row
    goes. A file the storage refuses to delete keeps its row, so the storage figures
    still count it, and is named in the log. Returns the names that could not be deleted.
    """
    claimed = Job.objects.filter(pk=job.pk, archive_status=ArchiveStatus.ARCHIVED).update(
        archive_status=ArchiveStatus.DELETED,
        files_deleted_at=now or timezone.now(),
        files_deleted_by=by,
        archive_next_at=None,
    )
    if not claimed:
        raise NothingToDelete(f"Job {job.pk} has no kept files.")
    kept, failed = list(ArchivedFile.objects.filter(job_id=job.pk).only("name", "size")), []
    for stored in kept:
        try:
            default_storage.delete(stored.name)
        except Exception:  # any storage's error: the other files still go
            log.exception("job %s: could not delete %s from the storage", job.pk, stored.name)
            failed.append(stored.name)
    gone = [stored for stored in kept if stored.name not in failed]
    with transaction.atomic():
        ArchivedFile.objects.filter(pk__in=[stored.pk for stored in gone]).delete()
        rollup.files_kept(job, -sum(stored.size for stored in gone), -len(gone))
    return failed
