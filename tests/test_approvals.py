"""Approvals and temporary raises: a manager's yes before money is spent, and extra budget
for one month only."""

import threading
import uuid
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jobs import approvals, budgets, outbox, pricing, rollup, submission
from jobs.models import (
    ApprovalReason,
    ApprovalRequest,
    AuditAction,
    AuditEntry,
    BudgetRaise,
    Decision,
    Job,
    Notice,
    Status,
)

from .helpers import form_data, make_job, make_member, make_team

PARAMS = {"prompt": "A lighthouse at dusk", "quality": "std", "duration": "5", "aspect_ratio": "16:9"}
PRO_10 = {**PARAMS, "quality": "pro", "duration": "10"}  # $0.675
APPROVALS = reverse("jobs:approvals")


def ask(user, **params):
    return submission.submit_job(
        user=user, model=pricing.DEFAULT_MODEL, params={**PARAMS, **params}, submission_key=uuid.uuid4()
    )


def approve_url(job):
    return reverse("jobs:approve", args=[job.pk])


def decline_url(job):
    return reverse("jobs:decline", args=[job.pk])


@pytest.fixture
def team(db):
    """The cast's team: a $1 budget, approval above $0.50."""
    return make_team("Marketing", monthly_budget_micro_cents=1_000_000, approval_above_micro_cents=500_000)


@pytest.fixture
def emails(owner, manager):
    owner.email, manager.email = "owner@example.com", "manager@example.com"
    owner.save()
    manager.save()


def test_a_members_job_above_the_limit_waits_and_is_neither_sent_nor_charged(
    owner, manager, sandbox, team, emails
):
    job = ask(owner, **{k: v for k, v in PRO_10.items() if k != "prompt"})
    assert job.status == Status.AWAITING
    assert sandbox.submit_count == 0
    assert job.billed_micro_cents == 0
    assert budgets.team_budget(team).spent == 0
    request = job.approval
    assert request.reason == ApprovalReason.ABOVE_THRESHOLD
    assert "$0.50" in request.explanation and "$0.675" in request.explanation
    assert request.expires_at - request.requested_at == timedelta(days=7)
    # The managers are told by the worker.
    outbox.deliver_due()
    (message,) = mail.outbox
    assert message.to == ["manager@example.com"]
    assert "/approvals/" in message.body and "$0.675" in message.body


def test_the_owner_sees_who_can_approve_on_the_job_page(client, owner, manager, sandbox, team):
    client.force_login(owner)
    response = client.post(reverse("jobs:new"), form_data(quality="pro", duration="10"))
    job = Job.objects.get()
    assert response.status_code == 200 and response.context["sent_ids"] == [job.pk]
    page = client.get(job.get_absolute_url()).content.decode()
    assert "Awaiting approval" in page
    assert "Waiting for a manager&#x27;s approval" in page or "Waiting for a manager's approval" in page
    assert manager.get_username() in page
    assert "nothing has been sent or charged yet" in page


def test_a_job_under_the_limit_and_a_managers_own_job_go_straight_through(owner, manager, sandbox, team):
    assert ask(owner).status == Status.PENDING
    assert ask(manager, quality="pro", duration="10").status == Status.PENDING
    assert sandbox.submit_count == 2


def test_approving_sends_the_job_once_and_tells_the_requester(client, owner, manager, sandbox, team, emails):
    job = ask(owner, quality="pro", duration="10")
    client.force_login(manager)
    page = client.get(APPROVALS).content.decode()
    assert job.prompt in page and "$0.675" in page and "pro" in page
    assert "owner&#x27;s month so far" in page or "month so far" in page

    response = client.post(approve_url(job), {"note": "Go for it"})
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == Status.PENDING and job.remote_id
    assert sandbox.submit_count == 1
    assert job.approval.decision == Decision.APPROVED and job.approval.decided_by == manager
    assert budgets.team_budget(team).spent == 675_000

    # A second click (or a second manager) sends nothing more.
    again = client.post(approve_url(job), follow=True)
    assert "already approved by" in again.content.decode()
    assert sandbox.submit_count == 1

    outbox.deliver_due()
    assert any(m.to == ["owner@example.com"] and "approved" in m.body for m in mail.outbox)
    owner_client = Client()
    owner_client.force_login(owner)
    shown = owner_client.get(reverse("jobs:list")).content.decode()
    assert "approved your $0.675 video" in shown and "Go for it" in shown
    # Told once: the next page is quiet.
    assert "approved your $0.675 video" not in owner_client.get(reverse("jobs:list")).content.decode()
    assert AuditEntry.objects.filter(action=AuditAction.APPROVED, job_id=job.pk).count() == 1


