"""The job page's polish: previous/next among the viewer's jobs, stopping a stuck job's
watch, cancel's confirmation, messages that end with a full stop, the player's shape."""

import json
import time
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jobs import webhooks
from jobs.access import Viewer
from jobs.management.commands.sync_jobs import Command
from jobs.models import ArchiveStatus, AuditAction, AuditEntry, Job, Status
from jobs.views import _neighbours

from .helpers import Reply, make_archived, make_job
from .test_job_page import submit_pending

SECRET = "whsec_job_page_polish"


def stuck_job(owner, **overrides):
    """A job PixelByte accepted ten minutes ago and expected to finish in three."""
    now = timezone.now()
    values = {
        "status": Status.PROCESSING,
        "remote_id": f"job_stuck_{owner.pk}_{time.monotonic_ns()}",
        "submitted_at": now - timedelta(minutes=10),
        "started_at": now - timedelta(minutes=9),
        "estimated_completion_at": now - timedelta(minutes=7),
        "next_check_at": now - timedelta(seconds=1),
        "api_cost_micro_cents": 225_000,
        "team": owner.profile.team,
    }
    return make_job(owner, **{**values, **overrides})


def page_of(client, job):
    return client.get(job.get_absolute_url()).content.decode()


def stop(client, job):
    return client.post(reverse("jobs:stop_watching", args=[job.pk]))


# --- previous and next ---------------------------------------------------------------------


def at(minutes_ago):
    return timezone.now() - timedelta(minutes=minutes_ago)


def test_previous_and_next_step_through_the_viewers_own_jobs_in_the_historys_order(
    owner_client, owner, teammate, outsider
):
    oldest = make_job(owner, created_at=at(40))
    make_job(outsider, created_at=at(30))  # another team's, between the two
    make_job(teammate, created_at=at(25))  # a teammate's: the owner does not see it
    middle = make_job(owner, created_at=at(20))
    newest = make_job(owner, created_at=at(10))

    html = page_of(owner_client, middle)
    assert f'href="{newest.get_absolute_url()}" rel="prev"' in html
    assert f'href="{oldest.get_absolute_url()}" rel="next"' in html
    assert 'rel="prev"' not in page_of(owner_client, newest)
    assert 'rel="next"' not in page_of(owner_client, oldest)


def test_a_manager_steps_through_the_teams_jobs(client, team, owner, teammate, manager, outsider):
    first = make_job(owner, team=team, created_at=at(30))
    make_job(outsider, team=outsider.profile.team, created_at=at(20))
    second = make_job(teammate, team=team, created_at=at(10))
    client.force_login(manager)
    assert f'href="{second.get_absolute_url()}" rel="prev"' in page_of(client, first)
    assert f'href="{first.get_absolute_url()}" rel="next"' in page_of(client, second)


def test_jobs_made_at_the_same_instant_are_ordered_by_id(owner):
    moment = at(5)
    a, b, c = (make_job(owner, created_at=moment) for _ in range(3))
    viewer = Viewer(owner)
    assert _neighbours(viewer, b) == (c.pk, a.pk)
    assert _neighbours(viewer, c) == (None, b.pk)
    assert _neighbours(viewer, a) == (b.pk, None)


def test_the_neighbours_cost_two_small_queries(owner, django_assert_num_queries):
    jobs = [make_job(owner, created_at=at(n)) for n in range(5)]
    viewer = Viewer(owner)
    viewer.profile  # read once per request anyway
    with django_assert_num_queries(2):
        assert _neighbours(viewer, jobs[2]) == (jobs[1].pk, jobs[3].pk)


# --- stop watching a stuck job -------------------------------------------------------------


def test_a_stuck_job_explains_itself_and_offers_stop_watching_to_its_owner(owner_client, owner):
    job = stuck_job(owner)
    html = page_of(owner_client, job)
    assert "This is taking far longer than usual." in html
    assert "The studio keeps asking PixelByte about it." in html
    assert f'form="stop-watching-{job.pk}"' in html
    assert f'id="stop-watching-{job.pk}"' in html
    assert reverse("jobs:stop_watching", args=[job.pk]) in html


