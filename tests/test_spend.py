"""The spend dashboard and its CSV: who sees what, the arithmetic, periods and streaming."""

import csv
import io
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.http import StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone

from jobs import spend
from jobs.access import Scope, Viewer
from jobs.models import Job, Profile, Role, Status
from jobs.spend.report import BREAKDOWNS, _rollup_portable, _rollup_postgres

from .helpers import make_job, make_member, make_team, make_user

SPEND = reverse("jobs:spend")
EXPORT = reverse("jobs:spend_export")


@pytest.fixture
def cast(db):
    """A small cast: a team with a manager and two members, another team, and an outsider."""
    red = make_team("Red", monthly_budget_micro_cents=10_000_000)
    blue = make_team("Blue")
    people = {
        "manager": make_member("manager", red, role=Role.MANAGER),
        "ann": make_member("ann", red),
        "bob": make_member("bob", red),
        "blue_boss": make_member("blue_boss", blue, role=Role.MANAGER),
        "loner": make_member("loner", None),
    }
    people["red"], people["blue"] = red, blue
    return people


def job_for(user, **extra):
    profile = Profile.objects.get(user=user)
    return make_job(user, team=profile.team, **extra)


def csv_of(response):
    assert isinstance(response, StreamingHttpResponse)
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_a_member_sees_only_their_own_spend(client, cast):
    job_for(cast["ann"], prompt="ann's", api_cost_micro_cents=225_000)
    job_for(cast["bob"], prompt="bob's", api_cost_micro_cents=675_000)
    client.force_login(cast["ann"])
    report = client.get(SPEND).context["report"]
    assert report.total == 225_000
    assert [row["owner__username"] for row in report.by_member] == ["ann"]
    rows = csv_of(client.get(EXPORT))
    assert [r["prompt"] for r in rows] == ["ann's"]
    assert "bob" not in client.get(reverse("jobs:list")).content.decode()


def test_a_manager_sees_the_team_by_member_and_not_other_teams(client, cast):
    job_for(cast["ann"], api_cost_micro_cents=225_000)
    job_for(cast["bob"], api_cost_micro_cents=675_000)
    job_for(cast["blue_boss"], api_cost_micro_cents=999_000)
    client.force_login(cast["manager"])
    response = client.get(SPEND)
    report = response.context["report"]
    assert report.total == 900_000
    assert [(r["owner__username"], r["spend"]) for r in report.by_member] == [
        ("bob", 675_000),
        ("ann", 225_000),
    ]
    members = {row["user"].username: row for row in response.context["members"]}
    assert set(members) == {"manager", "ann", "bob"}
    assert (members["bob"]["spend"], members["bob"]["count"]) == (675_000, 1)
    assert {r["user"] for r in csv_of(client.get(EXPORT))} == {"ann", "bob"}
    # The other team's manager sees none of it.
    client.force_login(cast["blue_boss"])
    assert client.get(SPEND).context["report"].total == 999_000


def test_a_manager_sees_teammates_jobs_but_not_another_teams(client, cast):
    mine = job_for(cast["ann"])
    theirs = job_for(cast["blue_boss"])
    client.force_login(cast["manager"])
    assert client.get(mine.get_absolute_url()).status_code == 200
    assert client.get(theirs.get_absolute_url()).status_code == 404
    client.force_login(cast["bob"])
    assert client.get(mine.get_absolute_url()).status_code == 404


def test_managers_filter_the_history_by_member(client, cast):
    job_for(cast["ann"], prompt="from ann")
    job_for(cast["bob"], prompt="from bob")
    client.force_login(cast["manager"])
    response = client.get(reverse("jobs:list"), {"member": cast["bob"].pk})
    assert [j.prompt for j in response.context["page"].jobs] == ["from bob"]
    # Someone outside the team is not a choice: the filter is ignored, not obeyed.
    response = client.get(reverse("jobs:list"), {"member": cast["blue_boss"].pk})
    assert {j.prompt for j in response.context["page"].jobs} == {"from ann", "from bob"}
    client.force_login(cast["ann"])
    assert "member" not in client.get(reverse("jobs:list")).context["filters"].fields


def test_staff_see_every_team_and_can_pick_one(client, cast):
    job_for(cast["ann"], api_cost_micro_cents=225_000)
    job_for(cast["blue_boss"], api_cost_micro_cents=100_000)
    admin = make_user("root", is_staff=True)
    client.force_login(admin)
    assert client.get(SPEND).context["report"].total == 325_000
    assert client.get(SPEND, {"team": cast["blue"].pk}).context["report"].total == 100_000


