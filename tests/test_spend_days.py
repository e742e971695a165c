"""The dashboard from the day rollup: the same figures as the jobs say, at a cost that does
not depend on how many jobs there are, and the jobs themselves when the viewer's days are
not the holder's."""

import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from jobs import lifecycle, pixelbyte, rollup
from jobs.access import Scope, Viewer
from jobs.models import Job, Role, SpendDay, Status
from jobs.spend import period_for, report
from jobs.spend.report import BREAKDOWNS, day_rows
from jobs.spend.report import rollup as from_jobs

from .helpers import make_job, make_member, make_team, make_user

AUCKLAND, NEW_YORK, KOLKATA = (
    ZoneInfo("Pacific/Auckland"),
    ZoneInfo("America/New_York"),
    ZoneInfo("Asia/Kolkata"),
)
# Noon on the 15th: "this month" and "last month" are November and October everywhere.
TODAY = date(2026, 11, 15)
PROJECTS = ["", "Spring campaign", "Website hero"]


@pytest.fixture
def studio(db):
    """Two teams in different zones, people in zones of their own, and two months of jobs
    in every status class, many of them close to a midnight or a month's edge."""
    north = make_team("North", time_zone="Pacific/Auckland")
    east = make_team("East", time_zone="America/New_York")
    people = {
        "kiri": make_member("kiri", north, time_zone="Pacific/Auckland"),
        "mere": make_member("mere", north, role=Role.MANAGER, time_zone="Pacific/Auckland"),
        "joe": make_member("joe", east, role=Role.MANAGER, time_zone="America/New_York"),
        "amy": make_member("amy", east, time_zone="America/New_York"),
        "solo": make_member("solo", None, time_zone="America/New_York"),
        "boss": make_member(make_user("boss", is_staff=True), None, time_zone="America/New_York"),
    }
    start = datetime(2026, 9, 30, 9, 0, tzinfo=UTC)
    statuses = [Status.COMPLETED, Status.COMPLETED, Status.PROCESSING, Status.FAILED, Status.REFUSED]
    owners = ["kiri", "mere", "joe", "amy", "solo"]
    for n in range(90):
        owner = people[owners[n % len(owners)]]
        make_job(
            owner,
            team=owner.profile.team,
            status=statuses[n % len(statuses)],
            quality=("std", "pro")[n % 2],
            duration=(5, 10)[n // 2 % 2],
            project=PROJECTS[n % 3],
            created_at=start + timedelta(hours=17 * n + n % 7),
            api_cost_micro_cents=None if n % 4 == 0 else 300_000 + n,
        )
    _verbs(people, start)
    return people


def _verbs(people, start):
    """The lifecycle's own moves on a few more jobs: charged, refunded, cancelled, awaiting,
    approved into another month, declined."""
    kiri, amy = people["kiri"], people["amy"]
    sent = make_job(kiri, team=kiri.profile.team, status=Status.SUBMITTING, created_at=start)
    answer = pixelbyte.Submitted(f"job_{uuid.uuid4().hex}", "req_1", "pending", 412_000, None)
    lifecycle.accept(sent.pk, answer)
    lifecycle.cancelled(sent.pk, 412_000)
    for approve in (True, False):
        project = "Pitch" if approve else ""
        waiting = make_job(
            amy, team=amy.profile.team, status=Status.AWAITING, created_at=start, project=project
        )
        with transaction.atomic():
            locked = Job.objects.select_for_update().get(pk=waiting.pk)
            if approve:
                lifecycle.approved(locked, team=locked.team, now=datetime(2026, 11, 1, 3, 0, tzinfo=UTC))
            else:
                lifecycle.declined(locked)


def scopes(people):
    return {
        "North": Viewer(people["mere"]).spend_scope(),
        "East": Viewer(people["joe"]).spend_scope(),
        "kiri": Viewer(people["kiri"]).spend_scope(),
        "solo": Viewer(people["solo"]).spend_scope(),
        "every team": Viewer(people["boss"]).spend_scope(),
    }


def figures(result):
    totals = (result.total, result.jobs, result.charged_jobs, result.videos, result.refunded_jobs)
    return (
        totals + (result.unsent_jobs,),
        result.daily,
        {name: getattr(result, name) for name, _ in BREAKDOWNS},
    )


def scanned(scope, period):
    """The report as the jobs themselves say it."""
    result, per_day = from_jobs(scope.jobs.in_period(period.start, period.end), period)
    days = [period.first_day + timedelta(days=n) for n in range(period.days)]
    result.daily = [
        (d, per_day.get(d, {}).get("spend", 0), per_day.get(d, {}).get("charged", 0)) for d in days
    ]
    return result


HOLDER_ZONES = {"North": AUCKLAND, "East": NEW_YORK, "kiri": AUCKLAND, "solo": NEW_YORK}


@pytest.mark.parametrize("key", ["this_month", "last_month", "30d", "90d"])
def test_the_day_rollup_says_exactly_what_the_jobs_say(studio, key):
    for name, scope in scopes(studio).items():
        zone = HOLDER_ZONES.get(name)
        if zone is None:  # every team: its people live in two zones, and so no viewer's days are all theirs
            continue
        period = period_for(key, TODAY, zone)
        assert day_rows(scope, period) is not None, name  # the viewer's days are the holder's
        fast, truth = report(scope, period), scanned(scope, period)
        assert figures(fast) == figures(truth), (name, key)
        assert truth.jobs > 0 or key == "this_month", name


def test_every_team_reads_the_rollup_when_everyone_shares_the_viewers_zone(studio):
    from jobs.models import Profile

    Profile.objects.update(time_zone="America/New_York")
    for profile in Profile.objects.all():
        rollup.rebuild_holder(owner_id=profile.user_id)
    scope = scopes(studio)["every team"]
    period = period_for("last_month", TODAY, NEW_YORK)
    assert day_rows(scope, period) is not None
    assert figures(report(scope, period)) == figures(scanned(scope, period))


def test_a_viewer_whose_days_differ_gets_the_exact_figures_from_the_jobs(studio):
    scope = scopes(studio)["North"]
    for zone in (KOLKATA, NEW_YORK, UTC):
        period = period_for("last_month", TODAY, zone)
        assert day_rows(scope, period) is None  # Auckland's midnights are not these
        assert figures(report(scope, period)) == figures(scanned(scope, period))


def test_a_zone_with_the_same_midnights_under_another_name_reads_the_rollup(studio):
    scope = scopes(studio)["East"]
    period = period_for("last_month", TODAY, ZoneInfo("America/Toronto"))  # New York's clock
    assert day_rows(scope, period) is not None
    assert figures(report(scope, period)) == figures(scanned(scope, period))
    # Not across a change of clocks that only one of them makes.
    assert day_rows(scope, period_for("last_month", TODAY, ZoneInfo("America/Bogota"))) is None


def test_the_dashboard_reads_no_job_when_the_days_are_the_holders(client, studio, settings):
    settings.DISPLAY_TIME_ZONE = "Pacific/Auckland"
    client.force_login(studio["mere"])
    client.cookies["tz"] = "Pacific/Auckland"
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/spend/", {"period": "last_month"})
    assert response.status_code == 200
    assert (
        response.context["report"].jobs
        == report(scopes(studio)["North"], response.context["report"].period).jobs
    )
    # Neither the figures, the members nor the storage read a job.
    from_job_table = [q["sql"] for q in queries.captured_queries if '"jobs_job"' in q["sql"]]
    assert from_job_table == [], from_job_table


def test_emptied_rows_never_show_as_a_breakdown(studio):
    """An approval moves its job out of the day it was asked on: that row is left at zero and
    is not a project, person or option of the period."""
    assert SpendDay.objects.filter(jobs=0).exists()
    scope = scopes(studio)["East"]
    period = period_for("90d", TODAY, NEW_YORK)
    result = report(scope, period)
    for name, _ in BREAKDOWNS:
        assert all(row["count"] > 0 for row in getattr(result, name)), name


def test_the_rollup_after_this_data_is_the_truth(studio):
    assert rollup.differences() == {}


def test_a_scope_of_every_team_without_a_viewer_zone_match_still_adds_up(studio):
    everything = Scope(Job.objects.all(), "Every team", None, True)
    period = period_for("90d", TODAY, UTC)
    assert figures(report(everything, period)) == figures(scanned(everything, period))


def test_what_a_job_is_counted_under_cannot_be_edited_in_the_admin(client, studio):
    """The rollup counts a job under its person, team, project and options: the admin shows
    them but never changes them."""
    job = Job.objects.filter(owner=studio["kiri"], status=Status.COMPLETED).first()
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    page = client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    for name in ("project", "quality", "duration"):
        assert f'name="{name}"' not in page, name
