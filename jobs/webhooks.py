"""Receiving PixelByte's webhooks: verify, record, apply.

Nothing in a callback is trusted until it is verified:

1. the body is refused unread when it is over ``MAX_BODY`` (413);
2. with a webhook secret configured, ``X-PixelByte-Signature`` must be
   ``sha256=`` + hex HMAC-SHA256(secret, timestamp + "." + raw body), compared in
   constant time, with ``X-PixelByte-Timestamp`` within the tolerance of our clock (401);
3. the per-job token in the URL must have the shape of the tokens we issue and belong
   to a job, so a callback can only touch the job it was issued for (404; without a
   secret this is the only check). A token of any other shape is refused without a
   query;
4. only then is the body parsed: it must be a JSON object whose strings are all valid
   Unicode (400 otherwise; a lone surrogate escape such as ``\\ud800`` is valid JSON
   that no database can store);
5. the signature covers the body, not the URL, so the body must name the URL's job:
   its ``jobId`` must be the job's remote id or, while the submit answer is not stored
   yet, an id no other job holds (the job then adopts it). A body without a ``jobId``
   is refused (400); one naming another job is acknowledged (200) and changes nothing.

A verified callback is a signal: its status is applied at once, and the job is
marked for the sync worker to read back from the API (the contract does not
document the webhook's ``output`` shape for videos). The receiver itself makes
no outbound call, so it answers in milliseconds.

What is kept. A delivery that passed steps 1 to 3 is stored as a ``WebhookDelivery``
with its verdict and body (cut to ``REFUSED_BODY_KEPT`` bytes when refused), whatever
happens next; a replay of one already processed is acknowledged, changes nothing and
is stored as a duplicate. A request refused at steps 1 to 3 can come from anyone, so
it adds one to the ``WebhookTally`` of its verdict and minute, and is stored (body cut
to ``REFUSED_BODY_KEPT`` bytes) and logged only while fewer than
``REFUSED_SAMPLE_PER_HOUR`` refused requests were stored in the past hour: a sample
that explains, say, a misconfigured secret, where a flood adds a counter update per
request and no row. ``sync_jobs`` prunes both on a schedule (``prune_deliveries``).
"""

import hashlib
import hmac
import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from . import pixelbyte
from .lifecycle import apply_to_locked, apply_update
from .models import ANONYMOUS_VERDICTS, Job, Verdict, WebhookDelivery, WebhookTally

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
KEPT_HEADERS = ("Content-Type", "User-Agent", "X-PixelByte-Timestamp", "X-PixelByte-Signature")
SIGNATURE_SCHEME = "sha256="
# The tokens ``new_webhook_token`` issues are URL-safe base64; the column holds 64 characters.
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# What is kept of a refused request: enough to explain it, too little to fill the disk.
REFUSED_BODY_KEPT = 1024
REFUSED_SAMPLE_PER_HOUR = 100


@dataclass(frozen=True)
class Receipt:
    http_status: int
    verdict: str
    job: Job | None = None

    @property
    def message(self):
        return Verdict(self.verdict).label