def test_spend_counts_api_cost_else_estimate_and_nothing_for_refunds(client, cast):
    job_for(cast["loner"], api_cost_micro_cents=300_000, status=Status.COMPLETED)
    job_for(cast["loner"], status=Status.UNKNOWN)  # estimate 225,000 until resolved
    job_for(cast["loner"], status=Status.FAILED, api_cost_micro_cents=225_000)
    job_for(
        cast["loner"], status=Status.CANCELLED, api_cost_micro_cents=225_000, refunded_micro_cents=225_000
    )
    job_for(cast["loner"], status=Status.REFUSED)
    client.force_login(cast["loner"])
    report = client.get(SPEND).context["report"]
    assert (report.total, report.jobs, report.charged_jobs, report.videos) == (525_000, 5, 2, 1)
    assert report.average == 262_500
    html = client.get(SPEND).content.decode()
    # Dollars and cents on the page, the exact amount in the tooltip.
    assert 'id="stat-total"><span class="money" title="$0.525 exactly (525,000 µ¢)">$0.53</span>' in html
    assert 'title="$0.2625 exactly (262,500 µ¢)">$0.26</span>' in html


def test_breakdowns_by_project_quality_and_duration(client, cast):
    job_for(cast["loner"], project="Acme", quality="pro", duration=10)  # 675,000
    job_for(cast["loner"], project="Acme")  # 225,000
    job_for(cast["loner"])  # 225,000, no project
    client.force_login(cast["loner"])
    report = client.get(SPEND).context["report"]
    assert [(r["project"], r["spend"]) for r in report.by_project] == [("Acme", 900_000), ("", 225_000)]
    assert [(r["quality"], r["spend"]) for r in report.by_quality] == [("pro", 675_000), ("std", 450_000)]
    assert [(r["duration"], r["count"]) for r in report.by_duration] == [(10, 1), (5, 2)]
    html = client.get(SPEND).content.decode()
    # One person's own spend has no table by member: it would be one row, theirs.
    for heading in ("Project", "Quality", "Duration"):
        assert f"<th>{heading}</th>" in html
    assert "<th>Member</th>" not in html


def test_periods_are_read_in_the_persons_zone(client, cast):
    tokyo = ZoneInfo("Asia/Tokyo")
    today = timezone.now().astimezone(tokyo).date()
    first = today.replace(day=1)
    job_for(
        cast["loner"], created_at=datetime.combine(first, datetime.min.time(), tzinfo=tokyo)
    )  # this month
    job_for(
        cast["loner"],
        created_at=datetime.combine(first, datetime.min.time(), tzinfo=tokyo) - timedelta(seconds=1),
    )
    client.cookies["tz"] = "Asia/Tokyo"
    client.force_login(cast["loner"])
    assert client.get(SPEND).context["report"].jobs == 1
    assert client.get(SPEND, {"period": "last_month"}).context["report"].jobs == 1
    assert client.get(SPEND, {"period": "90d"}).context["report"].jobs == 2


def test_a_custom_range_and_its_mistakes(client, cast):
    job_for(cast["loner"], created_at=datetime(2026, 3, 10, 12, tzinfo=UTC))
    client.force_login(cast["loner"])
    good = client.get(SPEND, {"period": "custom", "start": "2026-03-01", "end": "2026-03-31"})
    assert good.context["report"].jobs == 1 and len(good.context["report"].daily) == 31
    for bad in (
        {"period": "custom", "start": "2026-03-31", "end": "2026-03-01"},
        {"period": "custom", "start": "2000-01-01", "end": "2026-03-01"},
        {"period": "custom"},
        {"period": "forever"},
        {"team": "1 OR 1=1"},
    ):
        response = client.get(SPEND, bad)
        assert response.status_code == 200
        assert response.context["report"].period.key == "this_month"


@pytest.mark.parametrize(
    ("key", "first", "last"),
    [
        ("this_month", date(2026, 2, 1), date(2026, 2, 28)),
        ("last_month", date(2026, 1, 1), date(2026, 1, 31)),
        ("30d", date(2026, 1, 16), date(2026, 2, 14)),
        ("90d", date(2025, 11, 17), date(2026, 2, 14)),
    ],
)
def test_period_arithmetic(key, first, last):
    period = spend.period_for(key, date(2026, 2, 14), ZoneInfo("UTC"))
    assert (period.first_day, period.last_day) == (first, last)


