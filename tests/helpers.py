"""Shared cast, builders and loopback servers for the tests."""

import contextlib
import http.server
import itertools
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.test import Client

from jobs import lifecycle, pricing
from jobs.models import Profile, Role, Status, Team

PASSWORD = "correct horse battery staple"
_names = itertools.count(1)


def make_user(username=None, **extra):
    username = username or f"user{next(_names)}"
    return get_user_model().objects.create_user(username=username, password=PASSWORD, **extra)


def make_team(name=None, **fields):
    return Team.objects.create(name=name or f"Team {next(_names)}", **fields)


def make_member(user_or_username, team, role=Role.MEMBER, **profile_fields):
    """A user (given, or made from a username, or None for a made-up one) with a profile
    in ``team`` (None: in no team)."""
    made = user_or_username is None or isinstance(user_or_username, str)
    user = make_user(user_or_username) if made else user_or_username
    Profile.objects.create(user=user, team=team, role=role, **profile_fields)
    return user


def make_job(owner, **overrides):
    values = {
        "prompt": "A lighthouse on a cliff at dusk",
        "quality": "std",
        "duration": 5,
        "aspect_ratio": "16:9",
        "status": Status.PENDING,
    }
    values.update(overrides)
    values.setdefault("progress", {Status.PROCESSING: 50, Status.COMPLETED: 100}.get(values["status"], 0))
    params = {
        "prompt": values["prompt"],
        "quality": values["quality"],
        "duration": str(values["duration"]),
        "aspect_ratio": values["aspect_ratio"],
    }
    values.setdefault("params", params)
    values.setdefault("estimated_micro_cents", pricing.DEFAULT_MODEL.cost(params))
    values.setdefault("model_slug", pricing.DEFAULT_MODEL.slug)
    values.setdefault("submission_key", uuid.uuid4())
    # Made as the lifecycle records a job: counted in its holders' months.
    return lifecycle.record(owner=owner, **values)


def form_data(**overrides):
    data = {
        "prompt": "A lighthouse on a cliff at dusk, waves crashing, slow aerial orbit",
        "quality": "std",
        "duration": "5",
        "aspect_ratio": "16:9",
        "seed": "",
        "submission_key": str(uuid.uuid4()),
    }
    data.update(overrides)
    return data


def sign_in(page, user):
    """Log the browser in as ``user`` by handing it a session cookie."""
    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"]
    page.context.add_cookies([{"name": "sessionid", "value": cookie.value, "url": page.base_url}])


def wait_until(page, expression, timeout=10.0):
    """Poll ``expression`` in the page until it is truthy (Playwright's wait_for_function
    compiles its predicate with eval, which the studio's CSP rightly forbids)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if page.evaluate(expression):
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"still false after {timeout} s: {expression}")


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class StudioServer:
    """The whole studio (so also the sandbox) served over real HTTP on loopback, in a thread."""

    def __init__(self):
        self.server = ThreadedWSGIServer(("127.0.0.1", 0), _QuietHandler, allow_reuse_address=False)
        self.server.set_app(StaticFilesHandler(WSGIHandler()))
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.sandbox_url = self.url + "/sandbox"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class _QuietHTTPServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        """A client that gave up (a timeout under test) is expected, not an error."""


@dataclass
class Reply:
    """One scripted answer of the fake API."""

    status: int = 200
    body: object = None  # dict/list → JSON; str/bytes sent as they are
    headers: dict = field(default_factory=dict)
    hang: float = 0.0  # seconds to wait before answering
    close: bool = False  # drop the connection without answering
    truncate: bool = False  # announce more bytes than are sent
    trickle: float = 0.0  # seconds between the bytes of the body, sent one at a time


def _hangs_up(handler, reply):
    """Play a reply's wait, and its dropped connection; return whether it hung up."""
    if reply.hang:
        time.sleep(reply.hang)
    if reply.close:
        handler.close_connection = True
        handler.connection.shutdown(socket.SHUT_RDWR)
    return reply.close


