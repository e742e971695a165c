"""Share links and "finished while you were away" in real headless Chromium: a link opened in a
fresh browser with no session plays the video and stops at once when revoked; a job that ends
while studio pages are open shows a toast on each and counts in the tab title."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from jobs import lifecycle
from jobs.models import ShareLink, Status
from jobs.pixelbyte import RemoteJob

from .conftest import ARTIFACTS
from .helpers import make_archived, make_job, make_member, make_team, sign_in, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

STATIC = Path(__file__).resolve().parent.parent / "static" / "sandbox"
VIDEO = "document.querySelector('video')"
PROMPT = "A paper boat drifting down a rain gutter, macro lens"


def archived_job(user):
    job = make_job(
        user,
        team=user.profile.team,
        prompt=PROMPT,
        status=Status.COMPLETED,
        output_url="https://cdn.example/gone.mp4",
        poster_url="https://cdn.example/p.jpg",
        api_cost_micro_cents=337_500,
    )
    make_archived(
        job,
        video_bytes=(STATIC / "sample.mp4").read_bytes(),
        thumbnail_bytes=(STATIC / "thumb.jpg").read_bytes(),
        poster_bytes=(STATIC / "poster.jpg").read_bytes(),
    )
    return job


@pytest.fixture
def stranger(browser, request):
    """A second browser with nothing in common with the first: no cookies, no storage."""
    context = browser.new_context(viewport={"width": 390, "height": 844})
    visitor = context.new_page()
    visitor.set_default_timeout(10_000)
    yield visitor
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        visitor.screenshot(path=str(ARTIFACTS / f"{request.node.name}-stranger.png"), full_page=True)
    context.close()


def test_a_share_link_plays_without_a_session_and_stops_when_revoked(page, stranger, settings):
    settings.PUBLIC_BASE_URL = page.base_url
    owner = make_member("katherine", make_team("Harbour"))
    job = archived_job(owner)
    sign_in(page, owner)
    page.goto(page.base_url + f"/jobs/{job.pk}/share/")
    page.check("input[name=share-show_prompt]")
    page.click("text=Make a share link")
    expect(page.locator(".alert-success")).to_contain_text("Share link made")
    address = page.locator("[data-share-url]").input_value()
    link = ShareLink.objects.get(job=job)
    assert address == f"{page.base_url}/s/{link.token}/"

    problems = []
    stranger.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    answer = stranger.goto(address)
    assert answer.status == 200
    expect(stranger.locator(".share-prompt")).to_have_text(PROMPT)
    assert "$" not in stranger.content() and "katherine" not in stranger.content()
    wait_until(stranger, f"{VIDEO}.readyState >= 2 && {VIDEO}.duration > 0")
    stranger.evaluate(f"{VIDEO}.muted = true")
    stranger.evaluate(f"{VIDEO}.play()")
    wait_until(stranger, f"{VIDEO}.currentTime > 0.2")
    wait_until(stranger, "document.documentElement.scrollWidth <= window.innerWidth")
    assert problems == []
    link.refresh_from_db()
    assert link.views == 1

    page.reload()
    expect(page.locator("[data-role=share-views]")).to_have_text("1")
    page.click("text=Revoke…")
    page.click("text=Keep it")
    expect(page.locator(".share-link .confirm-step")).to_be_hidden()
    page.click("text=Revoke…")
    page.click("text=Revoke now")
    expect(page.locator(".alert-success")).to_contain_text("Link revoked")

    answer = stranger.reload()
    assert answer.status == 404
    expect(stranger.locator("h1")).to_have_text("This link does not work")
    assert stranger.request.get(address + "video").status == 404


def test_the_shared_page_fits_a_phone_and_a_desktop(page, stranger):
    owner = make_member("katherine", make_team("Harbour"))
    link = ShareLink.objects.create(
        job=archived_job(owner), token="T" * 32, expires_at=timezone.now() + timedelta(days=1)
    )
    for width, height in ((390, 844), (1366, 900)):
        stranger.set_viewport_size({"width": width, "height": height})
        stranger.goto(page.base_url + f"/s/{link.token}/")
        wait_until(stranger, f"{VIDEO}.readyState >= 1")
        assert stranger.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        box = stranger.locator("video").bounding_box()
        assert box["width"] <= width and box["y"] + box["height"] <= height


# --- finished while you were away -------------------------------------------------------------


def cursor_ready(page, user):
    """The page's first question has been answered (it knows where to ask from)."""
    wait_until(page, f"sessionStorage.getItem('kling-studio:finished-cursor:{user.pk}') !== null")


