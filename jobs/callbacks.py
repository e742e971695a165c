"""Job callbacks: when a job sent through the API with a ``webhook_url`` ends, the studio
POSTs the job's JSON there, signed the Standard Webhooks way.

Queueing. The lifecycle sends ``job_ended`` once a job's end is committed; ``queue`` then
writes the job's one callback, an ``OutgoingMessage`` (channel CALLBACK) whose body is
written once, so every retry carries the same bytes under the same ``webhook-id``. The job
row is locked while it looks for an existing one (on SQLite every transaction is
IMMEDIATE, which serialises them the same way), so a signal delivered twice still queues
one. ``queue_missed`` finds the rare job whose signal died with its process.

The body (``body_of``)::

    {"type": "job.ended", "timestamp": "<ISO 8601, UTC>", "data": {"id", "status",
     "prompt", "quality", "duration", "aspectRatio", "seed", "project",
     "estimatedMicroCents", "chargedMicroCents", "createdAt", "completedAt",
     "errorCode", "errorMessage", "links": {"self", "page", "video"}}}

``links.video`` is the studio's copy when the video is archived already, else PixelByte's
link (the callback does not wait for the archive), else null.

Signing. ``webhook-id`` is ``msg_<message id>``, ``webhook-timestamp`` the attempt's unix
time, ``webhook-signature`` ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``, keyed with
the token's secret (the bytes base64-encoded after ``whsec_``).

Delivery is not the sync worker's: ``Loop`` (started by ``sync_jobs --watch``) hands due
callbacks to a few threads of its own, and a one-shot ``sync_jobs`` calls ``run_pass``.
Each receiver (scheme, host and port, kept in the message's ``subject``) gets one attempt
at a time, and one that did not answer is left alone for ``REST_SECONDS``: a receiver that
never answers holds one thread at most, never the other receivers nor the status checks.
Whatever the receiver does, an attempt is over within ``DEADLINE`` seconds (a timer shuts
its socket), besides ``CONNECT_TIMEOUT`` to connect and ``READ_TIMEOUT`` for each read.
Redirects are not followed, and the URL and the token are checked again before every
attempt; outside sandbox mode the studio posts to no address of its own machine or of a
private network, whatever the URL's host name resolves to. Any 2xx is delivered; anything
else is retried after ``RETRY_DELAYS`` and then given up (logged). Every attempt is a ``DeliveryAttempt`` that whoever sees the job sees
on its page, and the API shows (``attempts_for``). No URL, query string or secret ever
goes into an error or a log line.
"""

import base64
import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from urllib.parse import urlsplit

import requests.certs
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.dispatch import receiver
from django.urls import reverse
from django.utils import timezone
from requests.utils import requote_uri

from . import lifecycle, outbox
from .archive import iso
from .models import TERMINAL, ApiToken, ArchiveStatus, Channel, DeliveryAttempt, Job, OutgoingMessage

log = logging.getLogger(__name__)

