"""Iterating in real headless Chromium: several videos at once, generating in place with the
tray, the keyboard shortcut, the phone layout and PixelByte's "busy"."""

import re

import pytest
from playwright.sync_api import expect

from jobs.models import Job, Status

from .helpers import make_user, sign_in, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FIRST_VIDEO = "document.querySelector('.tray-item video')"


def choose(page, label):
    page.locator("label.segment", has_text=label).click()


def open_form(page, name):
    user = make_user(name)
    sign_in(page, user)
    page.goto(page.base_url + "/")
    return user


def test_three_videos_are_one_stack_of_three_seeds_priced_as_one_total(page):
    user = open_form(page, "ada")
    page.fill("textarea[name=prompt]", "A paper boat on a stormy sea")
    choose(page, "3 videos")
    expect(page.locator("#price-dollars")).to_have_text("$0.675")
    expect(page.locator("#price-breakdown")).to_have_text("3 videos × $0.225 = $0.675")
    expect(page.locator("#price-each")).to_have_text("Each: $0.045 per second × 5 s")
    expect(page.locator("#price-eyebrow")).to_have_text("These 3 videos will cost")
    expect(page.locator("#bar-total")).to_have_text("$0.675")
    expect(page.locator("#submit-button")).to_have_text("Generate 3 videos")
    choose(page, "Pro")
    expect(page.locator("#price-dollars")).to_have_text("$1.0125")
    page.fill("input[name=seed]", "7")

    page.click("#submit-button")
    expect(page.locator(".tray-item")).to_have_count(3)
    jobs = list(Job.objects.filter(owner=user).order_by("pk"))
    assert [job.seed for job in jobs] == [7, 8, 9]
    assert len({job.stack_key for job in jobs}) == 1 and jobs[0].stack_key is not None
    assert {job.estimated_micro_cents for job in jobs} == {337_500}
    expect(page.locator(".stack-tag")).to_have_text(["1 of 3", "2 of 3", "3 of 3"])
    expect(page.locator("#tray-news")).to_contain_text("your 3 videos appear below")
    assert page.url == page.base_url + "/"
    # Everything typed stays for the next try.
    assert page.input_value("textarea[name=prompt]") == "A paper boat on a stormy sea"
    assert page.input_value("input[name=seed]") == "7"
    expect(page.locator("#price-dollars")).to_have_text("$1.0125")


def test_the_tray_plays_the_result_without_leaving_the_form(page, settings):
    settings.PUBLIC_BASE_URL = page.base_url  # the sandbox tells the studio by webhook
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    user = open_form(page, "grace")
    first_key = page.input_value("input[name=submission_key]")
    page.fill("textarea[name=prompt]", "Neon city in the rain")
    page.click("#submit-button")

    expect(page.locator(".tray-item")).to_have_count(1)
    wait_until(page, f"{FIRST_VIDEO} && !{FIRST_VIDEO}.paused && {FIRST_VIDEO}.currentTime > 0.2", timeout=20)
    job = Job.objects.get(owner=user)
    assert job.status == Status.COMPLETED
    assert page.url == page.base_url + "/"
    assert page.input_value("input[name=submission_key]") != first_key  # a fresh form
    assert page.input_value("textarea[name=prompt]") == "Neon city in the rain"

    # The next one joins the tray above it; the first keeps playing where it is.
    page.evaluate(f"{FIRST_VIDEO}.dataset.mark = 'first'")
    page.fill("textarea[name=prompt]", "Neon city in the snow")
    page.click("#submit-button")
    expect(page.locator(".tray-item")).to_have_count(2)
    expect(page.locator(".tray-item").first).to_contain_text("Neon city in the snow")
    assert page.evaluate("document.querySelector('video[data-mark=first]') !== null")
    assert not page.evaluate("document.querySelector('video[data-mark=first]').paused")
    # The full job page is one click away.
    page.locator(".tray-item").nth(1).locator(".tray-open").click()
    page.wait_for_url(re.compile(rf"/jobs/{job.pk}/$"))
    assert problems == []


