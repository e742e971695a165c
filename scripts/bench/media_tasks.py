"""The media side of `make bench`: one step in one child process, answered as JSON.

Run by scripts/bench/run.py; every step that touches the studio works in the database
named by DATABASE_URL and the storage under MEDIA_ROOT:

    media_tasks.py copy URL FILE    a plain streamed copy with requests: the yardstick
    media_tasks.py archive URL      the studio's archiver copying a job's video from URL
                                    into the default storage (jobs.archive.archive_job)
    media_tasks.py files N MB GB    a person with N archived videos of MB megabytes each
                                    (one file, hard-linked) and one sparse video of GB gigabytes

Memory is the peak resident set of a process above where it stood when the step began:
the peak is reset through /proc/<pid>/clear_refs (Linux), then read as VmHWM.
"""

import json
import os
import re
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MEDIA_USER = "bench-media"
MEDIA_PASSWORD = "kling-bench-media"
ZIP_WORD = "benchzip"  # in the zipped jobs' prompts: the export is filtered with ?q=
RANGE_WORD = "benchrange"


# --- memory (also used by run.py for the gunicorn worker) -------------------------------


def status_kib(pid, field):
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE).group(1))


def reset_peak(pid="self"):
    """Start a new peak at the current resident set; return that set in KiB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return status_kib(pid, "VmRSS")


def peak_growth_mib(pid, start_kib):
    return (status_kib(pid, "VmHWM") - start_kib) / 1024


# --- steps -------------------------------------------------------------------------------


def plain_copy(url, target):
    """What anyone would write to save a URL to a file: the figure the archiver is held to."""
    import requests

    start_kib = reset_peak()
    start = time.perf_counter()
    with requests.get(url, stream=True, timeout=(5, 60)) as response, open(target, "wb") as out:
        response.raise_for_status()
        for chunk in response.iter_content(chunk_size=1024 * 1024):
            out.write(chunk)
    seconds = time.perf_counter() - start
    size = Path(target).stat().st_size
    Path(target).unlink()
    return {"seconds": seconds, "bytes": size, "peak_growth_mib": peak_growth_mib("self", start_kib)}


def setup_django():
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kling_studio.settings")
    import django

    django.setup()


def media_user():
    from django.contrib.auth import get_user_model

    person, _ = get_user_model().objects.get_or_create(username=MEDIA_USER)
    return person


def completed_job(owner, prompt):
    """A completed job as the lifecycle leaves one (a builder, as the tests have)."""
    from django.utils import timezone

    from jobs import lifecycle, pricing
    from jobs.models import Status

    params = {"prompt": prompt, "quality": "std", "duration": "5", "aspect_ratio": "16:9"}
    cost = pricing.DEFAULT_MODEL.cost(params)
    now = timezone.now()
    return lifecycle.record(
        owner=owner,
        submission_key=uuid.uuid4(),
        model_slug=pricing.DEFAULT_MODEL.slug,
        prompt=prompt,
        quality="std",
        duration=5,
        aspect_ratio="16:9",
        params=params,
        status=Status.COMPLETED,
        progress=100,
        estimated_micro_cents=cost,
        api_cost_micro_cents=cost,
        remote_id="job_bench_" + uuid.uuid4().hex,
        submitted_at=now,
        completed_at=now,
    )


class OneOutput:
    """The API's answer about the job, naming the bench's file as its video. Only the
    status call is stood in for: the download and the storage are the studio's own."""

    def __init__(self, url):
        self.url = url

    def get_job(self, job_id):
        from jobs import pixelbyte

        return pixelbyte.remote_job_from({"jobId": job_id, "status": "completed", "output": self.url})


