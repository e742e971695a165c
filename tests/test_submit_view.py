"""The prompt form and submitting it, end to end over real HTTP to the sandbox or a fake API."""

import json
import logging
import re
import uuid

import pytest
from django.urls import reverse

from jobs import submission, throttle
from jobs.models import Job, Status

from .helpers import Reply, form_data, make_job

NEW = reverse("jobs:new")
SUBMITTED = {
    "jobId": "job_fake1",
    "requestId": "req_fake1",
    "status": "pending",
    "estimatedCompletionTime": "2026-02-18T15:03:00Z",
    "costMicroCents": 337500,
}


def test_the_form_needs_a_signed_in_user(client, db):
    response = client.get(NEW)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_form_shows_fields_named_as_the_api_names_them_and_the_price(owner_client, sandbox):
    response = owner_client.get(NEW)
    html = response.content.decode()
    for name in ("prompt", "quality", "duration", "aspect_ratio", "seed", "submission_key"):
        assert f'name="{name}"' in html
    assert '<p class="price" id="price-dollars">$0.225</p>' in html
    assert "225,000 µ¢" in html
    assert 'id="price-catalog"' in html
    assert "Sandbox mode." in html
    assert 'maxlength="2500"' in html
    assert 'id="random-seed"' in html


def test_the_page_embeds_the_catalog_not_a_price_table(owner_client, sandbox):
    html = owner_client.get(NEW).content.decode()
    raw = re.search(r'<script id="price-catalog" type="application/json">(.*?)</script>', html).group(1)
    catalog = json.loads(raw)
    assert catalog["baseMicroCents"] == 45000
    assert "675000" not in html.replace("675,000", "")


def test_each_rendered_form_gets_its_own_submission_key(owner_client, sandbox):
    first = owner_client.get(NEW).context["form"].initial["submission_key"]
    second = owner_client.get(NEW).context["form"].initial["submission_key"]
    assert first != second


def test_a_submission_is_stored_with_the_sandbox_job_id_and_cost(owner_client, owner, sandbox):
    response = owner_client.post(NEW, form_data(quality="pro", duration="10", seed="42"))
    job = Job.objects.get()
    # Generate in place: the form answers again, with the new job in its tray.
    assert response.status_code == 200
    assert response.context["sent_ids"] == [job.pk]
    assert f'data-tray-job="{job.pk}"' in response.content.decode()
    assert job.owner == owner
    assert job.status == Status.PENDING
    assert job.remote_id.startswith("job_") and job.remote_id in sandbox.jobs
    assert job.request_id.startswith("req_")
    assert (job.estimated_micro_cents, job.api_cost_micro_cents) == (675_000, 675_000)
    assert job.params == {
        "prompt": form_data()["prompt"],
        "quality": "pro",
        "duration": "10",
        "aspect_ratio": "16:9",
        "seed": 42,
    }
    assert (job.quality, job.duration, job.seed) == ("pro", 10, 42)
    assert job.estimated_completion_at is not None and job.submitted_at is not None
    page = owner_client.get(job.get_absolute_url()).content.decode()
    assert job.remote_id in page and "$0.675" in page


def test_the_server_recomputes_the_price_whatever_the_browser_sends(owner_client, sandbox):
    owner_client.post(NEW, form_data(quality="std", duration="5", cost="1", price="0.000001"))
    assert Job.objects.get().estimated_micro_cents == 225_000


def test_a_validation_error_rerenders_everything_typed_and_sends_nothing(owner_client, sandbox):
    data = form_data(prompt="My <b>careful</b> prompt", quality="pro", duration="7", seed="99")
    response = owner_client.post(NEW, data)
    html = response.content.decode()
    assert response.status_code == 422
    assert "My &lt;b&gt;careful&lt;/b&gt; prompt" in html
    assert re.search(r'<input type="radio" name="quality" value="pro"[^>]* checked', html)
    assert 'value="99"' in html
    assert data["submission_key"] in html
    assert "not an allowed duration" in html
    assert Job.objects.count() == 0
    assert sandbox.submit_count == 0


def test_a_double_post_creates_one_paid_job(owner_client, sandbox):
    data = form_data()
    first = owner_client.post(NEW, data)
    second = owner_client.post(NEW, data)
    assert Job.objects.count() == 1
    assert sandbox.submit_count == 1
    assert first.context["sent_ids"] == second.context["sent_ids"] == [Job.objects.get().pk]


def test_someone_elses_submission_key_shows_nothing_of_theirs(owner_client, outsider, sandbox):
    theirs = make_job(outsider)
    response = owner_client.post(NEW, form_data(submission_key=str(theirs.submission_key)))
    assert response.status_code == 404
    assert Job.objects.count() == 1


def test_a_refusal_keeps_the_form_says_why_and_records_the_job(owner_client, sandbox):
    response = owner_client.post(NEW, form_data(prompt="A castle [balance]", quality="pro"))
    html = response.content.decode()
    job = Job.objects.get()
    assert response.status_code == 200
    assert "Not sent — nothing was charged." in html
    assert "Top up the account" in html
    assert "A castle [balance]" in html
    assert response.context["form"].initial["submission_key"] != job.submission_key
    assert (job.status, job.error_code, job.remote_id) == (Status.REFUSED, "INSUFFICIENT_BALANCE", None)
    assert job.billed_micro_cents == 0


def test_the_sandbox_can_be_reached_through_the_same_client_code(owner_client, sandbox, settings):
    assert settings.SANDBOX_API_URL.startswith("http://127.0.0.1:")
    owner_client.post(NEW, form_data())
    assert sandbox.submit_count == 1


# --- faults, through the form ---------------------------------------------------------------


