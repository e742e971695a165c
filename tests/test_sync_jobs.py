"""The polling fallback, against the sandbox and against faults."""

import logging
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from jobs import pricing, submission
from jobs.management.commands.sync_jobs import Command
from jobs.models import Job, Status

from .helpers import Reply, make_job

PARAMS = {"prompt": "A glass whale", "quality": "std", "duration": "5", "aspect_ratio": "16:9"}


def submit(owner, prompt="A glass whale"):
    import uuid

    return submission.submit_job(
        user=owner,
        model=pricing.DEFAULT_MODEL,
        params={**PARAMS, "prompt": prompt},
        submission_key=uuid.uuid4(),
    )


def age(job, seconds):
    """Pretend the sandbox job was created ``seconds`` ago, and that it is due for a check."""
    from sandbox.engine import SANDBOX

    SANDBOX.jobs[job.remote_id].created -= seconds
    Job.objects.filter(pk=job.pk).update(next_check_at=timezone.now() - timedelta(seconds=1))


def sync():
    out = StringIO()
    call_command("sync_jobs", stdout=out)
    return out.getvalue()


def test_sync_jobs_brings_a_sandbox_job_to_completed_with_its_video(owner, sandbox, settings):
    settings.PUBLIC_BASE_URL = "http://studio.invalid"  # no webhooks: polling alone
    job = submit(owner)
    assert job.status == Status.PENDING
    age(job, 0.3)
    assert "Checked 1 job(s); 1 changed." in sync()
    job.refresh_from_db()
    assert (job.status, job.progress) == (Status.PROCESSING, 50)
    age(job, 5)
    sync()
    job.refresh_from_db()
    assert job.status == Status.COMPLETED
    assert job.output_url.endswith(f"/sandbox/cdn/{job.remote_id}/video.mp4")
    assert job.poster_url.endswith(f"/sandbox/cdn/{job.remote_id}/poster.jpg")
    assert job.next_check_at is None


def test_a_failed_sandbox_job_is_failed_and_not_charged(owner, sandbox):
    job = submit(owner, prompt="A glass whale [fail]")
    age(job, 5)
    sync()
    job.refresh_from_db()
    assert (job.status, job.error_code, job.billed_micro_cents) == (Status.FAILED, "INTERNAL_ERROR", 0)


def test_jobs_not_yet_due_are_left_alone(owner, sandbox):
    submit(owner)
    assert "Checked 0 job(s)" in sync()


def test_finished_jobs_are_never_checked(owner, fake_api):
    api = fake_api(Reply(body={}))
    make_job(owner, status=Status.COMPLETED, remote_id="job_done")
    make_job(owner, status=Status.REFUSED)
    assert "Checked 0 job(s)" in sync()
    assert api.requests == []


# --- API-08: a submit whose answer was lost --------------------------------------------------


def test_api08_a_lost_answer_is_found_in_the_list_and_adopted_never_resent(owner, sandbox, settings):
    settings.PIXELBYTE_READ_TIMEOUT = 0.2
    settings.SANDBOX_SUBMIT_DELAY = 0.5  # the sandbox creates the job, but answers too late
    job = submit(owner)
    assert (job.status, job.remote_id) == (Status.UNKNOWN, None)
    assert job.billed_micro_cents == 225_000  # counts against budgets until resolved
    settings.SANDBOX_SUBMIT_DELAY = 0
    import time

    time.sleep(0.5)  # let the sandbox finish creating it
    Job.objects.filter(pk=job.pk).update(next_check_at=timezone.now())
    Command().sync_once()
    job.refresh_from_db()
    assert job.remote_id in sandbox.jobs and job.status in (Status.PENDING, Status.PROCESSING)
    assert job.error_code == ""
    assert sandbox.submit_count == 1


