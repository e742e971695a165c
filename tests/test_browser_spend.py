"""The spend page in real headless Chromium: on a phone (390×844) nothing scrolls sideways and
the chart's labels stay readable; the custom range's dates show only for a custom range."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from jobs.models import Role, Status

from .helpers import make_job, make_member, make_team, make_user, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}
WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) { window.__csp.push(e.violatedDirective); });
"""
# The on-screen size of every label the visible chart draws, in CSS pixels.
LABEL_SIZES = """
Array.from(document.querySelectorAll(".chart svg text"))
  .filter(function (t) { return t.getBoundingClientRect().width > 0; })
  .map(function (t) { return t.getScreenCTM().a * parseFloat(getComputedStyle(t).fontSize); })
"""
SIDEWAYS = "document.documentElement.scrollWidth <= window.innerWidth"


@pytest.fixture
def studio(db):
    """A staff manager with a budgeted team of three, a month of varied jobs, and another team."""
    team = make_team("Animation and motion graphics", monthly_budget_micro_cents=25_000_000)
    boss = make_member(make_user("morgan", is_staff=True), team, role=Role.MANAGER)
    people = [boss, make_member("alexandria-montgomery", team), make_member("li", team)]
    other = make_member("otto", make_team("Other"))
    statuses = [Status.COMPLETED] * 6 + [Status.FAILED, Status.CANCELLED, Status.REFUSED]
    start = timezone.localtime().replace(day=1, hour=12)
    for i in range(27):
        person = people[i % 3]
        make_job(
            person,
            team=team,
            status=statuses[i % len(statuses)],
            project=["Spring campaign launch film", "", "Social"][i % 3],
            quality="pro" if i % 4 else "std",
            duration=10 if i % 5 else 5,
            created_at=min(start + timedelta(days=i % 28), timezone.now()),
        )
    make_job(other, status=Status.COMPLETED)
    return {"boss": boss, "team": team}


def open_spend(page, user, path="/spend/", viewport=PHONE):
    page.set_viewport_size(viewport)
    page.add_init_script(WATCH)
    sign_in(page, user)
    response = page.goto(page.base_url + path)
    assert response.status == 200
    return response


def test_on_a_phone_nothing_scrolls_sideways_and_the_chart_is_readable(page, studio):
    open_spend(page, studio["boss"])
    expect(page.locator(".budget-card")).to_contain_text("of $25.00 left, resets")
    assert page.evaluate(SIDEWAYS), page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
    sizes = page.evaluate(LABEL_SIZES)
    assert len(sizes) >= 8 and min(sizes) >= 11, sizes
    # The numbers behind the chart: a table that scrolls in its own box, with a hint.
    page.get_by_text("Show the numbers as a table").click()
    box = page.locator(".chart-numbers .table-scroll")
    expect(box).to_be_visible()
    expect(page.locator(".scroll-hint")).to_be_visible()
    assert box.evaluate("b => b.scrollHeight > b.clientHeight")
    assert page.evaluate(SIDEWAYS)
    # The one table by member, and every team, fit as well.
    expect(page.locator("#members-table")).to_contain_text("alexandria-montgomery")
    page.select_option("#id_team", "all")
    page.get_by_role("button", name="Show").click()
    expect(page.locator(".spend-head")).to_contain_text("Every team")
    assert page.evaluate(SIDEWAYS)
    assert page.evaluate("window.__csp") == []


def test_on_a_wide_screen_the_wide_chart_keeps_its_labels_readable(page, studio):
    open_spend(page, studio["boss"], viewport=DESKTOP)
    expect(page.locator(".chart-wide")).to_be_visible()
    expect(page.locator(".chart-narrow")).to_be_hidden()
    sizes = page.evaluate(LABEL_SIZES)
    assert len(sizes) >= 8 and min(sizes) >= 11, sizes
    assert page.evaluate(SIDEWAYS)


def test_the_custom_dates_show_only_for_a_custom_range(page, studio):
    open_spend(page, studio["boss"], viewport=DESKTOP)
    start, end = page.locator("#id_start"), page.locator("#id_end")
    expect(start).to_be_hidden()
    expect(end).to_be_hidden()
    page.select_option("#id_period", "custom")
    expect(start).to_be_visible()
    expect(end).to_be_visible()
    expect(start).to_be_focused()
    today = timezone.localdate()
    start.fill(f"{today.replace(day=1):%Y-%m-%d}")
    end.fill(f"{today:%Y-%m-%d}")
    page.get_by_role("button", name="Show").click()
    expect(page.locator(".spend-head")).to_contain_text(f"{today:%Y}")
    expect(start).to_be_visible()  # a custom range shown keeps its dates in view
    page.select_option("#id_period", "30d")
    expect(start).to_be_hidden()
    # The choice is remembered, and the way back to the landing is one click.
    page.goto(page.base_url + "/spend/")
    expect(page.locator("#id_period")).to_have_value("custom")
    page.locator("#spend-reset").click()
    expect(page.locator("#id_period")).to_have_value("this_month")
    expect(start).to_be_hidden()
    assert page.evaluate("window.__csp") == []
