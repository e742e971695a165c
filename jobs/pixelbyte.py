"""The one door to the PixelByte API.

Every call has explicit connect and read timeouts and a wall-clock deadline on the
whole exchange (a read timeout alone restarts with every byte, so an answer that
trickles in could hold a person for minutes): a submit must be over within
``submit_deadline``, retries included; every other call, each attempt on its own,
within its connect plus read timeout. Answers are read up to ``MAX_ANSWER_BYTES``.

Responses are accepted flat or wrapped in ``{success, data, requestId}``. Failures
become typed errors whose ``message`` a person can act on; the ``transient`` flag
separates what may succeed later from what will not. The API key lives only in the
session's headers (never in a local variable of a call, so no error report shows
it) and never appears in a message, a log line or a ``repr``.

A submission costs money and the API has no idempotency key, so ``submit`` only
retries when the request provably never reached the server (connection refused,
name not resolved, connect timeout). Reads (status, list) retry transient
failures with capped exponential backoff.

``download`` fetches a media file from whatever host the API's answer names, with the
same kind of limits (a wall-clock deadline, a per-read timeout, a size cap) and without
the API key.
"""

import collections
import hashlib
import json
import logging
import random
import re
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from urllib.parse import quote, urlsplit

import requests
import urllib3

log = logging.getLogger(__name__)

USER_AGENT = "KlingStudio/1.0"
SUBMIT_CONNECT_RETRIES = 2
READ_ATTEMPTS = 3
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0
# No answer of the API comes near this; a larger one is not read to the end.
MAX_ANSWER_BYTES = 2**20
CHUNK_BYTES = 16 * 1024


