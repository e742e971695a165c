"""Several videos from one form post (a stack), and the form answering in place with its tray."""

import threading
import uuid

import pytest
from django.db import connection
from django.urls import reverse

from jobs import pricing, stacks, submission, throttle
from jobs.models import ApprovalReason, ApprovalRequest, Job, Status

from .helpers import form_data, make_job, make_member, make_team

NEW = reverse("jobs:new")
PARAMS = {"prompt": "A lighthouse at dusk", "quality": "std", "duration": "5", "aspect_ratio": "16:9"}


def post(client, **overrides):
    return client.post(NEW, form_data(**overrides))


def stack(user, count, **params):
    return submission.submit_stack(
        user=user,
        model=pricing.DEFAULT_MODEL,
        params={**PARAMS, **params},
        count=count,
        submission_key=uuid.uuid4(),
    )


# --- count=3 ------------------------------------------------------------------------------


def test_three_videos_are_three_jobs_with_seeds_in_sequence_and_one_stack_key(owner_client, owner, sandbox):
    data = form_data(count="3", seed="42", quality="pro")
    response = owner_client.post(NEW, data)
    jobs = list(Job.objects.order_by("pk"))
    key = uuid.UUID(data["submission_key"])
    assert len(jobs) == 3 and sandbox.submit_count == 3
    assert [job.seed for job in jobs] == [42, 43, 44]
    assert [job.params["seed"] for job in jobs] == [42, 43, 44]  # the seeds actually sent
    assert {job.stack_key for job in jobs} == {key}
    assert [job.submission_key for job in jobs] == [uuid.uuid5(key, str(i)) for i in range(3)]
    assert all(job.status == Status.PENDING and job.owner == owner for job in jobs)
    assert [sandbox.jobs[job.remote_id].input["seed"] for job in jobs] == [42, 43, 44]
    assert {job.estimated_micro_cents for job in jobs} == {337_500}
    # The form answers again in place, a fresh key, what was typed kept, the stack in the tray.
    assert response.status_code == 200
    assert response.context["sent_ids"] == [job.pk for job in jobs]
    form = response.context["form"]
    assert form.initial["submission_key"] != data["submission_key"]
    assert (form.initial["count"], form.initial["seed"], form.initial["quality"]) == ("3", "42", "pro")
    html = response.content.decode()
    for job in jobs:
        assert f'data-tray-job="{job.pk}"' in html and job.get_absolute_url() in html
    assert "1 of 3" in html and "3 of 3" in html


def test_without_a_seed_each_video_gets_its_own_random_seed_which_is_recorded(owner_client, sandbox):
    post(owner_client, count="4", seed="")
    jobs = list(Job.objects.order_by("pk"))
    seeds = [job.seed for job in jobs]
    assert len(set(seeds)) == 4 and all(0 <= seed <= 2_147_483_647 for seed in seeds)
    assert [sandbox.jobs[job.remote_id].input["seed"] for job in jobs] == seeds


def test_seeds_wrap_around_past_the_largest_seed():
    assert stacks.seeds(2_147_483_646, 3, 2_147_483_647) == [2_147_483_646, 2_147_483_647, 0]


def test_one_video_is_a_single_job_as_before(owner_client, sandbox):
    data = form_data()  # an older page posts no count at all
    post_key = uuid.UUID(data["submission_key"])
    owner_client.post(NEW, data)
    job = Job.objects.get()
    assert (job.stack_key, job.submission_key, job.seed) == (None, post_key, None)
    assert stacks.stack_members(job) == [job]


def test_stack_members_are_the_jobs_of_one_post_in_order(owner, sandbox):
    made = stack(owner, 3)
    other = stack(owner, 2)
    assert stacks.stack_members(made[1]) == made
    assert stacks.stack_members(other[0]) == other
    assert [stacks.position(job) for job in made] == [1, 2, 3]


