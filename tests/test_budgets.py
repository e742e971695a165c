"""Budgets: enforced before money is spent, in the holder's month, with a clear refusal."""

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction
from django.urls import reverse

from jobs import budgets, pricing, submission
from jobs.models import Job, Profile, Status, Team

from .helpers import form_data, make_job, make_team, make_user

PARAMS = {"prompt": "Budgeted", "quality": "std", "duration": "5", "aspect_ratio": "16:9"}
NEW = reverse("jobs:new")


def send(user, **params):
    return submission.submit_job(
        user=user, model=pricing.DEFAULT_MODEL, params={**PARAMS, **params}, submission_key=uuid.uuid4()
    )


@pytest.fixture
def team(db):
    """The cast's team (so the owner's), with a monthly budget of $1."""
    return make_team("Marketing", monthly_budget_micro_cents=1_000_000)


def test_bud09_five_submissions_that_fit_are_all_accepted(owner, sandbox, team):
    team.monthly_budget_micro_cents = 5 * 225_000
    team.save()
    jobs = [send(owner) for _ in range(5)]
    assert all(job.status == Status.PENDING for job in jobs)
    assert sandbox.submit_count == 5


def test_a_job_over_the_team_budget_is_refused_before_anything_is_sent(owner, sandbox):
    send(owner, quality="pro", duration="10")  # 675,000 of 1,000,000
    with pytest.raises(budgets.OverBudget) as refused:
        send(owner, quality="pro", duration="10")
    message = str(refused.value)
    assert "the team budget (Marketing)" in message
    assert "costs $0.675" in message and "$0.325 left of $1.00" in message
    assert "go over by $0.35" in message and "starts again on" in message
    assert Job.objects.count() == 1 and sandbox.submit_count == 1


def test_the_tighter_of_the_personal_and_team_budgets_refuses(owner, sandbox):
    Profile.objects.filter(user=owner).update(monthly_budget_micro_cents=300_000)
    send(owner)
    with pytest.raises(budgets.OverBudget) as refused:
        send(owner)
    assert "your monthly budget" in str(refused.value)


def test_bud08_the_form_refuses_over_budget_with_the_message_and_keeps_the_form(client, owner, sandbox):
    client.force_login(owner)
    Profile.objects.filter(user=owner).update(monthly_budget_micro_cents=100_000)
    response = client.post(NEW, form_data(prompt="Too dear"))
    html = response.content.decode()
    assert response.status_code == 409
    assert "your monthly budget" in html and "Too dear" in html
    assert Job.objects.count() == 0 and sandbox.submit_count == 0


def test_bud08_a_rerun_goes_through_the_same_check(client, owner, sandbox):
    client.force_login(owner)
    first = send(owner, quality="pro", duration="10")
    rerun = client.get(NEW, {"from": first.pk}).context["form"].initial
    data = form_data(
        **{k: str(v) for k, v in rerun.items() if k in ("prompt", "quality", "duration", "aspect_ratio")}
    )
    response = client.post(NEW, data)
    assert response.status_code == 409 and Job.objects.count() == 1


@pytest.mark.parametrize(
    ("status", "counts"),
    [
        (Status.REFUSED, False),
        (Status.FAILED, False),
        (Status.CANCELLED, False),
        (Status.UNKNOWN, True),
        (Status.SUBMITTING, True),
        (Status.PENDING, True),
        (Status.COMPLETED, True),
    ],
)
def test_bud06_refunded_and_refused_jobs_release_their_amount_unknown_ones_keep_it(
    owner, team, status, counts
):
    make_job(owner, team=team, status=status, quality="pro", duration=10)
    [budget] = budgets.budgets_for(owner)
    assert budget.spent == (675_000 if counts else 0)


def test_the_api_cost_counts_over_our_estimate(owner, team):
    make_job(owner, team=team, api_cost_micro_cents=300_000)
    assert budgets.budgets_for(owner)[0].spent == 300_000


def test_a_refusal_by_the_api_leaves_the_budget_whole(owner, sandbox):
    send(owner, prompt="Nope [balance]")
    assert budgets.budgets_for(owner)[0].spent == 0


def test_bud07_month_edges_are_in_the_budget_holders_zone(owner):
    zone = "America/New_York"
    Profile.objects.filter(user=owner).update(monthly_budget_micro_cents=10_000_000, time_zone=zone)
    ny = ZoneInfo(zone)
    last_second = datetime(2026, 11, 30, 23, 59, 59, tzinfo=ny)
    first_second = datetime(2026, 12, 1, 0, 0, 0, tzinfo=ny)
    make_job(owner, created_at=last_second, quality="pro", duration=10)  # 675,000
    make_job(owner, created_at=first_second)  # 225,000
    user_budget = lambda now: next(b for b in budgets.budgets_for(owner, now) if b.kind == "user")  # noqa: E731
    assert user_budget(datetime(2026, 11, 30, 12, tzinfo=ny)).spent == 675_000
    december = user_budget(datetime(2026, 12, 1, 0, 0, 1, tzinfo=ny))
    assert december.spent == 225_000
    assert december.resets_at == datetime(2027, 1, 1, tzinfo=ny)
    # In UTC the last New York second is already December.
    assert last_second.astimezone(UTC).month == 12


