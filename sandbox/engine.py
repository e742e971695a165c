"""An in-memory PixelByte that follows the published API contract.

It imports nothing from the studio: it keeps its own copy of the published price
rule, so a disagreement between the studio's estimate and the charge is visible.
Jobs move pending → processing → completed on a clock (timings per job, set at
submit), and words in the prompt make the usual trouble happen on purpose:

    [fail]     the job fails while processing (and is refunded)
    [slow]     the job takes ten times as long
    [stuck]    the job never leaves processing
    [balance]  the submit is refused with INSUFFICIENT_BALANCE
    [busy]     the submit is refused with 429 CONCURRENT_JOBS_EXCEEDED, Retry-After: 5
    [expire]   the output is gone from the CDN SANDBOX_EXPIRE_SECONDS after the job
               completes (by default at once, so before the studio's archiver can copy
               it): the status still points at it, the files answer 404
    [surcharge] the job is charged 10 % more than the price rule says, so the charge
               the studio stores differs from its catalog (``manage.py reconcile``)

A completed job's output is served by the sandbox itself, like PixelByte's CDN, at
``<media base><job id>/video.mp4`` (and ``thumb.jpg``, ``poster.jpg``): anonymous, as a
CDN link is a capability URL, for jobs the sandbox still knows only. The sample follows
the job's aspect ratio, so a player gets the right shape.

State lives in this process only, so serve the sandbox from one process. It is
bounded: finished jobs are forgotten after a while and the number held is capped.
"""

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

# The published price rule for the one model the sandbox plays.
MODEL = "kling/kling-text2video-v25/text-to-video"
BASE_MICRO_CENTS_PER_SECOND = 45_000
QUALITY_FACTORS = {"std": (1, 1), "pro": (3, 2)}
DURATIONS = {"5": 5, "10": 10}
ASPECT_RATIOS = {"16:9", "9:16", "1:1"}
PROMPT_LIMIT = 2500
SEED_MAX = 2**32 - 1

# The CDN's file names for a job, and the sample behind each, per aspect ratio.
SAMPLES = Path(__file__).resolve().parent / "samples"
CDN_FILES = {"video.mp4": "sample-{}.mp4", "thumb.jpg": "thumb-{}.jpg", "poster.jpg": "poster-{}.jpg"}
SAMPLE_SHAPES = {"16:9": "16x9", "9:16": "9x16", "1:1": "1x1"}

# PixelByte's documented webhook retry delays, in seconds.
WEBHOOK_RETRY_DELAYS = (1, 4, 16, 64, 256)
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
# Where the studio receives webhooks (below its PUBLIC_BASE_URL), and the shape of the
# per-job token after it: nothing else is ever called back.
STUDIO_WEBHOOK_PATH = "/webhooks/pixelbyte/"
WEBHOOK_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}/")
FINISHED = ("completed", "failed", "cancelled")


class ApiFailure(Exception):
    def __init__(self, http_status, code, message, headers=None):
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.message = message
        self.headers = headers or {}


def api_key_for(secret_key):
    """The bearer key the studio sends its own sandbox, derived from its SECRET_KEY."""
    return "sbx_" + hmac.new(secret_key.encode(), b"kling-studio sandbox key", hashlib.sha256).hexdigest()


def price(quality, duration):
    num, den = QUALITY_FACTORS[quality]
    return BASE_MICRO_CENTS_PER_SECOND * DURATIONS[duration] * num // den


def surcharged(cost):
    """The ``[surcharge]`` charge: 10 % over the price rule, in whole micro-cents."""
    return cost * 11 // 10


def iso(epoch):
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def sign(secret, timestamp, body):
    """The ``X-PixelByte-Signature`` value for a raw body sent at ``timestamp``."""
    message = timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


