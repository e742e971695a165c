"""The prompt library in real headless Chromium: the form's prompt saved with its options,
used with its {variables} filled in, and back on the form prefilled."""

import pytest
from playwright.sync_api import expect

from jobs.models import SavedPrompt

from .helpers import make_member, make_team, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_saved_prompt_is_used_with_its_variables_filled_in(page):
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    user = make_member("ada", make_team("Studio"))
    sign_in(page, user)
    page.goto(page.base_url + "/")
    page.fill("textarea[name=prompt]", "A {product} on a {surface}")
    page.locator("label.segment", has_text="Pro").click()
    page.locator("label.segment", has_text="9:16").click()
    page.fill("input[name=seed]", "42")

    page.locator("#library-save summary").click()
    expect(page.locator("#library-title")).to_be_focused()
    page.fill("#library-title", "Product shot")
    page.get_by_role("button", name="Save", exact=True).click()

    entry = page.locator(".library-entry", has_text="Product shot")
    expect(entry).to_contain_text("A {product} on a {surface}")
    expect(entry).to_contain_text("Saved by ada")
    expect(entry).to_contain_text("not used yet")
    saved = SavedPrompt.objects.get()
    assert saved.options == {
        "quality": "pro",
        "duration": "5",
        "aspect_ratio": "9:16",
        "count": "1",
        "seed": "42",
    }

    entry.get_by_role("link", name="Use…").click()
    page.get_by_label("product").fill("mug")
    page.get_by_label("surface").fill("oak table")
    page.get_by_role("button", name="Open in the form").click()

    expect(page.locator("textarea[name=prompt]")).to_have_value("A mug on a oak table")
    expect(page.locator("input[name=quality][value=pro]")).to_be_checked()
    expect(page.locator("input[name=aspect_ratio][value='9:16']")).to_be_checked()
    expect(page.locator("input[name=seed]")).to_have_value("42")
    expect(page.locator(".messages")).to_contain_text("From the library: “Product shot”")
    saved.refresh_from_db()
    assert saved.uses == 1
    assert errors == []
