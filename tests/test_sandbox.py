"""The built-in sandbox plays the API contract over real HTTP."""

import hashlib
import hmac
from pathlib import Path

import pytest
import requests
from django.conf import settings

from sandbox import engine

BODY = {
    "model": "kling/kling-text2video-v25/text-to-video",
    "input": {"prompt": "A red kite", "quality": "pro", "duration": "5", "aspect_ratio": "1:1", "seed": 7},
}


@pytest.fixture
def url(sandbox, studio_server):
    return studio_server.sandbox_url


def auth():
    """The header the studio sends its own sandbox."""
    return {"Authorization": f"Bearer {settings.SANDBOX_API_KEY}"}


def submit(url, body=BODY, headers=None):
    headers = auth() if headers is None else headers
    return requests.post(url + "/v1/jobs/submit", json=body, headers=headers, timeout=5)


def test_a_submit_answers_flat_with_the_published_price(url):
    answer = submit(url).json()
    assert answer["status"] == "pending"
    assert answer["costMicroCents"] == 337_500
    assert answer["jobId"].startswith("job_") and answer["requestId"].startswith("req_")
    assert answer["estimatedCompletionTime"].endswith("Z")


def test_a_job_moves_from_pending_to_processing_to_completed_on_its_clock():
    clock = [1000.0]
    box = engine.Sandbox(clock=lambda: clock[0])
    job_id = box.submit(BODY, media_base="http://x/sandbox/cdn/", pending_s=2, processing_s=4)["jobId"]
    assert (box.get(job_id)["status"], box.get(job_id)["progress"]) == ("pending", 0)
    clock[0] += 2
    assert (box.get(job_id)["status"], box.get(job_id)["progress"]) == ("processing", 50)
    clock[0] += 4
    done = box.get(job_id)
    assert (done["status"], done["progress"]) == ("completed", 100)
    assert done["output"] == f"http://x/sandbox/cdn/{job_id}/video.mp4"
    assert done["outputs"][0]["posterImage"] == f"http://x/sandbox/cdn/{job_id}/poster.jpg"
    assert done["completedAt"] is not None


def test_status_answers_wrapped_and_points_at_a_real_sample_video(url, sandbox):
    sandbox_job = submit(url).json()["jobId"]
    sandbox.jobs[sandbox_job].created -= 60
    answer = requests.get(f"{url}/v1/jobs/{sandbox_job}", headers=auth(), timeout=5).json()
    assert answer["success"] is True and answer["data"]["status"] == "completed"
    assert answer["data"]["output"] == f"{url}/cdn/{sandbox_job}/video.mp4"
    video = requests.get(answer["data"]["output"], timeout=5)
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"


@pytest.mark.parametrize(
    ("prompt", "status", "code"),
    [("x [balance]", 402, "INSUFFICIENT_BALANCE"), ("x [busy]", 429, "CONCURRENT_JOBS_EXCEEDED")],
)
def test_prompt_triggers_make_the_api_refuse(url, prompt, status, code):
    body = {**BODY, "input": {**BODY["input"], "prompt": prompt}}
    answer = submit(url, body)
    assert answer.status_code == status
    assert answer.json()["error"]["code"] == code
    if status == 429:
        assert answer.headers["Retry-After"] == "5"


def test_the_fail_trigger_fails_the_job_while_processing():
    box = engine.Sandbox(clock=lambda: 0.0)
    body = {**BODY, "input": {**BODY["input"], "prompt": "x [fail]"}}
    job_id = box.submit(body, media_base="", pending_s=0, processing_s=0)["jobId"]
    view = box.get(job_id)
    assert view["status"] == "failed" and view["error"]["code"] == "INTERNAL_ERROR"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"quality": "ultra"}, "quality must be one of"),
        ({"duration": 5}, "duration must be one of"),
        ({"prompt": "x" * 2501}, "at most 2500"),
        ({"seed": "7"}, "seed must be an integer"),
    ],
)
def test_bad_input_is_refused_as_invalid_input(url, change, message):
    answer = submit(url, {**BODY, "input": {**BODY["input"], **change}})
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "INVALID_INPUT"
    assert message in answer.json()["error"]["message"]


def test_an_unknown_model_is_not_found(url):
    answer = submit(url, {**BODY, "model": "kling/nope"})
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "MODEL_NOT_FOUND")


