"""The API client against real HTTP servers on loopback (no mocks of requests)."""

import logging
import socket
import time

import pytest

from jobs import pixelbyte

from .helpers import BlackHole, FakeApi, Reply, closed_port

KEY = "pb_live_do_not_leak_0123456789"
MODEL = "kling/kling-text2video-v25/text-to-video"
INPUT = {"prompt": "A fox in the snow", "quality": "std", "duration": "5", "aspect_ratio": "16:9"}
SUBMITTED = {
    "jobId": "job_abc123def456",
    "requestId": "req_xyz789",
    "status": "pending",
    "estimatedCompletionTime": "2026-02-18T15:03:00Z",
    "costMicroCents": 225000,
}


@pytest.fixture
def api():
    servers = []

    def start(*replies):
        server = FakeApi(*replies)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(autouse=True)
def _no_key_in_logs(caplog):
    """API-10: whatever a test does, no log line carries the key."""
    caplog.set_level(logging.DEBUG)
    yield
    assert KEY not in caplog.text


class Sleeps:
    def __init__(self):
        self.calls = []

    def __call__(self, seconds):
        self.calls.append(seconds)


def client_for(url, **kwargs):
    kwargs.setdefault("sleep", Sleeps())
    return pixelbyte.Client(url, KEY, **kwargs)


def submit(client):
    return client.submit(MODEL, INPUT)


# --- envelopes and requests ------------------------------------------------


def test_a_flat_submit_answer_is_read(api):
    server = api(Reply(body=SUBMITTED))
    result = submit(client_for(server.url))
    assert result == pixelbyte.Submitted(
        job_id="job_abc123def456",
        request_id="req_xyz789",
        status="pending",
        cost_micro_cents=225000,
        estimated_completion_at=pixelbyte.parse_time("2026-02-18T15:03:00Z"),
    )


def test_a_wrapped_submit_answer_is_read_with_the_outer_request_id(api):
    inner = {k: v for k, v in SUBMITTED.items() if k != "requestId"}
    server = api(Reply(body={"success": True, "data": inner, "requestId": "req_outer"}))
    result = submit(client_for(server.url))
    assert result.job_id == "job_abc123def456"
    assert result.request_id == "req_outer"


@pytest.mark.parametrize("field", ["job_id", "id"])
def test_the_job_id_falls_back_to_other_field_names(api, field):
    body = {field: "job_other", "status": "pending", "costMicroCents": 225000.0}
    result = submit(client_for(api(Reply(body=body)).url))
    assert result.job_id == "job_other"
    assert result.cost_micro_cents == 225000


def test_the_request_carries_bearer_auth_json_and_the_model(api):
    server = api(Reply(body=SUBMITTED))
    client_for(server.url).submit(MODEL, INPUT, webhook_url="https://studio.example/webhooks/x/")
    sent = server.requests[0]
    assert sent["path"] == "/v1/jobs/submit"
    assert sent["headers"]["Authorization"] == f"Bearer {KEY}"
    assert sent["headers"]["Content-Type"] == "application/json"
    import json

    assert json.loads(sent["body"]) == {
        "model": MODEL,
        "input": INPUT,
        "webhookUrl": "https://studio.example/webhooks/x/",
    }


def test_status_reads_outputs_from_a_wrapped_answer(api):
    body = {
        "success": True,
        "data": {
            "jobId": "job_1",
            "status": "completed",
            "progress": 100,
            "output": "https://cdn.example/o.mp4",
            "outputs": [
                {
                    "url": "https://cdn.example/o.mp4",
                    "type": "video",
                    "thumbnail": "https://cdn.example/t.jpg",
                    "posterImage": "https://cdn.example/p.jpg",
                }
            ],
            "error": None,
            "createdAt": "2026-02-18T15:00:00Z",
            "completedAt": "2026-02-18T15:02:30.000Z",
        },
        "requestId": "req_1",
    }
    server = api(Reply(body=body))
    job = client_for(server.url).get_job("job_1")
    assert (job.status, job.progress) == ("completed", 100)
    assert job.output_url == "https://cdn.example/o.mp4"
    assert job.thumbnail_url == "https://cdn.example/t.jpg"
    assert job.poster_url == "https://cdn.example/p.jpg"
    assert job.completed_at.isoformat() == "2026-02-18T15:02:30+00:00"


def test_status_url_encodes_the_job_id(api):
    server = api(Reply(body={"jobId": "a/b", "status": "pending"}))
    client_for(server.url).get_job("a/b ?")
    assert server.requests[0]["path"] == "/v1/jobs/a%2Fb%20%3F"


