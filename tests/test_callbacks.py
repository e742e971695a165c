"""Job callbacks: a job sent through the API with a webhook URL is posted there when it ends,
signed the Standard Webhooks way (checked with the `standardwebhooks` package, an
implementation that is not ours), retried, shown on the job page, and never able to hold
anything else up."""

import logging
import re
import socket
import ssl
import threading
import time
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from jobs import callbacks, lifecycle, outbox, pixelbyte, pricing, submission, tokens
from jobs.management.commands.sync_jobs import Command as SyncCommand
from jobs.models import Channel, DeliveryAttempt, Job, OutgoingMessage, Status
from sandbox.engine import SANDBOX

from .helpers import BlackHole, FakeApi, Reply, closed_port, make_archived, make_job, make_user

PARAMS = {"prompt": "A paper boat in the rain", "quality": "std", "duration": "5", "aspect_ratio": "16:9"}


@pytest.fixture
def receivers():
    """Start loopback receivers (``receivers(*replies)``), stopped after the test."""
    started = []

    def start(*replies):
        server = FakeApi(*(replies or (Reply(status=204),)))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def black_hole():
    hole = BlackHole()
    yield hole
    hole.stop()


def hook_url(server, path="/hooks/kling"):
    # The query string goes out with the callback but is never shown or logged.
    return f"{server.url}{path}?key=sekrit-query"


def posts(server):
    with server.lock:
        return [r for r in server.requests if r["method"] == "POST"]


def ended_job(owner, url, status=Status.COMPLETED, token=None, **fields):
    """An API job with ``url`` that reached ``status`` through the lifecycle, its signal sent."""
    token = token or tokens.create(owner, name="nightly")[0]
    team = getattr(getattr(owner, "profile", None), "team", None)
    job = make_job(
        owner,
        team=team,
        api_token=token,
        callback_url=url,
        status=Status.PROCESSING,
        remote_id=f"job_{uuid.uuid4().hex[:8]}",
    )
    end(job, status, **fields)
    return Job.objects.get(pk=job.pk)


def end(job, status, **fields):
    remote = pixelbyte.RemoteJob(job_id=job.remote_id, status=status, completed_at=timezone.now(), **fields)
    lifecycle.apply_update(job.pk, remote)


def in_flight_at_the_sandbox(owner, token=None, url=""):
    """A job submitted to the sandbox (as the API does when ``token`` is given), finished
    there and due for a check."""
    job = submission.submit_job(
        user=owner,
        model=pricing.DEFAULT_MODEL,
        params=PARAMS,
        submission_key=uuid.uuid4(),
        token=token,
        callback_url=url,
    )
    SANDBOX.jobs[job.remote_id].created -= 5
    Job.objects.filter(pk=job.pk).update(next_check_at=timezone.now() - timedelta(seconds=1))
    return job


def verified(request, secret):
    """The request's JSON, once `standardwebhooks` accepts its signature."""
    return Webhook(secret).verify(request["body"], request["headers"])


def callback_of(job):
    return OutgoingMessage.objects.get(job=job, channel=Channel.CALLBACK)