def check_in_a_transaction(user, cost, now):
    with transaction.atomic():
        return budgets.lock_and_check(user, cost, now=now)


def test_bud07_a_full_team_budget_starts_again_at_midnight_in_the_teams_zone_with_nothing_run(owner, team):
    team.time_zone, team.monthly_budget_micro_cents = "Pacific/Auckland", 675_000
    team.save()
    auckland = ZoneInfo("Pacific/Auckland")
    last_second = datetime(2026, 12, 31, 23, 59, 59, tzinfo=auckland)
    first_second = datetime(2027, 1, 1, 0, 0, 0, tzinfo=auckland)
    assert first_second - last_second == timedelta(seconds=1)
    # Both seconds are still 31 December in UTC, so a month taken in UTC refuses at both.
    assert first_second.astimezone(UTC).date() == date(2026, 12, 31)
    make_job(owner, team=team, created_at=last_second, quality="pro", duration=10)  # fills it

    with pytest.raises(budgets.OverBudget) as refused:
        check_in_a_transaction(owner, 225_000, now=last_second)
    assert "starts again on January 1" in str(refused.value)
    # One second later, with no job or command run in between, the new month is empty.
    assert check_in_a_transaction(owner, 675_000, now=first_second) == team
    [january] = budgets.budgets_for(owner, now=first_second)
    assert (january.spent, january.period_start) == (0, first_second)

    # A job made at 00:00:00 is January's; the full December is still on record.
    make_job(owner, team=team, created_at=first_second)
    assert budgets.budgets_for(owner, now=first_second)[0].spent == 225_000
    [december] = budgets.budgets_for(owner, now=last_second)
    assert (december.spent, december.resets_at) == (675_000, first_second)


@pytest.mark.rollup_left_behind  # jobs written in bulk, to compare SQL with Python
def test_bud11_ten_thousand_random_jobs_sum_in_sql_as_in_python(owner):
    rng = random.Random(11)
    statuses = list(Status)
    jobs = [
        Job(
            owner=owner,
            submission_key=uuid.uuid4(),
            prompt="p",
            quality="std",
            duration=5,
            aspect_ratio="16:9",
            status=rng.choice(statuses),
            estimated_micro_cents=rng.randrange(0, 10**9),
            api_cost_micro_cents=rng.choice([None, rng.randrange(0, 10**12)]),
            model_slug=pricing.DEFAULT_MODEL.slug,
        )
        for _ in range(10_000)
    ]
    Job.objects.bulk_create(jobs, batch_size=2000)
    expected = sum(job.billed_micro_cents for job in jobs)
    total = Job.objects.spend()
    assert isinstance(total, int) and total == expected


def test_a_user_in_no_team_with_no_budget_works_normally(loner, sandbox):
    assert budgets.budgets_for(loner) == []
    assert send(loner).status == Status.PENDING


def test_the_form_shows_each_budget_for_the_live_preview(client, owner):
    Profile.objects.filter(user=owner).update(monthly_budget_micro_cents=500_000)
    client.force_login(owner)
    response = client.get(NEW)
    info = response.context["budgets"]
    assert {b["kind"] for b in info} == {"user", "team"}
    team = next(b for b in info if b["kind"] == "team")
    assert team["limitMicroCents"] == 1_000_000 and team["spentMicroCents"] == 0
    assert 'id="budget-info"' in response.content.decode()


def test_budgets_are_set_in_dollars_in_the_admin(client, db):
    admin = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    response = client.post(
        reverse("admin:jobs_team_add"),
        {
            "name": "Sales",
            "monthly_budget_dollars": "12.345678",
            "time_zone": "",
            "profiles-TOTAL_FORMS": "0",
            "profiles-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Team.objects.get(name="Sales").monthly_budget_micro_cents == 12_345_678


def test_a_budget_change_takes_effect_at_once(owner, sandbox, team):
    team.monthly_budget_micro_cents = 100_000
    team.save()
    with pytest.raises(budgets.OverBudget):
        send(owner)
    team.monthly_budget_micro_cents = None
    team.save()
    assert send(owner).status == Status.PENDING


def test_old_months_do_not_count(owner, team):
    make_job(owner, team=team, created_at=datetime.now(UTC) - timedelta(days=70))
    assert budgets.budgets_for(owner)[0].spent == 0