def archive(url):
    """One run of the archiver on one queued job whose video is at ``url``."""
    setup_django()
    from django.core.files.storage import default_storage
    from django.utils import timezone

    from jobs import archive as archiver
    from jobs.models import ArchivedFile, ArchiveStatus, FileKind, Job

    job = completed_job(media_user(), "bench archive run")
    lease = timezone.now() + archiver.lease_length()
    # What archiver.claim does, for this job only: queued, leased to this worker.
    Job.objects.filter(pk=job.pk).update(archive_status=ArchiveStatus.QUEUED, archive_next_at=lease)
    client = OneOutput(url)
    start_kib = reset_peak()
    start = time.perf_counter()
    outcome = archiver.archive_job(job.pk, lease, client)
    seconds = time.perf_counter() - start
    growth = peak_growth_mib("self", start_kib)
    files = list(ArchivedFile.objects.filter(job=job))
    video = next((f for f in files if f.kind == FileKind.VIDEO), None)
    error = Job.objects.values_list("archive_error", flat=True).get(pk=job.pk)
    for stored in files:  # the next run starts from an empty storage again
        default_storage.delete(stored.name)
    job.delete()
    if outcome != archiver.Outcome.ARCHIVED or video is None:
        raise SystemExit(f"the archiver did not keep the video ({outcome}: {error})")
    return {"seconds": seconds, "bytes": video.size, "peak_growth_mib": growth}


def files(count, mb, gb):
    """``count`` archived videos of ``mb`` MB for the media person, and one sparse one of
    ``gb`` GB; returns the sign-in, the video's job and the zip's query."""
    setup_django()
    from django.core.files.storage import default_storage
    from django.test import Client

    from jobs import rollup
    from jobs.models import ArchivedFile, ArchiveStatus, Job

    person = media_user()
    Job.objects.filter(owner=person).delete()
    # Bytes that do not compress, so a zip that held its output in memory would show.
    one = f"bench/zip/{uuid.uuid4().hex}.mp4"
    path = Path(default_storage.path(one))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        for _ in range(mb):
            out.write(os.urandom(1024 * 1024))
    rows = []
    for i in range(count):
        job = completed_job(person, f"{ZIP_WORD} video {i + 1:03d}")
        name = f"bench/zip/{job.pk}.mp4"
        os.link(path, default_storage.path(name))
        rows.append(video_row(job, name, mb * 1024 * 1024))
    path.unlink()
    big = completed_job(person, f"{RANGE_WORD} one long video")
    name = f"bench/range/{big.pk}.mp4"
    Path(default_storage.path(name)).parent.mkdir(parents=True, exist_ok=True)
    with open(default_storage.path(name), "wb") as out:
        out.truncate(gb * 1024**3)  # sparse: no disk written, every byte reads as zero
    rows.append(video_row(big, name, gb * 1024**3))
    ArchivedFile.objects.bulk_create(rows)
    Job.objects.filter(owner=person).update(archive_status=ArchiveStatus.ARCHIVED)
    for row in rows:
        rollup.files_kept(row.job, row.size, 1)  # as the archiver counts what it keeps
    client = Client()
    client.force_login(person)
    return {
        "session": client.cookies["sessionid"].value,
        "video": f"/jobs/{big.pk}/video",
        "video_bytes": gb * 1024**3,
        "zip": f"/jobs/export.zip?q={ZIP_WORD}",
        "zip_files": count,
        "zip_bytes": count * mb * 1024 * 1024,
    }


def video_row(job, name, size):
    from jobs.models import ArchivedFile, FileKind

    return ArchivedFile(
        job=job,
        kind=FileKind.VIDEO,
        name=name,
        size=size,
        content_type="video/mp4",
        sha256=uuid.uuid4().hex * 2,
    )


if __name__ == "__main__":
    step, args = sys.argv[1], sys.argv[2:]
    if step == "copy":
        result = plain_copy(*args)
    elif step == "archive":
        result = archive(*args)
    elif step == "files":
        result = files(*(int(a) for a in args))
    else:
        raise SystemExit(f"unknown step {step}")
    json.dump(result, sys.stdout)