@dataclass
class SandboxJob:
    job_id: str
    request_id: str
    input: dict
    created: float
    pending_s: float
    processing_s: float
    cost: int
    media_base: str
    webhook_url: str = ""
    webhook_secret: str = ""
    outcome: str = "complete"  # complete, fail or stuck
    expire_s: float | None = None  # [expire]: seconds the output stays on the CDN
    cancelled_at: float | None = None
    webhook_attempts: int = 0
    webhook_next: float = 0.0
    webhook_done: bool = False

    def status(self, now):
        if self.cancelled_at is not None:
            return "cancelled"
        age = now - self.created
        if age < self.pending_s:
            return "pending"
        if self.outcome == "stuck" or age < self.pending_s + self.processing_s:
            return "processing"
        return "failed" if self.outcome == "fail" else "completed"

    def finished_at(self):
        if self.cancelled_at is not None:
            return self.cancelled_at
        return self.created + self.pending_s + self.processing_s

    def expired(self, now):
        return self.expire_s is not None and now >= self.finished_at() + self.expire_s

    def media_url(self, name):
        return f"{self.media_base}{self.job_id}/{name}"

    def view(self, now):
        status = self.status(now)
        done = status in FINISHED
        outputs = None
        if status == "completed":
            outputs = [
                {
                    "url": self.media_url("video.mp4"),
                    "type": "video",
                    "thumbnail": self.media_url("thumb.jpg"),
                    "posterImage": self.media_url("poster.jpg"),
                }
            ]
        return {
            "jobId": self.job_id,
            "status": status,
            "progress": {"processing": 50, "completed": 100}.get(status, 0),
            "output": outputs[0]["url"] if outputs else None,
            "outputs": outputs,
            "error": {"code": "INTERNAL_ERROR", "message": "Model inference failed"}
            if status == "failed"
            else None,
            "createdAt": iso(self.created),
            "completedAt": iso(self.finished_at()) if done else None,
        }

    def forgettable(self, now, keep_s):
        """Finished, its webhook (if any) settled, and kept ``keep_s`` seconds since."""
        settled = not self.webhook_url or self.webhook_done
        return self.status(now) in FINISHED and settled and self.finished_at() + keep_s <= now

    def webhook_payload(self, now):
        view = self.view(now)
        payload = {
            "jobId": self.job_id,
            "requestId": self.request_id,
            "status": view["status"],
            "completedAt": view["completedAt"],
        }
        if view["status"] == "completed":
            payload["output"] = {"videoUrl": view["output"], "metadata": {"format": "mp4"}}
        else:
            payload["error"] = view["error"]
        return payload


