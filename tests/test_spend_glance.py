"""The spend page at a glance: where each person lands, what is remembered, money in dollars
and cents, the catalog's words, shares that add up, refused attempts apart, the CSV's video
links and refunds, the chart's projection, and the admin's name, banner, budgets and formats."""

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import formats, timezone

from jobs import spend
from jobs.access import Viewer
from jobs.models import Profile, Role, Status
from jobs.spend import page
from jobs.spend.chart import NARROW, WIDE, charts

from .helpers import make_archived, make_job, make_member, make_team, make_user

SPEND = reverse("jobs:spend")
EXPORT = reverse("jobs:spend_export")


@pytest.fixture
def cast(db):
    """Red (a $25 budget) with a manager and two members, Blue with its manager, someone in no
    team, and staff who manage nothing."""
    red = make_team("Red", monthly_budget_micro_cents=25_000_000)
    blue = make_team("Blue")
    return {
        "red": red,
        "blue": blue,
        "boss": make_member("boss", red, role=Role.MANAGER),
        "ann": make_member("ann", red),
        "bob": make_member("bob", red),
        "blue_boss": make_member("blue_boss", blue, role=Role.MANAGER),
        "loner": make_member("loner", None),
        "staff": make_user("staff", is_staff=True),
    }


def job_for(user, **extra):
    return make_job(user, team=Profile.objects.get(user=user).team, **extra)


