"""The budget lines of the live preview, in real headless Chromium."""

import pytest
from playwright.sync_api import expect

from .helpers import make_job, make_member, make_team, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def choose(page, label):
    page.locator("label.segment", has_text=label).click()


def test_the_preview_says_before_the_click_which_budget_would_refuse(page):
    team = make_team("Docs", monthly_budget_micro_cents=1_000_000)
    user = make_member("ida", team)
    make_job(user, team=team, api_cost_micro_cents=500_000)
    sign_in(page, user)
    page.goto(page.base_url + "/")

    line = page.locator(".budget-line[data-kind=team]")
    expect(line).to_contain_text("$0.275 left after this video (72% used")
    expect(line).not_to_have_class("budget-line warn")
    requests = []
    page.on("request", lambda r: requests.append(r.url))

    choose(page, "10 seconds")  # $0.45 → 95% used
    expect(line).to_have_class("budget-line warn")
    expect(line).to_contain_text("$0.05 left after this video (95% used")
    expect(page.locator("#submit-button")).to_be_enabled()

    choose(page, "Pro")  # $0.675 → over by $0.175
    expect(line).to_contain_text("over by $0.175")
    expect(page.locator("#budget-refusal")).to_contain_text("the team budget (Docs)")
    expect(page.locator("#submit-button")).to_be_disabled()

    choose(page, "Standard")
    expect(page.locator("#budget-refusal")).to_be_hidden()
    expect(page.locator("#submit-button")).to_be_enabled()
    assert requests == []