def test_list_passes_filters_and_reads_the_cursor(api):
    body = {
        "jobs": [{"jobId": "job_1", "status": "completed", "progress": 100, "model": MODEL}],
        "nextCursor": "abc",
        "hasMore": True,
    }
    server = api(Reply(body=body))
    page = client_for(server.url).list_jobs(limit=5, cursor="xyz", status="completed", model=MODEL)
    assert page.has_more and page.next_cursor == "abc"
    assert page.jobs[0].job_id == "job_1"
    path = server.requests[0]["path"]
    assert "limit=5" in path and "cursor=xyz" in path and "status=completed" in path
    assert "modelId=kling%2Fkling-text2video-v25%2Ftext-to-video" in path


def test_cancel_reads_the_refund(api):
    server = api(Reply(body={"jobId": "job_1", "status": "cancelled", "refundedMicroCents": 225000}))
    assert client_for(server.url).cancel("job_1").refunded_micro_cents == 225000


# --- documented errors ------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "error_class", "words"),
    [
        (401, "UNAUTHORIZED", pixelbyte.ConfigurationError, "no PixelByte API key"),
        (401, "INVALID_API_KEY", pixelbyte.ConfigurationError, "does not recognise"),
        (401, "API_KEY_INACTIVE", pixelbyte.ConfigurationError, "deactivated"),
        (401, "API_KEY_EXPIRED", pixelbyte.ConfigurationError, "expired"),
        (403, "IP_NOT_WHITELISTED", pixelbyte.ConfigurationError, "allowed IPs"),
        (403, "OPERATION_NOT_ALLOWED", pixelbyte.ConfigurationError, "scopes"),
        (403, "MODEL_ACCESS_DENIED", pixelbyte.ConfigurationError, "may not use this model"),
        (402, "INSUFFICIENT_BALANCE", pixelbyte.Rejected, "Top up"),
        (400, "INVALID_INPUT", pixelbyte.Rejected, "refused the settings"),
        (404, "MODEL_NOT_FOUND", pixelbyte.Rejected, "does not offer this model"),
        (429, "CONCURRENT_JOBS_EXCEEDED", pixelbyte.RateLimited, "Too many videos"),
        (503, "PUBSUB_PUBLISH_FAILED", pixelbyte.ServerError, "could not queue"),
    ],
)
def test_each_documented_error_becomes_a_typed_error_a_person_can_act_on(
    api, status, code, error_class, words
):
    body = {"success": False, "error": {"code": code, "message": "detail from api"}, "requestId": "req_e"}
    server = api(Reply(status=status, body=body))
    with pytest.raises(error_class) as caught:
        submit(client_for(server.url))
    assert words in caught.value.message
    assert caught.value.code == code
    assert caught.value.request_id == "req_e"
    assert KEY not in str(caught.value)
    assert server.count() == 1


@pytest.mark.parametrize(
    "body",
    [
        {"error": {"code": "INVALID_INPUT", "message": "duration must be 5 or 10"}},
        {"code": "INVALID_INPUT", "message": "duration must be 5 or 10"},
        {"success": False, "error": {"code": "INVALID_INPUT", "message": "duration must be 5 or 10"}},
    ],
)
def test_every_error_shape_is_understood(api, body):
    server = api(Reply(status=400, body=body))
    with pytest.raises(pixelbyte.Rejected) as caught:
        submit(client_for(server.url))
    assert caught.value.message == "PixelByte refused the settings for this video: duration must be 5 or 10"


@pytest.mark.parametrize("body", [{"error": "quota text"}, {"message": "quota text"}, "quota text"])
def test_an_error_without_a_code_keeps_its_text_and_status(api, body):
    server = api(Reply(status=418, body=body))
    with pytest.raises(pixelbyte.Rejected) as caught:
        submit(client_for(server.url))
    assert "HTTP 418" in caught.value.message


def test_a_2xx_body_carrying_an_error_is_a_failure(api):
    body = {"success": False, "error": {"code": "INSUFFICIENT_BALANCE", "message": "no"}}
    with pytest.raises(pixelbyte.Rejected):
        submit(client_for(api(Reply(status=200, body=body)).url))


# --- API-01: explicit timeouts ------------------------------------------------