def test_a_job_on_time_offers_no_stop_watching(owner_client, owner):
    job = stuck_job(owner, estimated_completion_at=timezone.now() + timedelta(minutes=1))
    assert "Stop watching" not in page_of(owner_client, job)


def test_the_owner_stops_watching_and_the_worker_no_longer_asks(owner_client, owner, fake_api):
    api = fake_api(Reply(body={"jobId": "x", "status": "processing"}))
    job = stuck_job(owner)
    response = stop(owner_client, job)
    assert response.status_code == 302 and response["Location"] == job.get_absolute_url()

    job.refresh_from_db()
    assert job.watch_stopped_at is not None and job.watch_stopped_by == owner
    assert job.next_check_at is None
    # Still in flight and still counted: only PixelByte settles it.
    assert (job.status, job.billed_micro_cents) == (Status.PROCESSING, 225_000)

    assert Command().claim(timezone.now(), 50) == []
    Command().sync_once()
    assert api.count("GET", f"/v1/jobs/{job.remote_id}") == 0


def test_another_due_job_is_still_claimed(owner):
    stopped, watched = stuck_job(owner), stuck_job(owner)
    assert stop(_client_for(owner), stopped).status_code == 302
    claimed = [job_id for job_id, _ in Command().claim(timezone.now(), 50)]
    assert claimed == [watched.pk]


def test_stopping_is_in_the_audit_trail(owner_client, owner, team):
    job = stuck_job(owner)
    stop(owner_client, job)
    entry = AuditEntry.objects.get(action=AuditAction.WATCH_STOPPED)
    assert (entry.actor_id, entry.job_id, entry.subject_id, entry.team_id) == (
        owner.pk,
        job.pk,
        owner.pk,
        team.pk,
    )
    assert f"Stopped watching video #{job.pk}" in entry.summary
    assert "still counts $0.225 until PixelByte says otherwise." in entry.summary


def test_the_page_says_the_job_keeps_counting_and_says_it_once(owner_client, owner):
    job = stuck_job(owner)
    response = owner_client.post(reverse("jobs:stop_watching", args=[job.pk]), follow=True)
    html = response.content.decode()
    assert html.count("The studio stopped watching this video") == 1
    assert "It still counts $0.225 toward spend until PixelByte says otherwise" in html
    assert "Stop watching" not in html
    assert "Stopped watching</span>" in html  # on the timeline


def test_the_live_note_of_a_stopped_job_is_the_pages_and_costs_no_query(
    owner_client, owner, django_assert_num_queries
):
    job = stuck_job(owner)
    stop(owner_client, job)
    page = page_of(owner_client, job)
    with django_assert_num_queries(3):  # session, user, the job
        note = owner_client.get(reverse("jobs:statuses"), {"ids": str(job.pk)}).json()["jobs"][0]["note"]
    assert "The studio stopped watching this video" in note and note in page


@pytest.mark.parametrize("who", ["manager", "staff"])
def test_a_manager_or_staff_may_stop_watching(client, owner, manager, staff, who):
    job = stuck_job(owner)
    person = {"manager": manager, "staff": staff}[who]
    client.force_login(person)
    assert stop(client, job).status_code == 302
    job.refresh_from_db()
    assert job.watch_stopped_by == person and job.next_check_at is None


@pytest.mark.parametrize("who", ["teammate", "outsider"])
def test_anyone_else_gets_404_and_changes_nothing(client, owner, teammate, outsider, who):
    job = stuck_job(owner)
    client.force_login({"teammate": teammate, "outsider": outsider}[who])
    assert stop(client, job).status_code == 404
    job.refresh_from_db()
    assert job.watch_stopped_at is None and job.next_check_at is not None
    assert not AuditEntry.objects.filter(action=AuditAction.WATCH_STOPPED).exists()


