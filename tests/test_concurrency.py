"""Races between separate connections: on SQLite (a file, IMMEDIATE transactions) in
`make test`, and on a real PostgreSQL server in `make test-postgres`."""

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jobs import webhooks
from jobs.management.commands.sync_jobs import Command
from jobs.models import Job, Status, Verdict, WebhookDelivery

from .helpers import make_job, make_member, make_team, make_user

pytestmark = [pytest.mark.django_db(transaction=True)]

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL row locks: run `make test-postgres`"
)


def in_threads(count, work):
    """Run ``work(i)`` in ``count`` threads that start together, each on its own connection."""
    barrier = threading.Barrier(count)

    def run(i):
        try:
            barrier.wait()
            return work(i)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_wh10_ten_copies_of_one_delivery_at_once_apply_exactly_once(settings):
    settings.PIXELBYTE_WEBHOOK_SECRET = "s3cret"
    job = make_job(make_user(), status=Status.PROCESSING, remote_id="job_1")
    body = json.dumps(
        {"jobId": "job_1", "status": "completed", "output": {"videoUrl": "https://cdn.example/v.mp4"}}
    ).encode()
    timestamp = str(int(time.time()))
    signature = webhooks.sign("s3cret", timestamp, body)
    url = reverse("jobs:webhook", args=[job.webhook_token])

    def deliver(_):
        return (
            Client(enforce_csrf_checks=True)
            .post(
                url,
                data=body,
                content_type="application/json",
                HTTP_X_PIXELBYTE_TIMESTAMP=timestamp,
                HTTP_X_PIXELBYTE_SIGNATURE=signature,
            )
            .status_code
        )

    statuses = in_threads(10, deliver)
    assert statuses == [200] * 10
    verdicts = list(WebhookDelivery.objects.values_list("verdict", flat=True))
    assert verdicts.count(Verdict.APPLIED) == 1
    assert verdicts.count(Verdict.DUPLICATE) == 9
    job.refresh_from_db()
    assert job.status == Status.COMPLETED


def test_several_sync_workers_never_claim_the_same_job():
    owner = make_user()
    past = timezone.now() - timezone.timedelta(seconds=5)
    ids = {make_job(owner, remote_id=f"job_{i}", next_check_at=past).pk for i in range(40)}
    now = timezone.now()
    claims = in_threads(4, lambda _: [pk for pk, _ in Command().claim(now, 15)])
    claimed = [pk for batch in claims for pk in batch]
    assert len(claimed) == len(set(claimed)) == 40
    assert set(claimed) == ids
    assert not Job.objects.filter(next_check_at__lte=now).exists()


# --- budgets (BUD-01 … BUD-05) --------------------------------------------------------------------

BUDGET_FOR_FIVE = 5 * 225_000


def race(users, sandbox, count=20):
    """``count`` submissions at once (std, 5 s: $0.225 each), spread over ``users``."""
    from jobs import budgets, pricing, submission

    params = {"prompt": "Race", "quality": "std", "duration": "5", "aspect_ratio": "16:9"}

    def one(i):
        try:
            submission.submit_job(
                user=users[i % len(users)],
                model=pricing.DEFAULT_MODEL,
                params=params,
                submission_key=uuid.uuid4(),
            )
            return "sent"
        except budgets.OverBudget as exc:
            return str(exc)

    return in_threads(count, one)


def assert_capped(outcomes, sandbox, name):
    refusals = [o for o in outcomes if o != "sent"]
    assert outcomes.count("sent") == 5
    assert sandbox.submit_count == 5
    assert len(refusals) == 15 and all(name in r for r in refusals)
    assert Job.objects.spend() == BUDGET_FOR_FIVE


def test_bud01_twenty_at_once_against_a_budget_for_five_send_exactly_five(sandbox):
    user = make_member(None, team=None, monthly_budget_micro_cents=BUDGET_FOR_FIVE)
    assert_capped(race([user], sandbox), sandbox, "your monthly budget")


def test_bud02_five_members_of_one_team_share_the_team_budget(sandbox):
    team = make_team("Racers", monthly_budget_micro_cents=BUDGET_FOR_FIVE)
    users = [make_member(None, team) for _ in range(5)]
    assert_capped(race(users, sandbox), sandbox, "the team budget (Racers)")


def test_bud05_a_brand_new_user_and_team_are_capped_from_the_first_submission(sandbox):
    team = make_team("Fresh", monthly_budget_micro_cents=2 * 225_000)
    user = make_member(None, team)
    outcomes = race([user], sandbox, count=10)
    assert outcomes.count("sent") == 2 and sandbox.submit_count == 2


@postgres_only
def test_bud04_without_the_lock_the_same_race_overspends(sandbox, monkeypatch):
    """The guard on the guard: remove the row locks and BUD-01 fails."""
    from jobs import budgets
    from jobs.models import Profile

    real = budgets._figures

    def slow_unlocked(*args):
        found = real(*args)
        time.sleep(0.2)  # everyone reads the same headroom before anyone writes
        return found

    monkeypatch.setattr(budgets, "_lock", lambda user: (None, Profile.objects.get(user_id=user.pk)))
    monkeypatch.setattr(budgets, "_figures", slow_unlocked)
    user = make_member(None, team=None, monthly_budget_micro_cents=BUDGET_FOR_FIVE)
    outcomes = race([user], sandbox)
    assert outcomes.count("sent") > 5


def test_bud10_the_budget_check_outside_a_transaction_is_refused():
    from django.db.transaction import TransactionManagementError

    from jobs import budgets

    with pytest.raises(TransactionManagementError):
        budgets.lock_and_check(make_user(), 225_000)


def test_a_double_click_racing_itself_creates_one_job(sandbox):
    from jobs import pricing, submission

    user = make_user()
    key = uuid.uuid4()
    params = {"prompt": "Twice", "quality": "std", "duration": "5", "aspect_ratio": "16:9"}
    jobs = in_threads(
        4,
        lambda _: (
            submission.submit_job(
                user=user, model=pricing.DEFAULT_MODEL, params=params, submission_key=key
            ).pk
        ),
    )
    assert len(set(jobs)) == 1 and Job.objects.count() == 1 and sandbox.submit_count == 1
