"""API tokens in real headless Chromium: made, shown once, copied, revoked, under the strict CSP."""

import pytest
from playwright.sync_api import expect

from jobs import tokens
from jobs.models import ApiToken

from .helpers import make_member, make_team, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " " + e.blockedURI);
});
"""


def open_tokens(page, user):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=page.base_url)
    sign_in(page, user)
    page.add_init_script(WATCH)
    page.goto(page.base_url + "/tokens/")


def test_a_person_makes_a_token_sees_it_once_copies_it_and_revokes_it(page):
    user = make_member("ada", make_team("Studio", monthly_budget_micro_cents=50_000_000))
    open_tokens(page, user)
    expect(page.get_by_role("link", name="Tokens")).to_have_attribute("aria-current", "page")
    expect(page.locator(".token-form")).to_contain_text("the team budget (Studio): $50.00")

    page.fill("#id_name", "nightly CI")
    page.locator("label.segment", has_text="30 days").click()
    page.fill("#id_budget", "12.50")
    page.get_by_role("button", name="Create token").click()

    panel = page.locator("#token-created")
    expect(panel).to_contain_text("it will not be shown again")
    raw = page.locator("#new-token").text_content()
    assert raw.startswith("ks_") and tokens.authenticate(raw).name == "nightly CI"
    expect(page.locator("#try-curl")).to_contain_text(f"Authorization: Bearer {raw}")
    copy = page.locator('[data-copy-target="new-token"]')
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == raw
    expect(copy).to_have_text("Copy token")

    page.goto(page.base_url + "/tokens/")
    assert raw not in page.content()
    token = ApiToken.objects.get()
    row = page.locator(f"#token-{token.pk}")
    expect(row).to_contain_text(f"{token.prefix}…")
    expect(row).to_contain_text("$0.00 of $12.50")

    row.get_by_role("link", name="Revoke…").click()
    step = page.locator(f"#revoke-{token.pk}")
    expect(step).to_be_visible()
    expect(row.get_by_role("link", name="Revoke…")).to_be_hidden()
    step.get_by_role("button", name="Keep it").click()
    expect(step).to_be_hidden()
    assert tokens.authenticate(raw) is not None

    row.get_by_role("link", name="Revoke…").click()
    expect(step.get_by_role("button", name="Revoke now")).to_be_focused()
    step.get_by_role("button", name="Revoke now").click()
    expect(page.locator(".messages")).to_contain_text("it no longer works")
    expect(page.locator(f"#token-{token.pk}")).to_contain_text("Revoked")
    assert tokens.authenticate(raw) is None
    assert page.evaluate("window.__csp") == []


def test_invalid_input_comes_back_with_what_was_typed_and_choosing_a_date_picks_on_a_date(page):
    open_tokens(page, make_member("ada", make_team("Studio")))
    page.fill("#id_name", "catalog notebook")
    page.locator("label.segment", has_text="submit").click()  # unticks it
    page.locator("label.segment", has_text="read").click()  # and this one: no scope left
    page.fill("#id_expires_on", "2020-01-01")
    expect(page.locator('input[name="expires"][value="date"]')).to_be_checked()
    page.get_by_role("button", name="Create token").click()

    expect(page.locator(".token-form-card .alert-error")).to_contain_text("No token was made")
    expect(page.locator(".token-form-card")).to_contain_text("Choose at least one scope")
    expect(page.locator(".token-form-card")).to_contain_text("Choose a day after today")
    expect(page.locator("#id_name")).to_have_value("catalog notebook")
    assert not ApiToken.objects.exists()
    assert page.evaluate("window.__csp") == []
