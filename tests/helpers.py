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

from jobs import pricing
from jobs.models import Job, Profile, Role, Status, Team

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
    return Job.objects.create(owner=owner, **values)


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


class FakeApi:
    """A loopback HTTP server that answers from a script and records every request."""

    def __init__(self, *replies):
        self.replies = list(replies)
        self.requests = []
        self.lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                fake._handle(self)

            def do_POST(self):
                fake._handle(self)

        self.server = _QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

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
        if reply.hang:
            time.sleep(reply.hang)
        if reply.close:
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
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

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


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
