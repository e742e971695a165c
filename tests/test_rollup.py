"""The spend rollup: every holder's month equal to its jobs after every change of money."""

import uuid
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from jobs import budgets, lifecycle, pixelbyte, pricing, rollup
from jobs.models import Job, Role, SpendDay, SpendMonth, Status

from .helpers import make_job, make_member, make_team, make_user

# Just before midnight UTC on the last day of a month: the holders' zones put the same
# instant in different months.
EDGE = datetime(2026, 12, 31, 22, 30, tzinfo=UTC)
COSTS = [225_000, 337_500, 450_000, 675_000]


@pytest.fixture
def holders(db):
    north = make_team("North", time_zone="Pacific/Auckland")
    south = make_team("South", time_zone="America/New_York")
    return [
        make_member("kiri", north, time_zone="Pacific/Auckland"),
        make_member("ana", north, role=Role.MANAGER),
        make_member("joe", south, time_zone="America/Los_Angeles"),
        make_user("solo"),  # in no team, with no profile
    ]


PROJECTS = ["", "Spring campaign", "Website hero"]


def record(owner, minutes, cost, *, status=Status.SUBMITTING, variant=0):
    """A job as a submit records it; ``variant`` picks its project, quality and duration, so
    the day rows of every breakdown are exercised."""
    params = {
        "prompt": "A fox in the snow",
        "quality": ("std", "pro")[variant % 2],
        "duration": ("5", "10")[variant // 2 % 2],
        "aspect_ratio": "16:9",
    }
    team = getattr(getattr(owner, "profile", None), "team", None)
    fields = {**Job.input_fields(pricing.DEFAULT_MODEL, params), "estimated_micro_cents": cost}
    return lifecycle.record(
        owner=owner,
        team=team,
        project=PROJECTS[variant % len(PROJECTS)],
        submission_key=uuid.uuid4(),
        created_at=EDGE + timedelta(minutes=minutes),
        status=status,
        **fields,
    )


def remote(job, status):
    return pixelbyte.RemoteJob(job_id=job.remote_id or "", status=status)


def accept(job, cost):
    answer = pixelbyte.Submitted(f"job_{uuid.uuid4().hex}", "req_1", "pending", cost, None)
    lifecycle.accept(job.pk, answer)


def decide(job, approve):
    """A manager's decision on a job awaiting approval, made an hour and a half after the edge:
    in the next month for some holders, so an approval moves the job across months."""
    with transaction.atomic():
        locked = Job.objects.select_for_update().get(pk=job.pk)
        if locked.status != Status.AWAITING:
            return
        if approve:
            lifecycle.approved(locked, team=locked.team, now=EDGE + timedelta(minutes=90))
        else:
            lifecycle.declined(locked)


def reconcile(job, status):
    """What ``manage.py reconcile`` does when PixelByte's list disagrees: an authoritative read."""
    if job.remote_id:
        lifecycle.apply_update(job.pk, remote(job, status), authoritative=True)


ACTIONS = {
    "accept": lambda job, cost: accept(job, cost),
    "accept-no-cost": lambda job, cost: accept(job, None),
    "unknown": lambda job, cost: lifecycle.mark_unknown(job.pk, code="NoAnswer", message="No answer."),
    "not-sent": lambda job, cost: lifecycle.mark_not_sent(job.pk, code="NOT_SENT", message="Never made."),
    "undecided": lambda job, cost: lifecycle.needs_decision(job.pk, "Two candidates.", recheck_at=None),
    "adopted": lambda job, cost: lifecycle.adopt(job.pk, f"job_{uuid.uuid4().hex}"),
    "processing": lambda job, cost: lifecycle.apply_update(job.pk, remote(job, "processing")),
    "completed": lambda job, cost: lifecycle.apply_update(job.pk, remote(job, "completed")),
    "failed": lambda job, cost: lifecycle.apply_update(job.pk, remote(job, "failed")),
    "cancelled": lambda job, cost: lifecycle.cancelled(job.pk, cost),
    "approve": lambda job, cost: decide(job, True),
    "decline": lambda job, cost: decide(job, False),
    "reconcile-completed": lambda job, cost: reconcile(job, "completed"),
    "reconcile-failed": lambda job, cost: reconcile(job, "failed"),
}

steps = st.lists(
    st.one_of(
        st.tuples(
            st.sampled_from(["record", "record-awaiting"]),
            st.integers(0, 3),
            st.integers(-24 * 60, 24 * 60),
            st.sampled_from(COSTS),
        ),
        st.tuples(st.sampled_from(sorted(ACTIONS)), st.integers(0, 50), st.just(0), st.sampled_from(COSTS)),
    ),
    min_size=1,
    max_size=25,
)


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps)
def test_the_rollup_equals_the_jobs_after_every_step(holders, steps):
    Job.objects.all().delete()
    SpendMonth.objects.all().delete()
    SpendDay.objects.all().delete()
    jobs = []
    for action, who, minutes, cost in steps:
        if action.startswith("record"):
            status = Status.AWAITING if action == "record-awaiting" else Status.SUBMITTING
            jobs.append(record(holders[who], minutes, cost, status=status, variant=len(jobs)))
        elif jobs:
            ACTIONS[action](Job.objects.get(pk=jobs[who % len(jobs)].pk), cost)
        assert rollup.differences() == {}, (action, who, minutes, cost)