class _LoopbackServer:
    """A threaded HTTP server on a free loopback port, serving until ``stop``."""

    def _serve(self, methods):
        """Answer ``methods`` with ``self._handle(request_handler)``."""
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

        for method in methods:
            setattr(Handler, f"do_{method}", lambda handler: owner._handle(handler))
        self.server = _QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class FakeApi(_LoopbackServer):
    """A loopback HTTP server that answers from a script and records every request."""

    def __init__(self, *replies):
        self.replies = list(replies)
        self.requests = []
        self.lock = threading.Lock()
        self._serve(("GET", "POST"))

    def count(self, method="POST", path="/v1/jobs/submit"):
        with self.lock:
            return sum(1 for r in self.requests if r["method"] == method and r["path"].split("?")[0] == path)

    def _next_reply(self):
        with self.lock:
            if len(self.replies) > 1:
                return self.replies.pop(0)
            return self.replies[0] if self.replies else Reply(body={})

    def _handle(self, handler):
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self.lock:
            self.requests.append(
                {
                    "method": handler.command,
                    "path": handler.path,
                    "headers": dict(handler.headers),
                    "body": body,
                }
            )
        reply = self._next_reply()
        if _hangs_up(handler, reply):
            return
        payload = reply.body
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload).encode()
        elif isinstance(payload, str):
            payload = payload.encode()
        elif payload is None:
            payload = b""
        handler.send_response(reply.status)
        handler.send_header("Content-Type", "application/json")
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload) + (100 if reply.truncate else 0)))
        handler.end_headers()
        if reply.trickle:
            for i in range(len(payload)):
                handler.wfile.write(payload[i : i + 1])
                time.sleep(reply.trickle)
        else:
            handler.wfile.write(payload)
        if reply.truncate:
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)


def closed_port():
    """A loopback port with nothing listening on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BlackHole:
    """A loopback listener whose accept queue is full, so a new connect never completes."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        self.fillers = []
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(("127.0.0.1", self.port))
            self.fillers.append(s)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        for s in self.fillers:
            s.close()
        self.listener.close()


def make_archived(
    job, video_bytes=b"\x00\x00\x00\x18ftypmp42 a small video", thumbnail_bytes=b"thumb", poster_bytes=None
):
    """Keep files for ``job`` as the archiver does (through the default storage, rows
    after the bytes) and mark it archived; returns {kind: ArchivedFile}."""
    import hashlib

    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from jobs import rollup
    from jobs.models import ArchivedFile, ArchiveStatus, FileKind

    sidecar = json.dumps({"studio_job_id": job.pk, "prompt": job.prompt}).encode()
    wanted = {
        FileKind.VIDEO: (video_bytes, "video/mp4", ".mp4"),
        FileKind.THUMBNAIL: (thumbnail_bytes, "image/jpeg", ".thumb.jpg"),
        FileKind.POSTER: (poster_bytes, "image/jpeg", ".poster.jpg"),
        FileKind.SIDECAR: (sidecar, "application/json", ".json"),
    }
    kept = {}
    for kind, (data, content_type, ending) in wanted.items():
        if data is None:
            continue
        name = default_storage.save(f"videos/test/{job.pk}-clip{ending}", ContentFile(data))
        kept[kind] = ArchivedFile.objects.create(
            job=job,
            kind=kind,
            name=name,
            size=len(data),
            content_type=content_type,
            sha256=hashlib.sha256(data).hexdigest(),
        )
    job.archive_status = ArchiveStatus.ARCHIVED
    job.save(update_fields=["archive_status"])
    rollup.files_kept(job, sum(row.size for row in kept.values()), len(kept))  # as the archiver does
    return kept


class MediaServer(_LoopbackServer):
    """A loopback CDN: serves scripted files by path and records every request.

    ``put(path, *replies)`` scripts a file (the last reply repeats) and returns its URL;
    the faults are those of ``Reply``, except that ``truncate`` announces the whole body
    and drops the connection halfway, and a ``Content-Length`` header set to None sends
    the body without one (delimited by closing the connection). Unknown paths answer 404.
    """

    def __init__(self):
        self.files = {}
        self.requests = []
        self.lock = threading.Lock()
        self._serve(("GET",))

    def put(self, path, *replies):
        with self.lock:
            self.files[path] = list(replies)
        return self.url + path

    def count(self, path):
        with self.lock:
            return sum(1 for r in self.requests if r["path"] == path)

    def _next_reply(self, path):
        with self.lock:
            replies = self.files.get(path)
            if not replies:
                return Reply(status=404, body=b"")
            return replies.pop(0) if len(replies) > 1 else replies[0]

    def _handle(self, handler):
        with self.lock:
            self.requests.append({"path": handler.path, "headers": dict(handler.headers)})
        reply = self._next_reply(handler.path)
        if _hangs_up(handler, reply):
            return
        body = reply.body.encode() if isinstance(reply.body, str) else (reply.body or b"")
        headers = {"Content-Length": str(len(body)), **reply.headers}
        handler.send_response(reply.status)
        for name, value in headers.items():
            if value is not None:
                handler.send_header(name, value)
        handler.end_headers()
        sent = body[: len(body) // 2] if reply.truncate else body
        if reply.trickle:
            for i in range(len(sent)):
                handler.wfile.write(sent[i : i + 1])
                handler.wfile.flush()
                time.sleep(reply.trickle)
        else:
            handler.wfile.write(sent)
        if reply.truncate or headers["Content-Length"] is None:
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