class Refused(Exception):
    def __init__(self, verdict, http_status=401):
        super().__init__(verdict)
        self.verdict = verdict
        self.http_status = http_status


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header PixelByte sends for ``body`` at ``timestamp``."""
    return SIGNATURE_SCHEME + hmac_sha256(secret.encode(), timestamp.encode() + b"." + body).hex()


def signatures_in(header: str):
    """Every ``sha256=`` digest in the header (several may be sent while a secret rotates)."""
    found = []
    for part in header.replace(",", " ").split():
        if part.lower().startswith(SIGNATURE_SCHEME):
            found.append(part[len(SIGNATURE_SCHEME) :].lower())
    return found


def verify(secret, timestamp, signature, body, *, now, tolerance):
    """Raise ``Refused`` unless the signature and timestamp are good."""
    if not timestamp or not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise Refused(Verdict.BAD_TIMESTAMP)
    if abs(now - int(timestamp)) > tolerance:
        raise Refused(Verdict.BAD_TIMESTAMP)
    digests = signatures_in(signature or "")
    if not digests:
        raise Refused(Verdict.BAD_SIGNATURE)
    expected = sign(secret, timestamp, body)[len(SIGNATURE_SCHEME) :].encode()
    # Bytes, so a non-ASCII header cannot raise; every candidate is checked so the
    # time taken does not depend on which one matched.
    matches = [hmac.compare_digest(expected, digest.encode("utf-8", "replace")) for digest in digests]
    if not any(matches):
        raise Refused(Verdict.BAD_SIGNATURE)


def receive(*, token, headers, body, source_ip=None, now=None):
    """Handle one callback; return the ``Receipt`` to answer with."""
    now = time.time() if now is None else now
    kept = {name: str(headers.get(name, ""))[:500] for name in KEPT_HEADERS if headers.get(name)}
    record = {"headers": kept, "source_ip": source_ip}
    if len(body) > MAX_BODY:
        return _refuse_anonymous(Verdict.TOO_LARGE, 413, record, body)
    secret = settings.PIXELBYTE_WEBHOOK_SECRET
    timestamp = headers.get("X-PixelByte-Timestamp", "")
    if secret:
        try:
            verify(
                secret,
                timestamp,
                headers.get("X-PixelByte-Signature", ""),
                body,
                now=now,
                tolerance=settings.PIXELBYTE_WEBHOOK_TOLERANCE,
            )
        except Refused as refused:
            record["signature_valid"] = False
            return _refuse_anonymous(refused.verdict, refused.http_status, record, body)
        record["signature_valid"] = True
    job = _job_for(token)
    if job is None:
        return _refuse_anonymous(Verdict.BAD_TOKEN, 404, record, body)
    record["job"] = job
    payload = _parse(body)
    if payload is None:
        return _refuse(Verdict.MALFORMED, 400, record, body)
    remote = pixelbyte.remote_job_from(payload)
    record.update(remote_job_id=remote.job_id[:128], reported_status=remote.status[:32])
    dedup_key = hashlib.sha256(f"{token}|{timestamp}|".encode() + body).hexdigest()
    return _process(job, remote, record, body, dedup_key)


def _job_for(token):
    """The job the URL token was issued for, or None. Any other shape of token is
    refused before a query: PostgreSQL rejects a NUL in a parameter with an error."""
    if not token or not TOKEN_SHAPE.fullmatch(token):
        return None
    return Job.objects.filter(webhook_token=token).only("pk", "remote_id").first()


def _parse(body):
    """The body's JSON object (unwrapped), or None when it is not one we can read and store."""
    try:
        document = json.loads(body)
        # A lone surrogate ("\ud800") is valid JSON but not valid Unicode: no database
        # column takes it, so the body is refused whole rather than failing half-stored.
        json.dumps(document, ensure_ascii=False).encode()
    except (ValueError, RecursionError):  # UnicodeError is a ValueError
        return None
    payload = pixelbyte.unwrap(document)
    return payload if isinstance(payload, dict) else None


def _check_named(job, remote):
    """Raise ``Refused`` unless the body names ``job`` (locked by the caller). The
    signature covers the body but not the URL, so a body must not act on the job of
    whichever URL it is posted to."""
    if not remote.job_id:
        raise Refused(Verdict.JOB_MISMATCH, 400)
    if job.remote_id:
        elsewhere = remote.job_id != job.remote_id
    else:
        # The submit answer is not stored yet: the job may adopt an id no other job holds.
        elsewhere = Job.objects.filter(remote_id=remote.job_id).exists()
    if elsewhere:
        # Signed, but news of another job: acknowledged so PixelByte stops sending it.
        raise Refused(Verdict.UNKNOWN_JOB, 200)