def test_fold_gathers_a_stack_under_its_first_row(owner):
    key = uuid.uuid4()
    older = make_job(owner)
    members = [make_job(owner, stack_key=key, submission_key=stacks.member_key(key, i)) for i in range(3)]
    rows = stacks.fold([*reversed(members), older])
    assert [(lead.pk, [m.pk for m in group]) for lead, group in rows] == [
        (members[2].pk, [m.pk for m in members]),
        (older.pk, [older.pk]),
    ]


# --- one total against every budget ---------------------------------------------------------


def test_the_budget_is_checked_against_the_total_all_or_none(owner_client, owner, team, sandbox):
    team.monthly_budget_micro_cents = 600_000  # one video fits, two fit, three do not
    team.save()
    response = post(owner_client, count="3")
    html = response.content.decode()
    assert response.status_code == 409
    assert "these 3 videos cost $0.675 together, but the team budget (Studio) has $0.60 left" in html
    assert "it would go over by $0.075" in html
    assert Job.objects.count() == 0 and sandbox.submit_count == 0

    assert post(owner_client, count="2").status_code == 200
    assert Job.objects.count() == 2 and sandbox.submit_count == 2


def test_the_personal_budget_counts_the_total_too(client, sandbox, db):
    user = make_member("ida", make_team("Docs"), monthly_budget_micro_cents=500_000)
    client.force_login(user)
    response = post(client, count="4")
    assert response.status_code == 409
    assert (
        "these 4 videos cost $0.90 together, but your monthly budget has $0.50 left"
        in response.content.decode()
    )
    assert Job.objects.count() == 0


def test_a_stack_over_the_teams_approval_limit_waits_whole(owner, manager, team, sandbox):
    team.approval_above_micro_cents = 300_000  # per video: a $0.225 video goes straight through
    team.save()
    assert {job.status for job in stack(owner, 3)} == {Status.PENDING}
    made = stack(owner, 2, quality="pro")  # $0.3375 each
    assert {job.status for job in made} == {Status.AWAITING}
    requests = ApprovalRequest.objects.filter(job__in=made)
    assert requests.count() == 2 and {r.reason for r in requests} == {ApprovalReason.ABOVE_THRESHOLD}
    assert sandbox.submit_count == 3


def test_a_stack_that_may_ask_past_the_budget_waits_with_the_total_as_its_reason(
    owner, manager, team, sandbox
):
    team.monthly_budget_micro_cents = 500_000
    team.members_may_ask = True
    team.save()
    made = stack(owner, 3)
    assert {job.status for job in made} == {Status.AWAITING}
    request = ApprovalRequest.objects.get(job=made[0])
    assert request.reason == ApprovalReason.OVER_BUDGET
    assert request.explanation.startswith("these 3 videos cost $0.675 together, but the team budget (Studio)")
    assert sandbox.submit_count == 0


def test_the_page_says_when_the_stack_waits_for_a_manager(owner_client, team, manager, sandbox):
    team.approval_above_micro_cents = 100_000
    team.save()
    html = post(owner_client, count="2").content.decode()
    assert "Your 2 videos wait for a manager's approval" in html
    assert Job.objects.filter(status=Status.AWAITING).count() == 2


# --- one post, one key --------------------------------------------------------------------------


def test_a_repeated_post_of_the_same_form_sends_nothing_more(owner_client, sandbox):
    data = form_data(count="3")
    first = owner_client.post(NEW, data)
    second = owner_client.post(NEW, data)
    assert Job.objects.count() == 3 and sandbox.submit_count == 3
    assert first.context["sent_ids"] == second.context["sent_ids"]
    # The same key posted again with another count finds the same jobs, too.
    third = owner_client.post(NEW, {**data, "count": "1"})
    assert third.context["sent_ids"] == first.context["sent_ids"] and sandbox.submit_count == 3