def visible(html):
    """The page's text as a person reads it: no tags, one space between words."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html)).replace("&#x27;", "'")


def csv_of(response):
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def resets_on():
    """The first of next month (UTC, the test teams' zone), as the budget card writes it."""
    today = timezone.now().date()
    following = (today.replace(day=28) + timedelta(days=4)).replace(day=1)
    return f"{following:%b} {following.day}"


# --- where each person lands ----------------------------------------------------------------


def test_a_manager_lands_on_their_team_with_the_budget_card_and_line(client, cast):
    job_for(cast["ann"], api_cost_micro_cents=225_000)
    client.force_login(cast["boss"])
    response = client.get(SPEND)
    assert response.context["scope"].label == "Team Red"
    html = response.content.decode()
    assert f"$24.78 of $25.00 left, resets {resets_on()}" in visible(html)
    assert 'class="budget"' in html and "Budget $25.00" in html  # the line on the chart
    # Another team is not a manager's to choose: the parameter is ignored.
    assert client.get(SPEND, {"team": cast["blue"].pk}).context["scope"].label == "Team Red"


def test_the_demo_account_a_staff_manager_lands_on_its_own_team_not_every_team(client, cast):
    call_command("create_demo_user", stdout=io.StringIO())
    demo = Profile.objects.get(user__username="demo").user
    assert demo.is_staff
    make_job(demo, team=demo.profile.team, api_cost_micro_cents=1_000_000)
    job_for(cast["ann"], api_cost_micro_cents=5_000_000)  # another team's: not on the landing
    client.force_login(demo)
    response = client.get(SPEND)
    assert response.context["scope"].label == "Team Demo team"
    assert response.context["report"].total == 1_000_000
    assert f"$24.00 of $25.00 left, resets {resets_on()}" in visible(response.content.decode())
    assert 'class="budget"' in response.content.decode()
    # Every team is still one choice away, and says so.
    every = client.get(SPEND, {"team": "all"})
    assert every.context["scope"].label == "Every team"
    assert every.context["report"].total == 6_000_000


def test_staff_who_manage_no_team_land_on_every_team(client, cast):
    job_for(cast["ann"], api_cost_micro_cents=225_000)
    job_for(cast["blue_boss"], api_cost_micro_cents=100_000)
    client.force_login(cast["staff"])
    response = client.get(SPEND)
    assert response.context["scope"].label == "Every team"
    assert response.context["report"].total == 325_000
    assert response.context["budget_cards"] == []


def test_a_member_lands_on_their_own_spend_with_the_budgets_that_apply_to_them(client, cast):
    profile = Profile.objects.get(user=cast["ann"])
    profile.monthly_budget_micro_cents = 2_000_000
    profile.save()
    job_for(cast["ann"], api_cost_micro_cents=500_000)
    job_for(cast["bob"], api_cost_micro_cents=250_000)
    client.force_login(cast["ann"])
    response = client.get(SPEND)
    assert response.context["scope"].label == "Your spend"
    assert response.context["report"].total == 500_000
    text = visible(response.content.decode())
    assert f"$1.50 of $2.00 left, resets {resets_on()}" in text  # their own
    assert f"$24.25 of $25.00 left, resets {resets_on()}" in text  # the team's, which also applies


# --- the choice is remembered -----------------------------------------------------------------


def test_the_choice_of_period_and_team_is_remembered_and_a_link_resets_it(client, cast):
    old = timezone.now() - timedelta(days=45)
    job_for(cast["blue_boss"], api_cost_micro_cents=100_000, created_at=old)
    call_command("create_demo_user", stdout=io.StringIO())
    client.force_login(Profile.objects.get(user__username="demo").user)
    chosen = client.get(SPEND, {"period": "90d", "team": cast["blue"].pk})
    assert (chosen.context["scope"].label, chosen.context["report"].period.key) == ("Team Blue", "90d")

    again = client.get(SPEND)  # nothing chosen: the last choice
    assert (again.context["scope"].label, again.context["report"].period.key) == ("Team Blue", "90d")
    html = again.content.decode()
    assert 'href="?reset=1"' in html and "Back to this month, Demo team" in html
    assert f"{EXPORT}?period=90d&amp;team={cast['blue'].pk}" in html  # the CSV of what is shown

    reset = client.get(SPEND, {"reset": "1"})
    assert reset.status_code == 302 and reset["Location"] == SPEND
    landing = client.get(SPEND)
    assert (landing.context["scope"].label, landing.context["report"].period.key) == (
        "Team Demo team",
        "this_month",
    )
    assert "?reset=1" not in landing.content.decode()


def test_a_remembered_team_since_deleted_falls_back_to_the_landing(client, cast):
    client.force_login(cast["staff"])
    gone = make_team("Gone")
    client.get(SPEND, {"team": gone.pk, "period": "last_month"})
    gone.delete()
    response = client.get(SPEND)
    assert response.status_code == 200
    assert (response.context["scope"].label, response.context["report"].period.key) == (
        "Every team",
        "this_month",
    )
    assert client.session.get("spend_choice") is None


def test_a_bad_choice_is_not_remembered(client, cast):
    client.force_login(cast["ann"])
    client.get(SPEND, {"period": "30d"})
    bad = client.get(SPEND, {"period": "custom", "start": "2026-03-31", "end": "2026-03-01"})
    assert bad.context["report"].period.key == "this_month" and "start date is after" in bad.content.decode()
    assert client.get(SPEND).context["report"].period.key == "this_month"


# --- money, words and shares ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("micro_cents", "shown"),
    [
        (225_000, "$0.23"),  # halves round up
        (224_999, "$0.22"),
        (5_000, "$0.01"),
        (4_999, "$0.00"),
        (0, "$0.00"),
        (1_234_567_890, "$1,234.57"),
        (-262_500, "-$0.26"),
    ],
)
def test_money_is_dollars_and_cents(micro_cents, shown):
    assert page.in_cents(micro_cents) == shown
    assert page.Money(micro_cents).short == shown


def test_money_on_the_page_has_two_decimals_and_the_exact_amount_in_its_tooltip(client, cast):
    job_for(cast["ann"], api_cost_micro_cents=225_000, project="Ads")
    job_for(cast["ann"], api_cost_micro_cents=337_500, project="Web")
    client.force_login(cast["boss"])
    html = client.get(SPEND).content.decode()
    assert 'id="stat-total"><span class="money" title="$0.5625 exactly (562,500 µ¢)">$0.56</span>' in html
    assert '<span class="money" title="$0.225 exactly (225,000 µ¢)">$0.23</span>' in html
    # Nowhere on the page an amount with more than two decimals outside a tooltip.
    assert not re.search(r"\$\d[\d,]*\.\d{3}", re.sub(r'title="[^"]*"', "", html))


