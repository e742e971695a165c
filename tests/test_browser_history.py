"""The history in real headless Chromium: filter by status, open a video and play it."""

import pytest
from playwright.sync_api import expect

from jobs.models import Status

from .helpers import make_job, make_user, sign_in, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_filter_the_history_by_status_and_play_a_video(page):
    user = make_user("katherine")
    media = page.base_url + "/static/sandbox/"
    make_job(user, prompt="A failed attempt", status=Status.FAILED, error_message="Model inference failed")
    make_job(
        user,
        prompt="Moonrise over the harbour",
        status=Status.COMPLETED,
        output_url=media + "sample.mp4",
        poster_url=media + "poster.jpg",
        thumbnail_url=media + "thumb.jpg",
    )
    make_job(make_user("someone-else"), prompt="Not mine", status=Status.COMPLETED)
    sign_in(page, user)
    page.goto(page.base_url + "/jobs/")
    expect(page.locator("tbody tr")).to_have_count(2)

    page.select_option("#id_status", "completed")
    page.click("button:has-text('Filter')")
    expect(page.locator("tbody tr")).to_have_count(1)
    assert "status=completed" in page.url
    expect(page.locator("tbody")).to_contain_text("Moonrise over the harbour")

    page.click("text=Moonrise over the harbour")
    video = page.locator("[data-role=player] video")
    expect(video).to_have_count(1)
    page.evaluate("document.querySelector('[data-role=player] video').muted = true")
    page.evaluate("document.querySelector('[data-role=player] video').play()")
    wait_until(page, "document.querySelector('[data-role=player] video').currentTime > 0.2")

    page.go_back()
    expect(page.locator("#id_status")).to_have_value("completed")
    expect(page.locator("tbody tr")).to_have_count(1)
