"""The studio's own copy in real headless Chromium: it plays and seeks through the range
view, and its files are deleted from the job page's confirm step."""

from pathlib import Path

import pytest
from playwright.sync_api import expect

from jobs.models import ArchiveStatus, Job, Status

from .helpers import make_archived, make_job, make_user, sign_in, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

STATIC = Path(__file__).resolve().parent.parent / "static" / "sandbox"
VIDEO = "document.querySelector('[data-role=player] video')"


def archived_job(user):
    job = make_job(
        user,
        prompt="Moonrise over the harbour",
        status=Status.COMPLETED,
        output_url="https://cdn.example/gone.mp4",
        thumbnail_url="https://cdn.example/t.jpg",
        poster_url="https://cdn.example/p.jpg",
    )
    make_archived(
        job,
        video_bytes=(STATIC / "sample.mp4").read_bytes(),
        thumbnail_bytes=(STATIC / "thumb.jpg").read_bytes(),
        poster_bytes=(STATIC / "poster.jpg").read_bytes(),
    )
    return job


def test_an_archived_video_plays_and_seeks(page):
    user = make_user("katherine")
    job = archived_job(user)
    statuses = []
    page.on(
        "response", lambda r: statuses.append(r.status) if r.url.endswith(f"/jobs/{job.pk}/video") else None
    )
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    sign_in(page, user)
    page.goto(page.base_url + job.get_absolute_url())

    expect(page.locator("[data-role=player] video")).to_have_attribute("src", f"/jobs/{job.pk}/video")
    wait_until(page, f"{VIDEO}.readyState >= 2 && {VIDEO}.duration > 0")
    page.evaluate(f"{VIDEO}.muted = true")
    page.evaluate(f"{VIDEO}.play()")
    wait_until(page, f"{VIDEO}.currentTime > 0.2")

    page.evaluate(f"{VIDEO}.pause(); {VIDEO}.currentTime = {VIDEO}.duration * 0.75")
    wait_until(page, f"!{VIDEO}.seeking && {VIDEO}.currentTime >= {VIDEO}.duration * 0.7")
    wait_until(page, f"{VIDEO}.readyState >= 2")
    assert 206 in statuses  # the browser asked for byte ranges and got them
    assert problems == []


def test_the_history_shows_the_studios_thumbnail(page):
    user = make_user("katherine")
    job = archived_job(user)
    sign_in(page, user)
    page.goto(page.base_url + "/jobs/")
    thumb = page.locator(f"[data-role=thumb][data-job-id='{job.pk}'] img")
    expect(thumb).to_have_attribute("src", f"/jobs/{job.pk}/thumbnail")
    wait_until(page, f"document.querySelector(\"[data-job-id='{job.pk}'] img\").naturalWidth > 0")
    expect(page.locator("text=Download videos (zip)")).to_be_visible()


def test_the_files_are_deleted_from_the_confirm_step(page):
    user = make_user("katherine")
    job = archived_job(user)
    sign_in(page, user)
    page.goto(page.base_url + job.get_absolute_url())

    confirm = page.locator("#delete-files-step")
    expect(confirm).to_be_hidden()
    page.click("text=Delete files…")
    expect(confirm).to_be_visible()
    page.click("text=Keep them")
    expect(confirm).to_be_hidden()
    page.click("text=Delete files…")
    confirm.locator("button[type=submit]").click()

    expect(page.locator("[data-role=player]")).to_contain_text("The files were deleted by katherine on")
    expect(page.locator("[data-role=player] video")).to_have_count(0)
    assert Job.objects.get(pk=job.pk).archive_status == ArchiveStatus.DELETED
    assert not job.files.exists()