def test_the_prompt_has_focus_and_ctrl_enter_sends_from_anywhere_in_the_form(page):
    user = open_form(page, "linus")
    assert page.evaluate("document.activeElement.name") == "prompt"
    page.keyboard.type("A lighthouse at dusk")
    page.keyboard.press("Control+Enter")
    expect(page.locator(".tray-item")).to_have_count(1)
    page.fill("input[name=seed]", "12")
    page.focus("input[name=seed]")
    page.keyboard.press("Control+Enter")
    expect(page.locator(".tray-item")).to_have_count(2)
    assert list(Job.objects.filter(owner=user).order_by("pk").values_list("seed", flat=True)) == [None, 12]


def test_each_option_shows_what_it_does_to_the_price(page):
    open_form(page, "barbara")
    expect(page.locator("label.segment", has_text="Pro")).to_have_text("Pro ×1.5")
    expect(page.locator("label.segment", has_text="10 seconds")).to_have_text("10 seconds ×2")
    expect(page.locator("label.segment", has_text="4 videos")).to_have_text("4 videos ×4")
    expect(page.locator("#field-aspect_ratio .price-tag")).to_have_count(0)


def test_the_form_on_a_phone_keeps_the_price_and_button_in_view_without_sideways_scrolling(browser, page):
    user = make_user("margaret")
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    phone_page = phone.new_page()
    phone_page.base_url = page.base_url
    try:
        sign_in(phone_page, user)
        phone_page.goto(page.base_url + "/")
        no_sideways = "document.documentElement.scrollWidth <= innerWidth"
        assert phone_page.evaluate(no_sideways)
        for scrolled in (0, 600):
            phone_page.evaluate(f"window.scrollTo(0, {scrolled})")
            for selector in ("#bar-total", "#submit-button"):
                box = phone_page.locator(selector).bounding_box()
                assert box["y"] >= 0 and box["y"] + box["height"] <= 844, (selector, scrolled, box)
        expect(phone_page.locator("#bar-total")).to_have_text("$0.225")
        # The seed box and its buttons fit inside the form's card.
        card = phone_page.locator(".composer-fields").bounding_box()
        for selector in ("input[name=seed]", "#random-seed", "#clear-seed"):
            box = phone_page.locator(selector).bounding_box()
            assert box["x"] >= card["x"] and box["x"] + box["width"] <= card["x"] + card["width"], selector

        phone_page.fill("textarea[name=prompt]", "A fox in deep snow, slow push in")
        phone_page.locator("label.segment", has_text="2 videos").click()
        expect(phone_page.locator("#bar-total")).to_have_text("$0.45")
        expect(phone_page.locator("#bar-note")).to_have_text("for 2 videos")
        phone_page.locator("#submit-button").tap()
        expect(phone_page.locator(".tray-item")).to_have_count(2)
        assert phone_page.evaluate(no_sideways)
    finally:
        phone.close()


def test_a_busy_pixelbyte_shows_the_wait_and_a_retry_that_wakes_when_it_is_over(page):
    user = open_form(page, "katherine")
    page.fill("textarea[name=prompt]", "A crowded harbour [busy]")
    page.click("#submit-button")
    expect(page.locator("#refused")).to_contain_text("Not sent — nothing was charged.")
    expect(page.locator("#wait-text")).to_contain_text(re.compile(r"PixelByte is busy: try again in \d s\."))
    retry = page.locator("#retry-button")
    expect(retry).to_be_disabled()
    expect(retry).to_have_text(re.compile(r"Try again in \d s"))
    assert page.input_value("textarea[name=prompt]") == "A crowded harbour [busy]"

    expect(retry).to_be_enabled(timeout=8_000)
    expect(retry).to_have_text("Try again")
    expect(page.locator("#wait-text")).to_have_text("PixelByte should take new videos again now: try again.")
    page.fill("textarea[name=prompt]", "A quiet harbour")
    retry.click()
    expect(page.locator("#wait-panel")).to_have_count(0)
    expect(page.locator(".tray-item").first).to_contain_text("A quiet harbour")
    jobs = list(Job.objects.filter(owner=user).order_by("pk"))
    assert [job.status for job in jobs][0] == Status.REFUSED and jobs[1].status != Status.REFUSED