def test_declining_charges_nothing_and_tells_the_requester_why(client, owner, manager, sandbox, team, emails):
    job = ask(owner, quality="pro", duration="10")
    client.force_login(manager)
    client.post(decline_url(job), {"note": "Use standard quality"})
    job.refresh_from_db()
    assert job.status == Status.DECLINED and job.billed_micro_cents == 0
    assert sandbox.submit_count == 0
    assert budgets.team_budget(team).spent == 0
    outbox.deliver_due()
    (message,) = [m for m in mail.outbox if m.to == ["owner@example.com"]]
    assert "declined" in message.body and "Use standard quality" in message.body
    assert Notice.objects.filter(user=owner, seen_at__isnull=True).count() == 1
    page = Client()
    page.force_login(owner)
    detail = page.get(job.get_absolute_url()).content.decode()
    assert "Declined by manager" in detail and "Use standard quality" in detail
    assert AuditEntry.objects.filter(action=AuditAction.DECLINED, job_id=job.pk).count() == 1


def test_a_request_nobody_decides_in_seven_days_ends_declined(owner, manager, sandbox, team):
    job = ask(owner, quality="pro", duration="10")
    assert approvals.expire_due(timezone.now() + timedelta(days=6)) == 0
    assert approvals.expire_due(timezone.now() + timedelta(days=7, seconds=1)) == 1
    job.refresh_from_db()
    assert job.status == Status.DECLINED and job.approval.decision == Decision.EXPIRED
    assert sandbox.submit_count == 0 and job.billed_micro_cents == 0
    assert Notice.objects.filter(user=owner, text__contains="not approved within 7 days").exists()
    entry = AuditEntry.objects.get(action=AuditAction.EXPIRED)
    assert entry.actor_name == "the studio" and entry.team_id == team.pk
    # The worker runs it every pass.
    assert approvals.expire_due(timezone.now() + timedelta(days=30)) == 0


def test_only_the_teams_managers_and_staff_may_decide(client, owner, teammate, outsider, sandbox, team):
    job = ask(owner, quality="pro", duration="10")
    other_manager = make_member("omar", make_team("Other"), role="manager")
    for person in (teammate, outsider, other_manager, owner):
        client.force_login(person)
        assert client.post(approve_url(job)).status_code == 404
        assert client.post(decline_url(job)).status_code == 404
        assert job.prompt not in client.get(APPROVALS).content.decode()
    job.refresh_from_db()
    assert job.status == Status.AWAITING and sandbox.submit_count == 0


def test_staff_may_approve_any_teams_request(client, owner, staff, sandbox, team):
    job = ask(owner, quality="pro", duration="10")
    client.force_login(staff)
    assert job.prompt in client.get(APPROVALS).content.decode()
    client.post(approve_url(job))
    job.refresh_from_db()
    assert job.status == Status.PENDING and sandbox.submit_count == 1


def test_a_get_never_decides(client, owner, manager, sandbox, team):
    job = ask(owner, quality="pro", duration="10")
    client.force_login(manager)
    assert client.get(approve_url(job)).status_code == 405
    assert client.get(decline_url(job)).status_code == 405
    job.refresh_from_db()
    assert job.status == Status.AWAITING


def test_a_member_who_may_ask_waits_instead_of_being_refused_over_budget(owner, manager, sandbox, team):
    team.approval_above_micro_cents = None
    team.members_may_ask = True
    team.save()
    make_job(owner, team=team, api_cost_micro_cents=900_000)
    job = ask(owner)  # $0.225 with $0.10 left
    assert job.status == Status.AWAITING
    assert job.approval.reason == ApprovalReason.OVER_BUDGET
    assert "over by $0.125" in job.approval.explanation
    assert sandbox.submit_count == 0


def test_without_asking_a_job_over_budget_is_still_refused(owner, sandbox, team):
    team.approval_above_micro_cents = None
    team.save()
    make_job(owner, team=team, api_cost_micro_cents=900_000)
    with pytest.raises(budgets.OverBudget):
        ask(owner)
    assert Job.objects.count() == 1


