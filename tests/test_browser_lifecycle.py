"""A sandbox job, watched in real headless Chromium, arrives without a reload."""

import re

import pytest
from playwright.sync_api import expect

from jobs.models import Job, Status

from .conftest import sign_in, wait_until
from .helpers import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_submitted_job_reaches_completed_and_plays_without_a_reload(page, settings):
    settings.PUBLIC_BASE_URL = page.base_url  # loopback: the sandbox calls the webhook back
    user = make_user("hedy")
    sign_in(page, user)
    page.goto(page.base_url + "/")
    page.fill("textarea[name=prompt]", "Fireflies over a quiet lake at night")
    page.click("#submit-button")
    page.locator(".tray-item .tray-open").first.click()  # the form stays; the tray opens the job
    page.wait_for_url(re.compile(r"/jobs/\d+/$"))
    page.evaluate("window.__sameDocument = true")

    badge = page.locator(".live-status [data-role=badge]").first
    expect(badge).to_have_text("Completed", timeout=15_000)
    video = page.locator("[data-role=player] video")
    expect(video).to_have_count(1)
    wait_until(page, "document.querySelector('[data-role=player] video').readyState >= 2")
    assert page.evaluate("document.querySelector('[data-role=player] video').error") is None
    assert page.evaluate("window.__sameDocument") is True  # never reloaded
    job = Job.objects.get(owner=user)
    assert job.status == Status.COMPLETED and job.output_url


def test_a_failing_job_says_so_in_place_and_stops_asking(page, settings):
    settings.PUBLIC_BASE_URL = page.base_url
    sign_in(page, make_user("alan"))
    page.goto(page.base_url + "/")
    page.fill("textarea[name=prompt]", "A bridge that will not render [fail]")
    page.click("#submit-button")
    page.locator(".tray-item .tray-open").first.click()  # the form stays; the tray opens the job
    page.wait_for_url(re.compile(r"/jobs/\d+/$"))
    expect(page.locator(".live-status [data-role=badge]").first).to_have_text("Failed", timeout=15_000)
    expect(page.locator("[data-role=note]")).to_contain_text("nothing was charged")
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.wait_for_timeout(4500)
    assert not [url for url in requests if "/jobs/status/" in url]


def test_the_history_list_updates_in_place(page, settings):
    settings.PUBLIC_BASE_URL = page.base_url
    sign_in(page, make_user("barbara"))
    page.goto(page.base_url + "/")
    page.fill("textarea[name=prompt]", "Paper lanterns rising")
    page.click("#submit-button")
    page.locator(".tray-item .tray-open").first.click()  # the form stays; the tray opens the job
    page.wait_for_url(re.compile(r"/jobs/\d+/$"))
    page.goto(page.base_url + "/jobs/")
    expect(page.locator("tbody .live-status [data-role=badge]").first).to_have_text(
        "Completed", timeout=15_000
    )
    # Finished: the thumbnail no longer says the video is on its way.
    expect(page.locator("tbody [data-role=thumb]").first).not_to_have_text("…")
