"""The archiver: completed jobs' outputs copied whole into the studio's storage, over real
HTTP on loopback (the sandbox, or a scripted API and CDN), on local disk and on S3."""

import errno
import hashlib
import json
import threading
import time
import uuid
from datetime import timedelta
from io import StringIO

import pytest
import requests
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage
from django.core.management import call_command
from django.db import connections
from django.utils import timezone

from jobs import archive, pixelbyte, pricing, submission
from jobs.management.commands.archive_outputs import Progress
from jobs.management.commands.sync_jobs import Command as SyncCommand
from jobs.models import ArchivedFile, ArchiveStatus, FileKind, Job, Status

from .helpers import MediaServer, Reply, make_job, make_user

VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40  # ~10 KiB
THUMB = b"\xff\xd8\xff\xe0 a thumbnail"
POSTER = b"\xff\xd8\xff\xe0 a poster, somewhat larger than the thumbnail"
ALL_KINDS = {FileKind.VIDEO, FileKind.THUMBNAIL, FileKind.POSTER, FileKind.SIDECAR}


@pytest.fixture
def cdn():
    server = MediaServer()
    yield server
    server.stop()


def serve(cdn, video=None, thumb=None, poster=None, prefix="/media/job"):
    """Script the CDN's three files (a reply each, or a list); return the status answer."""
    urls = [
        cdn.put(f"{prefix}/{name}", *(replies if isinstance(replies, list) else [replies]))
        for name, replies in (
            ("video.mp4", video or Reply(body=VIDEO, headers={"Content-Type": "video/mp4"})),
            ("thumb.jpg", thumb or Reply(body=THUMB, headers={"Content-Type": "image/jpeg"})),
            ("poster.jpg", poster or Reply(body=POSTER, headers={"Content-Type": "image/jpeg"})),
        )
    ]
    output = {"url": urls[0], "type": "video", "thumbnail": urls[1], "posterImage": urls[2]}
    return Reply(body={"jobId": "job_1", "status": "completed", "output": urls[0], "outputs": [output]})


def completed_job(owner, remote_id="job_1", **fields):
    values = {
        "status": Status.COMPLETED,
        "remote_id": remote_id,
        "request_id": "req_abc",
        "api_cost_micro_cents": 350_000,
        "submitted_at": timezone.now() - timedelta(minutes=3),
        "completed_at": timezone.now() - timedelta(minutes=1),
        "archive_status": ArchiveStatus.QUEUED,
        "archive_next_at": timezone.now() - timedelta(seconds=1),
        "project": "Launch",
        "seed": 42,
    }
    return make_job(owner, **{**values, **fields})


def make_due(job):
    Job.objects.filter(pk=job.pk).update(archive_next_at=timezone.now() - timedelta(seconds=1))


def files_of(job):
    return {f.kind: f for f in ArchivedFile.objects.filter(job=job)}


def stored_names(folder=""):
    """Every file in the default storage (a disk folder or a bucket)."""
    try:
        folders, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return []
    prefix = f"{folder}/" if folder else ""
    names = [prefix + f for f in files]
    for sub in folders:
        names += stored_names(prefix + sub)
    return sorted(names)


def read(name):
    with default_storage.open(name) as f:
        return f.read()


# --- end to end against the sandbox ------------------------------------------------------


def submit_and_complete(owner, prompt="A glass whale over Lisbon"):
    job = submission.submit_job(
        user=owner,
        model=pricing.DEFAULT_MODEL,
        params={
            "prompt": prompt,
            "quality": "std",
            "duration": "5",
            "aspect_ratio": "16:9",
        },
        submission_key=uuid.uuid4(),
        project="Launch",
    )
    from sandbox.engine import SANDBOX

    SANDBOX.jobs[job.remote_id].created -= 5
    Job.objects.filter(pk=job.pk).update(next_check_at=timezone.now() - timedelta(seconds=1))
    call_command("sync_jobs", stdout=StringIO())
    job.refresh_from_db()
    assert (job.status, job.archive_status) == (Status.COMPLETED, ArchiveStatus.QUEUED)
    return job


def source_bytes(job):
    return requests.get(job.output_url, timeout=10).content