class Sandbox:
    def __init__(self, clock=time.time):
        self.clock = clock
        self.jobs = {}
        self.lock = threading.Lock()
        self.submit_count = 0
        # (job id, url, status or error) of the latest delivery attempts
        self.webhook_log = deque(maxlen=1000)
        self._deliverer = None

    def reset(self):
        with self.lock:
            self.jobs.clear()
            self.submit_count = 0
            self.webhook_log.clear()

    # --- endpoints ---------------------------------------------------------

    def submit(
        self,
        body,
        *,
        media_base,
        pending_s,
        processing_s,
        webhook_secret="",
        callback_origin="",
        keep_s=3600,
        max_jobs=1000,
        expire_s=0,
    ):
        """Accept a job. ``media_base`` is the CDN's root URL (ending in /)."""
        with self.lock:
            self.submit_count += 1
        if not isinstance(body, dict):
            raise ApiFailure(400, "INVALID_INPUT", "The request body must be a JSON object.")
        if body.get("model") != MODEL:
            raise ApiFailure(404, "MODEL_NOT_FOUND", f"Model {body.get('model')!r} does not exist.")
        data = validate_input(body.get("input"))
        webhook_url = validate_webhook_url(body.get("webhookUrl"), callback_origin)
        prompt = data["prompt"]
        if "[balance]" in prompt:
            raise ApiFailure(402, "INSUFFICIENT_BALANCE", "Insufficient balance for this job.")
        if "[busy]" in prompt:
            raise ApiFailure(
                429,
                "CONCURRENT_JOBS_EXCEEDED",
                "Maximum number of concurrent jobs for your plan reached.",
                headers={"Retry-After": "5"},
            )
        slow = 10 if "[slow]" in prompt else 1
        now = self.clock()
        job = SandboxJob(
            # The id is the CDN link's only secret, so it is long enough not to be guessed.
            job_id="job_" + secrets.token_hex(16),
            request_id="req_" + secrets.token_hex(6),
            input=data,
            created=now,
            pending_s=pending_s * slow,
            processing_s=processing_s * slow,
            cost=charge(data),
            media_base=media_base,
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
            outcome="fail" if "[fail]" in prompt else "stuck" if "[stuck]" in prompt else "complete",
            expire_s=expire_s if "[expire]" in prompt else None,
        )
        job.webhook_next = job.finished_at()
        with self.lock:
            self._make_room(now, keep_s, max_jobs)
            self.jobs[job.job_id] = job
        if webhook_url:
            self._ensure_deliverer()
        return {
            "jobId": job.job_id,
            "requestId": job.request_id,
            "status": "pending",
            "estimatedCompletionTime": iso(job.finished_at()),
            "costMicroCents": job.cost,
        }

    def get(self, job_id):
        return self._job(job_id).view(self.clock())

    def media_file(self, job_id, name):
        """The file behind a CDN URL, or None: an unknown or forgotten job, one not
        completed, an output that has expired, or a name the CDN does not serve."""
        now = self.clock()
        with self.lock:
            job = self.jobs.get(job_id)
        if job is None or name not in CDN_FILES or job.status(now) != "completed" or job.expired(now):
            return None
        return SAMPLES / CDN_FILES[name].format(SAMPLE_SHAPES[job.input["aspect_ratio"]])

    def list(self, *, limit=20, cursor=None, status=None, model=None):
        try:
            limit = min(max(int(limit), 1), 100)
        except (TypeError, ValueError):
            raise ApiFailure(400, "INVALID_INPUT", "limit must be a number from 1 to 100.") from None
        now = self.clock()
        with self.lock:
            jobs = sorted(self.jobs.values(), key=lambda j: (j.created, j.job_id), reverse=True)
        if cursor:
            after = decode_cursor(cursor)
            jobs = [j for j in jobs if (j.created, j.job_id) < after]
        if status:
            jobs = [j for j in jobs if j.status(now) == status]
        if model and model != MODEL:
            jobs = []
        page, more = jobs[:limit], len(jobs) > limit
        items = []
        for job in page:
            view = job.view(now)
            items.append(
                {key: view[key] for key in ("jobId", "status", "progress", "createdAt", "completedAt")}
            )
            items[-1]["model"] = MODEL
        next_cursor = encode_cursor(page[-1]) if more else None
        return {"jobs": items, "nextCursor": next_cursor, "hasMore": more}

    def cancel(self, job_id):
        job = self._job(job_id)
        now = self.clock()
        with self.lock:
            if job.status(now) != "pending":
                raise ApiFailure(409, "JOB_CANNOT_BE_CANCELLED", "Only pending jobs can be cancelled.")
            job.cancelled_at = now
            job.webhook_done = True  # the API documents webhooks for completion and failure only
        return {"jobId": job.job_id, "status": "cancelled", "refundedMicroCents": job.cost}

    def _make_room(self, now, keep_s, max_jobs):
        """Forget old finished jobs, then the oldest finished ones while at the cap.

        Called with the lock held. Unfinished jobs are never dropped (the studio is
        still waiting for them), so with only those at the cap the submit is refused.
        """
        for job_id in [j.job_id for j in self.jobs.values() if j.forgettable(now, keep_s)]:
            del self.jobs[job_id]
        if len(self.jobs) < max_jobs:
            return
        finished = sorted(
            (j for j in self.jobs.values() if j.status(now) in FINISHED), key=lambda j: j.finished_at()
        )
        for job in finished[: len(self.jobs) - max_jobs + 1]:
            del self.jobs[job.job_id]
        if len(self.jobs) >= max_jobs:
            raise ApiFailure(
                429,
                "CONCURRENT_JOBS_EXCEEDED",
                "Maximum number of concurrent jobs for your plan reached.",
                headers={"Retry-After": "5"},
            )

    def _job(self, job_id):
        with self.lock:
            job = self.jobs.get(job_id)
        if job is None:
            raise ApiFailure(404, "JOB_NOT_FOUND", f"Job {job_id} was not found.")
        return job

    # --- webhooks ----------------------------------------------------------

    def _ensure_deliverer(self):
        with self.lock:
            if self._deliverer is None or not self._deliverer.is_alive():
                self._deliverer = threading.Thread(
                    target=self._deliver_forever, name="sandbox-webhooks", daemon=True
                )
                self._deliverer.start()

    def _deliver_forever(self):
        while True:
            time.sleep(0.1)
            self.deliver_due()

    def deliver_due(self):
        """Send every webhook that is due now; returns how many were attempted."""
        now = self.clock()
        with self.lock:
            due = [
                j
                for j in self.jobs.values()
                if j.webhook_url
                and not j.webhook_done
                and j.webhook_next <= now
                and j.status(now) in ("completed", "failed")
            ]
        for job in due:
            self._deliver(job, now)
        return len(due)

    def _deliver(self, job, now):
        import requests  # only the webhook sender needs it

        body = json.dumps(job.webhook_payload(now)).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-PixelByte-Timestamp": timestamp,
            "X-PixelByte-Signature": sign(job.webhook_secret, timestamp, body),
        }
        try:
            # No redirects: the sandbox calls the URL it checked at submit and nothing else.
            response = requests.post(
                job.webhook_url, data=body, headers=headers, timeout=(3, 10), allow_redirects=False
            )
            outcome = response.status_code
            ok = 200 <= response.status_code < 300
        except requests.RequestException as exc:
            outcome, ok = type(exc).__name__, False
        with self.lock:
            self.webhook_log.append((job.job_id, job.webhook_url, outcome))
            if ok or job.webhook_attempts >= len(WEBHOOK_RETRY_DELAYS):
                job.webhook_done = True
            else:
                job.webhook_next = now + WEBHOOK_RETRY_DELAYS[job.webhook_attempts]
                job.webhook_attempts += 1
        log.info("sandbox webhook for %s: %s", job.job_id, outcome)