def test_api01_a_server_that_never_answers_fails_within_the_read_timeout(api):
    server = api(Reply(hang=5, body=SUBMITTED))
    client = client_for(server.url, read_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(pixelbyte.NoAnswer) as caught:
        submit(client)
    assert time.monotonic() - started < 0.5 * 1.1 + 0.2
    assert "did not answer within 0.5 seconds" in caught.value.message


# --- API-02: not sent --------------------------------------------------------


def test_api02_connection_refused_is_retried_twice_with_backoff_then_not_sent():
    sleeps = Sleeps()
    client = client_for(f"http://127.0.0.1:{closed_port()}", sleep=sleeps, rand=lambda: 1.0)
    with pytest.raises(pixelbyte.NotSent) as caught:
        submit(client)
    assert "nothing was sent" in caught.value.message
    assert sleeps.calls == [0.5, 1.0]


def test_api02_a_name_that_does_not_resolve_is_not_sent(monkeypatch):
    real = socket.getaddrinfo

    def fake_getaddrinfo(host, *args, **kwargs):
        if host == "api.nowhere.test":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    sleeps = Sleeps()
    with pytest.raises(pixelbyte.NotSent):
        submit(client_for("http://api.nowhere.test", sleep=sleeps))
    assert len(sleeps.calls) == 2


def test_api02_a_connect_timeout_is_not_sent_and_bounded():
    hole = BlackHole()
    try:
        client = client_for(hole.url, connect_timeout=0.3, rand=lambda: 0.0)
        started = time.monotonic()
        with pytest.raises(pixelbyte.NotSent):
            submit(client)
        # three attempts of 0.3 s (the sleeps are recorded, not slept)
        assert time.monotonic() - started < 3 * 0.3 + 1.0
    finally:
        hole.stop()


def test_api02_retries_stop_when_the_deadline_would_pass():
    sleeps = Sleeps()
    client = client_for(
        f"http://127.0.0.1:{closed_port()}", sleep=sleeps, submit_deadline=1.0, read_timeout=1.0
    )
    with pytest.raises(pixelbyte.NotSent):
        submit(client)
    assert sleeps.calls == []


# --- API-03/04/05: maybe processed, never resent ---------------------------------


def test_api03_a_read_timeout_after_sending_is_unknown_and_sent_once(api):
    server = api(Reply(hang=2, body=SUBMITTED))
    client = client_for(server.url, read_timeout=0.3)
    with pytest.raises(pixelbyte.NoAnswer) as caught:
        submit(client)
    assert caught.value.maybe_processed
    time.sleep(0.3)
    assert server.count() == 1


def test_api03_a_dropped_connection_after_sending_is_unknown(api):
    server = api(Reply(close=True))
    with pytest.raises(pixelbyte.NoAnswer):
        submit(client_for(server.url))
    assert server.count() == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_api04_a_5xx_on_submit_is_unknown_and_posted_once(api, status):
    server = api(Reply(status=status, body="<html>Bad gateway</html>"))
    with pytest.raises(pixelbyte.ServerError) as caught:
        submit(client_for(server.url))
    assert caught.value.maybe_processed
    assert f"HTTP {status}" in caught.value.message
    assert server.count() == 1


@pytest.mark.parametrize(
    "reply",
    [
        Reply(body="<html>not json</html>"),
        Reply(body='{"jobId": "job_1", "sta'),
        Reply(body=SUBMITTED, truncate=True),
        Reply(body={"status": "pending", "costMicroCents": 225000}),
        Reply(body=["job_1"]),
    ],
    ids=["html", "cut-json", "short-body", "no-job-id", "a-list"],
)
def test_api05_an_unreadable_2xx_is_unknown_not_failed_and_not_resent(api, reply):
    server = api(reply)
    with pytest.raises(pixelbyte.BadResponse) as caught:
        submit(client_for(server.url))
    assert caught.value.maybe_processed
    assert "outcome is unknown" in caught.value.message
    assert server.count() == 1


# --- API-06: 429 -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"), [({"Retry-After": "2"}, 2), ({}, None), ({"Retry-After": "soon"}, None)]
)
def test_api06_a_429_carries_retry_after(api, header, expected):
    server = api(Reply(status=429, body={}, headers=header))
    with pytest.raises(pixelbyte.RateLimited) as caught:
        submit(client_for(server.url))
    assert caught.value.retry_after == expected
    assert server.count() == 1


# --- API-07: reads retry with capped, jittered backoff --------------------------------