def test_quality_reads_as_the_catalog_says_it(client, cast):
    job_for(cast["loner"], quality="pro")
    job_for(cast["loner"], quality="std")
    client.force_login(cast["loner"])
    html = client.get(SPEND).content.decode()
    table = html[html.index('id="by-quality"') :]
    table = table[: table.index("</section>")]
    assert "<td>Pro</td>" in table and "<td>Standard</td>" in table
    assert "<td>pro</td>" not in table and "<td>std</td>" not in table
    assert page.quality_label("pro") == "Pro" and page.quality_label("ultra") == "ultra"


def test_shares_add_up_to_100_by_largest_remainder():
    assert page.shares([1, 1, 1], 3) == [34, 33, 33]
    assert page.shares([675_000, 450_000], 1_125_000) == [60, 40]
    assert page.shares([2, 1, 1, 1, 1, 1, 1], 8) == [25, 13, 13, 13, 12, 12, 12]
    assert page.shares([0, 0], 0) == [None, None]
    assert sum(page.shares([333, 333, 334, 1], 1001)) == 100


def test_every_table_of_shares_on_the_page_adds_up_to_100(client, cast):
    for person in ("boss", "ann", "bob"):
        job_for(cast[person], project=person, quality="pro" if person == "ann" else "std")
    client.force_login(cast["boss"])
    response = client.get(SPEND)
    assert sum(row["share"] for row in response.context["members"]) == 100
    for table in response.context["breakdowns"]:
        assert sum(row["share"] for row in table["rows"]) == 100, table["title"]
    assert 'id="by-project"' in response.content.decode()


# --- refused attempts apart ---------------------------------------------------------------------


def test_refused_attempts_are_counted_apart_from_charged_videos(client, cast):
    for status in (Status.COMPLETED, Status.COMPLETED, Status.PROCESSING):
        job_for(cast["loner"], status=status)
    for status in (Status.FAILED, Status.CANCELLED):
        job_for(cast["loner"], status=status, api_cost_micro_cents=225_000)
    job_for(cast["loner"], status=Status.REFUSED)
    client.force_login(cast["loner"])
    response = client.get(SPEND)
    report = response.context["report"]
    counts = (report.charged_jobs, report.refunded_jobs, report.unsent_jobs, report.awaiting_jobs)
    assert counts == (3, 2, 1, 0)
    text = visible(response.content.decode())
    assert "Videos 3 2 not charged, 1 not sent" in text
    # The tables count the charged videos: the refused ones are not in them.
    assert [row["videos"] for row in response.context["breakdowns"][1]["rows"]] == [3]


# --- the CSV ---------------------------------------------------------------------------------


def test_the_csv_links_the_studios_copy_of_each_video(client, cast, settings):
    settings.PUBLIC_BASE_URL = "https://studio.example.com"
    kept = job_for(cast["ann"], status=Status.COMPLETED)
    make_archived(kept)
    job_for(cast["ann"], status=Status.COMPLETED, output_url="https://cdn.example.com/v.mp4")
    client.force_login(cast["boss"])
    rows = {row["status"] + row["video_url"] for row in csv_of(client.get(EXPORT))}
    assert rows == {f"completedhttps://studio.example.com/jobs/{kept.pk}/video", "completed"}


