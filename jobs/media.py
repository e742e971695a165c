"""What the studio keeps, served to the people who may see it, zipped, and deleted.

Archived files (``ArchivedFile``) live in Django's default storage. A view first finds
the job through the access rule (``jobs.access``), then asks this module for the
answer:

- local storage: the bytes, streamed in 64 KiB reads with HTTP range requests (RFC 9110,
  one range) and conditional requests, or handed to nginx or Apache when
  ``MEDIA_PROXY`` says so;
- object storage (S3): a redirect to a presigned URL that lives
  ``AWS_QUERYSTRING_EXPIRE`` seconds, so the bytes never pass through the studio.

Nothing here reads a whole file: a range seeks to its first byte and reads only its
slice, and a zip of any number of videos holds one chunk at a time.
"""

import logging
import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import quote

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.utils import timezone
from django.utils.cache import get_conditional_response
from django.utils.http import content_disposition_header, http_date, parse_http_date_safe
from zipstream import ZIP_STORED, ZipStream

from .models import ArchivedFile, ArchiveStatus, FileKind

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
# Range answers: a single "bytes=first-last", "bytes=first-" or "bytes=-suffix".
_RANGE = re.compile(r"bytes=(\d*)-(\d*)", re.ASCII | re.IGNORECASE)
UNSATISFIABLE = "unsatisfiable"
SLUG_LENGTH = 40
# Pictures are asked for by every history page: the browser may keep them for an hour.
# Videos and downloads are revalidated each time (a cheap 304 after the access check).
PICTURE_CACHE = "private, max-age=3600"
FILE_CACHE = "private, no-cache"


# --- ranges -----------------------------------------------------------------------


def byte_range(header, size):
    """The single byte range ``header`` (a Range header) asks for in a file of ``size``
    bytes: ``(first, last)`` inclusive, ``UNSATISFIABLE``, or None to send the whole file.

    None covers no header, other units, anything malformed, several ranges (RFC 9110
    allows answering those with the whole file) and first > last (invalid, so ignored).
    An empty file is always sent whole: no range of it can be written in Content-Range.
    """
    match = _RANGE.fullmatch(header.strip()) if header else None
    if match is None or size == 0:
        return None
    first, last = match.groups()
    if not first:
        if not last:
            return None
        suffix = int(last)
        # A suffix longer than the file means the whole file; "bytes=-0" asks for nothing.
        return UNSATISFIABLE if suffix == 0 else (max(size - suffix, 0), size - 1)
    first, last = int(first), int(last) if last else None
    if last is not None and first > last:
        return None
    if first >= size:
        return UNSATISFIABLE
    return first, size - 1 if last is None else min(last, size - 1)


def _range_applies(request, etag, modified):
    """Whether the Range header is to be honoured: without If-Range always; with it only
    when it names the current file (the same strong ETag, or exactly its date)."""
    validator = request.headers.get("If-Range")
    if validator is None:
        return True
    if validator.startswith(('"', "W/")):
        return validator == etag
    return parse_http_date_safe(validator) == modified


# --- reading ----------------------------------------------------------------------


def read_chunks(name, start=0, length=None):
    """The bytes of stored file ``name`` from ``start``, ``length`` of them (to the end
    when None), in chunks of at most CHUNK. Opens the file only when first iterated."""
    with default_storage.open(name, "rb") as stored:
        # An S3 file object downloads the whole object on its first read; its boto3
        # object streams a byte range instead.
        remote = getattr(stored, "obj", None)
        if remote is not None:
            yield from _remote_chunks(remote, start, length)
            return
        stored.seek(start)
        remaining = length
        while remaining is None or remaining > 0:
            data = stored.read(CHUNK if remaining is None else min(CHUNK, remaining))
            if not data:
                return
            if remaining is not None:
                remaining -= len(data)
            yield data


def _remote_chunks(remote, start, length):
    if length == 0:
        return
    if start == 0 and length is None:
        body = remote.get()["Body"]
    else:
        last = "" if length is None else start + length - 1
        body = remote.get(Range=f"bytes={start}-{last}")["Body"]
    try:
        yield from body.iter_chunks(CHUNK)
    finally:
        body.close()


def keeps_local_files(storage=None):
    """Whether the storage keeps files on this machine (paths of its own), rather than
    behind URLs of its own (object storage)."""
    try:
        (storage or default_storage).path("")
    except NotImplementedError:
        return False
    return True


# --- answers ----------------------------------------------------------------------


def find(jobs, kinds):
    """The first of ``kinds`` kept for a job of ``jobs`` (one job, already narrowed to
    the person's by the access rule), with its job, in one query; None when there is none."""
    files = (
        ArchivedFile.objects.filter(
            job__in=jobs.values("pk"), job__archive_status=ArchiveStatus.ARCHIVED, kind__in=kinds
        )
        .select_related("job")
        .only(*_FILE_FIELDS)
    )
    found = {stored.kind: stored for stored in files}
    return next((found[kind] for kind in kinds if kind in found), None)