def wait_for(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


# --- the signed POST --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_completed_api_job_posts_one_callback_whose_signature_an_independent_library_verifies(
    sandbox, receivers
):
    owner = make_user()
    receiver = receivers()
    token, _ = tokens.create(owner, name="nightly")
    job = in_flight_at_the_sandbox(owner, token, hook_url(receiver))

    call_command("sync_jobs", stdout=StringIO())  # the job completes, and its callback goes out
    call_command("sync_jobs", stdout=StringIO())  # nothing more

    job.refresh_from_db()
    assert job.status == Status.COMPLETED
    [request] = posts(receiver)
    assert request["path"] == "/hooks/kling?key=sekrit-query"
    headers = request["headers"]
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "KlingStudio-Webhook/1"
    assert headers["webhook-id"] == f"msg_{callback_of(job).pk}"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    assert headers["webhook-signature"].startswith("v1,")
    event = verified(request, token.webhook_secret)
    assert event["type"] == "job.ended" and event["timestamp"].endswith("Z")
    data = event["data"]
    assert {key: data[key] for key in ("id", "status", "prompt", "quality", "duration", "aspectRatio")} == {
        "id": job.pk,
        "status": "completed",
        "prompt": PARAMS["prompt"],
        "quality": "std",
        "duration": 5,
        "aspectRatio": "16:9",
    }
    assert data["estimatedMicroCents"] == job.estimated_micro_cents
    assert data["chargedMicroCents"] == job.billed_micro_cents > 0
    assert data["createdAt"].endswith("Z") and data["completedAt"].endswith("Z")
    assert data["links"] == {
        "self": f"http://studio.invalid/api/v1/jobs/{job.pk}",
        "page": f"http://studio.invalid/jobs/{job.pk}/",
        "video": job.output_url,  # not archived yet: PixelByte's link
    }
    message = callback_of(job)
    assert message.sent_at is not None and message.next_attempt_at is None
    [attempt] = DeliveryAttempt.objects.filter(message=message)
    assert attempt.http_status == 204 and attempt.error == ""


def test_a_tampered_body_or_another_secret_fails_verification(
    owner, receivers, django_capture_on_commit_callbacks
):
    receiver = receivers()
    with django_capture_on_commit_callbacks(execute=True):
        job = ended_job(owner, hook_url(receiver))
    callbacks.run_pass()
    [request] = posts(receiver)
    secret = job.api_token.webhook_secret
    assert verified(request, secret)["data"]["id"] == job.pk
    tampered = {**request, "body": request["body"].replace(b'"completed"', b'"failed"')}
    with pytest.raises(WebhookVerificationError):
        verified(tampered, secret)
    with pytest.raises(WebhookVerificationError):
        verified(request, tokens.new_webhook_secret())


def test_an_archived_video_links_to_the_studios_copy(owner, receivers, settings):
    settings.PUBLIC_BASE_URL = "https://studio.example"
    receiver = receivers()
    token = tokens.create(owner, name="nightly")[0]
    job = make_job(
        owner, api_token=token, callback_url=hook_url(receiver), status=Status.COMPLETED, remote_id="job_a"
    )
    make_archived(job)
    callbacks.queue(job.pk)
    callbacks.run_pass()
    data = verified(posts(receiver)[0], token.webhook_secret)["data"]
    assert data["links"]["video"] == f"https://studio.example/jobs/{job.pk}/video"


@pytest.mark.parametrize("status", ["failed", "cancelled", "refused", "declined"])
def test_failed_cancelled_refused_and_declined_jobs_are_reported_too(
    status, owner, receivers, django_capture_on_commit_callbacks
):
    receiver = receivers()
    token = tokens.create(owner, name="nightly")[0]
    start = {"refused": Status.SUBMITTING, "declined": Status.AWAITING}.get(status, Status.PENDING)
    remote_id = None if start in (Status.SUBMITTING, Status.AWAITING) else "job_x"
    job = make_job(owner, api_token=token, callback_url=hook_url(receiver), status=start, remote_id=remote_id)
    with django_capture_on_commit_callbacks(execute=True):
        if status == "failed":
            end(job, Status.FAILED, error_code="CONTENT_POLICY", error_message="The prompt was refused.")
        elif status == "cancelled":
            lifecycle.cancelled(job.pk, job.estimated_micro_cents)
        elif status == "refused":
            lifecycle.mark_not_sent(job.pk, code="INVALID", message="PixelByte refused it.")
        else:
            with transaction.atomic():
                lifecycle.declined(Job.objects.select_for_update().get(pk=job.pk))
    assert callbacks.run_pass() == 1
    [request] = posts(receiver)
    data = verified(request, token.webhook_secret)["data"]
    assert (data["id"], data["status"], data["chargedMicroCents"]) == (job.pk, status, 0)
    if status == "failed":
        assert (data["errorCode"], data["errorMessage"]) == ("CONTENT_POLICY", "The prompt was refused.")