def test_the_csv_states_refunds_alike_for_failed_and_cancelled_jobs(client, cast):
    job_for(cast["loner"], prompt="failed", status=Status.FAILED, api_cost_micro_cents=225_000)
    job_for(
        cast["loner"],
        prompt="cancelled",
        status=Status.CANCELLED,
        api_cost_micro_cents=337_500,
        refunded_micro_cents=337_500,
    )
    job_for(cast["loner"], prompt="cancelled early", status=Status.CANCELLED)  # no cost reported
    job_for(cast["loner"], prompt="done", status=Status.COMPLETED, api_cost_micro_cents=225_000)
    job_for(cast["loner"], prompt="refused", status=Status.REFUSED)
    client.force_login(cast["loner"])
    columns = ("billed_micro_cents", "refunded_micro_cents", "refunded_usd")
    money = {row["prompt"]: tuple(row[c] for c in columns) for row in csv_of(client.get(EXPORT))}
    assert money == {
        "failed": ("0", "225000", "0.225"),
        "cancelled": ("0", "337500", "0.3375"),
        "cancelled early": ("0", "225000", "0.225"),
        "done": ("225000", "0", "0"),
        "refused": ("0", "0", "0"),
    }


def test_another_teams_csv_is_out_of_reach(client, cast):
    job_for(cast["blue_boss"], prompt="blue's")
    job_for(cast["ann"], prompt="red's")
    client.force_login(cast["boss"])
    rows = csv_of(client.get(EXPORT, {"team": cast["blue"].pk}))
    assert [row["prompt"] for row in rows] == ["red's"]


# --- one table by member ---------------------------------------------------------------------


def test_the_by_member_box_and_the_members_table_are_one(client, cast):
    job_for(cast["ann"], api_cost_micro_cents=300_000)
    leaver = make_member("leaver", cast["red"])
    job_for(leaver, api_cost_micro_cents=100_000)
    Profile.objects.filter(user=leaver).update(team=cast["blue"])  # spent in Red, then moved
    client.force_login(cast["boss"])
    response = client.get(SPEND)
    html = response.content.decode()
    assert html.count('id="members-table"') == 1 and html.count(">By member<") == 1
    rows = {row["user"].username: row for row in response.context["members"]}
    assert set(rows) == {"boss", "ann", "bob", "leaver"}
    assert (rows["leaver"]["role"], rows["leaver"]["share"]) == ("Former member", 25)
    assert rows["ann"]["share"] == 75


def test_every_team_lists_everyone_who_spent_with_their_team(client, cast):
    job_for(cast["ann"])
    job_for(cast["blue_boss"])
    job_for(cast["loner"])
    client.force_login(cast["staff"])
    rows = {row["user"].username: row["role"] for row in client.get(SPEND).context["members"]}
    assert rows == {"ann": "Red", "blue_boss": "Blue", "loner": "No team"}


# --- the chart ------------------------------------------------------------------------------------


def test_the_projection_is_drawn_from_today_to_the_months_end(cast):
    now = datetime(2026, 4, 10, 12, tzinfo=UTC)  # day 10 of 30
    make_job(cast["loner"], created_at=datetime(2026, 4, 2, tzinfo=UTC), api_cost_micro_cents=1_000_000)
    period = spend.period_for("this_month", now.date(), ZoneInfo("UTC"))
    result = spend.report(Viewer(cast["loner"]).spend_scope(), period, now=now)
    wide, narrow = charts(result, page.in_cents)
    for drawn, size in ((wide, WIDE), (narrow, NARROW)):
        line = drawn["projection"]
        step = (size.width - drawn["left"] - 8) / 30
        assert line["x1"] == round(drawn["left"] + 9.5 * step, 1)  # today, the 10th
        assert line["x2"] == round(drawn["left"] + 29.5 * step, 1)  # the 30th
        assert line["y2"] < line["y1"]  # up to the projected $3.00
        assert drawn["running"].count(",") == 10  # the running total stops today
    assert wide["width"] == 720 and narrow["width"] == 360


def test_a_monthly_budget_is_drawn_only_over_a_calendar_month(client, cast):
    job_for(cast["ann"])
    client.force_login(cast["boss"])
    assert 'class="budget"' in client.get(SPEND, {"period": "last_month"}).content.decode()
    assert 'class="budget"' not in client.get(SPEND, {"period": "90d"}).content.decode()