@pytest.mark.parametrize("rand", [0.0, 0.5, 1.0])
def test_api07_reads_retry_transient_failures_within_the_backoff_window(api, rand):
    server = api(
        Reply(status=503, body={}),
        Reply(status=502, body={}),
        Reply(body={"jobId": "j", "status": "processing"}),
    )
    sleeps = Sleeps()
    job = client_for(server.url, sleep=sleeps, rand=lambda: rand).get_job("j")
    assert job.status == "processing"
    assert server.count("GET", "/v1/jobs/j") == 3
    for attempt, delay in enumerate(sleeps.calls, start=1):
        ceiling = min(pixelbyte.BACKOFF_CAP, pixelbyte.BACKOFF_BASE * 2 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling


def test_api07_reads_give_up_after_three_attempts(api):
    server = api(Reply(status=500, body={}))
    with pytest.raises(pixelbyte.ServerError):
        client_for(server.url).get_job("j")
    assert server.count("GET", "/v1/jobs/j") == 3


def test_api07_the_backoff_is_capped():
    client = client_for("http://127.0.0.1:1", rand=lambda: 1.0)
    assert client._backoff(10) == pixelbyte.BACKOFF_CAP


def test_reads_do_not_retry_a_definitive_refusal(api):
    server = api(Reply(status=404, body={"error": {"code": "JOB_NOT_FOUND", "message": "gone"}}))
    with pytest.raises(pixelbyte.NotFound):
        client_for(server.url).get_job("j")
    assert server.count("GET", "/v1/jobs/j") == 1


def test_the_key_never_shows_in_the_clients_repr():
    assert KEY not in repr(client_for("http://127.0.0.1:1"))


def test_a_parsed_time_accepts_both_documented_forms():
    assert pixelbyte.parse_time("2026-02-18T15:00:00Z").isoformat() == "2026-02-18T15:00:00+00:00"
    assert pixelbyte.parse_time("2026-02-18T12:00:00.000Z").isoformat() == "2026-02-18T12:00:00+00:00"
    assert pixelbyte.parse_time("yesterday") is None


def test_a_fake_api_of_our_own_is_reachable():
    server = FakeApi(Reply(body=SUBMITTED))
    try:
        assert submit(client_for(server.url)).job_id == "job_abc123def456"
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (225000, 225000),
        (225000.0, 225000),
        ("337500", 337500),
        ("0.5", 1),
        (-5, None),
        ("1e400", None),
        ("NaN", None),
        ("Infinity", None),
        (True, None),
        ([1], None),
        (10**13, None),
    ],
)
def test_money_from_the_api_is_parsed_exactly_or_not_at_all(raw, expected):
    assert pixelbyte.to_micro_cents(raw) == expected


def test_an_absurd_cost_in_a_submit_answer_is_dropped_not_a_crash(api):
    body = '{"jobId": "job_1", "status": "pending", "costMicroCents": 1e400}'
    assert submit(client_for(api(Reply(body=body)).url)).cost_micro_cents is None


@pytest.mark.parametrize(("header", "expected"), [("inf", None), ("1e9", 86400), ("-3", 0), ("2.5", 2)])
def test_retry_after_values_are_bounded(header, expected):
    assert pixelbyte.parse_retry_after(header) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0001-01-01T00:00:00+05:00", None),
        ("2026-02-18T15:00:00", "2026-02-18T15:00:00+00:00"),
        ("2026-02-18T17:00:00+02:00", "2026-02-18T15:00:00+00:00"),
        ("x" * 100, None),
    ],
)
def test_times_are_aware_utc_and_in_range(raw, expected):
    parsed = pixelbyte.parse_time(raw)
    assert (parsed.isoformat() if parsed else None) == expected


# --- ids from the API must be storable exactly (Job.remote_id and request_id hold 128) --------

UNSTORABLE_IDS = ["j" * 129, "j" * 300, "job 1", "job\n1", "job\x001", "jöb_1", ""]


@pytest.mark.parametrize(
    "job_id", UNSTORABLE_IDS, ids=["129", "300", "space", "newline", "nul", "accent", "empty"]
)
def test_an_unstorable_job_id_in_a_submit_answer_is_an_unknown_outcome_not_a_truncation(api, job_id):
    server = api(Reply(body={**SUBMITTED, "jobId": job_id}))
    with pytest.raises(pixelbyte.BadResponse) as caught:
        submit(client_for(server.url))
    assert caught.value.maybe_processed
    assert "outcome is unknown" in caught.value.message
    assert caught.value.request_id == "req_xyz789"
    assert server.count() == 1


def test_a_job_id_of_128_printable_characters_is_kept_exactly(api):
    job_id = "job_" + "aZ09.-:/+=" * 12 + "x" * 4
    assert len(job_id) == 128
    assert submit(client_for(api(Reply(body={**SUBMITTED, "jobId": job_id})).url)).job_id == job_id