USER_AGENT = "KlingStudio-Webhook/1"
CONNECT_TIMEOUT = 3.05
READ_TIMEOUT = 10.0
# The whole exchange, connecting included: a receiver that trickles bytes is cut off here.
DEADLINE = 15.0
# The wait after each failed attempt; the attempt after the last of them is the last.
RETRY_DELAYS = tuple(
    timedelta(seconds=seconds) for seconds in (10, 30, 120, 600, 1800, 3600, 3 * 3600, 6 * 3600)
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
# Threads of the delivery loop: receivers served at once.
WORKERS = 4
LOOP_INTERVAL = 1.0
# A receiver that did not answer is not tried again for this long (by this process).
REST_SECONDS = 30.0
# Callbacks read per look for due ones.
BATCH = 50
# How far back ``queue_missed`` looks, and how often the loop runs it.
MISSED_WINDOW = timedelta(days=1)
SWEEP_EVERY = timedelta(minutes=1)
API_JOB_PATH = "/api/v1/jobs/{id}"
SECRET_PREFIX = "whsec_"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
HTTPS_ONLY = "The callback URL must use https (plain http only to this machine, in sandbox mode)."
INTERNAL = (
    "The callback URL leads to this machine or a private network, where the studio does not "
    "post outside sandbox mode."
)
DEFAULT_PORTS = {"http": 80, "https": 443}


# --- queueing ---------------------------------------------------------------------------


@receiver(lifecycle.job_ended)
def queue_on_end(sender, job_id, **kwargs):
    queue(job_id)


def queue(job_id, now=None):
    """Queue job ``job_id``'s callback if it asked for one, has ended and has none yet;
    return its callback (the one it had, if any), or None."""
    wanting = Job.objects.filter(pk=job_id, api_token__isnull=False, status__in=TERMINAL).exclude(
        callback_url=""
    )
    # A plain read first: the end of a job from the form takes no lock at all.
    if not wanting.exists():
        return None
    now = now or timezone.now()
    with transaction.atomic():
        # Locked, so looking for the callback and writing it are one step: a signal
        # delivered twice, or the sweep beside it, queue one.
        job = wanting.select_for_update().first()
        if job is None:
            return None
        existing = OutgoingMessage.objects.filter(job=job, channel=Channel.CALLBACK).first()
        if existing is not None:
            return existing
        return OutgoingMessage.objects.create(
            channel=Channel.CALLBACK,
            job=job,
            subject=receiver_of(job.callback_url),
            body=body_of(job, now),
            created_at=now,
            next_attempt_at=now,
        )


def queue_missed(now):
    """Queue the callbacks whose signal was lost (its process died right after the commit):
    jobs changed within ``MISSED_WINDOW`` that ended, asked for one and have none. Return
    how many were queued."""
    has_one = OutgoingMessage.objects.filter(job=OuterRef("pk"), channel=Channel.CALLBACK)
    missed = (
        Job.objects.filter(api_token__isnull=False, status__in=TERMINAL, updated_at__gte=now - MISSED_WINDOW)
        .exclude(callback_url="")
        .exclude(Exists(has_one))
        .values_list("pk", flat=True)[:BATCH]
    )
    queued = sum(queue(pk, now) is not None for pk in list(missed))
    if queued:
        log.warning("queued %s job callback(s) whose signal was lost", queued)
    return queued


def body_of(job, now):
    """The callback's JSON, as sent on every attempt (see the module for its shape)."""
    event = {
        "type": "job.ended",
        "timestamp": iso(now),
        "data": {
            "id": job.pk,
            "status": job.status,
            "prompt": job.prompt,
            "quality": job.quality,
            "duration": job.duration,
            "aspectRatio": job.aspect_ratio,
            "seed": job.seed,
            "project": job.project,
            "estimatedMicroCents": job.estimated_micro_cents,
            # What the job counts against budgets: PixelByte's cost, else the estimate; 0
            # when nothing was charged or it was refunded.
            "chargedMicroCents": job.billed_micro_cents,
            "createdAt": iso(job.created_at),
            "completedAt": iso(job.completed_at),
            "errorCode": job.error_code,
            "errorMessage": job.error_message,
            "links": links_of(job),
        },
    }
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def links_of(job):
    if job.archive_status == ArchiveStatus.ARCHIVED:
        video = outbox.studio_link(reverse("jobs:video", args=[job.pk]))
    else:
        video = job.output_url or None
    return {
        "self": outbox.studio_link(API_JOB_PATH.format(id=job.pk)),
        "page": outbox.studio_link(job.get_absolute_url()),
        "video": video,
    }


# --- what may be sent where ---------------------------------------------------------------


def url_refusal(url):
    """Why the studio will not post to ``url`` ("" when it will): https, plain http only to
    this machine in sandbox mode (no ``PIXELBYTE_API_KEY``); and outside sandbox mode never
    to this machine or a private network (``_open`` holds a name to the same rule)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError:
        return "The callback URL is not a valid URL."
    sandbox = not settings.PIXELBYTE_API_KEY
    if parts.scheme == "http" and sandbox and host in LOOPBACK:
        return ""
    if parts.scheme != "https" or not host:
        return HTTPS_ONLY
    if not sandbox and (host == "localhost" or host.endswith(".localhost") or not _public(host)):
        return INTERNAL
    return ""


NAT64 = ipaddress.ip_network("64:ff9b::/96")
COMPATIBLE = ipaddress.ip_network("::/96")


def _public(address):
    """Whether ``address`` is not an IP address of a private, local or reserved network (a
    name passes: ``_open`` checks what it resolves to)."""
    try:
        found = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return True
    if found.version == 6:
        # An IPv4 address carried inside IPv6 (mapped, 6to4, NAT64, the old compatible form)
        # reaches that IPv4 network: judge the IPv4 address.
        inner = found.ipv4_mapped or found.sixtofour
        if inner is None and (found in NAT64 or found in COMPATIBLE):
            inner = ipaddress.IPv4Address(int(found) & 0xFFFFFFFF)
        if inner is not None:
            return inner.is_global
    return found.is_global


def refusal(job):
    """Why job's callback may not be sent now ("" when it may)."""
    token = job.api_token
    if token is None:
        return "The API token that sent this job was deleted, so its callback cannot be signed."
    if token.revoked_at is not None:
        return "The API token that sent this job was revoked; its callbacks are no longer sent."
    return url_refusal(job.callback_url)


def receiver_of(url):
    """Who a URL reaches: its scheme, host and port ("https://hooks.example.com:443")."""
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme, "")
    except ValueError:
        return ""
    return f"{parts.scheme}://{parts.hostname or ''}:{port}"[:200]