def test_a_job_from_the_form_or_without_a_url_sends_nothing(
    owner, receivers, django_capture_on_commit_callbacks
):
    receiver = receivers()
    token = tokens.create(owner, name="nightly")[0]
    from_form = make_job(owner, callback_url=hook_url(receiver), remote_id="job_f")
    no_url = make_job(owner, api_token=token, remote_id="job_n")
    with django_capture_on_commit_callbacks(execute=True):
        end(from_form, Status.COMPLETED)
        end(no_url, Status.COMPLETED)
    callbacks.run_pass()
    assert posts(receiver) == []
    assert not OutgoingMessage.objects.filter(channel=Channel.CALLBACK).exists()


def test_a_job_still_in_flight_has_no_callback_yet(owner, receivers):
    receiver = receivers()
    job = make_job(owner, api_token=tokens.create(owner, name="t")[0], callback_url=hook_url(receiver))
    assert callbacks.queue(job.pk) is None
    callbacks.run_pass()
    assert posts(receiver) == []


# --- exactly once -----------------------------------------------------------------------------


def test_the_signal_firing_twice_queues_one_callback(owner, receivers, django_capture_on_commit_callbacks):
    receiver = receivers()
    with django_capture_on_commit_callbacks(execute=True):
        job = ended_job(owner, hook_url(receiver))
    lifecycle.job_ended.send(Job, job_id=job.pk)
    lifecycle.job_ended.send_robust(Job, job_id=job.pk)
    assert OutgoingMessage.objects.filter(job=job, channel=Channel.CALLBACK).count() == 1
    callbacks.run_pass()
    callbacks.run_pass()
    assert len(posts(receiver)) == 1


@pytest.mark.django_db(transaction=True)
def test_signals_racing_in_eight_threads_queue_one_callback(receivers):
    owner = make_user()
    receiver = receivers()
    job = make_job(
        owner,
        api_token=tokens.create(owner, name="t")[0],
        callback_url=hook_url(receiver),
        status=Status.COMPLETED,
        remote_id="job_r",
    )
    gate = threading.Barrier(8)

    def fire():
        from django.db import connection

        try:
            gate.wait()
            lifecycle.job_ended.send(Job, job_id=job.pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=fire) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert OutgoingMessage.objects.filter(job=job, channel=Channel.CALLBACK).count() == 1


def test_a_callback_whose_signal_was_lost_is_queued_by_the_next_pass(owner, receivers):
    receiver = receivers()
    job = ended_job(owner, hook_url(receiver))  # no on-commit here: the signal never ran
    assert not OutgoingMessage.objects.filter(job=job).exists()
    assert callbacks.run_pass() == 1
    assert len(posts(receiver)) == 1


def test_the_mail_worker_leaves_callbacks_to_their_own_workers(
    owner, receivers, django_capture_on_commit_callbacks
):
    receiver = receivers()
    with django_capture_on_commit_callbacks(execute=True):
        job = ended_job(owner, hook_url(receiver))
    assert outbox.deliver_due() == 0
    assert callback_of(job).attempts == 0 and posts(receiver) == []


# --- retries, and what the owner sees -------------------------------------------------------


