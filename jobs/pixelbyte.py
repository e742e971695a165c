"""The one door to the PixelByte API.

Every call has explicit connect and read timeouts. Responses are accepted flat or
wrapped in ``{success, data, requestId}``. Failures become typed errors whose
``message`` a person can act on; the ``transient`` flag separates what may
succeed later from what will not. The API key is sent in a header and never
appears in a message, a log line or a ``repr``.

A submission costs money and the API has no idempotency key, so ``submit`` only
retries when the request provably never reached the server (connection refused,
name not resolved, connect timeout). Reads (status, list) retry transient
failures with capped exponential backoff.
"""

import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from urllib.parse import quote

import requests

log = logging.getLogger(__name__)

USER_AGENT = "KlingStudio/1.0"
SUBMIT_CONNECT_RETRIES = 2
READ_ATTEMPTS = 3
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0


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


def request_id_of(body):
    if not isinstance(body, dict):
        return ""
    payload = unwrap(body)
    rid = body.get("requestId") or (payload.get("requestId") if isinstance(payload, dict) else "")
    return rid if isinstance(rid, str) else ""


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
    if value is None:
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
        job_id=text(payload.get("jobId") or payload.get("job_id") or payload.get("id"), 128),
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
        request_id=text(payload.get("requestId"), 128),
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
        self._api_key = api_key
        self.timeout = (connect_timeout, read_timeout)
        self.submit_deadline = submit_deadline
        self._sleep = sleep
        self._rand = rand
        self._clock = clock
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers["Accept"] = "application/json"

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
        job_id = payload.get("jobId") or payload.get("job_id") or payload.get("id")
        if not isinstance(job_id, str) or not job_id:
            raise BadResponse(
                "PixelByte accepted the request but its answer had no job id; the outcome is unknown.",
                request_id=request_id,
            )
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
            job = RemoteJob(**{**job.__dict__, "job_id": job_id})
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
        payload, _ = self._call("POST", f"/v1/jobs/{quote(job_id, safe='')}/cancel")
        return Cancelled(
            job_id=str(payload.get("jobId") or job_id),
            status=str(payload.get("status") or "cancelled"),
            refunded_micro_cents=to_micro_cents(payload.get("refundedMicroCents")) or 0,
        )

    # --- transport ---------------------------------------------------------

    def _submit_with_connect_retries(self, body):
        started = self._clock()
        for attempt in range(SUBMIT_CONNECT_RETRIES + 1):
            try:
                return self._call("POST", "/v1/jobs/submit", json=body)
            except NotSent:
                delay = self._backoff(attempt + 1)
                elapsed = self._clock() - started
                budget_left = self.submit_deadline - elapsed - delay - sum(self.timeout)
                if attempt == SUBMIT_CONNECT_RETRIES or budget_left < 0:
                    raise
                self._sleep(delay)

    def _read(self, method, path, **kwargs):
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                return self._call(method, path, **kwargs)
            except (NotSent, NoAnswer, ServerError):
                if attempt == READ_ATTEMPTS:
                    raise
                self._sleep(self._backoff(attempt))

    def _backoff(self, attempt):
        """A delay in [b·2^(n−1)/2, b·2^(n−1)] capped at BACKOFF_CAP (equal jitter)."""
        ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
        return ceiling / 2 + self._rand() * ceiling / 2

    def _call(self, method, path, **kwargs):
        url = self.base_url + path
        headers = {"Authorization": f"Bearer {self._api_key}"}
        try:
            response = self.session.request(method, url, headers=headers, timeout=self.timeout, **kwargs)
        except requests.exceptions.ConnectTimeout:
            raise NotSent("PixelByte did not accept the connection in time; nothing was sent.") from None
        except requests.exceptions.ReadTimeout:
            raise NoAnswer(
                f"PixelByte did not answer within {self.timeout[1]:g} seconds; the outcome is unknown."
            ) from None
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
        return self._interpret(response)

    def _interpret(self, response):
        try:
            body = response.json()
        except ValueError:
            body = None
        request_id = request_id_of(body) or response.headers.get("X-Request-Id", "")
        status = response.status_code
        if 200 <= status < 300:
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


def client_from_settings():
    """A client for the configured API: the real one with a key, else the built-in sandbox."""
    from django.conf import settings

    if settings.PIXELBYTE_API_KEY:
        base_url, key = settings.PIXELBYTE_API_URL, settings.PIXELBYTE_API_KEY
    else:
        base_url, key = settings.SANDBOX_API_URL, "sandbox"
    return Client(
        base_url,
        key,
        connect_timeout=settings.PIXELBYTE_CONNECT_TIMEOUT,
        read_timeout=settings.PIXELBYTE_READ_TIMEOUT,
        submit_deadline=settings.PIXELBYTE_SUBMIT_DEADLINE,
    )