def test_api08_with_no_such_job_after_the_window_it_is_not_sent_and_released(owner, fake_api):
    api = fake_api(Reply(body={"jobs": [], "nextCursor": None, "hasMore": False}))
    job = make_job(
        owner,
        status=Status.UNKNOWN,
        created_at=timezone.now() - timedelta(minutes=11),
        next_check_at=timezone.now(),
    )
    Command().sync_once()
    job.refresh_from_db()
    assert (job.status, job.error_code, job.billed_micro_cents) == (Status.REFUSED, "NOT_SENT", 0)
    assert job.next_check_at is None
    assert api.count("POST") == 0


def test_api08_within_the_window_it_keeps_looking(owner, fake_api):
    fake_api(Reply(body={"jobs": [], "nextCursor": None, "hasMore": False}))
    job = make_job(owner, status=Status.UNKNOWN, next_check_at=timezone.now())
    Command().sync_once()
    job.refresh_from_db()
    assert job.status == Status.UNKNOWN and job.next_check_at > timezone.now()


def test_api08_a_job_another_row_already_claims_is_not_adopted(owner, fake_api):
    now = timezone.now()
    listed = {"jobId": "job_taken", "status": "pending", "createdAt": now.isoformat(), "model": "m"}
    fake_api(Reply(body={"jobs": [listed], "nextCursor": None, "hasMore": False}))
    make_job(owner, remote_id="job_taken")
    job = make_job(owner, status=Status.UNKNOWN, next_check_at=now)
    Command().sync_once()
    job.refresh_from_db()
    assert job.remote_id is None


def due_job(owner, **extra):
    return make_job(owner, remote_id="job_1", next_check_at=timezone.now() - timedelta(seconds=1), **extra)


def test_a_429_pauses_the_worker_for_retry_after(owner, fake_api, caplog):
    fake_api(Reply(status=429, body={}, headers={"Retry-After": "7"}))
    job = due_job(owner)
    due_job_2 = make_job(owner, remote_id="job_2", next_check_at=timezone.now() - timedelta(seconds=1))
    checked, changed, pause = Command().sync_once()
    assert pause == 7 and (checked, changed) == (1, 0)
    for j in (job, due_job_2):
        j.refresh_from_db()
        assert j.next_check_at >= timezone.now() + timedelta(seconds=6)
        assert j.status == Status.PENDING


@pytest.mark.parametrize(
    "reply", [Reply(status=500, body={}), Reply(hang=1.0, body={})], ids=["500", "timeout"]
)
def test_errors_back_off_per_job_and_change_nothing(owner, fake_api, settings, reply, caplog):
    settings.PIXELBYTE_READ_TIMEOUT = 0.2
    api = fake_api(reply)
    job = due_job(owner)
    caplog.set_level(logging.WARNING)
    Command().sync_once(client=_no_sleep_client(settings))
    job.refresh_from_db()
    assert job.status == Status.PENDING and job.check_failures == 1
    assert job.next_check_at >= timezone.now() + timedelta(seconds=9)
    assert api.count("GET", "/v1/jobs/job_1") == 3  # the client's own bounded retries
    assert settings.PIXELBYTE_API_KEY not in caplog.text
    Job.objects.filter(pk=job.pk).update(next_check_at=timezone.now() - timedelta(seconds=1))
    Command().sync_once(client=_no_sleep_client(settings))
    job.refresh_from_db()
    assert job.check_failures == 2
    assert job.next_check_at >= timezone.now() + timedelta(seconds=19)


def _no_sleep_client(settings):
    from jobs import pixelbyte

    return pixelbyte.Client(
        settings.PIXELBYTE_API_URL, settings.PIXELBYTE_API_KEY, read_timeout=0.2, sleep=lambda s: None
    )


def test_an_unknown_status_value_changes_nothing(owner, fake_api):
    fake_api(Reply(body={"jobId": "job_1", "status": "teleported"}))
    job = due_job(owner)
    Command().sync_once()
    job.refresh_from_db()
    assert job.status == Status.PENDING