def test_a_plain_http_webhook_url_is_refused_unless_on_loopback(url, settings, studio_server):
    settings.PUBLIC_BASE_URL = "http://studio.example"
    hook = "/webhooks/pixelbyte/tok/"
    assert submit(url, {**BODY, "webhookUrl": "http://studio.example" + hook}).status_code == 400
    settings.PUBLIC_BASE_URL = studio_server.url
    assert submit(url, {**BODY, "webhookUrl": studio_server.url + hook}).status_code == 200


def test_no_key_means_401(url):
    answer = submit(url, headers={})
    assert (answer.status_code, answer.json()["error"]["code"]) == (401, "UNAUTHORIZED")


def test_the_list_pages_newest_first_with_a_cursor(url):
    ids = [submit(url).json()["jobId"] for _ in range(3)]
    first = requests.get(url + "/v1/jobs", params={"limit": 2}, headers=auth(), timeout=5).json()
    assert [j["jobId"] for j in first["jobs"]] == ids[::-1][:2]
    assert first["hasMore"] is True
    second = requests.get(
        url + "/v1/jobs", params={"limit": 2, "cursor": first["nextCursor"]}, headers=auth(), timeout=5
    ).json()
    assert [j["jobId"] for j in second["jobs"]] == [ids[0]]
    assert second["hasMore"] is False and second["nextCursor"] is None


def test_only_a_pending_job_can_be_cancelled_and_it_is_refunded(url, sandbox):
    job_id = submit(url).json()["jobId"]
    answer = requests.post(f"{url}/v1/jobs/{job_id}/cancel", headers=auth(), timeout=5).json()
    assert answer == {"jobId": job_id, "status": "cancelled", "refundedMicroCents": 337_500}
    again = requests.post(f"{url}/v1/jobs/{job_id}/cancel", headers=auth(), timeout=5)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "JOB_CANNOT_BE_CANCELLED")


def test_an_unknown_job_is_not_found(url):
    answer = requests.get(url + "/v1/jobs/job_nope", headers=auth(), timeout=5)
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "JOB_NOT_FOUND")


def test_the_sandbox_is_off_when_a_real_key_is_configured(url, settings):
    settings.PIXELBYTE_API_KEY = "pb_real"
    assert submit(url).status_code == 404


def test_the_sandbox_only_calls_back_its_own_studio(url, settings):
    settings.PUBLIC_BASE_URL = "https://studio.example"
    assert submit(url, {**BODY, "webhookUrl": "https://elsewhere.example/hook"}).status_code == 400
    assert (
        submit(url, {**BODY, "webhookUrl": "https://studio.example/webhooks/pixelbyte/x/"}).status_code == 200
    )


@pytest.mark.parametrize("bad", [["std"], {"a": 1}, None, 5])
def test_odd_input_types_are_invalid_input_not_a_crash(url, bad):
    answer = submit(url, {**BODY, "input": {**BODY["input"], "quality": bad}})
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "INVALID_INPUT")


# --- item 9: the sandbox serves only the studio, calls back only the studio, forgets ----


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "UNAUTHORIZED"),
        ({"Authorization": "Bearer sandbox"}, "INVALID_API_KEY"),
        ({"Authorization": "Bearer sbx_" + "0" * 64}, "INVALID_API_KEY"),
        ({"Authorization": "Bearer \u00e9t\u00e9"}, "INVALID_API_KEY"),
    ],
)
def test_item9_a_call_without_the_studio_key_is_refused_and_creates_nothing(url, sandbox, headers, code):
    answer = submit(url, {**BODY, "webhookUrl": url + "/webhooks/pixelbyte/tok/"}, headers=headers)
    assert (answer.status_code, answer.json()["error"]["code"]) == (401, code)
    assert settings.SANDBOX_API_KEY not in answer.text
    assert sandbox.submit_count == 0 and not sandbox.jobs
    listing = requests.get(url + "/v1/jobs", headers=headers, timeout=5)
    assert listing.status_code == 401


def test_item9_every_studio_process_derives_the_same_unguessable_sandbox_key():
    expected = hmac.new(settings.SECRET_KEY.encode(), b"kling-studio sandbox key", hashlib.sha256)
    assert "sbx_" + expected.hexdigest() == settings.SANDBOX_API_KEY