def test_a_failing_receiver_is_retried_after_the_back_off_and_every_attempt_is_shown(
    owner, manager, outsider, teammate, client, receivers, django_capture_on_commit_callbacks
):
    receiver = receivers(Reply(status=500, body={"error": "busy"}), Reply(status=200))
    with django_capture_on_commit_callbacks(execute=True):
        job = ended_job(owner, hook_url(receiver))
    now = timezone.now()
    assert callbacks.run_pass(now) == 0
    message = callback_of(job)
    assert message.last_error == "The receiver answered HTTP 500."
    assert timedelta(seconds=9) < message.next_attempt_at - now < timedelta(seconds=12)

    client.force_login(owner)
    page = client.get(job.get_absolute_url()).content.decode()
    assert "Not delivered yet: next try at" in page and "HTTP 500" in page

    assert callbacks.run_pass(now + timedelta(seconds=5)) == 0  # still waiting out its back-off
    assert len(posts(receiver)) == 1
    assert callbacks.run_pass(now + timedelta(seconds=12)) == 1
    first, second = posts(receiver)
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"]
    assert first["body"] == second["body"]
    secret = job.api_token.webhook_secret
    assert verified(first, secret) == verified(second, secret)

    assert list(DeliveryAttempt.objects.filter(message__job=job).values_list("http_status", flat=True)) == [
        500,
        200,
    ]
    shown = callbacks.attempts_for(job)
    assert [a["httpStatus"] for a in shown] == [500, 200]
    assert set(shown[0]) == {"at", "httpStatus", "error", "durationMs"}
    assert shown[0]["at"].endswith("Z") and isinstance(shown[0]["durationMs"], int)

    for person in (owner, manager):
        client.force_login(person)
        page = client.get(job.get_absolute_url()).content.decode()
        assert "Sent through the API with token “nightly”" in page
        assert f"({job.api_token.prefix}…)" in page
        assert f"<code>{receiver.url}/hooks/kling</code>" in page
        assert "sekrit-query" not in page and job.api_token.webhook_secret not in page
        assert "HTTP 500" in page and "HTTP 200" in page and "Delivered" in page
    for person in (outsider, teammate):
        client.force_login(person)
        assert client.get(job.get_absolute_url()).status_code == 404


def test_a_receiver_that_keeps_failing_is_given_up_after_the_last_attempt(
    owner, caplog, django_capture_on_commit_callbacks
):
    url = f"http://127.0.0.1:{closed_port()}/hook"
    with django_capture_on_commit_callbacks(execute=True):
        job = ended_job(owner, url)
    now = timezone.now()
    for delay in (timedelta(0), *callbacks.RETRY_DELAYS):
        now += delay + timedelta(seconds=1)
        callbacks.run_pass(now)
    callbacks.run_pass(now + timedelta(days=2))
    message = callback_of(job)
    assert (
        message.attempts == callbacks.MAX_ATTEMPTS == DeliveryAttempt.objects.filter(message=message).count()
    )
    assert message.next_attempt_at is None and message.sent_at is None
    assert message.last_error == "Connection refused."
    assert f"job {job.pk}: callback given up after {callbacks.MAX_ATTEMPTS} attempt(s)" in caplog.text
    assert callbacks.card(job).state == "given_up"