@pytest.mark.parametrize("request_id", ["r" * 129, "req 1", "req\x00"])
def test_an_unstorable_request_id_is_dropped_not_truncated(api, caplog, request_id):
    body = {"success": True, "data": {**SUBMITTED, "requestId": request_id}, "requestId": request_id}
    result = submit(client_for(api(Reply(body=body)).url))
    assert (result.job_id, result.request_id) == ("job_abc123def456", "")
    assert "request id" in caplog.text


def test_an_unstorable_id_in_a_status_answer_or_a_list_is_no_id_at_all(api):
    long_id = "job_" + "x" * 296
    server = api(
        Reply(body={"jobId": long_id, "status": "processing", "requestId": "r" * 300}),
        Reply(
            body={
                "jobs": [{"jobId": long_id, "status": "completed"}, {"jobId": "job_ok", "status": "pending"}]
            }
        ),
    )
    client = client_for(server.url)
    job = client.get_job("job_asked")
    assert (job.job_id, job.request_id) == ("job_asked", "")
    assert [j.job_id for j in client.list_jobs().jobs] == ["", "job_ok"]
    assert pixelbyte.remote_job_from({"jobId": long_id, "status": "completed"}).job_id == ""


# --- an answer that cannot be parsed is a typed error --------------------------------------


def test_a_deeply_nested_answer_is_a_bad_response_not_a_crash(api):
    server = api(Reply(body="[" * 100_000))
    with pytest.raises(pixelbyte.BadResponse) as caught:
        submit(client_for(server.url))
    assert "outcome is unknown" in caught.value.message
    assert server.count() == 1


def test_a_deeply_nested_error_answer_is_read_as_no_body(api):
    server = api(Reply(status=502, body='{"a":' * 100_000))
    with pytest.raises(pixelbyte.ServerError) as caught:
        submit(client_for(server.url))
    assert "HTTP 502" in caught.value.message


def test_an_answer_over_a_mebibyte_is_a_bad_response(api):
    padding = "x" * (pixelbyte.MAX_ANSWER_BYTES + 1)
    server = api(Reply(body={**SUBMITTED, "padding": padding}))
    with pytest.raises(pixelbyte.BadResponse) as caught:
        submit(client_for(server.url))
    assert "too large" in caught.value.message and "outcome is unknown" in caught.value.message


def test_the_key_is_kept_only_in_the_sessions_headers():
    client = client_for("http://127.0.0.1:1")
    assert client.session.headers["Authorization"] == f"Bearer {KEY}"
    assert all(KEY not in repr(value) for value in vars(client).values() if value is not client.session)


# --- a wall-clock deadline on the whole exchange ------------------------------------------


def test_a_trickling_submit_answer_is_cut_off_at_the_submit_deadline(api):
    server = api(Reply(body={**SUBMITTED, "padding": "x" * 200}, trickle=0.5))
    client = client_for(server.url, read_timeout=1.0, submit_deadline=2.0)
    started = time.monotonic()
    with pytest.raises(pixelbyte.NoAnswer) as caught:
        submit(client)
    assert time.monotonic() - started < 2.0 + 1.0
    assert (
        caught.value.message == "PixelByte did not finish answering within 2 seconds; the outcome is unknown."
    )
    assert server.count() == 1


def test_a_trickling_status_answer_fails_within_its_own_bound(api):
    server = api(Reply(body={"jobId": "j", "status": "processing", "padding": "x" * 200}, trickle=0.2))
    client = client_for(server.url, connect_timeout=0.5, read_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(pixelbyte.NoAnswer):
        client.get_job("j")
    # three attempts, each within connect + read timeout (the backoff sleeps are recorded, not slept)
    assert time.monotonic() - started < 3 * 1.5 + 1.0
    assert server.count("GET", "/v1/jobs/j") == 3


def test_a_slow_but_steady_answer_within_the_deadline_is_read(api):
    server = api(Reply(body=SUBMITTED, trickle=0.002))
    assert submit(client_for(server.url, read_timeout=1.0, submit_deadline=5.0)).job_id == "job_abc123def456"


def test_a_compressed_answer_is_read_and_its_size_counted_uncompressed(api):
    import gzip
    import json

    packed = api(
        Reply(body=gzip.compress(json.dumps(SUBMITTED).encode()), headers={"Content-Encoding": "gzip"})
    )
    assert submit(client_for(packed.url)).job_id == "job_abc123def456"
    bomb = gzip.compress(b'{"jobId": "job_1", "x": "' + b"x" * (8 * 2**20) + b'"}')
    assert len(bomb) < 64 * 1024
    server = api(Reply(body=bomb, headers={"Content-Encoding": "gzip"}))
    with pytest.raises(pixelbyte.BadResponse, match="too large"):
        submit(client_for(server.url))