@pytest.mark.parametrize(
    "hook",
    [
        "http://127.0.0.1:9/webhooks/pixelbyte/tok/",  # another loopback port
        "{studio}/admin/",  # the studio, another path
        "{studio}/webhooks/pixelbyte/../../admin/",  # climbs out of the webhook path
        "{studio}/webhooks/pixelbyte/%2e%2e/%2e%2e/admin/",
        "{studio}/webhooks/pixelbyte/tok/?next=/admin/",
        "http://user@{host}/webhooks/pixelbyte/tok/",
        "http://[::1/webhooks/pixelbyte/tok/",
    ],
)
def test_item9_a_webhook_url_off_the_studios_webhook_path_is_refused_and_never_called(
    url, sandbox, settings, studio_server, hook
):
    settings.PUBLIC_BASE_URL = studio_server.url
    host = studio_server.url.removeprefix("http://")
    answer = submit(url, {**BODY, "webhookUrl": hook.format(studio=studio_server.url, host=host)})
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "INVALID_INPUT")
    assert not sandbox.jobs
    assert sandbox.deliver_due() == 0 and not sandbox.webhook_log


def test_item9_a_webhook_url_on_the_studios_webhook_path_is_accepted(url, sandbox, settings, studio_server):
    settings.PUBLIC_BASE_URL = studio_server.url
    hook = studio_server.url + "/webhooks/pixelbyte/AbC-12_x/"
    job_id = submit(url, {**BODY, "webhookUrl": hook}).json()["jobId"]
    assert sandbox.jobs[job_id].webhook_url == hook


def finished_job(box, **limits):
    return box.submit(BODY, media_base="", pending_s=0, processing_s=1, **limits)["jobId"]


def test_item9_a_finished_job_is_forgotten_after_the_keep_time():
    clock = [1000.0]
    box = engine.Sandbox(clock=lambda: clock[0])
    old = finished_job(box, keep_s=10)
    clock[0] += 1 + 10  # finished, then kept ten seconds
    new = finished_job(box, keep_s=10)
    assert set(box.jobs) == {new}
    with pytest.raises(engine.ApiFailure) as refused:
        box.get(old)
    assert refused.value.code == "JOB_NOT_FOUND"


def test_item9_the_sandbox_never_holds_more_than_its_cap_evicting_the_oldest_finished():
    clock = [1000.0]
    box = engine.Sandbox(clock=lambda: clock[0])
    ids = []
    for _ in range(5):
        ids.append(finished_job(box, keep_s=3600, max_jobs=3))
        clock[0] += 2
    assert list(box.jobs) == ids[-3:]


def test_item9_with_only_unfinished_jobs_at_the_cap_a_submit_is_refused_as_busy(url, sandbox, settings):
    settings.SANDBOX_MAX_JOBS = 2
    settings.SANDBOX_PENDING_SECONDS = 600
    assert [submit(url).status_code for _ in range(2)] == [200, 200]
    answer = submit(url)
    assert (answer.status_code, answer.json()["error"]["code"]) == (429, "CONCURRENT_JOBS_EXCEEDED")
    assert len(sandbox.jobs) == 2


# --- the CDN: the sandbox serves its outputs as PixelByte's CDN does -------------------

SAMPLES = Path(engine.__file__).parent / "samples"


def completed(url, sandbox, prompt="A red kite", aspect_ratio="1:1"):
    """A sandbox job submitted over HTTP and finished a minute ago; returns its CDN root."""
    body = {**BODY, "input": {**BODY["input"], "prompt": prompt, "aspect_ratio": aspect_ratio}}
    job_id = submit(url, body).json()["jobId"]
    sandbox.jobs[job_id].created -= 60
    return f"{url}/cdn/{job_id}/"


def tkhd_size(mp4):
    """Width and height from the video's track header: 16.16 fixed point, its last 8 bytes."""
    start = mp4.index(b"tkhd") - 4
    box = mp4[start : start + int.from_bytes(mp4[start : start + 4], "big")]
    return int.from_bytes(box[-8:-4], "big") >> 16, int.from_bytes(box[-4:], "big") >> 16