def test_the_job_page_costs_the_same_queries_with_one_attempt_or_many(
    owner_client, owner, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job = ended_job(owner, "https://hooks.example.com/kling")
    message = callback_of(job)
    DeliveryAttempt.objects.create(message=message, http_status=500)
    with CaptureQueriesContext(transaction.get_connection()) as one:
        owner_client.get(job.get_absolute_url())
    for _ in range(6):
        DeliveryAttempt.objects.create(message=message, error="Timed out after 10 s.")
    with CaptureQueriesContext(transaction.get_connection()) as seven:
        page = owner_client.get(job.get_absolute_url()).content.decode()
    assert page.count("Timed out after 10 s.") == 6
    assert len(seven) == len(one)
    form_job = make_job(owner)
    with CaptureQueriesContext(transaction.get_connection()) as plain:
        owner_client.get(form_job.get_absolute_url())
    assert len(one) - len(plain) <= 3  # the token, the callback, its attempts


def test_a_job_sent_without_a_url_names_its_token_but_shows_no_callback_card(owner_client, owner):
    job = make_job(owner, api_token=tokens.create(owner, name="ci")[0])
    page = owner_client.get(job.get_absolute_url()).content.decode()
    assert "Sent through the API with token “ci”" in page
    assert 'data-role="callback"' not in page


def test_a_job_from_the_form_says_nothing_of_the_api(owner_client, owner):
    page = owner_client.get(make_job(owner).get_absolute_url()).content.decode()
    assert "Sent through the API" not in page and 'data-role="callback"' not in page


# --- a receiver that never answers ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_receiver_that_never_answers_holds_up_neither_another_callback_nor_the_sync_worker(
    sandbox, receivers, black_hole, monkeypatch
):
    monkeypatch.setattr(callbacks, "READ_TIMEOUT", 4.0)  # the real 10 s would only make this slower
    owner = make_user()
    silent = receivers(Reply(hang=30))  # takes the request, never answers
    healthy = receivers()
    token = tokens.create(owner, name="t")[0]
    hole_job = ended_job(owner, black_hole.url + "/hook", token=token)
    silent_job = ended_job(owner, hook_url(silent), token=token)
    polled = in_flight_at_the_sandbox(owner)
    loop = callbacks.Loop(interval=0.1)
    loop.start()
    try:
        assert wait_for(lambda: len(posts(silent)) == 1)
        started = time.monotonic()
        healthy_job = ended_job(owner, hook_url(healthy), token=token)
        assert wait_for(lambda: len(posts(healthy)) == 1, timeout=2)
        assert time.monotonic() - started < 2
        # Neither silent receiver has been given up on yet: both attempts are still hanging.
        assert not DeliveryAttempt.objects.filter(message__job__in=[hole_job, silent_job]).exists()

        started = time.monotonic()
        call_command("sync_jobs", stdout=StringIO())
        assert time.monotonic() - started < 2
        assert Job.objects.get(pk=polled.pk).status == Status.COMPLETED
        assert not DeliveryAttempt.objects.filter(message__job__in=[hole_job, silent_job]).exists()
    finally:
        loop.stop()
    assert not loop.is_alive()
    assert callback_of(healthy_job).sent_at is not None
    errors = dict(DeliveryAttempt.objects.values_list("message__job_id", "error"))
    assert errors[hole_job.pk] == "Could not connect within 3.05 s."
    assert errors[silent_job.pk] == "Timed out after 4 s."
    assert all(
        callback_of(job).next_attempt_at is not None for job in (hole_job, silent_job)
    )  # retried later


@pytest.mark.django_db(transaction=True)
def test_a_one_shot_pass_tries_receivers_side_by_side(receivers):
    owner = make_user()
    holes = [BlackHole() for _ in range(3)]
    try:
        token = tokens.create(owner, name="t")[0]
        for hole in holes:
            ended_job(owner, hole.url + "/hook", token=token)
        started = time.monotonic()
        callbacks.run_pass()
        assert time.monotonic() - started < 5  # three connect timeouts at once, not one after another
    finally:
        for hole in holes:
            hole.stop()
    assert DeliveryAttempt.objects.filter(error="Could not connect within 3.05 s.").count() == 3


def test_a_silent_receiver_costs_one_timeout_a_pass_not_one_per_callback(
    owner, black_hole, django_capture_on_commit_callbacks
):
    token = tokens.create(owner, name="t")[0]
    with django_capture_on_commit_callbacks(execute=True):
        jobs = [ended_job(owner, black_hole.url + f"/hook/{n}", token=token) for n in range(3)]
    started = time.monotonic()
    callbacks.run_pass()
    assert time.monotonic() - started < 5
    assert DeliveryAttempt.objects.count() == 1
    assert sorted(callback_of(job).attempts for job in jobs) == [0, 0, 1]


def test_a_receiver_that_trickles_its_answer_is_cut_off_at_the_deadline():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stop = threading.Event()

    def trickle():
        conn, _ = listener.accept()
        with conn:
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
                if stop.is_set():
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return
                time.sleep(0.2)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        answer = callbacks.post(
            f"http://127.0.0.1:{listener.getsockname()[1]}/hook", b"{}", {}, read_timeout=1, deadline=1.5
        )
    finally:
        stop.set()
        listener.close()
    assert time.monotonic() - started < 2.5
    assert answer == callbacks.Answer(error="No complete answer within 1.5 s.", silent=True)