def shown(url):
    """``url`` as the job page shows it: scheme, host and path; no credentials or query
    string, which may hold secrets."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "(not a valid URL)"
    netloc = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{netloc}{f':{port}' if port else ''}{parts.path}"


# --- signing ------------------------------------------------------------------------------


def sign(secret, msg_id, timestamp, body):
    """The Standard Webhooks signature of ``body`` (a str) for these headers."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers_for(message, secret, timestamp):
    msg_id = f"msg_{message.pk}"
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, message.body),
        "Connection": "close",
    }


# --- one attempt --------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What one attempt came to: the HTTP status, or what went wrong."""

    http_status: int | None = None
    error: str = ""
    # The receiver did not answer (a timeout, an unknown host): it is left alone a while.
    silent: bool = False
    # Trying again would not help: the callback is given up at once.
    final: bool = False

    @property
    def delivered(self):
        return self.http_status is not None and 200 <= self.http_status < 300

    @property
    def problem(self):
        return self.error or f"The receiver answered HTTP {self.http_status}."


@cache
def _tls():
    # The CA bundle ``requests`` trusts everywhere else in the studio.
    return ssl.create_default_context(cafile=requests.certs.where())


class _Exchange:
    """The socket of one POST, which a timer shuts when the deadline passes: any read or
    write waiting on it returns at once, however the receiver dribbles its bytes."""

    def __init__(self):
        self.sock, self.cut, self.lock = None, False, threading.Lock()

    def hold(self, sock):
        with self.lock:
            self.sock = sock
            if self.cut:
                self._shut()

    def shut(self):
        with self.lock:
            self.cut = True
            self._shut()

    def _shut(self):
        if self.sock is not None:
            # socket.socket's own shutdown, even for a TLS socket: no TLS goodbye to wait on.
            with suppress(OSError):
                socket.socket.shutdown(self.sock, socket.SHUT_RDWR)

    def close(self):
        with self.lock:
            if self.sock is not None:
                self.sock.close()


