"""The prompt form in real headless Chromium."""

import re

import pytest
from playwright.sync_api import expect

from jobs.models import Job, Status

from .helpers import make_user, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def choose(page, label):
    page.locator("label.segment", has_text=label).click()


def test_the_price_updates_instantly_in_the_browser_without_any_request(page):
    sign_in(page, make_user("ada"))
    page.goto(page.base_url + "/")
    price = page.locator("#price-dollars")
    expect(price).to_have_text("$0.225")

    requests = []
    page.on("request", lambda r: requests.append(r.url))
    choose(page, "Pro")
    expect(price).to_have_text("$0.3375")
    expect(page.locator("#price-micro")).to_have_text("337,500 µ¢")
    choose(page, "10 seconds")
    expect(price).to_have_text("$0.675")
    expect(page.locator("#price-micro")).to_have_text("675,000 µ¢")
    expect(page.locator("#price-breakdown")).to_have_text("$0.045 per second × 1.5 (Pro) × 10 s")
    choose(page, "Standard")
    expect(price).to_have_text("$0.45")
    assert requests == []


def test_the_prompt_counter_and_random_seed_work(page):
    sign_in(page, make_user("grace"))
    page.goto(page.base_url + "/")
    page.fill("textarea[name=prompt]", "Neon city in the rain")
    expect(page.locator("#prompt-counter")).to_have_text("21 / 2,500")
    page.click("#random-seed")
    seed = page.input_value("input[name=seed]")
    assert re.fullmatch(r"\d+", seed) and 0 <= int(seed) <= 2147483647
    page.click("#clear-seed")
    assert page.input_value("input[name=seed]") == ""


def test_submitting_in_the_browser_stores_the_job_and_shows_it(page):
    user = make_user("linus")
    sign_in(page, user)
    page.goto(page.base_url + "/")
    page.fill("textarea[name=prompt]", "A paper boat on a stormy sea")
    choose(page, "Pro")
    choose(page, "9:16")
    page.click("#submit-button")
    # Generate in place: the form stays, the job appears in the tray, its page one click away.
    item = page.locator(".tray-item").first
    expect(item).to_be_visible()
    job = Job.objects.get(owner=user)
    assert job.status in (Status.PENDING, Status.PROCESSING, Status.COMPLETED)
    assert (job.quality, job.aspect_ratio, job.api_cost_micro_cents) == ("pro", "9:16", 337_500)
    assert page.input_value("textarea[name=prompt]") == "A paper boat on a stormy sea"
    item.locator(".tray-open").click()
    page.wait_for_url(re.compile(rf"/jobs/{job.pk}/$"))
    expect(page.locator("body")).to_contain_text(job.remote_id)


def test_a_bad_seed_comes_back_with_everything_typed(page):
    sign_in(page, make_user("edsger"))
    page.goto(page.base_url + "/")
    page.fill("textarea[name=prompt]", "Goto considered scenic")
    choose(page, "10 seconds")
    page.fill("input[name=seed]", "-5")
    page.click("#submit-button")
    expect(page.locator("#field-seed .error")).to_have_text("The seed must be at least 0.")
    assert page.input_value("textarea[name=prompt]") == "Goto considered scenic"
    expect(page.locator("#price-dollars")).to_have_text("$0.45")
    assert Job.objects.count() == 0
