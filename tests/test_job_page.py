"""The job page and its actions: re-run, vary seed, copy prompt, cancel."""

import re
import uuid
from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from jobs import pricing, submission
from jobs.models import Job, Status

from .helpers import Reply, make_job


def submit_pending(owner):
    return submission.submit_job(
        user=owner,
        model=pricing.DEFAULT_MODEL,
        params={
            "prompt": "A tram in the fog",
            "quality": "pro",
            "duration": "10",
            "aspect_ratio": "9:16",
            "seed": 77,
        },
        submission_key=uuid.uuid4(),
    )


def test_the_page_shows_every_parameter_costs_timeline_and_ids(owner_client, owner):
    now = timezone.now()
    job = make_job(
        owner,
        prompt="A tram in the fog\nsecond line",
        quality="pro",
        duration=10,
        aspect_ratio="9:16",
        seed=77,
        status=Status.COMPLETED,
        remote_id="job_abc",
        request_id="req_xyz",
        api_cost_micro_cents=675_000,
        output_url="https://cdn.example/v.mp4",
        poster_url="https://cdn.example/p.jpg",
        created_at=now - timedelta(seconds=200),
        submitted_at=now - timedelta(seconds=199),
        started_at=now - timedelta(seconds=150),
        completed_at=now - timedelta(seconds=10),
    )
    html = owner_client.get(job.get_absolute_url()).content.decode()
    assert (
        '<video class="shape-tall" controls preload="metadata" src="https://cdn.example/v.mp4" '
        'poster="https://cdn.example/p.jpg">' in html
    )
    assert 'href="https://cdn.example/v.mp4" download' in html
    for text in (
        "A tram in the fog\nsecond line",
        "pro",
        "10 s",
        "9:16",
        "<code>77</code>",
        "$0.675",
        "job_abc",
        "req_xyz",
    ):
        assert text in html, text
    assert "after 49 s in the queue" in html and "3 min 10 s in all" in html


def test_a_failure_shows_its_code_and_message_and_that_nothing_was_charged(owner_client, owner):
    job = make_job(
        owner, status=Status.FAILED, error_code="INTERNAL_ERROR", error_message="Model inference failed"
    )
    html = owner_client.get(job.get_absolute_url()).content.decode()
    assert "Generation failed (INTERNAL_ERROR)." in html and "Model inference failed" in html
    assert "nothing was charged" in html


def test_rerun_opens_the_form_with_the_same_settings(owner_client, owner):
    job = make_job(owner, prompt="Same again", quality="pro", duration=10, aspect_ratio="1:1", seed=5)
    job.params = {**job.params, "seed": 5}
    job.save()
    response = owner_client.get(reverse("jobs:new"), {"from": job.pk})
    form = response.context["form"]
    assert form.initial["prompt"] == "Same again"
    assert (form.initial["quality"], form.initial["duration"], form.initial["aspect_ratio"]) == (
        "pro",
        "10",
        "1:1",
    )
    assert form.initial["seed"] == 5
    html = response.content.decode()
    assert f"video #{job.pk}" in html and "$0.675" in html


def test_vary_seed_keeps_the_settings_and_picks_a_new_seed(owner_client, owner):
    job = make_job(owner, seed=5)
    job.params = {**job.params, "seed": 5}
    job.save()
    seeds = {
        owner_client.get(reverse("jobs:new"), {"from": job.pk, "vary": "seed"})
        .context["form"]
        .initial["seed"]
        for _ in range(3)
    }
    assert 5 not in seeds and len(seeds) > 1
    assert all(0 <= s <= 2_147_483_647 for s in seeds)


def test_rerunning_someone_elses_job_is_404(owner_client, outsider):
    job = make_job(outsider)
    assert owner_client.get(reverse("jobs:new"), {"from": job.pk}).status_code == 404


def test_the_copy_prompt_button_targets_the_prompt(owner_client, owner):
    job = make_job(owner)
    html = owner_client.get(job.get_absolute_url()).content.decode()
    assert 'data-copy-target="prompt-text"' in html and 'id="prompt-text"' in html


def test_cancel_a_pending_job_records_the_refund_and_zero_spend(owner_client, owner, sandbox):
    job = submit_pending(owner)
    html = owner_client.get(job.get_absolute_url()).content.decode()
    assert reverse("jobs:cancel", args=[job.pk]) in html
    response = owner_client.post(reverse("jobs:cancel", args=[job.pk]), follow=True)
    job.refresh_from_db()
    assert (job.status, job.refunded_micro_cents, job.billed_micro_cents) == (Status.CANCELLED, 675_000, 0)
    assert Job.objects.filter(pk=job.pk).spend() == 0
    assert "Cancelled. PixelByte refunded $0.675." in response.content.decode()
    assert sandbox.jobs[job.remote_id].cancelled_at is not None