def test_a_404_is_shown_to_the_person_not_taken_for_pending(owner, owner_client, fake_api):
    fake_api(Reply(status=404, body={"error": {"code": "JOB_NOT_FOUND", "message": "gone"}}))
    job = due_job(owner)
    Command().sync_once()
    job.refresh_from_db()
    assert job.check_failures == 1 and job.error_code == "JOB_NOT_FOUND"
    assert job.next_check_at >= timezone.now() + timedelta(minutes=9)
    assert "PixelByte does not know this job." in owner_client.get(job.get_absolute_url()).content.decode()


def test_a_successful_check_resets_the_failure_count(owner, fake_api):
    fake_api(Reply(body={"jobId": "job_1", "status": "processing"}))
    job = due_job(owner, check_failures=4)
    Command().sync_once()
    job.refresh_from_db()
    assert (job.status, job.check_failures) == (Status.PROCESSING, 0)
    assert job.last_checked_at is not None


def test_the_status_read_replaces_a_video_link_a_webhook_guessed(owner, fake_api):
    real = "https://cdn.example/outputs/job_1/output_0.mp4"
    fake_api(
        Reply(body={"jobId": "job_1", "status": "completed", "outputs": [{"url": real, "type": "video"}]})
    )
    job = due_job(owner, status=Status.COMPLETED, output_url="https://cdn.example/guess.png")
    Command().sync_once()
    job.refresh_from_db()
    assert job.output_url == real


def test_an_unexpected_error_on_one_job_does_not_stop_the_others(owner, fake_api, monkeypatch):
    fake_api(Reply(body={"jobId": "job_2", "status": "processing"}))
    first = due_job(owner)
    second = make_job(owner, remote_id="job_2", next_check_at=timezone.now() - timedelta(seconds=1))
    real = Command.check_job

    def flaky(self, job_id, lease, client):
        if job_id == first.pk:
            raise RuntimeError("database hiccup")
        return real(self, job_id, lease, client)

    monkeypatch.setattr(Command, "check_job", flaky)
    Command().sync_once()
    second.refresh_from_db()
    first.refresh_from_db()
    assert second.status == Status.PROCESSING
    assert first.next_check_at > timezone.now()


def test_a_claimed_job_is_not_claimed_again_by_another_worker(owner, db):
    due_job(owner)
    now = timezone.now()
    assert len(Command().claim(now, 10)) == 1
    assert Command().claim(now, 10) == []


def test_a_webhook_arriving_during_a_check_keeps_its_request_to_refetch(owner, db):
    job = due_job(owner)
    worker = Command()
    [(job_id, lease)] = worker.claim(timezone.now(), 10)
    Job.objects.filter(pk=job_id).update(next_check_at=timezone.now())  # a webhook asked for a read
    worker.release(job_id, lease, None)
    job.refresh_from_db()
    assert job.next_check_at is not None


# --- reconciling two lost submits a second apart (never swap their videos) -------------------


def _lost_submits(owner, other, fake_api):
    """Eve's submit never reaches PixelByte; a second later Dave's is created there and then
    the connection drops. Both rows are left outcome unknown, ten minutes ago."""
    api = fake_api(Reply(close=True), Reply(close=True), Reply(body={}))
    eve_job, dave_job = submit(owner, "Eve's lighthouse"), submit(other, "Dave's glass whale")
    assert (eve_job.status, dave_job.status) == (Status.UNKNOWN, Status.UNKNOWN)
    past = timezone.now() - timedelta(minutes=11)
    Job.objects.filter(pk=eve_job.pk).update(created_at=past, next_check_at=timezone.now())
    Job.objects.filter(pk=dave_job.pk).update(
        created_at=past + timedelta(seconds=1), next_check_at=timezone.now()
    )
    created = (past + timedelta(seconds=1.3)).isoformat()
    dave_remote = {"jobId": "job_dave", "status": "processing", "createdAt": created, "model": PARAMS_MODEL}
    with api.lock:
        api.replies[:] = [Reply(body={"jobs": [dave_remote], "nextCursor": None, "hasMore": False})]
    return api, eve_job, dave_job