class ApiError(Exception):
    """A call to the API did not give a usable answer."""

    transient = False
    # Whether the API may have acted on the request (and charged for it).
    maybe_processed = False

    def __init__(self, message, *, code="", http_status=None, request_id="", retry_after=None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        self.request_id = request_id
        self.retry_after = retry_after

    def __str__(self):
        return self.message


class NotSent(ApiError):
    """The request never reached the API: nothing was created or charged."""

    transient = True


class NoAnswer(ApiError):
    """The request was sent but no answer came in time: the outcome is unknown."""

    transient = True
    maybe_processed = True


class ServerError(ApiError):
    """The API answered 5xx; it may or may not have acted on the request."""

    transient = True
    maybe_processed = True


class BadResponse(ApiError):
    """A 2xx answer that could not be read; the API probably acted on it."""

    maybe_processed = True


class ConfigurationError(ApiError):
    """The API key is missing, wrong, inactive, expired or lacks a permission."""


class Rejected(ApiError):
    """The API refused the request for a reason that retrying will not change."""


class RateLimited(ApiError):
    """Too many requests or too many jobs in flight; try again later."""

    transient = True


class NotFound(Rejected):
    """The API does not know this job."""


class MediaGone(ApiError):
    """A media host answered 404, 403 or 410: the file is not there and will not come back."""


class TooLarge(ApiError):
    """A media file is larger than the studio agreed to copy."""


MESSAGES = {
    "UNAUTHORIZED": "The studio has no PixelByte API key. Ask an administrator to set PIXELBYTE_API_KEY.",
    "INVALID_API_KEY": "PixelByte does not recognise the studio's API key. Ask an administrator to check PIXELBYTE_API_KEY.",
    "API_KEY_INACTIVE": "The studio's PixelByte API key has been deactivated. Ask an administrator for a new key.",
    "API_KEY_EXPIRED": "The studio's PixelByte API key has expired. Ask an administrator for a new key.",
    "IP_NOT_WHITELISTED": "PixelByte refuses calls from this server's address. Add it to the key's allowed IPs.",
    "OPERATION_NOT_ALLOWED": "The studio's API key may not do this. Give the key the submit_job and check_status scopes.",
    "MODEL_ACCESS_DENIED": "The studio's API key may not use this model. Enable the model for the key in PixelByte.",
    "UNAUTHORIZED_ACCESS": "The studio's API key may not access this job.",
    "INSUFFICIENT_BALANCE": "The PixelByte account does not have enough credit for this video. Top up the account, then try again.",
    "INVALID_INPUT": "PixelByte refused the settings for this video",
    "MODEL_NOT_FOUND": "PixelByte does not offer this model at the moment.",
    "CONCURRENT_JOBS_EXCEEDED": "Too many videos are being generated at once on this account. Wait for one to finish, then try again.",
    "RATE_LIMITED": "PixelByte is receiving too many requests from the studio. Wait a moment, then try again.",
    "JOB_NOT_FOUND": "PixelByte does not know this job.",
    "JOB_CANNOT_BE_CANCELLED": "Only a job that is still waiting in the queue can be cancelled.",
    "PUBSUB_PUBLISH_FAILED": "PixelByte could not queue the job. Try again in a moment.",
}

CONFIG_CODES = {
    "UNAUTHORIZED",
    "INVALID_API_KEY",
    "API_KEY_INACTIVE",
    "API_KEY_EXPIRED",
    "IP_NOT_WHITELISTED",
    "OPERATION_NOT_ALLOWED",
    "MODEL_ACCESS_DENIED",
    "UNAUTHORIZED_ACCESS",
}


@dataclass(frozen=True)
class Submitted:
    job_id: str
    request_id: str
    status: str
    cost_micro_cents: int | None
    estimated_completion_at: datetime | None


@dataclass(frozen=True)
class RemoteJob:
    """A job as the API reports it (status endpoint, list items or a webhook)."""

    job_id: str
    status: str
    progress: int | None = None
    output_url: str = ""
    thumbnail_url: str = ""
    poster_url: str = ""
    outputs: list | None = None
    error_code: str = ""
    error_message: str = ""
    created_at: datetime | None = None
    completed_at: datetime | None = None
    request_id: str = ""
    model: str = ""


@dataclass(frozen=True)
class JobPage:
    jobs: list
    next_cursor: str | None
    has_more: bool


@dataclass(frozen=True)
class Cancelled:
    job_id: str
    status: str
    refunded_micro_cents: int


@dataclass(frozen=True)
class Deadline:
    """When an exchange with the API must be over (a ``time.monotonic`` value), and the
    seconds it was given, for the message."""

    at: float
    seconds: float

    def missed(self):
        return NoAnswer(
            f"PixelByte did not finish answering within {self.seconds:g} seconds; the outcome is unknown."
        )


def parse_time(value):
    """An aware UTC datetime from ISO 8601 (with or without milliseconds, ``Z`` or an
    offset; a time without a zone is taken as UTC); None if absent, bad or out of range."""
    if not isinstance(value, str) or not value or len(value) > 40:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return moment if 2000 <= moment.year <= 9000 else None


# No single job costs a million dollars; anything above is a garbled answer.
MAX_MICRO_CENTS = 10**12


def to_micro_cents(value):
    """Micro-cents from the API's ``number`` (an int, a decimal or a numeric string), exactly,
    rounded half up; None when absent, negative, not finite or absurdly large."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        amount = Decimal(str(value)) if not isinstance(value, int) else Decimal(value)
    except (InvalidOperation, ValueError):
        return None
    if not amount.is_finite() or amount < 0 or amount > MAX_MICRO_CENTS:
        return None
    return int(amount.to_integral_value(rounding=ROUND_HALF_UP))


def unwrap(body):
    """The payload of a flat or ``{success, data, requestId}`` response."""
    if isinstance(body, dict) and isinstance(body.get("data"), dict):
        return body["data"]
    return body


# Ids are opaque, but the studio must store them exactly (Job.remote_id and request_id
# hold 128 characters) and put them in URLs, log lines and pages: so 1 to 128 printable
# ASCII characters, without spaces or control characters.
STORABLE_ID = re.compile(r"[!-~]{1,128}")


def storable_id(value):
    """``value`` if it is an id the studio can store exactly, else ""."""
    if isinstance(value, str) and len(value) <= 128 and STORABLE_ID.fullmatch(value):
        return value
    return ""


def _glimpse(value):
    return f"{value[:40]!r} ({len(value)} characters)" if isinstance(value, str) else type(value).__name__


def kept_request_id(value):
    """A request id the studio can store, else "": one that cannot be kept exactly is
    dropped (and logged), not truncated; it only helps support, so it never fails a call."""
    if not value:
        return ""
    kept = storable_id(value)
    if not kept:
        log.warning("PixelByte sent a request id the studio cannot store, dropped: %s", _glimpse(value))
    return kept


def request_id_of(body):
    if not isinstance(body, dict):
        return ""
    payload = unwrap(body)
    rid = body.get("requestId") or (payload.get("requestId") if isinstance(payload, dict) else "")
    return kept_request_id(rid)


def parse_json(raw):
    """The JSON document in ``raw`` bytes, or None when there is none or it cannot be read
    (nesting deep enough to exhaust the parser's recursion counts as unreadable)."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def error_of(body):
    """(code, message) from any of the error shapes the API is known to use."""
    if not isinstance(body, dict):
        return "", ""
    payload = unwrap(body)
    for candidate in (body.get("error"), payload.get("error") if isinstance(payload, dict) else None):
        if isinstance(candidate, dict):
            return str(candidate.get("code") or ""), str(candidate.get("message") or "")
        if isinstance(candidate, str) and candidate:
            return "", candidate
    return str(body.get("code") or ""), str(body.get("message") or "")


def parse_retry_after(value):
    """Seconds from a ``Retry-After`` header (delta-seconds form); None if absent or unreadable."""
    if not value or len(value) > 20:
        return None
    try:
        seconds = Decimal(value.strip())
    except (InvalidOperation, ValueError):
        return None
    if not seconds.is_finite():
        return None
    return int(min(max(seconds, 0), 86400))


def text(value, limit=2000):
    """A string field from an answer: stringified, without NUL characters, bounded."""
    if value is None or isinstance(value, (dict, list)):
        return ""
    return str(value).replace("\x00", "")[:limit]


def web_url(value):
    """An http(s) URL from an answer, or "" (a media link is put in pages as it is)."""
    url = text(value)
    return url if url.lower().startswith(("https://", "http://")) else ""


OUTPUT_KEYS = ("url", "type", "thumbnail", "posterImage")


def remote_job_from(payload):
    """A ``RemoteJob`` from a status, list-item or webhook payload (already unwrapped)."""
    raw_outputs = payload.get("outputs") if isinstance(payload.get("outputs"), list) else None
    outputs = None
    if raw_outputs is not None:
        outputs = [
            {key: text(item[key]) for key in OUTPUT_KEYS if key in item}
            for item in raw_outputs[:20]
            if isinstance(item, dict)
        ]
    first = outputs[0] if outputs and isinstance(outputs[0], dict) else {}
    output = payload.get("output")
    if isinstance(output, dict):  # the webhook's object form
        output_url = output.get("videoUrl") or output.get("url") or output.get("imageUrl") or ""
    else:
        output_url = output if isinstance(output, str) else ""
    error = payload.get("error") if isinstance(payload.get("error"), dict) else {}
    progress = payload.get("progress")
    return RemoteJob(
        # An id that cannot be stored exactly is no id: it is never adopted nor stored.
        job_id=storable_id(payload.get("jobId") or payload.get("job_id") or payload.get("id")),
        status=text(payload.get("status"), 32),
        progress=progress if isinstance(progress, int) and not isinstance(progress, bool) else None,
        output_url=web_url(first.get("url") or output_url),
        thumbnail_url=web_url(first.get("thumbnail")),
        poster_url=web_url(first.get("posterImage")),
        outputs=outputs,
        error_code=text(error.get("code"), 64),
        error_message=text(error.get("message")),
        created_at=parse_time(payload.get("createdAt")),
        completed_at=parse_time(payload.get("completedAt")),
        request_id=kept_request_id(payload.get("requestId")),
        model=text(payload.get("model"), 200),
    )


class Client:
    """A PixelByte API client. Create one per unit of work; it holds a ``requests.Session``."""

    def __init__(
        self,
        base_url,
        api_key,
        *,
        connect_timeout=3.05,
        read_timeout=20.0,
        submit_deadline=30.0,
        sleep=time.sleep,
        rand=random.random,
        clock=time.monotonic,
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self.submit_deadline = submit_deadline
        self._sleep = sleep
        self._rand = rand
        self._clock = clock
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers["Accept"] = "application/json"
        self.session.headers["Authorization"] = f"Bearer {api_key}"

    def __repr__(self):
        return f"<pixelbyte.Client {self.base_url}>"

    def close(self):
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- endpoints ---------------------------------------------------------

    def submit(self, model, input, webhook_url=None):
        body = {"model": model, "input": input}
        if webhook_url:
            body["webhookUrl"] = webhook_url
        payload, request_id = self._submit_with_connect_retries(body)
        job_id = _submitted_job_id(payload, request_id)
        return Submitted(
            job_id=job_id,
            request_id=request_id,
            status=str(payload.get("status") or "pending"),
            cost_micro_cents=to_micro_cents(payload.get("costMicroCents")),
            estimated_completion_at=parse_time(payload.get("estimatedCompletionTime")),
        )

    def get_job(self, job_id):
        payload, request_id = self._read("GET", f"/v1/jobs/{quote(job_id, safe='')}")
        job = remote_job_from(payload)
        if not job.job_id:
            job = replace(job, job_id=job_id)
        return job

    def list_jobs(self, *, limit=20, cursor=None, status=None, model=None):
        params = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        if status:
            params["status"] = status
        if model:
            params["modelId"] = model
        payload, _ = self._read("GET", "/v1/jobs", params=params)
        items = payload.get("jobs") if isinstance(payload.get("jobs"), list) else []
        return JobPage(
            jobs=[remote_job_from(item) for item in items if isinstance(item, dict)],
            next_cursor=payload.get("nextCursor") or None,
            has_more=bool(payload.get("hasMore")),
        )

    def cancel(self, job_id):
        path = f"/v1/jobs/{quote(job_id, safe='')}/cancel"
        payload, _ = self._call("POST", path, self._deadline(sum(self.timeout)))
        return Cancelled(
            job_id=storable_id(payload.get("jobId")) or job_id,
            status=str(payload.get("status") or "cancelled"),
            refunded_micro_cents=to_micro_cents(payload.get("refundedMicroCents")) or 0,
        )

    # --- transport ---------------------------------------------------------

    def _deadline(self, seconds):
        return Deadline(self._clock() + seconds, seconds)

    def _submit_with_connect_retries(self, body):
        deadline = self._deadline(self.submit_deadline)
        for attempt in range(SUBMIT_CONNECT_RETRIES + 1):
            try:
                return self._call("POST", "/v1/jobs/submit", deadline, json=body)
            except NotSent:
                delay = self._backoff(attempt + 1)
                budget_left = deadline.at - self._clock() - delay - sum(self.timeout)
                if attempt == SUBMIT_CONNECT_RETRIES or budget_left < 0:
                    raise
                self._sleep(delay)

    def _read(self, method, path, **kwargs):
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                # Each attempt has its own deadline: connect plus read timeout, start to end.
                return self._call(method, path, self._deadline(sum(self.timeout)), **kwargs)
            except (NotSent, NoAnswer, ServerError):
                if attempt == READ_ATTEMPTS:
                    raise
                self._sleep(self._backoff(attempt))

    def _backoff(self, attempt):
        """A delay in [b·2^(n−1)/2, b·2^(n−1)] capped at BACKOFF_CAP (equal jitter)."""
        ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
        return ceiling / 2 + self._rand() * ceiling / 2

    def _call(self, method, path, deadline, **kwargs):
        response = self._send(method, path, deadline, **kwargs)
        with response:
            raw = self._receive(response, deadline)
        return self._interpret(response, raw)

    def _timed_out(self, wait, deadline):
        """The error for a wait that ran out: the deadline's when that was the shorter bound."""
        if wait < self.timeout[1]:
            return deadline.missed()
        return NoAnswer(f"PixelByte did not answer within {wait:g} seconds; the outcome is unknown.")

    def _send(self, method, path, deadline, **kwargs):
        """Send the request and wait for the answer's headers (the body is read after)."""
        left = max(deadline.at - self._clock(), 0.001)
        connect_timeout, read_timeout = min(self.timeout[0], left), min(self.timeout[1], left)
        try:
            return self.session.request(
                method, self.base_url + path, timeout=(connect_timeout, read_timeout), stream=True, **kwargs
            )
        except requests.exceptions.ConnectTimeout:
            raise NotSent("PixelByte did not accept the connection in time; nothing was sent.") from None
        except requests.exceptions.ReadTimeout:
            raise self._timed_out(read_timeout, deadline) from None
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError):
            raise BadResponse("PixelByte's answer was cut off; the outcome is unknown.") from None
        except requests.exceptions.ConnectionError as exc:
            if _reached_server(exc):
                raise NoAnswer(
                    "The connection to PixelByte broke after the request was sent; the outcome is unknown."
                ) from None
            raise NotSent(
                "The studio could not reach PixelByte (connection refused or name not resolved); nothing was sent."
            ) from None
        except requests.exceptions.RequestException as exc:
            raise NotSent(f"The request to PixelByte could not be made ({type(exc).__name__}).") from None

    def _receive(self, response, deadline):
        """The answer's body, read chunk by chunk until the deadline; None when it is larger
        than MAX_ANSWER_BYTES (the rest is not read)."""
        chunks, size = [], 0
        try:
            while chunk := self._next_chunk(response, deadline):
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    return None
                chunks.append(chunk)
        except urllib3.exceptions.HTTPError:
            raise BadResponse("PixelByte's answer was cut off; the outcome is unknown.") from None
        return b"".join(chunks)

    def _next_chunk(self, response, deadline):
        left = deadline.at - self._clock()
        return _read_chunk(
            response, CHUNK_BYTES, self.timeout[1], left, lambda wait: self._timed_out(wait, deadline)
        )

    def _interpret(self, response, raw):
        body = parse_json(raw)
        request_id = request_id_of(body) or kept_request_id(response.headers.get("X-Request-Id", ""))
        status = response.status_code
        if 200 <= status < 300:
            if raw is None:
                raise BadResponse(
                    f"PixelByte's answer was too large to read (over {MAX_ANSWER_BYTES // 2**20} MiB); "
                    "the outcome is unknown.",
                    http_status=status,
                    request_id=request_id,
                )
            payload = unwrap(body)
            if not isinstance(payload, dict):
                raise BadResponse(
                    "PixelByte answered with something that is not JSON; the outcome is unknown.",
                    http_status=status,
                    request_id=request_id,
                )
            if (
                body.get("success") is False
                or isinstance(payload.get("error"), dict)
                and "jobId" not in payload
            ):
                raise self._error(status, body, request_id, response)
            return payload, request_id
        # An error answer's body only refines the message; an unreadable one counts as none.
        raise self._error(status, body, request_id, response)

    def _error(self, status, body, request_id, response):
        code, detail = error_of(body)
        kwargs = {"code": code, "http_status": status, "request_id": request_id}
        message = MESSAGES.get(code)
        if code == "INVALID_INPUT":
            message = f"{message}: {detail}" if detail else f"{message}."
        if status == 429 or code == "CONCURRENT_JOBS_EXCEEDED":
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return RateLimited(message or MESSAGES["RATE_LIMITED"], retry_after=retry_after, **kwargs)
        if code in CONFIG_CODES or status in (401, 403):
            return ConfigurationError(
                message
                or "PixelByte refused the studio's credentials. Ask an administrator to check the API key.",
                **kwargs,
            )
        if code in ("JOB_NOT_FOUND", "NOT_FOUND") or (status == 404 and not code):
            return NotFound(message or MESSAGES["JOB_NOT_FOUND"], **kwargs)
        if status >= 500 or code == "PUBSUB_PUBLISH_FAILED":
            return ServerError(
                message or f"PixelByte had an internal error (HTTP {status}); the outcome is unknown.",
                **kwargs,
            )
        return Rejected(message or _fallback_message(status, detail), **kwargs)


def _submitted_job_id(payload, request_id):
    """The job id of a submit answer; PixelByte took the job (and charged for it) even
    when the id is missing or cannot be stored, so either is an unknown outcome."""
    job_id = payload.get("jobId") or payload.get("job_id") or payload.get("id")
    if not isinstance(job_id, str) or not job_id:
        raise BadResponse(
            "PixelByte accepted the request but its answer had no job id; the outcome is unknown.",
            request_id=request_id,
        )
    if not storable_id(job_id):
        log.warning("PixelByte answered with a job id the studio cannot store: %s", _glimpse(job_id))
        raise BadResponse(
            "PixelByte accepted the request but answered with a job id the studio cannot store "
            "(over 128 characters, or characters other than printable ASCII); the outcome is unknown.",
            code="UNSTORABLE_JOB_ID",
            request_id=request_id,
        )
    return job_id


def _read_chunk(response, size, read_timeout, left, waited_out):
    """One read of at most ``size`` bytes that waits no longer than ``read_timeout`` nor past
    a deadline ``left`` seconds away, so an answer that trickles in cannot overrun it.
    ``waited_out(wait)`` makes the error for a wait that ran out."""
    wait = min(read_timeout, left)
    if wait <= 0:
        raise waited_out(wait)
    _limit_wait(response, wait)
    try:
        return response.raw.read1(size, decode_content=True)
    except urllib3.exceptions.ReadTimeoutError:
        raise waited_out(wait) from None


def _limit_wait(response, seconds):
    """Bound the next socket read of ``response`` to ``seconds``."""
    sock = getattr(getattr(response.raw, "connection", None), "sock", None)
    if sock is not None:
        sock.settimeout(seconds)


def _reached_server(exc):
    """Whether a ``ConnectionError`` happened after the request was written."""
    text = repr(exc)
    return any(
        s in text for s in ("RemoteDisconnected", "Connection aborted", "ProtocolError", "IncompleteRead")
    )


def _fallback_message(status, detail):
    detail = detail.strip()
    if detail:
        return f"PixelByte refused the request (HTTP {status}): {detail[:300]}"
    return f"PixelByte refused the request (HTTP {status})."


# --- media files (the CDN, not the API) -------------------------------------------------

# Read in pieces this size, so a video of any length costs the same memory.
MEDIA_CHUNK_BYTES = 256 * 1024
MEDIA_MAX_REDIRECTS = 5
GONE_STATUSES = frozenset({403, 404, 410})


@dataclass(frozen=True)
class Downloaded:
    size: int
    sha256: str
    content_type: str  # the media type the host named, lowercased, without parameters; or ""


class _BackgroundDigest:
    """SHA-256 computed on another thread while the bytes are written: hashlib lets go of
    the interpreter lock for large buffers, so hashing and copying use two cores instead
    of taking turns. At most ``AHEAD`` chunks wait to be hashed, so memory stays flat."""

    AHEAD = 16

    def __init__(self):
        self._digest = hashlib.sha256()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256")
        self._waiting = collections.deque()

    def update(self, chunk):
        # One worker runs the updates in the order they were handed over.
        self._waiting.append(self._pool.submit(self._digest.update, chunk))
        if len(self._waiting) > self.AHEAD:
            self._waiting.popleft().result()

    def hexdigest(self):
        self._drain()
        return self._digest.hexdigest()

    def _drain(self):
        while self._waiting:
            self._waiting.popleft().result()

    def __enter__(self):
        return self

    def __exit__(self, failed, *exc):
        if not failed:
            self._drain()
        self._pool.shutdown(wait=True, cancel_futures=True)


def download(url, fileobj, *, max_bytes, deadline, connect_timeout=3.05, read_timeout=20.0, on_chunk=None):
    """Stream the file at ``url`` into ``fileobj``; return its size, SHA-256 and type.

    Media hosts are not the API: the request carries no API key (the URL is all the
    authority a CDN link needs, and the key must not reach a third party). The whole
    transfer ends within ``deadline`` seconds and every read within ``read_timeout``.
    ``on_chunk(n)`` is called after each piece is written.

    Raises ``MediaGone`` (404, 403, 410) and ``TooLarge`` (over ``max_bytes``), which a
    retry will not change; ``NotSent``, ``NoAnswer`` or ``ServerError`` for what may work
    later. ``fileobj`` holds a partial body after an error: the caller discards it.
    """
    transfer = _MediaTransfer(url, max_bytes, deadline, (connect_timeout, read_timeout))
    with requests.Session() as session:
        session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
        session.max_redirects = MEDIA_MAX_REDIRECTS
        with transfer.open(session) as response:
            transfer.check(response)
            return transfer.copy(response, fileobj, on_chunk)


class _MediaTransfer:
    """One download's limits, and its messages (naming the host, never the URL: a signed
    link's query string is as good as a password)."""

    def __init__(self, url, max_bytes, seconds, timeout):
        self.url, self.max_bytes, self.timeout = url, max_bytes, timeout
        self.host = urlsplit(url).hostname or "the media host"
        self.deadline = Deadline(time.monotonic() + seconds, seconds)

    def left(self):
        return self.deadline.at - time.monotonic()

    def open(self, session):
        """Send the request and wait for the answer's headers."""
        left = max(self.left(), 0.001)
        timeout = (min(self.timeout[0], left), min(self.timeout[1], left))
        try:
            return session.get(self.url, timeout=timeout, stream=True)
        except requests.exceptions.ConnectTimeout:
            raise NotSent(f"{self.host} did not accept the connection in time.") from None
        except requests.exceptions.ReadTimeout:
            raise NoAnswer(f"{self.host} did not answer within {timeout[1]:g} seconds.") from None
        except requests.exceptions.TooManyRedirects:
            raise ServerError(f"{self.host} redirected more than {MEDIA_MAX_REDIRECTS} times.") from None
        except requests.exceptions.RequestException as exc:
            raise NotSent(f"The studio could not reach {self.host} ({type(exc).__name__}).") from None

    def check(self, response):
        """Refuse an answer that is not the file, or announces more than the cap."""
        status = response.status_code
        if status in GONE_STATUSES:
            raise MediaGone(f"{self.host} answered HTTP {status}: the file is gone.", http_status=status)
        if status != 200:
            raise ServerError(f"{self.host} answered HTTP {status} instead of the file.", http_status=status)
        length = _content_length(response)
        if length is not None and length > self.max_bytes:
            raise self.too_large()

    def too_large(self):
        return TooLarge(
            f"The file at {self.host} is larger than {self.max_bytes:,} bytes (ARCHIVE_MAX_BYTES)."
        )

    def copy(self, response, fileobj, on_chunk):
        digest, size = _BackgroundDigest(), 0
        with digest:
            while chunk := self.next_chunk(response):
                size += len(chunk)
                if size > self.max_bytes:
                    raise self.too_large()
                digest.update(chunk)
                fileobj.write(chunk)
                if on_chunk is not None:
                    on_chunk(len(chunk))
        length = _content_length(response)
        if length is not None and size != length and not response.headers.get("Content-Encoding"):
            raise NoAnswer(f"The download from {self.host} was cut off after {size:,} of {length:,} bytes.")
        return Downloaded(size=size, sha256=digest.hexdigest(), content_type=_media_type(response))

    def next_chunk(self, response):
        try:
            return _read_chunk(response, MEDIA_CHUNK_BYTES, self.timeout[1], self.left(), self.waited_out)
        except urllib3.exceptions.HTTPError:
            raise NoAnswer(f"The connection to {self.host} broke during the download.") from None

    def waited_out(self, wait):
        """The error for a read that waited ``wait`` seconds: the deadline's when that was the
        shorter bound, else the host's silence."""
        if wait < self.timeout[1]:
            return self.overran()
        return NoAnswer(f"{self.host} stopped sending for {wait:g} seconds.")

    def overran(self):
        seconds = self.deadline.seconds
        return NoAnswer(f"The download from {self.host} took longer than {seconds:g} seconds.")


def _content_length(response):
    value = response.headers.get("Content-Length", "")
    return int(value) if value.isascii() and value.isdigit() else None


def _media_type(response):
    value = text(response.headers.get("Content-Type"), 200).split(";")[0].strip().lower()
    readable = len(value) <= 100 and re.fullmatch(r"[a-z0-9][\w.+-]*/[a-z0-9][\w.+-]*", value, re.ASCII)
    return value if readable else ""


def client_from_settings():
    """A client for the configured API: the real one with a key, else the built-in sandbox."""
    from django.conf import settings

    if settings.PIXELBYTE_API_KEY:
        base_url, key = settings.PIXELBYTE_API_URL, settings.PIXELBYTE_API_KEY
    else:
        base_url, key = settings.SANDBOX_API_URL, settings.SANDBOX_API_KEY
    return Client(
        base_url,
        key,
        connect_timeout=settings.PIXELBYTE_CONNECT_TIMEOUT,
        read_timeout=settings.PIXELBYTE_READ_TIMEOUT,
        submit_deadline=settings.PIXELBYTE_SUBMIT_DEADLINE,
    )


@contextmanager
def client_or_default(client=None):
    """``client`` as it is, or a client for the configured API that is closed afterwards."""
    if client is not None:
        yield client
        return
    with client_from_settings() as own:
        yield own