def test_approving_a_job_over_budget_raises_that_month_by_exactly_its_price(
    client, owner, manager, sandbox, team
):
    team.approval_above_micro_cents = None
    team.members_may_ask = True
    team.save()
    make_job(owner, team=team, api_cost_micro_cents=900_000)
    job = ask(owner)
    client.force_login(manager)
    page = client.get(APPROVALS).content.decode()
    assert "over by $0.125" in page and "approving raises it by $0.225" in page
    client.post(approve_url(job))
    job.refresh_from_db()
    assert job.status == Status.PENDING and sandbox.submit_count == 1
    (raised,) = BudgetRaise.objects.all()
    assert raised.team == team and raised.amount_micro_cents == 225_000 and raised.job_id == job.pk
    budget = budgets.team_budget(team)
    assert budget.limit == 1_225_000 and budget.spent == 1_125_000 and budget.raised == 225_000
    # Next month the raise is gone and the budget is the team's own again.
    next_month = budget.resets_at + timedelta(days=1)
    assert budgets.team_budget(team, next_month).limit == 1_000_000


def test_an_approved_job_counts_in_the_month_it_was_approved(owner, manager, sandbox, team):
    job = ask(owner, quality="pro", duration="10")
    later = timezone.now() + timedelta(days=40)
    Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(days=40))
    rollup.rebuild()  # the request was recorded (at nothing) in an earlier month
    approvals.approve(job.pk, manager, now=later)
    job.refresh_from_db()
    assert job.created_at == later and job.status == Status.SUBMITTING
    assert rollup.differences() == {}
    assert budgets.team_budget(team, later).spent == 675_000


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row locks under real concurrency: run `make test-postgres`"
)
def test_two_managers_approving_at_once_send_it_once(sandbox):
    team = make_team("Race", approval_above_micro_cents=100_000)
    member = make_member("mia", team)
    first, second = (make_member(name, team, role="manager") for name in ("max", "mo"))
    job = ask(member)
    barrier, results = threading.Barrier(2), []

    def click(manager):
        barrier.wait()
        try:
            results.append(submission.approve_and_send(job.pk, manager).status)
        except approvals.NotWaiting as exc:
            results.append(str(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=click, args=(person,)) for person in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sandbox.submit_count == 1
    assert Status.PENDING in results
    assert any("already approved by" in str(result) for result in results)
    assert ApprovalRequest.objects.get(job=job).decision == Decision.APPROVED


# --- temporary raises ----------------------------------------------------------------------


def test_a_manager_grants_a_raise_for_this_month_only(client, owner, manager, sandbox, team):
    make_job(owner, team=team, api_cost_micro_cents=900_000)
    client.force_login(manager)
    response = client.post(
        reverse("jobs:grant_raise"),
        {"holder": "team", "amount": "0.50", "reason": "Launch week"},
        follow=True,
    )
    page = response.content.decode()
    assert "Raised by $0.50" in page
    assert "includes a +$0.50 raise this month" in page and "Launch week" in page
    budget = budgets.team_budget(team)
    assert budget.limit == 1_500_000 and budget.raised == 500_000
    assert ask(owner).status == Status.PENDING  # $0.225 now fits
    assert budgets.team_budget(team, budget.resets_at + timedelta(hours=1)).limit == 1_000_000
    (entry,) = AuditEntry.objects.filter(action=AuditAction.RAISE_GRANTED)
    assert entry.actor == manager and entry.team_id == team.pk and "Launch week" in entry.summary


def test_a_raise_of_a_persons_budget_tells_them(client, owner, manager, team):
    owner.profile.monthly_budget_micro_cents = 300_000
    owner.profile.save()
    client.force_login(manager)
    client.post(reverse("jobs:grant_raise"), {"holder": str(owner.pk), "amount": "1", "reason": "Big pitch"})
    assert budgets.person_budget(owner, owner.profile).limit == 1_300_000
    assert Notice.objects.filter(user=owner, text__contains="Big pitch").exists()


def test_a_raise_needs_an_amount_and_a_reason(client, manager, team):
    client.force_login(manager)
    for data, error in (
        ({"holder": "team", "amount": "", "reason": "x"}, "Say how much"),
        ({"holder": "team", "amount": "-1", "reason": "x"}, "at least $0.01"),
        ({"holder": "team", "amount": "abc", "reason": "x"}, "Enter a number"),
        ({"holder": "team", "amount": "1", "reason": ""}, "Give a reason"),
        ({"holder": "12345", "amount": "1", "reason": "x"}, "Choose a budget"),
    ):
        page = client.post(reverse("jobs:grant_raise"), data, follow=True).content.decode()
        assert "No raise granted" in page and error in page
    assert not BudgetRaise.objects.exists()


def test_members_and_other_teams_managers_cannot_grant_raises(client, owner, outsider, team):
    for person in (owner, outsider):
        client.force_login(person)
        response = client.post(reverse("jobs:grant_raise"), {"holder": "team", "amount": "1", "reason": "x"})
        assert response.status_code == 404
    assert not BudgetRaise.objects.exists()


def test_the_approvals_page_reads_each_requester_once(client, owner, teammate, manager, sandbox, team):
    ask(owner, quality="pro", duration="10")
    client.force_login(manager)
    client.get(APPROVALS)
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(db) as one:
        client.get(APPROVALS)
    for person in (owner, owner, teammate, teammate, owner):
        ask(person, quality="pro", duration="10")
    with CaptureQueriesContext(db) as six:
        client.get(APPROVALS)
    # Six requests from two people: one more requester's reads, not five more requests'.
    assert len(six) - len(one) <= 4


def test_a_budget_refuses_an_expensive_job_when_members_may_not_ask(owner, sandbox, team):
    team.monthly_budget_micro_cents = 500_000  # the approval limit is $0.50 too
    team.save()
    with pytest.raises(budgets.OverBudget):
        ask(owner, quality="pro", duration="10")  # $0.675: over the budget, not a request
    assert not Job.objects.exists()


def test_a_request_whose_owner_changed_teams_is_declined_not_charged_to_the_new_team(
    client, owner, manager, sandbox, team
):
    job = ask(owner, quality="pro", duration="10")
    elsewhere = make_team("Elsewhere", monthly_budget_micro_cents=100_000)
    owner.profile.team = elsewhere
    owner.profile.save()
    client.force_login(manager)
    page = client.post(approve_url(job), follow=True).content.decode()
    assert "has changed teams since asking" in page
    job.refresh_from_db()
    assert job.status == Status.DECLINED and job.team == team and job.billed_micro_cents == 0
    assert sandbox.submit_count == 0
    assert not BudgetRaise.objects.exists()
    assert budgets.team_budget(elsewhere).spent == 0


def test_the_requester_hears_what_became_of_the_job_after_it_was_sent(
    client, owner, manager, sandbox, team, emails
):
    job = ask(owner, prompt="A storm at sea [balance]", quality="pro", duration="10")
    client.force_login(manager)
    client.post(approve_url(job))
    job.refresh_from_db()
    assert job.status == Status.REFUSED
    outbox.deliver_due()
    (message,) = [m for m in mail.outbox if m.to == ["owner@example.com"]]
    assert "PixelByte refused it" in message.body and "Nothing was charged" in message.body
    assert "being made now" not in message.body


def test_a_team_with_no_manager_tells_staff_of_requests(owner, staff, sandbox, team, manager):
    manager.profile.role = "member"
    manager.profile.save()
    staff.email = "staff@example.com"
    staff.save()
    ask(owner, quality="pro", duration="10")
    outbox.deliver_due()
    assert [m.to for m in mail.outbox] == [["staff@example.com"]]


def test_approving_never_passes_the_tokens_own_budget(client, owner, manager, sandbox, team):
    from jobs import tokens

    team.approval_above_micro_cents = 400_000
    team.save()
    token, _ = tokens.create(owner, name="batch", budget=900_000)

    def send(**params):
        return submission.submit_job(
            user=owner,
            model=pricing.DEFAULT_MODEL,
            params={**PARAMS, **params},
            submission_key=uuid.uuid4(),
            token=token,
        )

    waiting = send(quality="pro", duration="10")  # $0.675: fits the token's $0.90, waits for a manager
    assert waiting.status == Status.AWAITING
    assert send(quality="pro").status == Status.PENDING  # $0.3375 meanwhile: $0.5625 left
    client.force_login(manager)
    page = client.post(approve_url(waiting), follow=True).content.decode()
    assert "no longer fits the token" in page
    waiting.refresh_from_db()
    assert waiting.status == Status.DECLINED and sandbox.submit_count == 1
    assert not BudgetRaise.objects.exists()


def test_a_request_from_a_revoked_token_is_declined_not_sent(client, owner, manager, sandbox, team):
    from jobs import tokens

    token, _ = tokens.create(owner, name="batch")
    job = submission.submit_job(
        user=owner, model=pricing.DEFAULT_MODEL, params=PRO_10, submission_key=uuid.uuid4(), token=token
    )
    tokens.revoke(token, by=owner)
    client.force_login(manager)
    assert "revoked or has expired" in client.post(approve_url(job), follow=True).content.decode()
    job.refresh_from_db()
    assert job.status == Status.DECLINED and sandbox.submit_count == 0