PARAMS_MODEL = pricing.DEFAULT_MODEL.slug


def test_two_lost_submits_never_take_each_others_remote_job(owner, outsider, fake_api):
    api, eve_job, dave_job = _lost_submits(owner, outsider, fake_api)
    for _ in range(2):
        Job.objects.filter(pk__in=[eve_job.pk, dave_job.pk]).update(next_check_at=timezone.now())
        Command().sync_once()
    eve_job.refresh_from_db()
    dave_job.refresh_from_db()
    assert eve_job.remote_id is None
    assert dave_job.remote_id in (None, "job_dave")
    # neither is written off as never sent while a job that may be its own exists
    assert eve_job.status == Status.UNKNOWN and eve_job.error_code == "NEEDS_DECISION"
    assert eve_job.billed_micro_cents > 0 and dave_job.billed_micro_cents > 0
    assert "job_dave" in eve_job.error_message
    assert api.count("POST") == 2  # nothing was ever re-sent


def test_a_single_lost_submit_with_one_job_at_its_time_is_adopted(owner, fake_api):
    api = fake_api(Reply(close=True), Reply(body={}))
    job = submit(owner)
    listed = {
        "jobId": "job_mine",
        "status": "pending",
        "createdAt": (job.created_at + timedelta(seconds=0.4)).isoformat(),
        "model": PARAMS_MODEL,
    }
    with api.lock:
        api.replies[:] = [Reply(body={"jobs": [listed], "nextCursor": None, "hasMore": False})]
    Job.objects.filter(pk=job.pk).update(next_check_at=timezone.now())
    Command().sync_once()
    job.refresh_from_db()
    assert (job.remote_id, job.status) == ("job_mine", Status.PENDING)


def test_a_job_created_well_after_the_send_is_not_taken_for_it(owner, fake_api):
    now = timezone.now()
    created = (now - timedelta(minutes=11) + timedelta(seconds=45)).isoformat()
    elsewhere = {
        "jobId": "job_other_install",
        "status": "completed",
        "createdAt": created,
        "model": PARAMS_MODEL,
    }
    fake_api(Reply(body={"jobs": [elsewhere], "nextCursor": None, "hasMore": False}))
    job = make_job(owner, status=Status.UNKNOWN, created_at=now - timedelta(minutes=11), next_check_at=now)
    Command().sync_once()
    job.refresh_from_db()
    assert job.remote_id is None
    assert (job.status, job.error_code) == (Status.REFUSED, "NOT_SENT")


# --- 8: the webhook log is pruned on a schedule, by one-shot runs and --watch alike ---------------


def webhook_log_of_ages(owner, now, job_days=(89, 91)):
    """Deliveries and refused counts of several ages; returns the ids retention must keep."""
    from jobs.models import Verdict, WebhookDelivery, WebhookTally

    job = make_job(owner, status=Status.COMPLETED, remote_id="job_logged")

    def delivery(days, verdict, **extra):
        at = now - timedelta(days=days)
        return WebhookDelivery.objects.create(received_at=at, verdict=verdict, http_status=200, **extra).pk

    def tally(days):
        minute = (now - timedelta(days=days)).replace(second=0, microsecond=0)
        return WebhookTally.objects.create(minute=minute, verdict=Verdict.BAD_TOKEN, count=7).pk

    young, old = job_days
    kept = {delivery(young, Verdict.APPLIED, job=job), delivery(6, Verdict.BAD_SIGNATURE)}
    delivery(old, Verdict.APPLIED, job=job)
    delivery(8, Verdict.BAD_TOKEN)
    kept_tallies = {tally(6)}
    tally(8)
    return kept, kept_tallies


def webhook_log():
    from jobs.models import WebhookDelivery, WebhookTally

    return (
        set(WebhookDelivery.objects.values_list("pk", flat=True)),
        set(WebhookTally.objects.values_list("pk", flat=True)),
    )