def test_the_month_end_projection_follows_the_pace(cast):
    now = datetime(2026, 4, 10, 12, tzinfo=UTC)  # day 10 of 30
    make_job(cast["loner"], created_at=datetime(2026, 4, 2, tzinfo=UTC), api_cost_micro_cents=1_000_000)
    scope = Viewer(cast["loner"]).spend_scope()
    period = spend.period_for("this_month", now.date(), ZoneInfo("UTC"))
    report = spend.report(scope, period, now=now)
    assert report.projection == 3_000_000


def test_the_chart_is_server_drawn_svg_readable_without_colour(client, cast):
    job_for(cast["ann"], api_cost_micro_cents=225_000)
    client.force_login(cast["manager"])
    html = client.get(SPEND).content.decode()
    assert '<svg viewBox="0 0 720 240" role="img"' in html
    assert "Budget $10.00" in html and "Projected" in html
    assert "Show the numbers as a table" in html
    assert "<title>" in html and 'class="budget"' in html


def test_the_csv_has_what_finance_needs_and_neutralises_formulas(client, cast):
    job_for(
        cast["ann"],
        prompt='=HYPERLINK("http://evil.example")',
        project="+cmd",
        quality="pro",
        duration=10,
        seed=42,
        status=Status.COMPLETED,
        api_cost_micro_cents=675_000,
        remote_id="job_xyz",
        request_id="req_1",
    )
    client.force_login(cast["manager"])
    response = client.get(EXPORT)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'attachment; filename="kling-studio-spend-' in response["Content-Disposition"]
    [row] = csv_of(response)
    assert row["user"] == "ann" and row["team"] == "Red"
    assert row["prompt"] == '\'=HYPERLINK("http://evil.example")' and row["project"] == "'+cmd"
    assert (row["quality"], row["duration_s"], row["seed"], row["status"]) == ("pro", "10", "42", "completed")
    assert (row["api_cost_micro_cents"], row["billed_usd"], row["pixelbyte_job_id"]) == (
        "675000",
        "0.675",
        "job_xyz",
    )
    assert row["created_at"].endswith("+00:00")


def test_the_csv_streams_in_chunks_without_loading_everything(client, cast, django_assert_max_num_queries):
    for i in range(30):
        job_for(cast["loner"], prompt=f"job {i}")
    client.force_login(cast["loner"])
    response = client.get(EXPORT)
    assert isinstance(response, StreamingHttpResponse)
    lines = list(response.streaming_content)
    assert len(lines) == 31  # header + one line per job, yielded one by one


def test_the_dashboard_costs_the_same_queries_for_one_job_or_many(client, cast, django_assert_num_queries):
    job_for(cast["ann"])
    client.force_login(cast["manager"])
    client.get(SPEND)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        client.get(SPEND)
    for i in range(60):
        job_for(cast["bob"] if i % 2 else cast["ann"], project=f"p{i % 7}", quality="pro" if i % 3 else "std")
    with CaptureQueriesContext(connection) as many:
        client.get(SPEND)
    # A constant number, whatever the history: the report, storage, members, this month's
    # raises and the raise form's budgets, the alerts sent.
    assert len(many) == len(few) <= 16, "\n".join(q["sql"][:120] for q in many.captured_queries)


def test_outsiders_need_to_sign_in(client, db):
    assert client.get(SPEND).status_code == 302
    assert client.get(EXPORT).status_code == 302


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the one-pass report is PostgreSQL's: run `make test-postgres`"
)
def test_the_one_pass_report_says_exactly_what_the_grouped_queries_say(db):
    call_command("generate_jobs", jobs=800, teams=2, people=10, days=60, seed=3, stdout=io.StringIO())
    manager = get_user_model().objects.get(username="gen-mgr-01")
    for key in ("this_month", "last_month", "90d"):
        period = spend.period_for(key, timezone.localdate(), ZoneInfo("America/New_York"))
        for scope in (Viewer(manager).spend_scope(), Scope(Job.objects.all(), "Every team", None, True)):
            jobs = scope.jobs.in_period(period.start, period.end)
            fast, fast_days = _rollup_postgres(jobs, period)
            plain, plain_days = _rollup_portable(jobs, period)
            assert fast.jobs > 0 or key == "this_month"
            assert (fast.total, fast.jobs, fast.charged_jobs, fast.videos) == (
                plain.total,
                plain.jobs,
                plain.charged_jobs,
                plain.videos,
            )
            assert {day: (row["spend"], row["count"]) for day, row in fast_days.items()} == {
                day: (row["spend"], row["count"]) for day, row in plain_days.items()
            }
            for name, _ in BREAKDOWNS:
                assert getattr(fast, name) == getattr(plain, name), (key, name)