@pytest.mark.django_db(transaction=True)
def test_two_posts_of_one_form_at_once_make_one_stack(owner, sandbox):
    key, made, start = uuid.uuid4(), [], threading.Barrier(2)

    def post_once():
        start.wait()
        try:
            jobs = submission.submit_stack(
                user=owner, model=pricing.DEFAULT_MODEL, params=PARAMS, count=3, submission_key=key
            )
            made.append([job.pk for job in jobs])
        finally:
            connection.close()

    threads = [threading.Thread(target=post_once) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 2 and made[0] == made[1]
    assert Job.objects.filter(stack_key=key).count() == 3 and sandbox.submit_count == 3


def test_someone_elses_stack_key_is_404(owner_client, outsider, sandbox):
    theirs = stack(outsider, 2)
    response = post(owner_client, count="2", submission_key=str(theirs[0].stack_key))
    assert response.status_code == 404
    assert Job.objects.count() == 2


@pytest.mark.parametrize("count", ["0", "5", "-1", "three", "2.5"])
def test_a_count_outside_one_to_four_is_refused_in_the_forms_words(owner_client, sandbox, count):
    response = post(owner_client, count=count)
    html = response.content.decode()
    assert response.status_code == 422
    assert f"“{count}” is not an allowed number of videos. Choose one of: 1, 2, 3, 4." in html
    assert Job.objects.count() == 0 and sandbox.submit_count == 0


# --- PixelByte busy ------------------------------------------------------------------------------


def test_when_pixelbyte_asks_to_wait_the_rest_of_the_stack_is_not_sent(owner_client, sandbox):
    response = post(owner_client, count="3", prompt="A busy harbour [busy]")
    html = response.content.decode()
    jobs = list(Job.objects.order_by("pk"))
    assert sandbox.submit_count == 1  # not three refusals in a row
    assert [job.status for job in jobs] == [Status.REFUSED] * 3
    assert [job.error_code for job in jobs] == ["CONCURRENT_JOBS_EXCEEDED", "PAUSED", "PAUSED"]
    assert all(job.billed_micro_cents == 0 for job in jobs)
    assert "Not sent — nothing was charged." in html
    assert "PixelByte is busy: try again in 5 s." in html
    assert 'id="retry-button"' in html and 'data-wait-seconds="5"' in html
    assert "A busy harbour [busy]" in html


def test_a_post_during_the_pause_is_answered_429_with_the_wait_and_a_retry(owner_client, sandbox):
    throttle.pause(7)
    data = form_data(count="2", prompt="Keep this prompt")
    response = owner_client.post(NEW, data)
    html = response.content.decode()
    assert response.status_code == 429
    assert "PixelByte is busy: try again in 7 s. Nothing was sent, so nothing was charged." in html
    assert 'id="retry-button"' in html and "Keep this prompt" in html
    assert data["submission_key"] in html  # nothing was recorded: the same form may go again
    assert Job.objects.count() == 0 and sandbox.submit_count == 0


# --- the tray -------------------------------------------------------------------------------------


def test_the_tray_keeps_the_last_eight_jobs_of_this_session_only(client, owner, teammate, sandbox):
    client.force_login(owner)
    for _ in range(3):
        post(client, count="3")
    made = list(Job.objects.order_by("-pk").values_list("pk", flat=True))
    tray = client.get(NEW).context["tray"]
    assert [job.pk for job in tray] == sorted(made[:3]) + sorted(made[3:6]) + sorted(made[6:])[:2]
    assert len(tray) == stacks.TRAY_SIZE

    client.force_login(teammate)  # a new session: an empty tray
    assert client.get(NEW).context["tray"] == []


def test_the_tray_shows_no_job_the_person_may_no_longer_see(client, owner, outsider, sandbox):
    theirs = make_job(outsider)
    client.force_login(owner)
    session = client.session
    session[stacks.TRAY_SESSION_KEY] = [theirs.pk]
    session.save()
    html = client.get(NEW).content.decode()
    assert f'data-tray-job="{theirs.pk}"' not in html and theirs.prompt not in html


def test_the_tray_reads_its_jobs_in_a_few_queries(owner_client, sandbox, django_assert_max_num_queries):
    post(owner_client, count="4")
    post(owner_client, count="4")
    with django_assert_max_num_queries(14):
        assert len(owner_client.get(NEW).context["tray"]) == 8