def test_item08_a_one_shot_sync_prunes_the_webhook_log(owner):
    kept = webhook_log_of_ages(owner, timezone.now())
    assert "Checked 0 job(s)" in sync()
    assert webhook_log() == kept


def test_item08_webhook_log_days_sets_how_long_job_deliveries_are_kept(owner, settings):
    settings.WEBHOOK_LOG_DAYS = 30
    kept = webhook_log_of_ages(owner, timezone.now(), job_days=(29, 31))
    sync()
    assert webhook_log() == kept


def test_item08_the_watch_loop_prunes_the_webhook_log_too(owner, monkeypatch):
    import signal

    kept = webhook_log_of_ages(owner, timezone.now())
    monkeypatch.setattr(signal, "signal", lambda *args: None)
    monkeypatch.setattr(Command, "sync_once", lambda self, **kwargs: (0, 0, 0))
    monkeypatch.setattr(Command, "_sleep", lambda self, seconds: setattr(self, "stopping", True))
    call_command("sync_jobs", watch=True, stdout=StringIO())
    assert webhook_log() == kept


def test_item08_the_watch_loop_prunes_at_most_hourly(owner):
    from jobs.management.commands.sync_jobs import prune_deliveries

    now = timezone.now()
    kept = webhook_log_of_ages(owner, now)
    everything = webhook_log()
    recently = now - timedelta(minutes=59)
    assert prune_deliveries(now, last=recently) == recently
    assert webhook_log() == everything
    assert prune_deliveries(now, last=now - timedelta(minutes=61)) == now
    assert webhook_log() == kept


def test_item08_a_webhook_log_days_below_one_stops_the_prune_and_deletes_nothing(owner, settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.WEBHOOK_LOG_DAYS = 0
    webhook_log_of_ages(owner, timezone.now())
    everything = webhook_log()
    with pytest.raises(ImproperlyConfigured, match="WEBHOOK_LOG_DAYS"):
        sync()
    assert webhook_log() == everything


def test_a_submit_answered_with_an_unstorable_id_is_never_written_off_as_not_sent(owner, fake_api):
    api = fake_api(Reply(body={"jobId": "job_" + "x" * 300, "status": "pending"}), Reply(body={}))
    job = submit(owner)
    assert (job.status, job.error_code) == (Status.UNKNOWN, "UNSTORABLE_JOB_ID")
    with api.lock:
        api.replies[:] = [Reply(body={"jobs": [], "nextCursor": None, "hasMore": False})]
    Job.objects.filter(pk=job.pk).update(
        created_at=timezone.now() - timedelta(minutes=11), next_check_at=timezone.now()
    )
    Command().sync_once()
    job.refresh_from_db()
    assert (job.status, job.error_code) == (Status.UNKNOWN, "NEEDS_DECISION")
    assert job.billed_micro_cents > 0
    assert "PixelByte accepted this job" in job.error_message


# --- one pause for every caller ------------------------------------------------------------


def test_a_429_on_a_status_check_pauses_submits_too(owner, fake_api):
    from jobs import throttle

    api = fake_api(Reply(status=429, body={}, headers={"Retry-After": "30"}))
    due_job(owner)
    Command().sync_once()
    with pytest.raises(throttle.SubmissionPaused) as paused:
        submit(owner)
    assert 29 <= paused.value.seconds <= 30
    assert api.count("POST") == 0


def test_a_429_on_a_submit_pauses_the_workers_checks_too(owner, fake_api):
    api = fake_api(Reply(status=429, body={"error": {"code": "RATE_LIMITED"}}, headers={"Retry-After": "30"}))
    refused = submit(owner)
    assert refused.status == Status.REFUSED
    due_job(owner)
    checked, _, pause = Command().sync_once()
    assert checked == 0 and 29 <= pause <= 30
    assert api.count("GET", "/v1/jobs/job_1") == 0
