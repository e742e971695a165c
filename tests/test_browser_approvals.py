"""Approvals end to end, in real headless Chromium: a member asks, a manager decides."""

import pytest
from playwright.sync_api import expect

from jobs.models import Job, Status
from sandbox.views import SANDBOX

from .helpers import make_member, make_team, sign_in, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def choose(page, label):
    page.locator("label.segment", has_text=label).click()


def ask_for_pro_ten(page, member):
    sign_in(page, member)
    page.goto(page.base_url + "/")
    page.fill("#id_prompt", "A slow dolly shot through a neon market")
    expect(page.locator("#approval-note")).to_be_hidden()
    expect(page.locator("#submit-button")).to_have_text("Generate video")
    choose(page, "Pro")
    choose(page, "10 seconds")  # $0.675, above the team's $0.50
    note = page.locator("#approval-note")
    expect(note).to_contain_text("costs more than $0.50, so a manager must approve it")
    expect(note).to_contain_text("mara")
    expect(page.locator("#submit-button")).to_have_text("Ask for approval")
    page.click("#submit-button")
    page.locator(".tray-item .tray-open").first.click()  # the form stays; the tray opens the job
    page.wait_for_url("**/jobs/*/")
    return Job.objects.get(prompt__startswith="A slow dolly")


def test_a_job_above_the_limit_reaches_the_api_only_after_a_managers_click(page, browser, live_server):
    team = make_team("Studio A", approval_above_micro_cents=500_000)
    member = make_member("milo", team)
    manager = make_member("mara", team, role="manager")

    job = ask_for_pro_ten(page, member)
    expect(page.locator("[data-role=badge]")).to_have_text("Awaiting approval")
    expect(page.locator(".job-note")).to_contain_text("Who can approve it: mara")
    assert job.status == Status.AWAITING and SANDBOX.submit_count == 0

    manager_context = browser.new_context(viewport={"width": 1280, "height": 900})
    manager_page = manager_context.new_page()
    manager_page.base_url = live_server.url
    sign_in(manager_page, manager)
    manager_page.goto(live_server.url + "/approvals/")
    card = manager_page.locator(f"#request-{job.pk}")
    expect(card).to_contain_text("A slow dolly shot through a neon market")
    expect(card).to_contain_text("$0.675")
    assert SANDBOX.submit_count == 0
    card.locator("textarea[name=note]").fill("Worth it for the launch")
    card.get_by_role("button", name="Approve and send").click()
    expect(manager_page.locator(".messages")).to_contain_text(f"Approved video #{job.pk}")
    expect(manager_page.locator(".approval-list")).to_have_count(0)
    manager_context.close()

    assert SANDBOX.submit_count == 1
    # The member's open job page moves on by itself, and their next page says who approved.
    wait_until(page, "document.querySelector('[data-role=badge]').textContent !== 'Awaiting approval'")
    page.goto(page.base_url + "/jobs/")
    expect(page.locator(".notices")).to_contain_text("mara approved your $0.675 video")
    expect(page.locator(".notices")).to_contain_text("Worth it for the launch")


def test_a_declined_request_charges_nothing_and_the_member_is_told(page, browser, live_server):
    team = make_team("Studio B", approval_above_micro_cents=500_000, monthly_budget_micro_cents=10_000_000)
    member = make_member("milo", team)
    manager = make_member("mara", team, role="manager")
    job = ask_for_pro_ten(page, member)

    manager_context = browser.new_context(viewport={"width": 1280, "height": 900})
    manager_page = manager_context.new_page()
    manager_page.base_url = live_server.url
    sign_in(manager_page, manager)
    manager_page.goto(live_server.url + "/approvals/")
    card = manager_page.locator(f"#request-{job.pk}")
    card.locator("textarea[name=note]").fill("Try standard first")
    card.get_by_role("button", name="Decline").click()
    expect(manager_page.locator(".messages")).to_contain_text(f"Declined video #{job.pk}")
    expect(manager_page.locator("table")).to_contain_text("Try standard first")
    manager_context.close()

    page.goto(page.base_url + f"/jobs/{job.pk}/")
    expect(page.locator(".notices")).to_contain_text("declined your $0.675 video")
    expect(page.locator("[data-role=badge]")).to_have_text("Declined")
    expect(page.locator(".job-note")).to_contain_text("nothing was sent or charged")
    assert SANDBOX.submit_count == 0
    job.refresh_from_db()
    assert job.billed_micro_cents == 0