def finish(job, status=Status.COMPLETED):
    lifecycle.apply_update(
        job.pk,
        RemoteJob(job_id=job.remote_id, status=status, output_url="https://cdn.example/v.mp4"),
    )


def test_a_job_that_ends_is_toasted_on_every_open_page_and_counted_in_the_title(page):
    owner = make_member("katherine", make_team("Harbour"))
    team = owner.profile.team
    old = make_job(owner, team=team, status=Status.COMPLETED, prompt="Finished before the studio was opened")
    running = make_job(owner, team=team, status=Status.PROCESSING, remote_id="job_run", prompt=PROMPT)
    failing = make_job(owner, team=team, status=Status.PROCESSING, remote_id="job_fail", prompt="A storm")
    sign_in(page, owner)
    page.clock.install()
    page.goto(page.base_url + "/jobs/")
    other = page.context.new_page()
    other.goto(page.base_url + "/")
    history_title, form_title = page.title(), other.title()
    assert history_title == "History · Kling Studio"
    cursor_ready(page, owner)
    cursor_ready(other, owner)

    finish(running)
    page.clock.run_for(13_000)
    for tab in (page, other):
        wait_until(tab, f"!!document.querySelector('.toast[data-job-id=\"{running.pk}\"]')")
        toast = tab.locator(f".toast[data-job-id='{running.pk}']")
        expect(toast).to_contain_text(f"Video #{running.pk} is ready")
        expect(toast).to_contain_text("A paper boat")
        expect(toast.locator("a")).to_have_attribute("href", running.get_absolute_url())
    assert page.title() == "(1) History · Kling Studio"
    assert other.title() == f"(1) {form_title}"
    assert page.locator(f".toast[data-job-id='{old.pk}']").count() == 0

    finish(failing, Status.FAILED)
    page.clock.run_for(13_000)
    wait_until(page, "document.title.startsWith('(2) ')")
    wait_until(other, "document.title.startsWith('(2) ')")
    expect(page.locator(f".toast[data-job-id='{failing.pk}']")).to_contain_text("failed")
    # Announced once for the set of tabs: one toast each, however many polls.
    page.clock.run_for(30_000)
    assert page.locator(".toast").count() == 2 and other.locator(".toast").count() == 2

    # Dismissing one clears it everywhere; opening the other clears the rest.
    page.locator(f".toast[data-job-id='{failing.pk}'] .toast-close").click()
    wait_until(other, "document.title.startsWith('(1) ')")
    assert other.locator(f".toast[data-job-id='{failing.pk}']").count() == 0
    other.locator(f".toast[data-job-id='{running.pk}'] a").click()
    other.wait_for_url(f"**{running.get_absolute_url()}")
    wait_until(page, "document.title === 'History · Kling Studio'")
    assert page.locator(".toast").count() == 0
    assert not other.title().startswith("(")


def test_a_toast_offers_to_notify_only_from_a_click(page):
    owner = make_member("katherine", make_team("Harbour"))
    running = make_job(owner, team=owner.profile.team, status=Status.PROCESSING, remote_id="job_run")
    sign_in(page, owner)
    page.clock.install()
    page.goto(page.base_url + "/jobs/")
    asked = page.evaluate("Notification.permission")
    cursor_ready(page, owner)
    finish(running)
    page.clock.run_for(13_000)
    wait_until(page, "!!document.querySelector('.toast')")
    # Nothing was asked on load; the toast area offers the choice when the browser may still ask.
    assert page.evaluate("Notification.permission") == asked
    assert (page.locator(".toast-tools >> text=Notify me").count() == 1) == (asked == "default")
