"""Budgets: enforced before money is spent, in the holder's month, with a clear refusal."""

import random
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from jobs import budgets, pricing, submission
from jobs.models import Job, Profile, Role, Status, Team

from .helpers import form_data, make_job, make_user

PARAMS = {"prompt": "Budgeted", "quality": "std", "duration": "5", "aspect_ratio": "16:9"}
NEW = reverse("jobs:new")


def send(user, **params):
    return submission.submit_job(
        user=user, model=pricing.DEFAULT_MODEL, params={**PARAMS, **params}, submission_key=uuid.uuid4()
    )


@pytest.fixture
def team(db):
    return Team.objects.create(name="Marketing", monthly_budget_micro_cents=1_000_000)


@pytest.fixture
def member(team):
    user = make_user("mia")
    Profile.objects.create(user=user, team=team, role=Role.MEMBER)
    return user


def test_bud09_five_submissions_that_fit_are_all_accepted(member, sandbox, team):
    team.monthly_budget_micro_cents = 5 * 225_000
    team.save()
    jobs = [send(member) for _ in range(5)]
    assert all(job.status == Status.PENDING for job in jobs)
    assert sandbox.submit_count == 5


def test_a_job_over_the_team_budget_is_refused_before_anything_is_sent(member, sandbox):
    send(member, quality="pro", duration="10")  # 675,000 of 1,000,000
    with pytest.raises(budgets.OverBudget) as refused:
        send(member, quality="pro", duration="10")
    message = str(refused.value)
    assert "the team budget (Marketing)" in message
    assert "costs $0.675" in message and "$0.325 left of $1.00" in message
    assert "go over by $0.35" in message and "starts again on" in message
    assert Job.objects.count() == 1 and sandbox.submit_count == 1


def test_the_tighter_of_the_personal_and_team_budgets_refuses(member, sandbox):
    Profile.objects.filter(user=member).update(monthly_budget_micro_cents=300_000)
    send(member)
    with pytest.raises(budgets.OverBudget) as refused:
        send(member)
    assert "your monthly budget" in str(refused.value)


def test_bud08_the_form_refuses_over_budget_with_the_message_and_keeps_the_form(client, member, sandbox):
    client.force_login(member)
    Profile.objects.filter(user=member).update(monthly_budget_micro_cents=100_000)
    response = client.post(NEW, form_data(prompt="Too dear"))
    html = response.content.decode()
    assert response.status_code == 409
    assert "your monthly budget" in html and "Too dear" in html
    assert Job.objects.count() == 0 and sandbox.submit_count == 0


def test_bud08_a_rerun_goes_through_the_same_check(client, member, sandbox):
    client.force_login(member)
    first = send(member, quality="pro", duration="10")
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
def test_bud06_refunded_and_refused_jobs_release_their_amount_unknown_ones_keep_it(member, status, counts):
    make_job(member, team=Profile.objects.get(user=member).team, status=status, quality="pro", duration=10)
    [budget] = budgets.budgets_for(member)
    assert budget.spent == (675_000 if counts else 0)


def test_the_api_cost_counts_over_our_estimate(member):
    make_job(member, team=Profile.objects.get(user=member).team, api_cost_micro_cents=300_000)
    assert budgets.budgets_for(member)[0].spent == 300_000


def test_a_refusal_by_the_api_leaves_the_budget_whole(member, sandbox):
    send(member, prompt="Nope [balance]")
    assert budgets.budgets_for(member)[0].spent == 0


def test_bud07_month_edges_are_in_the_budget_holders_zone(member):
    zone = "America/New_York"
    Profile.objects.filter(user=member).update(monthly_budget_micro_cents=10_000_000, time_zone=zone)
    ny = ZoneInfo(zone)
    last_second = datetime(2026, 11, 30, 23, 59, 59, tzinfo=ny)
    first_second = datetime(2026, 12, 1, 0, 0, 0, tzinfo=ny)
    make_job(member, created_at=last_second, quality="pro", duration=10)  # 675,000
    make_job(member, created_at=first_second)  # 225,000
    user_budget = lambda now: next(b for b in budgets.budgets_for(member, now) if b.kind == "user")  # noqa: E731
    assert user_budget(datetime(2026, 11, 30, 12, tzinfo=ny)).spent == 675_000
    december = user_budget(datetime(2026, 12, 1, 0, 0, 1, tzinfo=ny))
    assert december.spent == 225_000
    assert december.resets_at == datetime(2027, 1, 1, tzinfo=ny)
    # In UTC the last New York second is already December.
    assert last_second.astimezone(UTC).month == 12


def test_bud07_no_reset_job_is_needed(member):
    assert not hasattr(budgets, "reset_budgets")
    start, end = budgets.month_of(datetime(2026, 12, 31, 23, 0, tzinfo=UTC), ZoneInfo("UTC"))
    assert (start.month, end.year, end.month) == (12, 2027, 1)


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


def test_a_user_in_no_team_with_no_budget_works_normally(owner, sandbox):
    assert budgets.budgets_for(owner) == []
    assert send(owner).status == Status.PENDING


def test_the_form_shows_each_budget_for_the_live_preview(client, member):
    Profile.objects.filter(user=member).update(monthly_budget_micro_cents=500_000)
    client.force_login(member)
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


def test_a_budget_change_takes_effect_at_once(member, sandbox, team):
    team.monthly_budget_micro_cents = 100_000
    team.save()
    with pytest.raises(budgets.OverBudget):
        send(member)
    team.monthly_budget_micro_cents = None
    team.save()
    assert send(member).status == Status.PENDING


def test_old_months_do_not_count(member):
    make_job(
        member, team=Profile.objects.get(user=member).team, created_at=datetime.now(UTC) - timedelta(days=70)
    )
    assert budgets.budgets_for(member)[0].spent == 0
