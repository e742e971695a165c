"""Reviewing many videos in real headless Chromium: a grid card plays on hover, compared videos
move together, a star from the grid sticks, and the history fits a phone in both layouts."""

import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect

from jobs.models import JobMark, Profile, Status

from .helpers import make_archived, make_job, make_member, make_team, sign_in, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SAMPLES = Path(__file__).resolve().parent.parent / "sandbox" / "samples"
PHONE = {"width": 390, "height": 844}


def kept_video(user, shape="16x9", **fields):
    """A finished job whose sample video, thumbnail and poster the studio keeps."""
    job = make_job(
        user,
        status=Status.COMPLETED,
        aspect_ratio=shape.replace("x", ":"),
        output_url="https://cdn.example/gone.mp4",
        thumbnail_url="https://cdn.example/t.jpg",
        poster_url="https://cdn.example/p.jpg",
        **fields,
    )
    make_archived(
        job,
        video_bytes=(SAMPLES / f"sample-{shape}.mp4").read_bytes(),
        thumbnail_bytes=(SAMPLES / f"thumb-{shape}.jpg").read_bytes(),
        poster_bytes=(SAMPLES / f"poster-{shape}.jpg").read_bytes(),
    )
    return job


def person(name="katherine"):
    return make_member(name, make_team())


def errors_of(page):
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return problems


def test_a_grid_card_plays_its_video_muted_while_hovered(page):
    user = person()
    job = kept_video(user, prompt="Moonrise over the harbour")
    problems = errors_of(page)
    sign_in(page, user)
    page.goto(page.base_url + "/jobs/?view=grid")
    video = f"document.querySelector(\"[data-role=thumb][data-job-id='{job.pk}']\").closest('[data-card]').querySelector('video')"
    assert page.evaluate(f"{video}.preload") == "none"
    assert page.evaluate(f"{video}.readyState") == 0  # nothing loaded before the hover

    page.hover(f"[data-role=thumb][data-job-id='{job.pk}']")
    wait_until(page, f"!{video}.paused && {video}.currentTime > 0.1")
    assert page.evaluate(f"{video}.muted")

    page.mouse.move(0, 0)
    wait_until(page, f"{video}.paused")
    assert problems == []


def test_a_tap_plays_a_card_on_a_touch_screen(browser, live_server):
    user = person()
    job = kept_video(user)
    context = browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    page = context.new_page()
    page.base_url = live_server.url
    try:
        sign_in(page, user)
        page.goto(page.base_url + "/jobs/?view=grid")
        page.tap(f"[data-role=thumb][data-job-id='{job.pk}']")
        video = "document.querySelector('[data-card-video]')"
        wait_until(page, f"!{video}.paused")
        assert page.url.endswith("/jobs/?view=grid")  # the tap played it, it did not open the job
    finally:
        context.close()


def test_compared_videos_play_pause_and_seek_together(page):
    user = person()
    ids = [kept_video(user, shape, seed=41 + i).pk for i, shape in enumerate(["16x9", "9x16", "1x1"])]
    problems = errors_of(page)
    sign_in(page, user)
    page.goto(page.base_url + "/jobs/compare/?ids=" + ",".join(map(str, ids)))
    expect(page.locator("[data-compare-video]")).to_have_count(3)
    videos = "Array.from(document.querySelectorAll('[data-compare-video]'))"
    wait_until(page, f"{videos}.every(v => v.readyState >= 1 && v.duration > 2)")
    assert page.evaluate(f"{videos}.every(v => !v.controls)")  # one control drives them all

    # The control's slider.
    page.evaluate(
        "const s = document.querySelector('[data-compare-seek]'); s.value = '1.5';"
        " s.dispatchEvent(new Event('input', {bubbles: true}))"
    )
    wait_until(page, f"{videos}.every(v => !v.seeking && Math.abs(v.currentTime - 1.5) < 0.3)")

    # Seeking one video moves the others.
    page.evaluate(f"{videos}[1].currentTime = 0.6")
    wait_until(page, f"{videos}.every(v => !v.seeking && Math.abs(v.currentTime - 0.6) < 0.3)")

    page.click("[data-compare-play]")
    wait_until(page, f"{videos}.every(v => !v.paused) && {videos}.every(v => v.currentTime > 0.8)")
    expect(page.locator("[data-compare-play]")).to_contain_text("Pause all")
    page.click("[data-compare-play]")
    wait_until(page, f"{videos}.every(v => v.paused)")
    spread = page.evaluate(
        f"(() => {{ const t = {videos}.map(v => v.currentTime); return Math.max(...t) - Math.min(...t); }})()"
    )
    assert spread < 0.3
    assert problems == []