def _process(job, remote, record, body, dedup_key):
    """Apply a verified delivery and keep it, in one transaction: the job's row is
    locked and checked against the body, updated, then the delivery is stored with
    its verdict. Storing it fails on a delivery already processed (its dedup key is
    unique), which undoes the whole transaction: a replay changes nothing."""
    try:
        with transaction.atomic():
            locked = Job.objects.select_for_update().get(pk=job.pk)
            _check_named(locked, remote)
            # An outcome's value is the verdict it is stored with.
            verdict = Verdict(apply_to_locked(locked, remote, refetch=True))
            WebhookDelivery.objects.create(
                verdict=verdict, http_status=200, body=_text(body), dedup_key=dedup_key, **record
            )
    except Refused as refused:
        return _refuse(refused.verdict, refused.http_status, record, body)
    except IntegrityError:
        # The same delivery again (a replay, or a copy racing this one): already handled.
        return _refuse(Verdict.DUPLICATE, 200, record, body)
    log.info("webhook for job %s: %s", job.pk, verdict)
    return Receipt(200, verdict, locked)


def _refuse(verdict, http_status, record, body):
    """Keep a delivery for one of our jobs that changed nothing, with its verdict."""
    kept = body if http_status < 300 else body[:REFUSED_BODY_KEPT]
    WebhookDelivery.objects.create(verdict=verdict, http_status=http_status, body=_text(kept), **record)
    log.warning("webhook for job %s refused or ignored: %s (HTTP %s)", record["job"].pk, verdict, http_status)
    return Receipt(http_status, verdict, record["job"])


def _refuse_anonymous(verdict, http_status, record, body):
    """Count a request refused before it reached a job; store and log it only as part of
    the sample, so a flood costs a counter update, not a row and a log line each."""
    now = timezone.now()
    tally(verdict, now)
    if _sample_has_room(now):
        kept = _text(body[:REFUSED_BODY_KEPT])
        WebhookDelivery.objects.create(
            received_at=now, verdict=verdict, http_status=http_status, body=kept, **record
        )
        log.warning("webhook refused: %s (HTTP %s)", verdict, http_status)
    return Receipt(http_status, verdict)


def _sample_has_room(now):
    # Counting stops at the bound, so the check costs the same in a flood as in a trickle.
    # Concurrent requests may each see room: the sample can overshoot by one per request in flight.
    recent = WebhookDelivery.objects.filter(
        verdict__in=ANONYMOUS_VERDICTS, received_at__gte=now - timedelta(hours=1)
    )
    return recent[:REFUSED_SAMPLE_PER_HOUR].count() < REFUSED_SAMPLE_PER_HOUR


def tally(verdict, at):
    """Add one to the count of ``verdict`` for the minute of ``at``. The count is raised
    in the database (count + 1), so concurrent requests never lose one; the first of a
    minute inserts the row, and one that loses that race to the unique (minute, verdict)
    adds its one to the winner's row instead."""
    minute = at.replace(second=0, microsecond=0)
    counter = WebhookTally.objects.filter(minute=minute, verdict=verdict)
    if counter.update(count=F("count") + 1):
        return
    try:
        with transaction.atomic():  # a savepoint: a lost race must not spoil an enclosing transaction
            WebhookTally.objects.create(minute=minute, verdict=verdict, count=1)
    except IntegrityError:
        counter.update(count=F("count") + 1)


def _text(body):
    # PostgreSQL text cannot hold NUL; a stored body is for reading, so mark it instead.
    return body[:MAX_BODY].decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def reapply(delivery):
    """Apply a stored, trusted delivery again (a staff action); return the outcome."""
    if not delivery.trusted:
        raise ValueError("Only a verified delivery for a known job can be re-applied.")
    payload = pixelbyte.unwrap(json.loads(delivery.body))
    remote = pixelbyte.remote_job_from(payload)
    _, outcome = apply_update(delivery.job_id, remote, refetch=True)
    return outcome