def test_cdn_serves_a_completed_jobs_files_to_anyone_with_the_link(url, sandbox):
    cdn = completed(url, sandbox)
    video = requests.get(cdn + "video.mp4", timeout=5)  # no key, no session
    assert video.status_code == 200
    assert video.content == (SAMPLES / "sample-1x1.mp4").read_bytes()
    assert video.headers["Content-Type"] == "video/mp4"
    assert video.headers["Accept-Ranges"] == "bytes" and video.headers["ETag"].startswith('"')
    for name, sample in (("thumb.jpg", "thumb-1x1.jpg"), ("poster.jpg", "poster-1x1.jpg")):
        image = requests.get(cdn + name, timeout=5)
        assert image.headers["Content-Type"] == "image/jpeg"
        assert image.content == (SAMPLES / sample).read_bytes()


def test_cdn_links_carry_a_job_id_too_long_to_guess(url):
    job_id = submit(url).json()["jobId"]
    assert len(job_id.removeprefix("job_")) * 4 >= 128


SIZE = (SAMPLES / "sample-1x1.mp4").stat().st_size


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, SIZE - 1),
        ("bytes=-100", SIZE - 100, SIZE - 1),
        ("bytes=1000-99999999", 1000, SIZE - 1),  # an end past the file is clamped
        (f"bytes=-{SIZE * 2}", 0, SIZE - 1),  # so is a suffix longer than the file
        (f"bytes={SIZE - 1}-{SIZE - 1}", SIZE - 1, SIZE - 1),
    ],
)
def test_cdn_answers_a_single_range_with_206_and_its_content_range(url, sandbox, header, start, end):
    answer = requests.get(completed(url, sandbox) + "video.mp4", headers={"Range": header}, timeout=5)
    assert answer.status_code == 206
    assert answer.headers["Content-Range"] == f"bytes {start}-{end}/{SIZE}"
    assert int(answer.headers["Content-Length"]) == end - start + 1
    assert answer.content == (SAMPLES / "sample-1x1.mp4").read_bytes()[start : end + 1]


@pytest.mark.parametrize("header", [f"bytes={SIZE}-", f"bytes={SIZE + 10}-{SIZE + 20}", "bytes=-0"])
def test_cdn_answers_a_range_outside_the_file_with_416(url, sandbox, header):
    answer = requests.get(completed(url, sandbox) + "video.mp4", headers={"Range": header}, timeout=5)
    assert answer.status_code == 416
    assert answer.headers["Content-Range"] == f"bytes */{SIZE}"


@pytest.mark.parametrize("header", ["bytes=5-2", "bytes=0-1,5-6", "items=0-5", "bytes=x-y", "bytes=-"])
def test_cdn_ignores_a_range_it_does_not_serve_and_sends_the_whole_file(url, sandbox, header):
    answer = requests.get(completed(url, sandbox) + "video.mp4", headers={"Range": header}, timeout=5)
    assert answer.status_code == 200 and len(answer.content) == SIZE


def test_cdn_honours_if_range_and_if_none_match_by_etag(url, sandbox):
    link = completed(url, sandbox) + "video.mp4"
    etag = requests.head(link, timeout=5).headers["ETag"]
    same = requests.get(link, headers={"Range": "bytes=0-9", "If-Range": etag}, timeout=5)
    other = requests.get(link, headers={"Range": "bytes=0-9", "If-Range": '"other"'}, timeout=5)
    assert (same.status_code, len(same.content)) == (206, 10)
    assert (other.status_code, len(other.content)) == (200, SIZE)
    cached = requests.get(link, headers={"If-None-Match": etag}, timeout=5)
    assert (cached.status_code, cached.content, cached.headers["ETag"]) == (304, b"", etag)


@pytest.mark.parametrize(
    ("aspect_ratio", "shape", "size"),
    [("16:9", "16x9", (640, 360)), ("9:16", "9x16", (360, 640)), ("1:1", "1x1", (360, 360))],
)
def test_a_jobs_sample_has_the_shape_of_its_aspect_ratio(url, sandbox, aspect_ratio, shape, size):
    cdn = completed(url, sandbox, aspect_ratio=aspect_ratio)
    assert tkhd_size(requests.get(cdn + "video.mp4", timeout=5).content) == size
    poster = requests.get(cdn + "poster.jpg", timeout=5).content
    assert poster == (SAMPLES / f"poster-{shape}.jpg").read_bytes()