def post(url, body, headers, *, connect_timeout=None, read_timeout=None, deadline=None):
    """POST ``body`` (bytes) to ``url`` with ``headers``, over in ``deadline`` seconds at most
    (name resolution aside); return an ``Answer``. Redirects are not followed. The limits
    default to the module's (read when called)."""
    connect_timeout = connect_timeout or CONNECT_TIMEOUT
    read_timeout = read_timeout or READ_TIMEOUT
    deadline = deadline or DEADLINE
    parts = urlsplit(url)
    # Quoted as requests would: an IRI's path may hold characters HTTP cannot carry as they are.
    target = requote_uri((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    headers = {**headers, "Host": parts.netloc.rpartition("@")[2]}
    exchange = _Exchange()
    timer = threading.Timer(deadline, exchange.shut)
    timer.daemon = True
    timer.start()
    stage = "connect"
    try:
        sock = _connect(parts, connect_timeout, exchange)
        stage = "answer"
        sock.settimeout(read_timeout)
        # http.client writes the request and reads the answer over our socket; it never
        # opens one of its own, and it follows no redirect.
        conn = http.client.HTTPConnection(parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme])
        conn.sock = sock
        conn.request("POST", target, body=body, headers=headers)
        with conn.getresponse() as response:  # the status is all it needs: the body is not read
            return Answer(response.status)
    except Exception as exc:
        return _failure(exc, stage, exchange.cut, connect_timeout, read_timeout, deadline)
    finally:
        timer.cancel()
        exchange.close()


class Internal(Exception):
    """The receiver's name leads only to addresses the studio does not post to."""


def _connect(parts, timeout, exchange):
    sock = _open(parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme], timeout)
    exchange.hold(sock)
    if parts.scheme != "https":
        return sock
    tls = _tls().wrap_socket(sock, server_hostname=parts.hostname, do_handshake_on_connect=False)
    exchange.hold(tls)
    tls.do_handshake()
    return tls


