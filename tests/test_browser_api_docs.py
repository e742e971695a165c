"""The API's reference page in headless Chromium: every operation shown, under the studio's
strict Content-Security-Policy with nothing blocked, and nothing loaded from elsewhere."""

import pytest

from jobs import tokens

from .helpers import make_user, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " " + e.blockedURI);
});
"""
OPERATIONS = [
    "POST /api/v1/jobs",
    "GET /api/v1/jobs",
    "GET /api/v1/jobs/{job_id}",
    "POST /api/v1/jobs/{job_id}/cancel",
    "POST /api/v1/estimate",
    "GET /api/v1/me",
]


def test_the_reference_page_shows_every_operation_without_breaking_the_csp(page):
    page.add_init_script(WATCH)
    console = []
    page.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text else None)
    elsewhere = []
    page.on("request", lambda r: None if r.url.startswith(page.base_url) else elsewhere.append(r.url))

    response = page.goto(page.base_url + "/api/v1/docs")
    assert response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    wait_until(page, "document.querySelectorAll('.opblock').length >= 6")
    shown = [
        " ".join(block.inner_text().split()[:2]).replace("\u200b", "")
        for block in page.locator(".opblock-summary").all()
    ]
    assert sorted(shown) == sorted(OPERATIONS)

    # Open the submit operation: its body schema and answers are drawn too.
    page.locator(".opblock-post .opblock-summary").first.click()
    wait_until(page, "document.querySelector('.opblock.is-open .responses-table') !== null")
    assert "Idempotency-Key" in page.locator(".opblock.is-open").inner_text()
    page.wait_for_timeout(300)
    assert page.evaluate("window.__csp") == []
    assert console == [] and elsewhere == []


def test_try_it_out_calls_the_api_with_a_token(page):
    user = make_user("ada")
    _, raw = tokens.create(user, name="docs")
    page.add_init_script(WATCH)
    page.goto(page.base_url + "/api/v1/docs")
    wait_until(page, "document.querySelectorAll('.opblock').length >= 6")

    page.get_by_role("button", name="Authorize").first.click()
    page.locator(".auth-container input").fill(raw)
    page.locator(".auth-btn-wrapper button.authorize").click()
    page.locator(".btn-done").click()

    me = page.locator(".opblock", has_text="/api/v1/me")
    me.locator(".opblock-summary").click()
    me.get_by_role("button", name="Try it out").click()
    me.get_by_role("button", name="Execute").click()
    wait_until(
        page, "document.querySelector('.opblock.is-open .live-responses-table .response-col_status') !== null"
    )
    assert '"username": "ada"' in me.locator(".live-responses-table").inner_text()
    assert page.evaluate("window.__csp") == []