def test_videos_ticked_in_the_grid_open_side_by_side(page):
    user = person()
    first, second = kept_video(user, prompt="first"), kept_video(user, prompt="second")
    kept_video(user, prompt="third")
    sign_in(page, user)
    page.goto(page.base_url + "/jobs/?view=grid")
    button = page.locator("[data-compare-button]")
    expect(button).to_be_disabled()
    page.check(f"[data-compare-pick][value='{first.pk}']")
    expect(button).to_contain_text("(1)")
    page.check(f"[data-compare-pick][value='{second.pk}']")
    expect(button).to_contain_text("(2)")
    expect(button).to_be_enabled()
    button.click()
    page.wait_for_url(f"**/jobs/compare/?ids={first.pk},{second.pk}")
    expect(page.locator("[data-compare-video]")).to_have_count(2)


def test_a_star_and_a_rating_from_the_grid_are_kept(page):
    user = person()
    job = kept_video(user, prompt="Moonrise over the harbour")
    problems = errors_of(page)
    sign_in(page, user)
    page.goto(page.base_url + "/jobs/?view=grid")
    star = page.locator(f"form[data-marks='{job.pk}'] .star-toggle")
    expect(star).to_have_attribute("aria-pressed", "false")
    star.click()
    expect(page.locator(f"form[data-marks='{job.pk}'] .star-toggle")).to_have_attribute(
        "aria-pressed", "true"
    )
    page.locator(f"form[data-marks='{job.pk}'] .pip", has_text="4").click()
    expect(page.locator(f"form[data-marks='{job.pk}'] .pip[aria-pressed=true]")).to_have_text("4")
    assert page.url.endswith("/jobs/?view=grid")  # no reload
    mark = JobMark.objects.get()
    assert (mark.user_id, mark.job_id, mark.starred, mark.rating) == (user.pk, job.pk, True, 4)

    page.reload()
    expect(page.locator(f"form[data-marks='{job.pk}'] .star-toggle")).to_have_attribute(
        "aria-pressed", "true"
    )
    assert problems == []


def test_a_stack_opens_in_place(page):
    user = person()
    key = uuid.uuid4()
    stack = [kept_video(user, prompt="Four variants", seed=7 + i, stack_key=key) for i in range(3)]
    sign_in(page, user)
    page.goto(page.base_url + "/jobs/?view=list")
    expect(page.locator("tbody tr:visible")).to_have_count(1)
    page.click("text=+2 more")
    expect(page.locator("tbody tr:visible")).to_have_count(3)
    expect(page.locator("tbody")).to_contain_text(f"seed {stack[2].seed}")
    page.click("text=Show less")
    expect(page.locator("tbody tr:visible")).to_have_count(1)


@pytest.mark.parametrize("layout", ["list", "grid"])
def test_the_history_fits_a_phone(browser, live_server, layout):
    user = make_member("katherine-the-reviewer", make_team())
    Profile.objects.filter(user=user).update(history_view=layout)
    for i in range(4):
        kept_video(
            user,
            ["16x9", "9x16", "1x1", "16x9"][i],
            prompt="A very long prompt about a lighthouse on a cliff at dusk with waves crashing " * 3,
            project="Spring launch campaign",
            quality="pro",
            seed=2_147_483_000 + i,
            api_cost_micro_cents=1_234_567,
        )
    make_job(user, prompt="Supercalifragilistic failure", status=Status.FAILED)
    key = uuid.uuid4()
    for i in range(2):
        kept_video(user, prompt="Stacked", stack_key=key, seed=i)
    context = browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    page = context.new_page()
    page.base_url = live_server.url
    try:
        sign_in(page, user)
        page.goto(page.base_url + "/jobs/")
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        # The filters fold into one control; opened, they still fit.
        assert not page.evaluate("document.querySelector('.filter-fold').open")
        page.click(".filter-fold summary")
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        # Every status and price is on the screen's width, not off to the side.
        boxes = page.evaluate(
            "Array.from(document.querySelectorAll('[data-history] [data-role=status], [data-history] [data-role=cost]'))"
            ".filter(el => el.offsetParent).map(el => { const r = el.getBoundingClientRect(); return [r.left, r.right]; })"
        )
        assert len(boxes) >= 12 and all(left >= 0 and right <= PHONE["width"] for left, right in boxes)
        # No word is broken in two: every badge keeps to one line.
        assert page.evaluate(
            "Array.from(document.querySelectorAll('[data-history] .badge')).filter(b => b.offsetParent)"
            ".every(b => b.getClientRects().length === 1 && b.getBoundingClientRect().height < 30)"
        )
        page.click("text=+1 more")
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    finally:
        context.close()
