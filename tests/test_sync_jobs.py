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
    assert job.output_url.endswith("/static/sandbox/sample.mp4")
    assert job.poster_url.endswith("/static/sandbox/poster.jpg")
    assert job.next_check_at is None


def test_a_failed_sandbox_job_is_failed_and_not_charged(owner, sandbox):
    job = submit(owner, prompt="A glass whale [fail]")
    age(job, 5)
    sync()
    job.refresh_from_db()
    assert (job.status, job.error_code, job.charge_micro_cents) == (Status.FAILED, "INTERNAL_ERROR", 0)


def test_jobs_not_yet_due_are_left_alone(owner, sandbox):
    submit(owner)
    assert "Checked 0 job(s)" in sync()


def test_finished_and_unsent_jobs_are_never_checked(owner, fake_api):
    api = fake_api(Reply(body={}))
    past = timezone.now() - timedelta(minutes=1)
    make_job(owner, status=Status.COMPLETED, remote_id="job_done")
    make_job(owner, status=Status.UNKNOWN, next_check_at=past)  # no remote id to ask about
    assert "Checked 0 job(s)" in sync()
    assert api.requests == []


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


def test_a_404_is_not_taken_for_pending(owner, fake_api):
    fake_api(Reply(status=404, body={"error": {"code": "JOB_NOT_FOUND", "message": "gone"}}))
    job = due_job(owner)
    Command().sync_once()
    job.refresh_from_db()
    assert job.check_failures == 1
    assert job.next_check_at >= timezone.now() + timedelta(minutes=9)


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