def test_a_completed_sandbox_job_is_archived_whole_with_its_sidecar(owner, sandbox):
    job = submit_and_complete(owner)
    assert archive.run_pass() == {archive.Outcome.ARCHIVED: 1}
    job.refresh_from_db()
    assert (job.archive_status, job.archive_next_at, job.archive_error) == (ArchiveStatus.ARCHIVED, None, "")
    files = files_of(job)
    assert set(files) == ALL_KINDS
    video = files[FileKind.VIDEO]
    expected = source_bytes(job)
    assert read(video.name) == expected
    assert (video.size, video.sha256) == (len(expected), hashlib.sha256(expected).hexdigest())
    assert video.content_type == "video/mp4"
    when = job.completed_at
    assert video.name == f"videos/{when:%Y}/{when:%m}/{job.pk}-a-glass-whale-over-lisbon.mp4"
    assert files[FileKind.THUMBNAIL].name.endswith(".thumb.jpg")
    assert files[FileKind.POSTER].name.endswith(".poster.jpg")
    assert read(files[FileKind.POSTER].name) == requests.get(job.poster_url, timeout=10).content


def test_the_sidecar_explains_the_video_without_the_database(owner, sandbox):
    job = submit_and_complete(owner)
    archive.run_pass()
    job.refresh_from_db()
    files = files_of(job)
    sidecar = json.loads(read(files[FileKind.SIDECAR].name))
    assert files[FileKind.SIDECAR].name == files[FileKind.VIDEO].name.removesuffix(".mp4") + ".json"
    assert sidecar["prompt"] == "A glass whale over Lisbon"
    assert (sidecar["model"], sidecar["quality"], sidecar["duration_seconds"]) == (job.model_slug, "std", 5)
    assert (sidecar["aspect_ratio"], sidecar["project"]) == ("16:9", "Launch")
    assert (sidecar["owner"], sidecar["team"]) == ("owner", "Studio")
    assert sidecar["pixelbyte"] == {"job_id": job.remote_id, "request_id": job.request_id}
    billed = job.billed_micro_cents
    assert sidecar["cost"] == {
        "estimated_micro_cents": job.estimated_micro_cents,
        "api_cost_micro_cents": job.api_cost_micro_cents,
        "billed_micro_cents": billed,
        "billed_dollars": pricing.format_dollars(billed).lstrip("$"),
    }
    assert set(sidecar["times"]) == {"created", "submitted", "completed", "archived"}
    assert all(value.endswith("Z") for value in sidecar["times"].values())
    video = files[FileKind.VIDEO]
    assert sidecar["video"] == {
        "file": video.name.rsplit("/", 1)[1],
        "sha256": video.sha256,
        "size": video.size,
    }
    assert sidecar["times"]["archived"] == archive.iso(video.archived_at)


def test_on_s3_the_files_land_in_the_bucket_with_their_bytes(owner, sandbox, s3):
    job = submit_and_complete(owner)
    archive.run_pass()
    files = files_of(job)
    assert set(files) == ALL_KINDS
    video = s3.get_object(Bucket=s3.bucket, Key=files[FileKind.VIDEO].name)
    assert video["Body"].read() == source_bytes(job)
    assert video["ContentType"] == "video/mp4"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=s3.bucket)["Contents"]}
    assert keys == {f.name for f in files.values()}
    sidecar = json.loads(s3.get_object(Bucket=s3.bucket, Key=files[FileKind.SIDECAR].name)["Body"].read())
    assert sidecar["video"]["sha256"] == hashlib.sha256(source_bytes(job)).hexdigest()


# --- the transfer ------------------------------------------------------------------------


def test_the_media_host_never_sees_the_api_key(owner, fake_api, cdn):
    api = fake_api(serve(cdn))
    completed_job(owner)
    assert archive.run_pass() == {archive.Outcome.ARCHIVED: 1}
    assert api.requests[0]["headers"]["Authorization"] == "Bearer pb_test_secret_key_123"
    assert len(cdn.requests) == 3
    assert not any("Authorization" in r["headers"] for r in cdn.requests)


def test_media_links_come_from_the_status_read_not_from_the_job_row(owner, fake_api, cdn):
    fake_api(serve(cdn))
    job = completed_job(owner, output_url="https://cdn.invalid/guessed-by-a-webhook.mp4")
    archive.run_pass()
    assert read(files_of(job)[FileKind.VIDEO].name) == VIDEO