def test_the_custom_dates_sit_apart_for_the_script_to_fold(client, cast):
    client.force_login(cast["ann"])
    html = client.get(SPEND).content.decode()
    block = html[html.index('id="custom-range"') :][:600]
    assert 'id="id_start"' in block and 'id="id_end"' in block  # shown as they are without JS
    assert "js/spend.js" in html


def test_the_chart_lists_its_numbers_in_a_scrolling_table_with_a_hint(client, cast):
    client.force_login(cast["ann"])
    html = client.get(SPEND, {"period": "30d"}).content.decode()
    assert 'class="table-scroll" tabindex="0" role="region"' in html
    assert "Scroll inside the table for all 30 days" in html


# --- the admin ----------------------------------------------------------------------------------


@pytest.fixture
def admin_client(client, db):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def test_the_admin_carries_the_studios_name_and_the_sandbox_banner(admin_client, settings):
    settings.PIXELBYTE_API_KEY = ""
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert "<title>Teams, people, budgets and jobs | Kling Studio admin</title>" in html
    assert ">Kling Studio admin</a>" in html
    assert "Sandbox mode." in html
    settings.PIXELBYTE_API_KEY = "pb_live_key_for_this_test"
    assert "Sandbox mode." not in admin_client.get(reverse("admin:index")).content.decode()


def test_the_admin_has_a_budgets_entry_listing_the_teams_and_people_with_one(admin_client, cast):
    Profile.objects.filter(user=cast["ann"]).update(monthly_budget_micro_cents=2_000_000)
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert ">Budgets</a></caption>" in html
    teams_url = reverse("admin:jobs_team_changelist") + "?monthly_budget_micro_cents__isnull=False"
    people_url = reverse("admin:jobs_profile_changelist") + "?monthly_budget_micro_cents__isnull=False"
    assert f'href="{teams_url}"' in html and f'href="{people_url}"' in html
    teams = admin_client.get(teams_url)
    assert [team.name for team in teams.context["cl"].result_list] == ["Red"]
    assert "$25.00" in teams.content.decode()
    people = admin_client.get(people_url)
    assert [p.user.username for p in people.context["cl"].result_list] == ["ann"]
    assert "$2.00" in people.content.decode()


def test_the_admin_lists_money_in_dollars_and_times_on_the_24_hour_clock(admin_client, cast):
    job_for(cast["ann"], created_at=datetime(2026, 3, 3, 14, 5, tzinfo=UTC), api_cost_micro_cents=337_500)
    html = admin_client.get(reverse("admin:jobs_job_changelist")).content.decode()
    row = html[html.index('id="result_list"') :]
    assert "$0.3375" in row and "$0.225" in row  # the API's cost and our estimate
    assert "337500" not in row and "225000" not in row
    assert "Mar 3, 2026 14:05" in row and "p.m." not in row


def test_the_formats_are_the_pages_own():
    moment = datetime(2026, 12, 1, 9, 7)
    assert formats.date_format(moment, "DATETIME_FORMAT") == "Dec 1, 2026 09:07"
    assert formats.time_format(moment, "TIME_FORMAT") == "09:07"
    assert formats.date_format(date(2026, 12, 1)) == "Dec 1, 2026"


def test_every_teams_page_costs_the_same_queries_for_few_people_or_many(client, cast):
    job_for(cast["ann"])
    client.force_login(cast["staff"])
    client.get(SPEND)
    with CaptureQueriesContext(connection) as few:
        client.get(SPEND)
    for i in range(12):
        job_for(make_member(f"extra{i}", cast["blue"] if i % 2 else None), project=f"p{i}")
    with CaptureQueriesContext(connection) as many:
        response = client.get(SPEND)
    assert len(response.context["members"]) == 13
    assert len(many) == len(few), "\n".join(q["sql"][:120] for q in many.captured_queries)