def charge(data):
    """What a job with this (validated) input costs: the price rule, unless the prompt
    asks for a surcharge."""
    cost = price(data["quality"], data["duration"])
    return surcharged(cost) if "[surcharge]" in data["prompt"] else cost


def validate_input(data):
    if not isinstance(data, dict):
        raise ApiFailure(400, "INVALID_INPUT", "input must be an object.")
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ApiFailure(400, "INVALID_INPUT", "prompt is required.")
    if len(prompt) > PROMPT_LIMIT:
        raise ApiFailure(400, "INVALID_INPUT", f"prompt must be at most {PROMPT_LIMIT} characters.")
    clean = {"prompt": prompt}
    for name, allowed, default in (
        ("quality", QUALITY_FACTORS, "std"),
        ("duration", DURATIONS, "5"),
        ("aspect_ratio", ASPECT_RATIOS, "16:9"),
    ):
        value = data.get(name, default)
        if not isinstance(value, str) or value not in allowed:
            raise ApiFailure(400, "INVALID_INPUT", f"{name} must be one of {', '.join(sorted(allowed))}.")
        clean[name] = value
    if "seed" in data:
        seed = data["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
            raise ApiFailure(400, "INVALID_INPUT", f"seed must be an integer from 0 to {SEED_MAX}.")
        clean["seed"] = seed
    return clean


def validate_webhook_url(url, callback_origin=""):
    """https only, as the API requires; plain http is let through for loopback in the sandbox.

    The sandbox only ever calls back the webhook path of the studio that serves it
    (``callback_origin`` is its PUBLIC_BASE_URL): anything else would let whoever can
    submit make the studio send requests to any port or page it can reach.
    """
    if url in (None, ""):
        return ""
    if not isinstance(url, str) or len(url) > 2000:
        raise ApiFailure(400, "INVALID_INPUT", "webhookUrl must be a URL.")
    try:
        parts, studio = urlsplit(url), urlsplit(callback_origin)
    except ValueError:
        raise ApiFailure(400, "INVALID_INPUT", "webhookUrl must be a URL.") from None
    if parts.scheme not in ("https", "http") or (
        parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS
    ):
        raise ApiFailure(400, "INVALID_INPUT", "webhookUrl must use the https scheme.")
    if not is_studio_webhook(parts, studio):
        raise ApiFailure(400, "INVALID_INPUT", "The sandbox only calls back the studio's webhook URLs.")
    return url


def is_studio_webhook(parts, studio):
    """Same scheme and host:port as the studio, and one token under its webhook path.

    The token's shape rules out dot segments and escapes that an HTTP client would
    resolve to another path; a query or fragment is never part of what the studio issues.
    """
    prefix = studio.path.rstrip("/") + STUDIO_WEBHOOK_PATH
    return bool(
        studio.scheme
        and (parts.scheme, parts.netloc.lower()) == (studio.scheme, studio.netloc.lower())
        and parts.path.startswith(prefix)
        and WEBHOOK_TOKEN.fullmatch(parts.path.removeprefix(prefix))
        and not parts.query
        and not parts.fragment
    )


def encode_cursor(job):
    raw = json.dumps({"createdAt": job.created, "jobId": job.job_id}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor):
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return float(data["createdAt"]), str(data["jobId"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ApiFailure(400, "INVALID_INPUT", "cursor is not valid.") from None


SANDBOX = Sandbox()