def test_a_redirect_is_not_followed(owner, receivers, django_capture_on_commit_callbacks):
    elsewhere = receivers()
    receiver = receivers(Reply(status=302, headers={"Location": elsewhere.url + "/stolen"}))
    with django_capture_on_commit_callbacks(execute=True):
        job = ended_job(owner, hook_url(receiver))
    callbacks.run_pass()
    assert posts(elsewhere) == []
    assert callback_of(job).last_error == "The receiver answered HTTP 302."


@pytest.mark.django_db(transaction=True)
def test_sync_jobs_watch_delivers_callbacks_beside_its_checks(receivers, monkeypatch):
    import signal

    receiver = receivers()
    owner = make_user()
    job = ended_job(owner, hook_url(receiver))
    monkeypatch.setattr(signal, "signal", lambda *args: None)
    monkeypatch.setattr(SyncCommand, "sync_once", lambda self, **kwargs: (0, 0, 0))

    def sleep_until_delivered(command, seconds):
        wait_for(lambda: OutgoingMessage.objects.filter(job=job, sent_at__isnull=False).exists())
        command.stopping = True

    monkeypatch.setattr(SyncCommand, "_sleep", sleep_until_delivered)
    call_command("sync_jobs", watch=True, stdout=StringIO())
    assert len(posts(receiver)) == 1
    assert not any(t.name == "callbacks" or t.name.startswith("callback_") for t in threading.enumerate())


# --- what is refused, and what is never written down ----------------------------------------


def test_a_url_made_unacceptable_is_given_up_with_a_clear_error(
    owner, settings, receivers, django_capture_on_commit_callbacks
):
    receiver = receivers()
    with django_capture_on_commit_callbacks(execute=True):
        public = ended_job(owner, "http://hooks.example.com/kling")
        loopback = ended_job(owner, hook_url(receiver))
    settings.PIXELBYTE_API_KEY = "pb_live_key"  # production mode: plain http nowhere
    callbacks.run_pass()
    assert posts(receiver) == []
    expected = "The callback URL must use https (plain http only to this machine, in sandbox mode)."
    for job in (public, loopback):
        message = callback_of(job)
        assert (message.next_attempt_at, message.sent_at, message.last_error) == (None, None, expected)
        assert [a["error"] for a in callbacks.attempts_for(job)] == [expected]
        assert callbacks.card(job).state == "given_up"


def test_a_revoked_tokens_callback_is_given_up(owner, receivers, django_capture_on_commit_callbacks):
    receiver = receivers()
    with django_capture_on_commit_callbacks(execute=True):
        job = ended_job(owner, hook_url(receiver))
    tokens.revoke(job.api_token, by=owner)
    callbacks.run_pass()
    assert posts(receiver) == []
    assert "revoked" in callback_of(job).last_error and callback_of(job).next_attempt_at is None


def test_https_is_accepted_anywhere_and_plain_http_only_to_loopback_in_sandbox_mode(settings):
    settings.PIXELBYTE_API_KEY = ""
    assert callbacks.url_refusal("https://hooks.example.com/x?y=1") == ""
    assert callbacks.url_refusal("http://127.0.0.1:8000/x") == ""
    assert callbacks.url_refusal("http://localhost/x") == ""
    assert callbacks.url_refusal("http://[::1]:9000/x") == ""
    assert callbacks.url_refusal("http://hooks.example.com/x") != ""
    assert callbacks.url_refusal("ftp://127.0.0.1/x") != ""
    assert callbacks.url_refusal("https://host:notaport/x") == "The callback URL is not a valid URL."
    settings.PIXELBYTE_API_KEY = "pb_live_key"
    assert callbacks.url_refusal("http://127.0.0.1:8000/x") == callbacks.HTTPS_ONLY
    assert callbacks.url_refusal("https://hooks.example.com/x") == ""
    for internal in ("localhost", "127.0.0.1", "[::1]", "10.0.0.5", "192.168.1.20", "169.254.169.254"):
        assert callbacks.url_refusal(f"https://{internal}/x") == callbacks.INTERNAL


