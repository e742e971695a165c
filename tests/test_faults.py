"""Every fault of the API, through the form: a clear message, the right row, nothing sent
twice, one log line without the key (API-01…10 as a person meets them)."""

import logging
import socket
import time

import pytest
from django.urls import reverse

from jobs import throttle
from jobs.models import Job, Status

from .helpers import BlackHole, FakeApi, Reply, closed_port, form_data

NEW = reverse("jobs:new")
KEY = "pb_live_fault_key_0123456789"
SUBMITTED = {"jobId": "job_ok", "requestId": "req_ok", "status": "pending", "costMicroCents": 225000}


@pytest.fixture
def api(settings, db):
    servers = []
    settings.PIXELBYTE_API_KEY = KEY
    settings.PIXELBYTE_READ_TIMEOUT = 0.3
    settings.PIXELBYTE_CONNECT_TIMEOUT = 0.3

    def start(*replies):
        server = FakeApi(*replies)
        servers.append(server)
        settings.PIXELBYTE_API_URL = server.url
        return server

    yield start
    for server in servers:
        server.stop()


FAULTS = {
    # name: (reply, status, words on the page, submits received)
    "read-timeout": (
        Reply(hang=1.0, body=SUBMITTED),
        Status.UNKNOWN,
        "could not confirm whether PixelByte accepted",
        1,
    ),
    "500": (Reply(status=500, body={}), Status.UNKNOWN, "could not confirm whether PixelByte accepted", 1),
    "502": (Reply(status=502, body="<html>bad gateway</html>"), Status.UNKNOWN, "HTTP 502", 1),
    "503": (Reply(status=503, body={}), Status.UNKNOWN, "HTTP 503", 1),
    "429-retry-after": (
        Reply(status=429, body={}, headers={"Retry-After": "7"}),
        Status.REFUSED,
        "too many requests",
        1,
    ),
    "429-bare": (Reply(status=429, body={}), Status.REFUSED, "too many requests", 1),
    "non-json": (Reply(body="<html>ok</html>"), Status.UNKNOWN, "not JSON", 1),
    "truncated": (Reply(body=SUBMITTED, truncate=True), Status.UNKNOWN, "cut off", 1),
    "no-job-id": (Reply(body={"status": "pending"}), Status.UNKNOWN, "no job id", 1),
    "dropped": (Reply(close=True), Status.UNKNOWN, "broke after the request was sent", 1),
    "unknown-status": (Reply(body={**SUBMITTED, "status": "queued-ish"}), Status.PENDING, "", 1),
    "deeply-nested": (Reply(body="[" * 100_000), Status.UNKNOWN, "not JSON", 1),
    "too-large": (Reply(body={**SUBMITTED, "x": "x" * 2**20}), Status.UNKNOWN, "too large", 1),
    "insufficient-balance": (
        Reply(status=402, body={"error": {"code": "INSUFFICIENT_BALANCE", "message": "x"}}),
        Status.REFUSED,
        "Top up the account",
        1,
    ),
    "bad-key": (
        Reply(status=401, body={"error": {"code": "INVALID_API_KEY", "message": "x"}}),
        Status.REFUSED,
        "does not recognise the studio",
        1,
    ),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_each_fault_is_explained_recorded_once_and_logged_once(client, owner, api, caplog, name):
    reply, status, words, submits = FAULTS[name]
    server = api(reply)
    caplog.set_level(logging.INFO, logger="jobs")
    client.force_login(owner)
    response = client.post(NEW, form_data(), follow=True)
    assert response.status_code == 200
    job = Job.objects.get()
    assert job.status == status
    if status != Status.PENDING:
        assert job.error_message and job.error_code
    assert words in response.content.decode()
    time.sleep(0.3 if name == "read-timeout" else 0)
    assert server.count() == submits
    problems = [r for r in caplog.records if r.name == "jobs.submission" and r.levelno >= logging.WARNING]
    assert len(problems) == (0 if status == Status.PENDING else 1)
    assert KEY not in caplog.text


@pytest.mark.parametrize("fault", ["refused", "dns", "connect-timeout"])
def test_a_request_that_never_left_is_not_sent_and_said_so(
    client, owner, api, settings, caplog, monkeypatch, fault
):
    caplog.set_level(logging.INFO, logger="jobs")
    settings.PIXELBYTE_SUBMIT_DEADLINE = 5
    hole = None
    if fault == "refused":
        settings.PIXELBYTE_API_URL = f"http://127.0.0.1:{closed_port()}"
    elif fault == "dns":
        real = socket.getaddrinfo
        monkeypatch.setattr(
            socket,
            "getaddrinfo",
            lambda host, *a, **k: (
                (_ for _ in ()).throw(socket.gaierror(-2, "Name or service not known"))
                if host == "api.nowhere.test"
                else real(host, *a, **k)
            ),
        )
        settings.PIXELBYTE_API_URL = "http://api.nowhere.test"
    else:
        hole = BlackHole()
        settings.PIXELBYTE_API_URL = hole.url
    try:
        client.force_login(owner)
        response = client.post(NEW, form_data())
    finally:
        if hole:
            hole.stop()
    job = Job.objects.get()
    assert (job.status, job.billed_micro_cents) == (Status.REFUSED, 0)
    assert "nothing was sent" in response.content.decode()
    assert KEY not in caplog.text


# --- API-09: the circuit breaker ---------------------------------------------------------------


def test_api09_after_five_failures_submits_fail_fast_then_one_trial(client, owner, api, monkeypatch):
    server = api(Reply(status=503, body={}))
    client.force_login(owner)
    for _ in range(5):
        client.post(NEW, form_data())
    assert server.count() == 5
    paused = client.post(NEW, form_data())
    assert paused.status_code == 429 and "PixelByte is not answering" in paused.content.decode()
    assert server.count() == 5 and Job.objects.count() == 5

    later = time.time() + 31
    monkeypatch.setattr(throttle.time, "time", lambda: later)
    server.replies = [
        Reply(body={**SUBMITTED, "jobId": "job_a"}),
        Reply(body={**SUBMITTED, "jobId": "job_b"}),
    ]
    trial = client.post(NEW, form_data())
    assert trial.status_code == 200 and server.count() == 6
    assert client.post(NEW, form_data()).status_code in (200, 302)  # closed again
    assert server.count() == 7


def test_api09_a_failed_trial_opens_the_breaker_again(client, owner, api, monkeypatch):
    server = api(Reply(status=503, body={}))
    client.force_login(owner)
    for _ in range(5):
        client.post(NEW, form_data())
    monkeypatch.setattr(throttle.time, "time", lambda: 10**10)  # long after the cool-off
    client.post(NEW, form_data())  # the one trial, which fails
    assert server.count() == 6
    assert client.post(NEW, form_data()).status_code == 429
    assert server.count() == 6


def test_api09_a_refusal_is_an_answer_and_closes_the_breaker(client, owner, api):
    server = api(
        Reply(status=503, body={}),
        Reply(status=503, body={}),
        Reply(status=503, body={}),
        Reply(status=503, body={}),
        Reply(status=400, body={"error": {"code": "INVALID_INPUT"}}),
        Reply(body=SUBMITTED),
    )
    client.force_login(owner)
    for _ in range(6):
        client.post(NEW, form_data())
    assert server.count() == 6


def test_fake_api_helper_is_a_real_server():
    server = FakeApi(Reply(body={}))
    try:
        import requests

        assert requests.get(server.url + "/x", timeout=2).status_code == 200
    finally:
        server.stop()


def test_a_job_id_already_in_use_is_kept_apart_not_a_500(client, owner, api):
    api(Reply(body=SUBMITTED))
    client.force_login(owner)
    client.post(NEW, form_data())
    response = client.post(NEW, form_data(), follow=True)
    assert response.status_code == 200
    second = Job.objects.order_by("-pk").first()
    assert (second.status, second.error_code, second.remote_id) == (Status.UNKNOWN, "DUPLICATE_JOB_ID", None)


@pytest.mark.parametrize("field", ["jobId", "requestId"])
def test_long_ids_from_the_api_are_an_unknown_outcome_never_a_500(client, owner, api, caplog, field):
    server = api(Reply(body={**SUBMITTED, field: "x" * 300}))
    client.force_login(owner)
    response = client.post(NEW, form_data(), follow=True)
    assert response.status_code == 200
    job = Job.objects.get()
    if field == "jobId":
        # PixelByte took (and charged) the job, but its id cannot be stored exactly.
        assert (job.status, job.remote_id, job.request_id) == (Status.UNKNOWN, None, "req_ok")
        assert "job id the studio cannot store" in job.error_message
        assert "could not confirm whether PixelByte accepted" in response.content.decode()
    else:
        # The request id only helps support: the job is recorded without it.
        assert (job.status, job.remote_id, job.request_id) == (Status.PENDING, "job_ok", "")
    assert server.count() == 1
    assert KEY not in caplog.text


def test_a_trickling_answer_is_cut_off_at_the_submit_deadline(client, owner, api, settings):
    settings.PIXELBYTE_SUBMIT_DEADLINE = 2
    settings.PIXELBYTE_READ_TIMEOUT = 1
    server = api(Reply(body={**SUBMITTED, "padding": "x" * 200}, trickle=0.5))
    client.force_login(owner)
    started = time.monotonic()
    response = client.post(NEW, form_data(), follow=True)
    assert time.monotonic() - started < 2 + 1
    job = Job.objects.get()
    assert job.status == Status.UNKNOWN
    assert "did not finish answering within 2 seconds" in response.content.decode()
    assert server.count() == 1