def submit_through_form(client, caplog):
    caplog.set_level(logging.INFO, logger="jobs")
    response = client.post(NEW, form_data())
    return response, Job.objects.get()


def test_a_timeout_after_sending_is_unknown_shown_plainly_and_not_resent(
    owner_client, fake_api, settings, caplog
):
    settings.PIXELBYTE_READ_TIMEOUT = 0.3
    api = fake_api(Reply(hang=1.5, body=SUBMITTED))
    response, job = submit_through_form(owner_client, caplog)
    assert response.status_code == 200
    assert job.status == Status.UNKNOWN
    assert job.billed_micro_cents == job.estimated_micro_cents  # counts until resolved
    page = owner_client.get(job.get_absolute_url()).content.decode()
    assert "could not confirm whether PixelByte accepted this video" in page
    assert "has not been sent again" in page
    assert api.count() == 1
    assert settings.PIXELBYTE_API_KEY not in caplog.text
    assert len([r for r in caplog.records if "outcome unknown" in r.getMessage()]) == 1


def test_connection_refused_is_not_sent_and_the_person_is_told(owner_client, settings, caplog, db):
    from .helpers import closed_port

    settings.PIXELBYTE_API_KEY = "pb_secret_value_for_test"
    settings.PIXELBYTE_API_URL = f"http://127.0.0.1:{closed_port()}"
    response, job = submit_through_form(owner_client, caplog)
    assert response.status_code == 200
    assert "could not reach PixelByte" in response.content.decode()
    assert job.status == Status.REFUSED and job.error_code == "NotSent"
    assert "pb_secret_value_for_test" not in caplog.text


def test_a_429_pauses_submissions_for_retry_after(owner_client, fake_api, monkeypatch, caplog):
    api = fake_api(Reply(status=429, body={}, headers={"Retry-After": "2"}), Reply(body=SUBMITTED))
    response, job = submit_through_form(owner_client, caplog)
    assert (job.status, job.error_code) == (Status.REFUSED, "RateLimited")
    assert "too many requests" in response.content.decode()

    second = owner_client.post(NEW, form_data())
    assert second.status_code == 429
    assert "try again in 2 s" in second.content.decode()
    assert api.count() == 1 and Job.objects.count() == 1

    now = throttle.time.time()
    monkeypatch.setattr(throttle.time, "time", lambda: now + 2.01)
    third = owner_client.post(NEW, form_data())
    assert third.status_code == 200 and len(third.context["sent_ids"]) == 1
    assert api.count() == 2


@pytest.mark.parametrize(("retry_after", "expected"), [(None, 10), (3600, 300), (0, 1)])
def test_the_cooldown_has_a_default_and_a_cap(db, settings, retry_after, expected):
    assert throttle.pause(retry_after) == expected
    assert throttle.pause_remaining() in (expected, expected - 1)


def test_an_unreadable_answer_is_unknown_not_failed(owner_client, fake_api, caplog):
    api = fake_api(Reply(body="<html>gateway</html>"))
    response, job = submit_through_form(owner_client, caplog)
    assert job.status == Status.UNKNOWN and job.error_code == "BadResponse"
    assert api.count() == 1


def test_an_invalid_key_is_a_configuration_message_without_the_key(owner_client, fake_api, caplog, settings):
    fake_api(Reply(status=401, body={"error": {"code": "INVALID_API_KEY", "message": "bad key"}}))
    response, job = submit_through_form(owner_client, caplog)
    html = response.content.decode()
    assert "does not recognise the studio" in html
    assert settings.PIXELBYTE_API_KEY not in html
    assert settings.PIXELBYTE_API_KEY not in caplog.text


def test_the_job_page_of_someone_else_is_404(client, owner, outsider):
    job = make_job(owner)
    client.force_login(outsider)
    assert client.get(job.get_absolute_url()).status_code == 404


def test_the_list_shows_only_my_jobs_and_my_spend(owner_client, owner, outsider):
    make_job(owner, prompt="mine", api_cost_micro_cents=337_500)
    make_job(owner, prompt="refunded", status=Status.FAILED)
    make_job(outsider, prompt="theirs")
    html = owner_client.get(reverse("jobs:list")).content.decode()
    assert "mine" in html and "theirs" not in html
    assert "$0.3375" in html


def test_an_unknown_job_id_is_404(owner_client):
    assert owner_client.get(reverse("jobs:detail", args=[999999])).status_code == 404


def test_the_key_is_never_shown_on_a_page(owner_client, fake_api, settings):
    fake_api(Reply(body=SUBMITTED))
    owner_client.post(NEW, form_data())
    for url in (NEW, reverse("jobs:list"), Job.objects.get().get_absolute_url()):
        assert settings.PIXELBYTE_API_KEY not in owner_client.get(url).content.decode()


def test_with_a_real_key_the_sandbox_banner_goes_away(owner_client, settings):
    settings.PIXELBYTE_API_KEY = "pb_x"
    assert "Sandbox mode." not in owner_client.get(NEW).content.decode()


def test_a_get_with_a_foreign_method_is_refused(owner_client):
    assert owner_client.put(NEW).status_code == 405


def test_record_comes_before_the_call(owner, fake_api, db):
    """If the API call blows up in the middle, the row is already there."""
    fake_api(Reply(close=True))
    from jobs import pricing

    key = uuid.uuid4()
    job = submission.submit_job(
        user=owner,
        model=pricing.DEFAULT_MODEL,
        params={"prompt": "p", "quality": "std", "duration": "5", "aspect_ratio": "1:1"},
        submission_key=key,
    )
    assert Job.objects.get(submission_key=key).status == Status.UNKNOWN == job.status