def test_a_job_that_already_started_cannot_be_cancelled(owner_client, owner, sandbox):
    job = submit_pending(owner)
    sandbox.jobs[job.remote_id].created -= 0.3  # the sandbox has started it
    response = owner_client.post(reverse("jobs:cancel", args=[job.pk]), follow=True)
    job.refresh_from_db()
    assert job.status == Status.PENDING
    assert "already started this video" in response.content.decode()


def test_only_pending_jobs_offer_cancel(owner_client, owner):
    job = make_job(owner, status=Status.PROCESSING, remote_id="job_p")
    html = owner_client.get(job.get_absolute_url()).content.decode()
    assert reverse("jobs:cancel", args=[job.pk]) not in html
    response = owner_client.post(reverse("jobs:cancel", args=[job.pk]), follow=True)
    assert "Only a video still waiting in the queue can be cancelled." in response.content.decode()


def test_a_cancel_the_api_refuses_is_explained(owner_client, owner, fake_api):
    fake_api(Reply(status=403, body={"error": {"code": "UNAUTHORIZED_ACCESS", "message": "no"}}))
    job = make_job(owner, status=Status.PENDING, remote_id="job_p")
    response = owner_client.post(reverse("jobs:cancel", args=[job.pk]), follow=True)
    assert "The video was not cancelled" in response.content.decode()
    job.refresh_from_db()
    assert job.status == Status.PENDING


def test_outsiders_get_404_for_the_page_status_and_cancel(client, owner, outsider):
    job = make_job(owner, status=Status.PENDING, remote_id="job_p")
    client.force_login(outsider)
    for response in (
        client.get(job.get_absolute_url()),
        client.get(reverse("jobs:status", args=[job.pk])),
        client.post(reverse("jobs:cancel", args=[job.pk])),
    ):
        assert response.status_code == 404
    job.refresh_from_db()
    assert job.status == Status.PENDING


def test_cancel_is_post_only(owner_client, owner):
    job = make_job(owner, status=Status.PENDING, remote_id="job_p")
    assert owner_client.get(reverse("jobs:cancel", args=[job.pk])).status_code == 405


def test_a_prompt_with_html_is_shown_as_text(owner_client, owner):
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    job = make_job(owner, prompt=evil, status=Status.FAILED, error_message=evil)
    for url in (job.get_absolute_url(), reverse("jobs:list")):
        html = owner_client.get(url).content.decode()
        assert evil not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert not re.search(r"<img src=x", html)


def test_a_send_past_its_deadline_says_the_studio_is_checking_with_pixelbyte(owner_client, owner, settings):
    settings.PIXELBYTE_SUBMIT_DEADLINE = 30
    fresh = make_job(owner, status=Status.SUBMITTING)
    overdue = make_job(owner, status=Status.SUBMITTING, created_at=timezone.now() - timedelta(seconds=31))
    checking = "Checking with PixelByte whether this job was created"
    assert checking not in owner_client.get(reverse("jobs:detail", args=[fresh.pk])).content.decode()
    assert checking in owner_client.get(reverse("jobs:detail", args=[overdue.pk])).content.decode()
    live = owner_client.get(reverse("jobs:status", args=[overdue.pk])).json()
    assert checking in live["note"]


def test_the_live_note_is_the_pages_own_for_every_state(owner_client, owner):
    for status, extra in (
        (Status.UNKNOWN, {"error_message": "No answer in time."}),
        (Status.PROCESSING, {"error_message": "PixelByte had an internal error.", "remote_id": "job_t"}),
        (Status.FAILED, {"error_code": "INTERNAL_ERROR", "error_message": "Model inference failed"}),
        (Status.REFUSED, {"error_message": "Too many requests."}),
    ):
        job = make_job(owner, status=status, **extra)
        page = owner_client.get(reverse("jobs:detail", args=[job.pk])).content.decode()
        note = owner_client.get(reverse("jobs:status", args=[job.pk])).json()["note"]
        assert note and note in page, status


def test_the_player_takes_the_videos_own_shape(owner_client, owner):
    for ratio, shape in (("16:9", "shape-wide"), ("9:16", "shape-tall"), ("1:1", "shape-square")):
        job = make_job(
            owner, status=Status.COMPLETED, aspect_ratio=ratio, output_url="https://cdn.example/v.mp4"
        )
        page = owner_client.get(reverse("jobs:detail", args=[job.pk])).content.decode()
        assert f'<video class="{shape}"' in page, ratio
