"""The job page in real headless Chromium: the player's shape, dark mode, cancel's confirm step."""

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from jobs import pricing, submission
from jobs.models import Status

from .helpers import make_archived, make_job, make_user, sign_in, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SAMPLES = Path(__file__).resolve().parent.parent / "sandbox" / "samples"
VIDEO = "[data-role=player] video"


def kept_job(user, ratio):
    shape = ratio.replace(":", "x")
    job = make_job(
        user,
        prompt=f"A sample in {ratio}",
        aspect_ratio=ratio,
        status=Status.COMPLETED,
        output_url="https://cdn.example/gone.mp4",
        poster_url="https://cdn.example/p.jpg",
    )
    make_archived(
        job,
        video_bytes=(SAMPLES / f"sample-{shape}.mp4").read_bytes(),
        thumbnail_bytes=(SAMPLES / f"thumb-{shape}.jpg").read_bytes(),
        poster_bytes=(SAMPLES / f"poster-{shape}.jpg").read_bytes(),
    )
    return job


def player_box(page):
    wait_until(page, f"document.querySelector('{VIDEO}').readyState >= 1")
    return page.locator(VIDEO).bounding_box()


@pytest.mark.parametrize("size", [(1366, 900), (390, 844)])
def test_a_tall_video_is_taller_than_wide_and_fits_the_window(page, size):
    width, height = size
    page.set_viewport_size({"width": width, "height": height})
    user = make_user("grace")
    job = kept_job(user, "9:16")
    sign_in(page, user)
    page.goto(page.base_url + job.get_absolute_url())

    box = player_box(page)
    assert box["height"] > box["width"] * 1.6
    assert box["height"] <= height
    # Its own shape: the frame is the video's, with no bars above or beside it.
    natural = page.evaluate(
        f"[document.querySelector('{VIDEO}').videoWidth, document.querySelector('{VIDEO}').videoHeight]"
    )
    assert abs(box["width"] / box["height"] - natural[0] / natural[1]) < 0.02
    # Centred in its card.
    card = page.locator("[data-role=player]").bounding_box()
    assert abs((box["x"] - card["x"]) - (card["x"] + card["width"] - box["x"] - box["width"])) < 2
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_a_square_and_a_wide_video_keep_their_shapes(page):
    user = make_user("grace")
    for ratio, expected in (("1:1", 1.0), ("16:9", 16 / 9)):
        job = kept_job(user, ratio)
        sign_in(page, user)
        page.goto(page.base_url + job.get_absolute_url())
        box = player_box(page)
        assert abs(box["width"] / box["height"] - expected) < 0.02, ratio
        assert box["height"] <= 900


def test_previous_and_next_move_between_the_viewers_jobs(page):
    user = make_user("grace")
    older, newer = make_job(user, prompt="The older one"), make_job(user, prompt="The newer one")
    sign_in(page, user)
    page.goto(page.base_url + older.get_absolute_url())
    page.click("text=‹ Previous")
    expect(page.locator("#prompt-text")).to_have_text("The newer one")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#prompt-text")).to_have_text("The older one")
    assert page.url.endswith(older.get_absolute_url())
    assert newer.pk > older.pk


def test_dark_mode_follows_the_system_and_every_colour_follows_it(browser, live_server):
    user = make_user("grace")
    job = make_job(user, status=Status.FAILED, error_message="Model inference failed")
    colours = {}
    for scheme in ("light", "dark"):
        context = browser.new_context(viewport={"width": 1366, "height": 900}, color_scheme=scheme)
        page = context.new_page()
        page.base_url = live_server.url
        sign_in(page, user)
        page.goto(live_server.url + job.get_absolute_url())
        colours[scheme] = page.evaluate(
            """() => Object.fromEntries([
                ["body", document.body],
                ["card", document.querySelector(".card")],
                ["alert", document.querySelector(".alert-error")],
                ["button", document.querySelector(".button")],
            ].map(([name, el]) => [name, [getComputedStyle(el).backgroundColor, getComputedStyle(el).color]]))"""
        )
        context.close()

    def lightness(css):
        r, g, b = (int(part) for part in css[css.index("(") + 1 : css.index(")")].split(",")[:3])
        return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255

    for name in ("body", "card", "alert", "button"):
        light_bg, light_text = colours["light"][name]
        dark_bg, dark_text = colours["dark"][name]
        assert lightness(light_bg) > 0.8 and lightness(dark_bg) < 0.25, (name, light_bg, dark_bg)
        assert lightness(light_text) < lightness(light_bg) and lightness(dark_text) > lightness(dark_bg), name


def test_cancel_asks_first_and_reports_once(page, settings):
    settings.SANDBOX_PENDING_SECONDS = 60  # still in the queue while the person decides
    user = make_user("grace")
    job = submission.submit_job(
        user=user,
        model=pricing.DEFAULT_MODEL,
        params={"prompt": "A tram in the fog", "quality": "std", "duration": "5", "aspect_ratio": "16:9"},
        submission_key=uuid.uuid4(),
    )
    assert job.status == Status.PENDING
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(page, user)
    page.goto(page.base_url + job.get_absolute_url())

    step = page.locator("#cancel-step")
    expect(step).to_be_hidden()
    page.click("text=Cancel…")
    expect(step).to_be_visible()
    expect(step).to_contain_text(f"Cancel video #{job.pk}?")
    page.click("text=Keep it")
    expect(step).to_be_hidden()
    job.refresh_from_db()
    assert job.status == Status.PENDING

    page.click("text=Cancel…")
    step.locator("button[type=submit]").click()
    expect(page.locator(".live-status [data-role=badge]")).to_have_text("Cancelled")
    expect(page.locator("main")).to_contain_text("Cancelled. PixelByte refunded $0.225.")
    assert page.locator("main").inner_text().count("Cancelled.") == 1
    expect(page.locator("text=Cancel…")).to_have_count(0)
    assert dialogs == []
    job.refresh_from_db()
    assert job.status == Status.CANCELLED


def test_a_stuck_job_can_be_stopped_from_its_note(page):
    user = make_user("grace")
    now = timezone.now()
    job = make_job(
        user,
        status=Status.PROCESSING,
        remote_id="job_stuck_in_browser",
        submitted_at=now - timedelta(minutes=10),
        started_at=now - timedelta(minutes=9),
        estimated_completion_at=now - timedelta(minutes=7),
        next_check_at=now,
    )
    sign_in(page, user)
    page.goto(page.base_url + job.get_absolute_url())
    note = page.locator("[data-role=note]")
    expect(note).to_contain_text("This is taking far longer than usual.")
    note.locator("text=Stop watching").click()
    expect(note).to_contain_text("The studio stopped watching this video")
    expect(note).to_contain_text("It still counts $0.225 toward spend until PixelByte says otherwise")
    expect(page.locator("text=Stop watching")).to_have_count(0)
    job.refresh_from_db()
    assert job.watch_stopped_by == user and job.next_check_at is None