def test_stop_watching_is_post_only(owner_client, owner):
    job = stuck_job(owner)
    assert owner_client.get(reverse("jobs:stop_watching", args=[job.pk])).status_code == 405


def test_a_job_that_is_not_stuck_is_not_stopped(owner_client, owner):
    job = stuck_job(owner, estimated_completion_at=timezone.now() + timedelta(minutes=1))
    response = owner_client.post(reverse("jobs:stop_watching", args=[job.pk]), follow=True)
    assert "This video is not stuck, so the studio keeps watching it." in response.content.decode()
    job.refresh_from_db()
    assert job.watch_stopped_at is None and job.next_check_at is not None
    assert not AuditEntry.objects.exists()


def test_stopping_twice_records_once(owner_client, owner):
    job = stuck_job(owner)
    stop(owner_client, job)
    response = owner_client.post(reverse("jobs:stop_watching", args=[job.pk]), follow=True)
    assert "The studio had already stopped watching this video." in response.content.decode()
    assert AuditEntry.objects.filter(action=AuditAction.WATCH_STOPPED).count() == 1


def test_a_later_webhook_still_applies(owner_client, owner, settings):
    settings.PIXELBYTE_WEBHOOK_SECRET = SECRET
    job = stuck_job(owner)
    stop(owner_client, job)
    body = json.dumps(
        {
            "jobId": job.remote_id,
            "status": "completed",
            "output": {"videoUrl": "https://cdn.example/late.mp4"},
            "completedAt": "2026-02-18T12:00:00.000Z",
        }
    ).encode()
    stamp = str(int(time.time()))
    response = Client(enforce_csrf_checks=True).post(
        reverse("jobs:webhook", args=[job.webhook_token]),
        data=body,
        content_type="application/json",
        HTTP_X_PIXELBYTE_TIMESTAMP=stamp,
        HTTP_X_PIXELBYTE_SIGNATURE=webhooks.sign(SECRET, stamp, body),
    )
    assert response.status_code == 200
    job.refresh_from_db()
    assert job.status == Status.COMPLETED
    html = page_of(owner_client, job)
    assert "The studio stopped watching this video" not in html
    assert "Stopped watching</span>" in html  # the timeline keeps what happened


# --- cancel: a confirmation first, then one report -------------------------------------------


def test_cancel_opens_a_confirm_step_before_anything_is_posted(owner_client, owner):
    job = make_job(owner, status=Status.PENDING, remote_id="job_q")
    html = page_of(owner_client, job)
    confirm = reverse("jobs:cancel_confirm", args=[job.pk])
    assert f'href="{confirm}" data-reveal="cancel-step"' in html
    assert f'<form method="post" action="{reverse("jobs:cancel", args=[job.pk])}" id="cancel-step"' in html
    step = html[html.index('id="cancel-step"') :]
    assert step[: step.index(">")].endswith("hidden")
    assert "window.confirm" not in html


def test_the_confirm_page_works_without_javascript(owner_client, owner, client, outsider):
    job = make_job(owner, status=Status.PENDING, remote_id="job_q")
    url = reverse("jobs:cancel_confirm", args=[job.pk])
    html = owner_client.get(url).content.decode()
    assert f"Cancel video #{job.pk}?" in html
    assert f'action="{reverse("jobs:cancel", args=[job.pk])}"' in html
    client.force_login(outsider)
    assert client.get(url).status_code == 404


def test_the_confirm_page_of_a_job_that_left_the_queue_goes_back_to_the_job(owner_client, owner):
    job = make_job(owner, status=Status.PROCESSING, remote_id="job_q")
    response = owner_client.get(reverse("jobs:cancel_confirm", args=[job.pk]), follow=True)
    assert response.redirect_chain[-1][0] == job.get_absolute_url()
    assert "Only a video still waiting in the queue can be cancelled." in response.content.decode()