_FILE_FIELDS = (
    "name",
    "kind",
    "size",
    "content_type",
    "sha256",
    "archived_at",
    "job__id",
    "job__created_at",
    "job__prompt",
)


@dataclass(frozen=True)
class Validators:
    etag: str
    modified: int  # seconds since the epoch, as HTTP dates count them

    @classmethod
    def of(cls, stored):
        return cls(f'"{stored.sha256}"', int(stored.archived_at.timestamp()))

    def stamp(self, response, cache):
        response["ETag"] = self.etag
        response["Last-Modified"] = http_date(self.modified)
        response["Cache-Control"] = cache
        return response


def serve(request, stored, filename=None, cache=FILE_CACHE):
    """The answer to a GET for ``stored`` (access already checked): ``filename`` makes
    it a download under that name."""
    if not keeps_local_files():
        return _presigned_redirect(stored, filename)
    validators = Validators.of(stored)
    unchanged = get_conditional_response(request, etag=validators.etag, last_modified=validators.modified)
    if unchanged is not None:
        return validators.stamp(unchanged, cache)
    response = _handed_to_proxy(stored) if settings.MEDIA_PROXY else _streamed(request, stored, validators)
    if filename:
        response["Content-Disposition"] = content_disposition_header(True, filename)
    return validators.stamp(response, cache)


def _streamed(request, stored, validators):
    wanted = None
    if _range_applies(request, validators.etag, validators.modified):
        wanted = byte_range(request.headers.get("Range", ""), stored.size)
    if wanted == UNSATISFIABLE:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{stored.size}"
    elif wanted is None:
        response = StreamingHttpResponse(read_chunks(stored.name, 0, stored.size))
        response["Content-Length"] = str(stored.size)
    else:
        first, last = wanted
        response = StreamingHttpResponse(read_chunks(stored.name, first, last - first + 1), status=206)
        response["Content-Range"] = f"bytes {first}-{last}/{stored.size}"
        response["Content-Length"] = str(last - first + 1)
    if wanted != UNSATISFIABLE:
        response["Content-Type"] = stored.content_type
    response["Accept-Ranges"] = "bytes"
    return response


def _handed_to_proxy(stored):
    """An empty answer whose header tells nginx (or Apache) which file to send: the
    proxy then does ranges and the sending itself."""
    response = HttpResponse(content_type=stored.content_type)
    if settings.MEDIA_PROXY == "x-accel-redirect":
        response["X-Accel-Redirect"] = settings.MEDIA_PROXY_PREFIX + quote(stored.name)
    else:
        response["X-Sendfile"] = default_storage.path(stored.name)
    return response


def _presigned_redirect(stored, filename):
    parameters = {"ResponseContentType": stored.content_type}
    if filename:
        parameters["ResponseContentDisposition"] = content_disposition_header(True, filename)
    url = default_storage.url(stored.name, parameters=parameters, expire=settings.AWS_QUERYSTRING_EXPIRE)
    response = HttpResponseRedirect(url)
    # The link stops working in minutes: nobody may keep the redirect.
    response["Cache-Control"] = "private, no-store"
    return response


# --- names ------------------------------------------------------------------------


def prompt_slug(prompt, limit=SLUG_LENGTH):
    """The prompt as ASCII lowercase words joined by hyphens, cut at a word within
    ``limit`` characters; "video" when nothing is left."""
    text = unicodedata.normalize("NFKD", prompt).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    if len(slug) > limit:
        cut = slug[: limit + 1]
        slug = cut.rsplit("-", 1)[0] if "-" in cut else slug[:limit]
    return slug or "video"


def file_name(job, stored, zone):
    """``<date>-<prompt slug>-<job id><suffix>``, the date in ``zone`` (the viewer's)."""
    day = timezone.localtime(job.created_at, zone).date().isoformat()
    suffix = PurePosixPath(stored.name).suffix or (".json" if stored.kind == FileKind.SIDECAR else ".mp4")
    return f"{day}-{prompt_slug(job.prompt)}-{job.pk}{suffix.lower()}"


# --- the zip ----------------------------------------------------------------------


def files_to_zip(jobs):
    """The videos and sidecars kept for ``jobs``, newest job first, read in batches."""
    return (
        ArchivedFile.objects.filter(
            job__in=jobs.values("pk"),
            job__archive_status=ArchiveStatus.ARCHIVED,
            kind__in=(FileKind.VIDEO, FileKind.SIDECAR),
        )
        .select_related("job")
        .only(*_FILE_FIELDS)
        .order_by("-job__created_at", "-job_id", "-kind")
        .iterator(chunk_size=200)
    )


def zip_chunks(files, zone):
    """One zip of ``files`` (stored, not compressed: videos are compressed already),
    built while it is sent: each file is added only when the one before is written, so
    memory holds one chunk whatever the count."""
    archive = ZipStream(compress_type=ZIP_STORED)
    for stored in files:
        archive.add(
            read_chunks(stored.name, 0, stored.size), file_name(stored.job, stored, zone), size=stored.size
        )
        yield from archive.all_files()
    yield from archive.footer()


# --- deleting ---------------------------------------------------------------------