def test_a_missing_content_type_gets_the_kinds_usual_one(owner, fake_api, cdn):
    fake_api(
        serve(
            cdn,
            video=Reply(body=VIDEO, headers={"Content-Type": "application/octet-stream"}),
            thumb=Reply(body=THUMB),
            poster=Reply(body=POSTER, headers={"Content-Type": "image/png; charset=binary"}),
        )
    )
    job = completed_job(owner)
    archive.run_pass()
    files = files_of(job)
    assert files[FileKind.VIDEO].content_type == "video/mp4"
    assert files[FileKind.THUMBNAIL].content_type == "image/jpeg"
    assert (files[FileKind.POSTER].content_type, files[FileKind.POSTER].name[-11:]) == (
        "image/png",
        ".poster.png",
    )


# --- faults ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 403, 410])
def test_a_video_gone_at_its_host_is_lost_with_its_time_and_never_retried(owner, fake_api, cdn, status):
    api = fake_api(serve(cdn, video=Reply(status=status, body=b"gone")))
    job = completed_job(owner)
    before = timezone.now()
    assert archive.run_pass() == {archive.Outcome.LOST: 1}
    job.refresh_from_db()
    assert (job.archive_status, job.archive_next_at) == (ArchiveStatus.LOST, None)
    assert job.archive_lost_at >= before
    assert f"HTTP {status}" in job.archive_error and "gone" in job.archive_error
    assert files_of(job) == {} and stored_names() == []
    assert archive.run_pass() == {}
    assert archive.queue_unarchived() == 0
    assert api.count("GET", "/v1/jobs/job_1") == 1


def test_a_missing_thumbnail_alone_is_left_out(owner, fake_api, cdn):
    fake_api(serve(cdn, thumb=Reply(status=404, body=b"")))
    job = completed_job(owner)
    assert archive.run_pass() == {archive.Outcome.ARCHIVED: 1}
    files = files_of(job)
    assert set(files) == {FileKind.VIDEO, FileKind.POSTER, FileKind.SIDECAR}
    assert "thumbnail" not in json.loads(read(files[FileKind.SIDECAR].name))["files"]


def test_a_server_error_is_retried_later_with_backoff_and_then_archived(owner, fake_api, cdn):
    fake_api(serve(cdn, video=[Reply(status=500, body=b"oops"), Reply(body=VIDEO)]))
    job = completed_job(owner)
    assert archive.run_pass() == {archive.Outcome.FAILED: 1}
    job.refresh_from_db()
    assert (job.archive_status, job.archive_attempts) == (ArchiveStatus.QUEUED, 1)
    assert "HTTP 500" in job.archive_error
    assert job.archive_next_at > timezone.now() + timedelta(seconds=30)
    assert files_of(job) == {} and stored_names() == []
    assert archive.run_pass() == {}  # not due yet
    make_due(job)
    assert archive.run_pass() == {archive.Outcome.ARCHIVED: 1}
    job.refresh_from_db()
    assert (job.archive_status, job.archive_error) == (ArchiveStatus.ARCHIVED, "")
    assert read(files_of(job)[FileKind.VIDEO].name) == VIDEO


def test_a_connection_dropped_mid_body_keeps_nothing_and_the_next_pass_archives(owner, fake_api, cdn):
    fake_api(serve(cdn, video=[Reply(body=VIDEO, truncate=True), Reply(body=VIDEO)]))
    job = completed_job(owner)
    started = timezone.now()
    assert archive.run_pass() == {archive.Outcome.FAILED: 1}
    job.refresh_from_db()
    assert "cut off" in job.archive_error or "broke" in job.archive_error
    assert job.archive_next_at > started
    assert files_of(job) == {} and stored_names() == []
    make_due(job)
    assert archive.run_pass() == {archive.Outcome.ARCHIVED: 1}
    assert read(files_of(job)[FileKind.VIDEO].name) == VIDEO


def test_a_download_past_its_deadline_is_abandoned_and_retried(owner, fake_api, cdn, settings):
    settings.ARCHIVE_DOWNLOAD_DEADLINE = 1
    fake_api(serve(cdn, video=Reply(body=VIDEO[:400], trickle=0.01)))
    job = completed_job(owner)
    started = time.monotonic()
    assert archive.run_pass() == {archive.Outcome.FAILED: 1}
    assert time.monotonic() - started < 3
    job.refresh_from_db()
    assert "longer than 1 seconds" in job.archive_error
    assert (job.archive_status, files_of(job)) == (ArchiveStatus.QUEUED, {})