def test_cdn_answers_404_for_an_unknown_job_an_unfinished_one_or_another_file(url, sandbox):
    cdn = completed(url, sandbox)
    running = submit(url).json()["jobId"]
    for link in (
        f"{url}/cdn/job_{'0' * 32}/video.mp4",
        f"{url}/cdn/{running}/video.mp4",
        cdn + "sample.mp4",
        cdn + "..%2Fsettings.py",
    ):
        assert requests.get(link, timeout=5).status_code == 404, link


def test_cdn_is_off_with_the_rest_of_the_sandbox_when_a_real_key_is_configured(url, sandbox, settings):
    link = completed(url, sandbox) + "video.mp4"
    settings.PIXELBYTE_API_KEY = "pb_real"
    assert requests.get(link, timeout=5).status_code == 404


def test_the_expire_trigger_drops_the_output_from_the_cdn_a_few_seconds_after_completion():
    clock = [1000.0]
    box = engine.Sandbox(clock=lambda: clock[0])
    body = {**BODY, "input": {**BODY["input"], "prompt": "A red kite [expire]"}}
    kept = box.submit(BODY, media_base="http://x/", pending_s=0, processing_s=1, expire_s=5)["jobId"]
    lost = box.submit(body, media_base="http://x/", pending_s=0, processing_s=1, expire_s=5)["jobId"]
    clock[0] += 1  # both completed
    assert box.media_file(lost, "video.mp4") == SAMPLES / "sample-1x1.mp4"
    clock[0] += 4.9
    assert box.media_file(lost, "poster.jpg") is not None
    clock[0] += 0.1
    assert box.media_file(lost, "video.mp4") is None and box.media_file(lost, "thumb.jpg") is None
    # The API still says where the output was: only the CDN has lost it.
    assert box.get(lost)["output"] == f"http://x/{lost}/video.mp4"
    clock[0] += 3000
    assert box.media_file(kept, "video.mp4") is not None


def test_an_expired_output_answers_404_over_http(url, sandbox, settings):
    settings.SANDBOX_EXPIRE_SECONDS = 5
    link = completed(url, sandbox, prompt="A red kite [expire]") + "video.mp4"  # finished ~60 s ago
    assert requests.get(link, timeout=5).status_code == 404


# --- [surcharge]: a charge other than the published price rule ---------------------------------


@pytest.mark.parametrize(
    ("quality", "duration", "rule", "charged"),
    [("std", "5", 225_000, 247_500), ("pro", "5", 337_500, 371_250), ("pro", "10", 675_000, 742_500)],
)
def test_the_surcharge_trigger_charges_ten_percent_over_the_price_rule(quality, duration, rule, charged):
    box = engine.Sandbox(clock=lambda: 0.0)
    options = {"quality": quality, "duration": duration}
    plain = {**BODY, "input": {**BODY["input"], **options}}
    dearer = {**BODY, "input": {**BODY["input"], **options, "prompt": "A red kite [surcharge]"}}
    assert box.submit(plain, media_base="", pending_s=1, processing_s=1)["costMicroCents"] == rule
    assert box.submit(dearer, media_base="", pending_s=1, processing_s=1)["costMicroCents"] == charged
    assert engine.surcharged(rule) == charged and isinstance(charged, int)


def test_a_surcharged_job_is_charged_and_refunded_its_own_price_over_http(url):
    body = {**BODY, "input": {**BODY["input"], "prompt": "A red kite [surcharge]"}}
    answer = submit(url, body).json()
    assert answer["costMicroCents"] == 371_250
    refund = requests.post(f"{url}/v1/jobs/{answer['jobId']}/cancel", headers=auth(), timeout=5).json()
    assert refund["refundedMicroCents"] == 371_250


def test_a_job_made_with_the_studios_key_outside_the_studio_needs_no_webhook(url, sandbox):
    key = engine.api_key_for(settings.SECRET_KEY)
    answer = submit(url, BODY, headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200 and "webhookUrl" not in BODY
    listed = requests.get(f"{url}/v1/jobs", headers=auth(), timeout=5).json()["jobs"]
    assert [job["jobId"] for job in listed] == [answer.json()["jobId"]]