def test_a_cancel_is_reported_once_and_a_second_click_adds_nothing(owner_client, owner, sandbox):
    job = submit_pending(owner)
    response = owner_client.post(reverse("jobs:cancel", args=[job.pk]), follow=True)
    html = response.content.decode()
    # The note says it, with the refund; no message says it again above.
    assert html.count("Cancelled.") == 1 and html.count("PixelByte refunded") == 1
    assert 'class="alert alert-success"' not in html
    again = owner_client.post(reverse("jobs:cancel", args=[job.pk]), follow=True).content.decode()
    assert 'class="alert alert-error"' not in again and again.count("Cancelled.") == 1


def test_a_refused_cancel_ends_with_a_full_stop(owner_client, owner, fake_api):
    fake_api(Reply(status=409, body={"error": {"code": "SOMETHING_ODD", "message": "odd"}}))
    job = make_job(owner, status=Status.PENDING, remote_id="job_p")
    response = owner_client.post(reverse("jobs:cancel", args=[job.pk]), follow=True)
    [message] = [str(m) for m in response.context["messages"]]
    assert message.startswith("The video was not cancelled") and message.endswith(".")


# --- failure messages end with a full stop, live and after a reload ------------------------


@pytest.mark.parametrize(
    "status,fields",
    [
        (Status.FAILED, {"error_code": "INTERNAL_ERROR", "error_message": "Model inference failed"}),
        (Status.REFUSED, {"error_message": "PixelByte refused the request (HTTP 400): bad prompt"}),
        (Status.UNKNOWN, {"error_message": "No answer in time"}),
        (Status.PROCESSING, {"error_message": "PixelByte had an internal error", "remote_id": "job_t"}),
    ],
)
def test_a_message_from_elsewhere_ends_with_a_full_stop(owner_client, owner, status, fields):
    job = make_job(owner, status=status, **fields)
    note = owner_client.get(reverse("jobs:status", args=[job.pk])).json()["note"]
    assert fields["error_message"] + "." in note and fields["error_message"] + ".." not in note
    assert note in page_of(owner_client, job)


def test_a_message_that_has_its_full_stop_gets_no_second(owner_client, owner):
    job = make_job(owner, status=Status.FAILED, error_message="The video could not be generated.")
    assert "The video could not be generated.." not in page_of(owner_client, job)


# --- the player ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ratio,shape", [("16:9", "shape-wide"), ("9:16", "shape-tall"), ("1:1", "shape-square")]
)
def test_the_kept_video_and_the_one_on_its_way_take_their_shape(owner_client, owner, ratio, shape):
    kept = make_job(
        owner, status=Status.COMPLETED, aspect_ratio=ratio, output_url="https://cdn.example/v.mp4"
    )
    make_archived(kept)
    assert f'<video class="{shape}" controls preload="metadata" src="/jobs/{kept.pk}/video"' in page_of(
        owner_client, kept
    )
    coming = make_job(owner, status=Status.PENDING, aspect_ratio=ratio, remote_id=f"job_{ratio}")
    assert f'<div class="placeholder {shape}">' in page_of(owner_client, coming)


def test_the_video_can_be_opened_in_a_new_tab_and_its_link_copied(owner_client, owner):
    cdn = make_job(owner, status=Status.COMPLETED, output_url="https://cdn.example/v.mp4")
    html = page_of(owner_client, cdn)
    assert (
        'href="https://cdn.example/v.mp4" target="_blank" rel="noopener noreferrer">Open in new tab' in html
    )
    assert 'data-copy-link="https://cdn.example/v.mp4"' in html

    kept = make_job(owner, status=Status.COMPLETED, output_url="https://cdn.example/v.mp4")
    make_archived(kept)
    assert Job.objects.get(pk=kept.pk).archive_status == ArchiveStatus.ARCHIVED
    html = page_of(owner_client, kept)
    video = reverse("jobs:video", args=[kept.pk])
    assert f'href="{video}" target="_blank" rel="noopener">Open in new tab' in html
    assert f'data-copy-link="{video}"' in html


def _client_for(user):
    client = Client()
    client.force_login(user)
    return client