def test_the_budget_check_reads_the_holders_month_in_its_own_zone(holders):
    kiri = holders[0]
    record(kiri, 0, 675_000)  # 22:30 UTC on Dec 31 is already January 1 in Auckland
    north_january = rollup.spent(datetime(2027, 1, 1).date(), team_id=kiri.profile.team_id)
    kiri_january = rollup.spent(datetime(2027, 1, 1).date(), owner_id=kiri.pk)
    assert (north_january, kiri_january) == (675_000, 675_000)
    [team_budget] = [b for b in _budgets(kiri, EDGE) if b.kind == "team"]
    assert team_budget.spent == 675_000


def _budgets(user, now):
    profile = user.profile
    profile.team.monthly_budget_micro_cents = 10_000_000
    profile.team.save()
    return budgets.budgets_for(user, now=now)


def test_verify_spend_finds_a_difference_and_fix_rebuilds(holders):
    job = make_job(holders[2], team=holders[2].profile.team, status=Status.COMPLETED)
    SpendMonth.objects.filter(owner=job.owner).update(billed_micro_cents=1)
    SpendDay.objects.filter(owner=job.owner, team=job.team).update(completed=0)
    out = StringIO()
    with pytest.raises(CommandError, match="2 difference"):
        call_command("verify_spend", stdout=out)
    shown = out.getvalue()
    assert "owner" in shown and "rollup 1 µ¢ in 1 job(s)" in shown
    assert f"team {job.team_id} person {job.owner_id}" in shown and "0 completed" in shown
    out = StringIO()
    call_command("verify_spend", "--fix", stdout=out)
    assert "Rebuilt" in out.getvalue() and rollup.differences() == {}
    out = StringIO()
    call_command("verify_spend", stdout=out)
    assert "matches" in out.getvalue()


def test_the_migration_builds_the_rollup_of_jobs_made_before_it(holders):
    import importlib

    from django.apps import apps

    for owner in holders:
        make_job(owner, status=Status.COMPLETED, api_cost_micro_cents=450_000)
    make_job(holders[0], status=Status.FAILED)
    SpendMonth.objects.all().delete()
    importlib.import_module("jobs.migrations.0009_spend_months").build_spend_months(apps, None)
    assert rollup.differences() == {}


def test_the_migration_builds_the_day_rollup_of_jobs_made_before_it(holders):
    import importlib

    from django.apps import apps

    for n, owner in enumerate(holders):
        make_job(owner, status=Status.COMPLETED, api_cost_micro_cents=450_000, project=f"P{n % 2}")
        make_job(owner, status=Status.REFUSED, created_at=EDGE)
    make_job(holders[0], status=Status.FAILED, quality="pro", duration=10)
    SpendDay.objects.all().delete()
    importlib.import_module("jobs.migrations.0016_spend_days").build_spend_days(apps, None)
    assert rollup.differences() == {}


def test_the_migration_builds_the_storage_kept_from_files_kept_before_it(holders, settings, tmp_path):
    import importlib

    from django.apps import apps

    from jobs.models import StorageKept

    from .helpers import make_archived

    settings.MEDIA_ROOT = str(tmp_path)
    for n, owner in enumerate(holders):
        team = getattr(getattr(owner, "profile", None), "team", None)
        make_archived(make_job(owner, team=team, status=Status.COMPLETED, project=f"P{n % 2}"))
    StorageKept.objects.all().delete()
    importlib.import_module("jobs.migrations.0017_storage_kept").build_storage_kept(apps, None)
    assert (
        rollup.differences() == {} and StorageKept.objects.count() == 7
    )  # 4 people, and 3 of them in a team


def test_changing_a_holders_zone_in_the_admin_rebuilds_its_months(holders, client):
    staff = make_user("boss", is_staff=True, is_superuser=True)
    team = holders[0].profile.team
    record(holders[1], 0, 225_000)  # ana: zone of the display; her team in Auckland
    client.force_login(staff)
    form = {
        "name": team.name,
        "monthly_budget_dollars": "",
        "time_zone": "UTC",
        "profiles-TOTAL_FORMS": "0",
        "profiles-INITIAL_FORMS": "0",
    }
    response = client.post(f"/admin/jobs/team/{team.pk}/change/", form)
    assert response.status_code == 302
    assert rollup.differences() == {}
    assert rollup.spent(datetime(2026, 12, 1).date(), team_id=team.pk) == 225_000


@pytest.mark.rollup_left_behind  # another holder's row spoilt on purpose
def test_changing_a_persons_zone_rebuilds_only_that_persons_months(holders, client):
    staff = make_user("boss", is_staff=True, is_superuser=True)
    kiri, joe = holders[0], holders[2]
    record(kiri, 0, 225_000)  # Jan 1 in Auckland, Dec 31 in UTC
    record(joe, 0, 450_000)
    SpendMonth.objects.filter(owner=joe).update(jobs=99)  # someone else's row, left as it is
    client.force_login(staff)
    profile = kiri.profile
    form = {
        "user": kiri.pk,
        "team": profile.team_id,
        "role": profile.role,
        "monthly_budget_dollars": "",
        "time_zone": "UTC",
    }
    assert client.post(f"/admin/jobs/profile/{profile.pk}/change/", form).status_code == 302
    assert rollup.spent(datetime(2026, 12, 1).date(), owner_id=kiri.pk) == 225_000
    assert rollup.spent(datetime(2027, 1, 1).date(), owner_id=kiri.pk) == 0
    assert SpendMonth.objects.get(owner=joe).jobs == 99