def test_a_name_that_resolves_into_a_private_network_is_not_followed_outside_sandbox_mode(
    owner, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.PIXELBYTE_API_KEY = "pb_live_key"
    with django_capture_on_commit_callbacks(execute=True):
        job = ended_job(owner, "https://hooks.example.com/kling")
    private = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", 443))]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: private)
    connected = []
    monkeypatch.setattr(socket.socket, "connect", lambda self, address: connected.append(address))
    callbacks.run_pass()
    message = callback_of(job)
    assert connected == []
    assert (message.next_attempt_at, message.last_error) == (None, callbacks.INTERNAL)


def test_nothing_logs_the_secret_or_the_urls_query(
    owner, receivers, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.DEBUG)
    receiver = receivers(Reply(status=500), Reply(status=200))
    token = tokens.create(owner, name="t")[0]
    with django_capture_on_commit_callbacks(execute=True):
        good = ended_job(owner, hook_url(receiver), token=token)
        dead = ended_job(owner, f"http://127.0.0.1:{closed_port()}/hook?key=sekrit-query", token=token)
    now = timezone.now()
    for step in range(callbacks.MAX_ATTEMPTS + 1):
        callbacks.run_pass(now + timedelta(days=step))
    assert callback_of(good).sent_at is not None and callback_of(dead).next_attempt_at is None
    key = token.webhook_secret.removeprefix("whsec_")
    written = caplog.text + " ".join(
        [
            *DeliveryAttempt.objects.values_list("error", flat=True),
            *OutgoingMessage.objects.values_list("last_error", flat=True),
        ]
    )
    assert "given up" in caplog.text
    for secret in (token.webhook_secret, key, "sekrit-query", receiver.url):
        assert secret not in written


# --- https ------------------------------------------------------------------------------------


def self_signed(folder):
    """A certificate for "localhost" and its key, as PEM files."""
    from datetime import UTC, datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_file), str(key_file)


class TlsReceiver:
    """An https receiver on loopback that answers every request 200 and keeps what it read."""

    def __init__(self, cert_file, key_file):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert_file, key_file)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # stopped
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    tls.settimeout(5)
                    request = tls.makefile("rb")
                    lines = []
                    while (line := request.readline()) not in (b"\r\n", b""):
                        lines.append(line)
                    head = b"".join(lines)
                    length = re.search(rb"Content-Length: (\d+)", head)
                    # The whole body is read: closing on unread bytes would reset the connection.
                    self.received.append(head + b"\r\n" + request.read(int(length[1]) if length else 0))
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass  # the client refused our certificate

    def stop(self):
        self.listener.close()


def test_an_https_receiver_is_reached_only_when_its_certificate_is_trusted(tmp_path, monkeypatch, settings):
    settings.PIXELBYTE_API_KEY = ""  # sandbox mode: this machine is a receiver like any other
    cert_file, key_file = self_signed(tmp_path)
    receiver = TlsReceiver(cert_file, key_file)
    url = f"https://localhost:{receiver.port}/hooks/kling?key=sekrit-query"
    try:
        # The studio trusts what requests trusts: not a self-signed certificate.
        assert callbacks.post(url, b"{}", {}) == callbacks.Answer(
            error="The receiver's TLS certificate is not trusted."
        )
        monkeypatch.setattr(callbacks, "_tls", lambda: ssl.create_default_context(cafile=cert_file))
        assert callbacks.post(url, b"{}", {"Content-Type": "application/json"}) == callbacks.Answer(200)
    finally:
        receiver.stop()
    request = receiver.received[-1].decode()
    assert request.startswith("POST /hooks/kling?key=sekrit-query HTTP/1.1\r\n")
    assert f"\r\nHost: localhost:{receiver.port}\r\n" in request
    assert request.endswith("\r\n\r\n{}")