@pytest.mark.parametrize("kill", [KeyboardInterrupt, SystemExit])
def test_a_worker_killed_mid_download_records_nothing_partial(owner, fake_api, cdn, kill):
    fake_api(serve(cdn))
    job = completed_job(owner)
    chunks = []

    def killed_during_the_poster(size):
        chunks.append(size)
        if len(chunks) == 3:  # video and thumbnail are saved by now
            raise kill

    with pytest.raises(kill):
        archive.run_pass(on_chunk=killed_during_the_poster)
    job.refresh_from_db()
    assert files_of(job) == {}
    assert stored_names() == []  # what the attempt had saved is gone too
    assert job.archive_status == ArchiveStatus.QUEUED
    assert job.archive_next_at <= timezone.now()  # due again at once, not counted as a failure
    assert job.archive_attempts == 0
    assert archive.run_pass() == {archive.Outcome.ARCHIVED: 1}
    assert read(files_of(job)[FileKind.VIDEO].name) == VIDEO


def test_a_worker_that_died_holds_the_job_until_its_lease_runs_out(owner, fake_api, cdn):
    fake_api(serve(cdn))
    job = completed_job(owner)
    claimed = archive.claim(timezone.now())
    assert claimed[0] == job.pk
    assert archive.run_pass() == {}  # held by the dead worker
    later = timezone.now() + archive.lease_length() + timedelta(seconds=1)
    assert archive.claim(later)[0] == job.pk
    with pixelbyte.client_from_settings() as client:
        assert archive.archive_job(job.pk, claimed[1], client) == archive.Outcome.SKIPPED
    assert files_of(job) == {} and stored_names() == []


def test_an_oversize_video_is_refused_at_the_cap_and_not_retried(owner, fake_api, cdn, settings):
    settings.ARCHIVE_MAX_BYTES = 1000
    fake_api(serve(cdn))
    job = completed_job(owner)
    assert archive.run_pass() == {archive.Outcome.FAILED: 1}
    job.refresh_from_db()
    assert (job.archive_status, job.archive_next_at) == (ArchiveStatus.QUEUED, None)
    assert "larger than 1,000 bytes (ARCHIVE_MAX_BYTES)" in job.archive_error
    assert cdn.count("/media/job/video.mp4") == 1
    assert files_of(job) == {} and stored_names() == []
    assert archive.run_pass() == {}
    # Raised, archive_outputs tries it again.
    settings.ARCHIVE_MAX_BYTES = 10**6
    call_command("archive_outputs", stdout=StringIO())
    job.refresh_from_db()
    assert job.archive_status == ArchiveStatus.ARCHIVED


def test_a_body_without_a_length_is_cut_at_the_cap_while_it_streams(owner, fake_api, cdn, settings):
    settings.ARCHIVE_MAX_BYTES = 1000
    received = []
    fake_api(
        serve(cdn, video=Reply(body=VIDEO, headers={"Content-Type": "video/mp4", "Content-Length": None}))
    )
    job = completed_job(owner)
    assert archive.run_pass(on_chunk=received.append) == {archive.Outcome.FAILED: 1}
    job.refresh_from_db()
    assert "ARCHIVE_MAX_BYTES" in job.archive_error
    assert sum(received) <= 1000 and stored_names() == []


class FullDiskStorage(FileSystemStorage):
    """A disk that fills up partway through the second file saved on it."""

    saves = 0

    def _save(self, name, content):
        type(self).saves += 1
        if type(self).saves != 2:
            return super()._save(name, content)
        super()._save(name, ContentFile(content.read(5)))
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_is_recorded_and_retried_and_leaves_nothing_behind(owner, fake_api, cdn, settings):
    FullDiskStorage.saves = 0
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "tests.test_archive.FullDiskStorage"}}
    fake_api(serve(cdn))
    job = completed_job(owner)
    assert archive.run_pass() == {archive.Outcome.FAILED: 1}
    job.refresh_from_db()
    assert (
        job.archive_error
        == "The studio could not store the files (No space left on device); it will try again."
    )
    assert (job.archive_attempts, job.archive_status) == (1, ArchiveStatus.QUEUED)
    assert job.archive_next_at > timezone.now()
    # Neither the video saved before nor the thumbnail's first bytes are left.
    assert files_of(job) == {} and stored_names() == []
    make_due(job)
    assert archive.run_pass() == {archive.Outcome.ARCHIVED: 1}
    assert read(files_of(job)[FileKind.VIDEO].name) == VIDEO
    assert len(stored_names()) == 4


def test_files_deleted_while_downloading_are_not_archived_after_all(owner, fake_api, cdn):
    fake_api(serve(cdn))
    job = completed_job(owner)

    def owner_deletes_the_files(size):
        Job.objects.filter(pk=job.pk).update(archive_status=ArchiveStatus.DELETED)

    assert archive.run_pass(on_chunk=owner_deletes_the_files) == {archive.Outcome.SKIPPED: 1}
    job.refresh_from_db()
    assert job.archive_status == ArchiveStatus.DELETED
    assert files_of(job) == {} and stored_names() == []