def _open(host, port, timeout):
    """A socket connected to ``host`` (as ``socket.create_connection``). Outside sandbox mode,
    only to a public address: a name that resolves into the studio's own network (by design
    or by a DNS trick after the URL was accepted) is not followed there."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if settings.PIXELBYTE_API_KEY:
        found = [info for info in found if _public(info[4][0])]
        if not found:
            raise Internal
    error = None
    for family, kind, proto, _, address in found:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error or OSError("no address to connect to")


def _failure(exc, stage, cut, connect_timeout, read_timeout, deadline):
    """A short account of what went wrong, without the URL."""
    if cut:
        return Answer(error=f"No complete answer within {deadline:g} s.", silent=True)
    if stage == "connect":
        if isinstance(exc, Internal):
            return Answer(error=INTERNAL, final=True)
        if isinstance(exc, socket.gaierror):
            return Answer(error="The receiver's host name was not found.", silent=True)
        if isinstance(exc, ConnectionRefusedError):
            return Answer(error="Connection refused.")
        if isinstance(exc, TimeoutError):
            return Answer(error=f"Could not connect within {connect_timeout:g} s.", silent=True)
        if isinstance(exc, ssl.SSLCertVerificationError):
            return Answer(error="The receiver's TLS certificate is not trusted.")
        if isinstance(exc, ssl.SSLError):
            return Answer(error="The TLS handshake failed.")
        return Answer(error=f"Could not connect ({_reason(exc)}).")
    if isinstance(exc, TimeoutError):
        return Answer(error=f"Timed out after {read_timeout:g} s.", silent=True)
    if isinstance(exc, http.client.RemoteDisconnected):
        return Answer(error="The receiver closed the connection without answering.")
    if isinstance(exc, http.client.HTTPException):
        return Answer(error="The receiver's answer was not HTTP.")
    return Answer(error=f"The connection failed ({_reason(exc)}).")


def _reason(exc):
    return getattr(exc, "strerror", None) or type(exc).__name__


def attempt(message, now):
    """Make one attempt at a claimed callback and record it; return its ``Answer``."""
    job = message.job
    problem = refusal(job)
    if problem:
        answer = Answer(error=problem, final=True)
        _settle(message, answer, timezone.now(), 0, now)
        return answer
    at, started = timezone.now(), time.monotonic()
    headers = headers_for(message, job.api_token.webhook_secret, int(time.time()))
    answer = post(job.callback_url, message.body.encode(), headers)
    _settle(message, answer, at, round((time.monotonic() - started) * 1000), now)
    return answer


def _settle(message, answer, at, duration_ms, now):
    attempts = message.attempts + 1  # the claim counted this one
    give_up = not answer.delivered and (answer.final or attempts >= MAX_ATTEMPTS)
    with transaction.atomic():
        DeliveryAttempt.objects.create(
            message=message,
            at=at,
            http_status=answer.http_status,
            error=answer.error[:300],
            duration_ms=duration_ms,
        )
        if answer.delivered:
            outbox.mark_sent(message)
        elif give_up:
            outbox.put_off(message, answer.problem, None)
        else:
            # From the later of the pass's clock and now: an attempt may have taken a while.
            retry_at = max(now, timezone.now()) + RETRY_DELAYS[attempts - 1]
            outbox.put_off(message, answer.problem, retry_at)
    if give_up and not answer.delivered:
        log.warning(
            "job %s: callback given up after %s attempt(s): %s", message.job_id, attempts, answer.problem
        )
    elif not answer.delivered:
        log.info("job %s: callback attempt %s failed: %s", message.job_id, attempts, answer.problem)


# --- passes -------------------------------------------------------------------------------


def due_by_receiver(now, avoid=()):
    """Due callbacks no worker holds, most overdue first, grouped by receiver (leaving out
    the receivers in ``avoid``): {receiver: [message id, ...]}."""
    rows = (
        OutgoingMessage.objects.filter(
            outbox.unclaimed(now), channel=Channel.CALLBACK, next_attempt_at__lte=now
        )
        .exclude(subject__in=list(avoid))
        .order_by("next_attempt_at", "pk")
        .values_list("subject", "pk")[:BATCH]
    )
    groups = {}
    for receiver_key, pk in rows:
        groups.setdefault(receiver_key, []).append(pk)
    return groups


def deliver(message_ids, now=None, stop=None):
    """Try one receiver's callbacks once each, in order, until it does not answer; return
    (how many were delivered, whether it fell silent). ``now``: the pass's clock (default:
    the time of each attempt)."""
    sent = 0
    for pk in message_ids:
        if stop is not None and stop.is_set():
            break
        clock = now or timezone.now()
        message = (
            OutgoingMessage.objects.select_related("job__api_token")
            .filter(pk=pk, channel=Channel.CALLBACK)
            .first()
        )
        if message is None or not outbox.claim(message, clock):
            continue  # another worker has it, or had it since it was read
        answer = attempt(message, clock)
        sent += answer.delivered
        if answer.silent:
            return sent, True
    return sent, False


def _deliver_in_thread(message_ids, now=None, stop=None):
    """``deliver`` on a thread of a pool, whose database connection is closed after."""
    try:
        return deliver(message_ids, now, stop)
    except Exception:
        log.exception("delivering job callbacks failed unexpectedly")
        return 0, False
    finally:
        connection.close()


def run_pass(now=None, workers=WORKERS):
    """For a one-shot ``sync_jobs``: queue what a lost signal missed, then try every due
    callback once, ``workers`` receivers at a time; return how many were delivered. Each
    receiver costs at most one ``DEADLINE`` of silence, so the pass is bounded."""
    now = now or timezone.now()
    queue_missed(now)
    groups = list(due_by_receiver(now).values())
    # No thread for a single receiver; nor inside a transaction (a caller's, a test's), whose
    # rows the threads' own connections could not see.
    if len(groups) <= 1 or workers <= 1 or connection.in_atomic_block:
        return sum(deliver(ids, now)[0] for ids in groups)
    with ThreadPoolExecutor(min(workers, len(groups)), thread_name_prefix="callback") as pool:
        return sum(sent for sent, _ in pool.map(lambda ids: _deliver_in_thread(ids, now), groups))


class Loop(threading.Thread):
    """Callback deliveries beside ``sync_jobs --watch``: this thread looks for due callbacks
    every ``interval`` and hands each receiver's to a pool of ``workers`` threads, one
    receiver per thread at a time, so nothing else the worker does waits on a receiver.
    Connections are closed after every pass and every batch, so an idle loop holds none."""

    def __init__(self, workers=WORKERS, interval=LOOP_INTERVAL):
        super().__init__(name="callbacks", daemon=True)
        self.workers, self.interval = workers, interval
        self.stopping = threading.Event()
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="callback")
        self.lock = threading.Lock()
        self.busy = set()  # receivers a thread is working on
        self.resting = {}  # receiver -> time.monotonic() until which it is left alone
        self.swept_at = None

    def run(self):
        while not self.stopping.is_set():
            try:
                self.dispatch(timezone.now())
            except Exception:
                # A database hiccup must not end the thread; the next pass retries.
                log.exception("callback pass failed; trying again shortly")
            finally:
                connection.close()
            self.stopping.wait(self.interval)

    def dispatch(self, now):
        """Hand due callbacks to free threads, one receiver each; return how many receivers."""
        if self.swept_at is None or now - self.swept_at >= SWEEP_EVERY:
            queue_missed(now)
            self.swept_at = now
        with self.lock:
            free = self.workers - len(self.busy)
            clock = time.monotonic()
            self.resting = {key: until for key, until in self.resting.items() if until > clock}
            avoid = self.busy | set(self.resting)
        if free <= 0:
            return 0
        groups = list(due_by_receiver(now, avoid).items())[:free]
        for receiver_key, ids in groups:
            with self.lock:
                self.busy.add(receiver_key)
            self.pool.submit(self._work, receiver_key, ids)
        return len(groups)

    def _work(self, receiver_key, ids):
        silent = False
        try:
            _, silent = _deliver_in_thread(ids, stop=self.stopping)
        finally:
            with self.lock:
                self.busy.discard(receiver_key)
                if silent:
                    self.resting[receiver_key] = time.monotonic() + REST_SECONDS

    def stop(self):
        """Stop looking, and wait for the attempts under way (each over within ``DEADLINE``)."""
        self.stopping.set()
        self.join(self.interval + 5)
        self.pool.shutdown(wait=True, cancel_futures=True)


# --- what people see ----------------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    """What the job page shows of a job sent through the API: the token, and its callback."""

    token: ApiToken
    url: str  # the callback URL as shown (see ``shown``); "" when it asked for none
    message: OutgoingMessage | None  # None until the job ends
    attempts: list

    @property
    def state(self):
        """waiting (the job has not ended), sending, retrying, delivered or given_up."""
        if self.message is None:
            return "waiting"
        if self.message.sent_at is not None:
            return "delivered"
        if self.message.next_attempt_at is None:
            return "given_up"
        return "retrying" if self.attempts else "sending"


def card(job):
    """The job page's ``Card`` for ``job``, or None for a job from the form (three queries)."""
    if job.api_token_id is None:
        return None
    token = ApiToken.objects.only("name", "prefix").filter(pk=job.api_token_id).first()
    if token is None:
        return None
    message = None
    if job.callback_url:
        message = (
            OutgoingMessage.objects.filter(job_id=job.pk, channel=Channel.CALLBACK)
            .prefetch_related("tries")
            .first()
        )
    attempts = list(message.tries.all()) if message is not None else []
    return Card(token, shown(job.callback_url) if job.callback_url else "", message, attempts)


def attempts_for(job):
    """Every delivery attempt of ``job``'s callback, oldest first, as JSON-ready dicts."""
    tries = DeliveryAttempt.objects.filter(message__job_id=job.pk, message__channel=Channel.CALLBACK)
    return [
        {"at": iso(t.at), "httpStatus": t.http_status, "error": t.error, "durationMs": t.duration_ms}
        for t in tries.order_by("at", "id")
    ]
