"""Receiving PixelByte's webhooks: verify, record, apply.

Nothing in a callback is trusted until it is verified:

1. the body is refused unread when it is over ``MAX_BODY``;
2. with a webhook secret configured, ``X-PixelByte-Signature`` must be
   ``sha256=`` + hex HMAC-SHA256(secret, timestamp + "." + raw body), compared in
   constant time, with ``X-PixelByte-Timestamp`` within the tolerance of our clock;
3. the per-job token in the URL must belong to a job, so a callback can only
   touch the job it was issued for (without a secret this is the only check);
4. only then is the body parsed.

A verified callback is a signal: its status is applied at once, and the job is
marked for the sync worker to read back from the API (the contract does not
document the webhook's ``output`` shape for videos). The receiver itself makes
no outbound call, so it answers in milliseconds.

Every delivery is kept as a ``WebhookDelivery`` row; a replay of a delivery
already processed is acknowledged and changes nothing.
"""

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction

from . import pixelbyte
from .lifecycle import Outcome, Update, apply_to_locked, apply_update
from .models import Job, Verdict, WebhookDelivery

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
KEPT_HEADERS = ("Content-Type", "User-Agent", "X-PixelByte-Timestamp", "X-PixelByte-Signature")
SIGNATURE_SCHEME = "sha256="

OUTCOME_VERDICTS = {
    Outcome.APPLIED: Verdict.APPLIED,
    Outcome.FILLED: Verdict.FILLED,
    Outcome.UNCHANGED: Verdict.UNCHANGED,
    Outcome.STALE: Verdict.STALE,
    Outcome.INVALID: Verdict.INVALID_STATUS,
}


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
        return _refuse(Verdict.TOO_LARGE, 413, record, body)
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
            return _refuse(refused.verdict, refused.http_status, {**record, "signature_valid": False}, body)
        record["signature_valid"] = True
    job = Job.objects.filter(webhook_token=token).only("pk", "remote_id").first() if token else None
    if job is None:
        return _refuse(Verdict.BAD_TOKEN, 404, record, body)
    record["job"] = job
    try:
        payload = pixelbyte.unwrap(json.loads(body))
    except (ValueError, UnicodeDecodeError):
        payload = None
    if not isinstance(payload, dict):
        return _refuse(Verdict.MALFORMED, 400, record, body)
    remote = pixelbyte.remote_job_from(payload)
    record.update(remote_job_id=remote.job_id[:128], reported_status=remote.status[:32])
    if remote.job_id and job.remote_id and remote.job_id != job.remote_id:
        # Signed for this URL but about another job: acknowledge so it stops, change nothing.
        return _refuse(Verdict.UNKNOWN_JOB, 200, record, body)
    dedup_key = hashlib.sha256(f"{token}|{timestamp}|".encode() + body).hexdigest()
    return _process(job, remote, record, body, dedup_key)


def _process(job, remote, record, body, dedup_key):
    """Apply a verified delivery and keep it, in one transaction: the job's row is
    locked and updated, then the delivery is stored with its verdict. Storing it
    fails on a delivery already processed (its dedup key is unique), which undoes
    the whole transaction: a replay changes nothing."""
    try:
        with transaction.atomic():
            locked = Job.objects.select_for_update().get(pk=job.pk)
            outcome = apply_to_locked(locked, Update.from_remote(remote), refetch=True)
            verdict = OUTCOME_VERDICTS[outcome]
            WebhookDelivery.objects.create(
                verdict=verdict, http_status=200, body=_text(body), dedup_key=dedup_key, **record
            )
    except IntegrityError:
        # The same delivery again (a replay, or a copy racing this one): already handled.
        return _refuse(Verdict.DUPLICATE, 200, record, body)
    log.info("webhook for job %s: %s", job.pk, verdict)
    return Receipt(200, verdict, locked)


# What is kept of a refused body: enough to explain it, too little to fill the disk.
REFUSED_BODY_KEPT = 1024


def _refuse(verdict, http_status, record, body):
    kept = body if http_status < 300 else body[:REFUSED_BODY_KEPT]
    WebhookDelivery.objects.create(verdict=verdict, http_status=http_status, body=_text(kept), **record)
    log.warning("webhook refused or ignored: %s (HTTP %s)", verdict, http_status)
    return Receipt(http_status, verdict, record.get("job"))


def _text(body):
    # PostgreSQL text cannot hold NUL; a stored body is for reading, so mark it instead.
    return body[:MAX_BODY].decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def reapply(delivery):
    """Apply a stored, trusted delivery again (a staff action); return the outcome."""
    if not delivery.trusted:
        raise ValueError("Only a verified delivery for a known job can be re-applied.")
    payload = pixelbyte.unwrap(json.loads(delivery.body))
    remote = pixelbyte.remote_job_from(payload)
    _, outcome = apply_update(delivery.job_id, Update.from_remote(remote), refetch=True)
    return outcome