def test_jobs_whose_files_were_deleted_are_never_archived_again(owner, fake_api, cdn):
    api = fake_api(serve(cdn))
    completed_job(owner, archive_status=ArchiveStatus.DELETED, archive_next_at=None)
    completed_job(owner, remote_id="job_2", archive_status=ArchiveStatus.DELETED)
    assert archive.queue_unarchived() == 0
    assert archive.run_pass() == {}
    assert api.requests == [] and cdn.requests == []


def test_the_status_read_failing_is_retried_later(owner, fake_api, cdn):
    fake_api(Reply(status=503, body={"error": {"code": "", "message": "down"}}))
    job = completed_job(owner)
    assert archive.run_pass() == {archive.Outcome.FAILED: 1}
    job.refresh_from_db()
    assert "HTTP 503" in job.archive_error and job.archive_attempts == 1
    assert cdn.requests == []


# --- several workers ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_passes_at_once_archive_each_job_once(fake_api, cdn):
    owner = make_user()
    fake_api(serve(cdn))
    jobs = [completed_job(owner, remote_id=f"job_{i}") for i in range(6)]
    barrier = threading.Barrier(2)

    def work():
        try:
            barrier.wait()
            return archive.run_pass()
        finally:
            connections.close_all()

    results = []
    threads = [threading.Thread(target=lambda: results.append(work())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(r[archive.Outcome.ARCHIVED] for r in results) == 6
    assert cdn.count("/media/job/video.mp4") == 6
    assert ArchivedFile.objects.count() == 6 * 4
    assert all(set(files_of(job)) == ALL_KINDS for job in jobs)
    assert len(stored_names()) == 6 * 4


# --- archive_outputs ----------------------------------------------------------------------


def archive_outputs():
    out = StringIO()
    call_command("archive_outputs", stdout=out)
    return out.getvalue()


def test_archive_outputs_archives_the_history_once_with_progress_and_a_summary(owner, fake_api, cdn):
    api = fake_api(serve(cdn))
    older = [
        completed_job(owner, remote_id=f"job_{i}", archive_status=ArchiveStatus.NONE, archive_next_at=None)
        for i in range(3)
    ]
    lost = completed_job(owner, remote_id="job_lost", archive_status=ArchiveStatus.LOST, archive_next_at=None)
    make_job(owner, status=Status.PROCESSING, remote_id="job_running")
    out = archive_outputs()
    assert "3 job(s) to archive (3 newly queued)." in out
    assert "[" + "#" * 30 + "] 3/3 jobs, " in out
    assert "Archived 3, lost at source 0, failed 0, skipped 0." in out
    assert all(Job.objects.get(pk=j.pk).archive_status == ArchiveStatus.ARCHIVED for j in older)
    assert Job.objects.get(pk=lost.pk).archive_status == ArchiveStatus.LOST
    requests_made, rows = len(api.requests) + len(cdn.requests), ArchivedFile.objects.count()
    assert rows == 12
    again = archive_outputs()
    assert "0 job(s) to archive" in again and "Archived 0," in again
    assert (len(api.requests) + len(cdn.requests), ArchivedFile.objects.count()) == (requests_made, rows)


def test_archive_outputs_counts_losses_failures_and_jobs_left_to_the_worker(owner, fake_api, cdn):
    fake_api(serve(cdn, video=Reply(status=404, body=b"")))
    completed_job(owner, archive_status=ArchiveStatus.NONE, archive_next_at=None)
    completed_job(owner, remote_id="job_later", archive_next_at=timezone.now() + timedelta(hours=1))
    out = archive_outputs()
    assert "Archived 0, lost at source 1, failed 0, skipped 1." in out


def test_the_progress_line_is_rewritten_in_place_on_a_terminal():
    class Terminal(StringIO):
        def isatty(self):
            return True

    from django.core.management.base import OutputWrapper

    out = Terminal()
    progress = Progress(OutputWrapper(out), total=2)
    progress.received(3 * 1024 * 1024)
    progress.job_done(1, archive.Outcome.ARCHIVED)
    progress.job_done(2, archive.Outcome.ARCHIVED)
    progress.finish()
    text = out.getvalue()
    assert text.count("\r") >= 2 and text.endswith("2/2 jobs, 3.0 MiB\n")
    assert "\n" not in text[:-1]


# --- beside the sync worker -----------------------------------------------------------------


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.django_db(transaction=True)
def test_a_slow_download_does_not_delay_the_status_checks(fake_api, cdn, settings):
    owner = make_user()
    fake_api(serve(cdn, video=Reply(body=VIDEO[:2000], trickle=0.005)))
    slow = completed_job(owner, remote_id="job_slow")
    checked = make_job(owner, status=Status.PROCESSING, remote_id="job_1", next_check_at=timezone.now())
    loop = archive.Loop(interval=0.1)
    loop.start()
    try:
        assert wait_for(lambda: cdn.count("/media/job/video.mp4") == 1)
        started = time.monotonic()
        call_command("sync_jobs", stdout=StringIO())
        took = time.monotonic() - started
        assert Job.objects.get(pk=checked.pk).status == Status.COMPLETED
        assert took < 2 and loop.is_alive()
        assert not ArchivedFile.objects.filter(job=slow).exists()  # still downloading
    finally:
        loop.stop()
    assert not loop.is_alive()
    slow.refresh_from_db()
    # Stopped mid-download: nothing kept, and the job is due again for the next worker.
    assert files_of(slow) == {} and stored_names() == []
    assert (slow.archive_status, slow.archive_attempts) == (ArchiveStatus.QUEUED, 0)
    assert slow.archive_next_at <= timezone.now()


@pytest.mark.django_db(transaction=True)
def test_sync_jobs_watch_archives_beside_its_checks(fake_api, cdn, monkeypatch):
    import signal

    fake_api(serve(cdn))
    job = completed_job(make_user())
    monkeypatch.setattr(signal, "signal", lambda *args: None)

    def sleep_until_archived(command, seconds):
        wait_for(lambda: Job.objects.get(pk=job.pk).archive_status == ArchiveStatus.ARCHIVED)
        command.stopping = True

    monkeypatch.setattr(SyncCommand, "_sleep", sleep_until_archived)
    call_command("sync_jobs", watch=True, stdout=StringIO())
    assert set(files_of(job)) == ALL_KINDS
    assert not any(t.name == "archiver" for t in threading.enumerate())


def test_a_download_left_behind_by_a_killed_worker_is_swept_by_a_later_pass(settings, db):
    import os
    from pathlib import Path

    incoming = Path(settings.MEDIA_ROOT) / archive.INCOMING
    incoming.mkdir(parents=True)
    stale, fresh = incoming / "download-stale", incoming / "download-fresh"
    stale.write_bytes(b"half a video")
    fresh.write_bytes(b"another worker's download in progress")
    long_ago = time.time() - settings.ARCHIVE_DOWNLOAD_DEADLINE - 3600
    os.utime(stale, (long_ago, long_ago))
    archive.run_pass()
    assert not stale.exists() and fresh.exists()


def test_an_output_that_expires_at_the_sandbox_is_lost_at_source_and_the_page_says_so(owner, sandbox, client):
    job = submit_and_complete(owner, prompt="A glass whale over Lisbon [expire]")
    assert archive.run_pass() == {archive.Outcome.LOST: 1}
    job.refresh_from_db()
    assert job.archive_status == ArchiveStatus.LOST and job.archive_lost_at is not None
    assert job.archive_next_at is None and files_of(job) == {}
    client.force_login(owner)
    page = client.get(job.get_absolute_url()).content.decode()
    assert "PixelByte no longer has this video" in page


def test_end_to_end_the_studio_plays_its_own_copy_after_the_cdn_forgets_it(owner, outsider, sandbox, client):
    from django.urls import reverse

    job = submit_and_complete(owner)
    source = source_bytes(job)
    assert archive.run_pass() == {archive.Outcome.ARCHIVED: 1}
    job.refresh_from_db()
    video = reverse("jobs:video", args=[job.pk])
    client.force_login(owner)
    page = client.get(job.get_absolute_url()).content.decode()
    assert f'src="{video}"' in page and job.output_url not in page
    sandbox.jobs.pop(job.remote_id)  # PixelByte's link is gone
    assert requests.get(job.output_url, timeout=10).status_code == 404
    assert b"".join(client.get(video).streaming_content) == source
    part = client.get(video, HTTP_RANGE="bytes=10-99")
    assert part.status_code == 206 and b"".join(part.streaming_content) == source[10:100]
    client.force_login(outsider)
    assert client.get(video).status_code == 404
