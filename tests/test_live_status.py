"""The status JSON the pages poll: cheap, small, and only the person's own jobs."""

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from jobs.models import Status

from .helpers import make_job

STATUSES = reverse("jobs:statuses")


def test_it_reports_my_jobs_in_one_query_whatever_their_number(
    owner_client, owner, django_assert_num_queries
):
    one = make_job(owner)
    # session, user, then the jobs themselves (who may see them is part of that query)
    with django_assert_num_queries(3):
        owner_client.get(STATUSES, {"ids": str(one.pk)})
    many = [make_job(owner) for _ in range(50)]
    with django_assert_num_queries(3):
        response = owner_client.get(STATUSES, {"ids": ",".join(str(j.pk) for j in many)})
    assert len(response.json()["jobs"]) == 50


def test_it_leaves_out_other_peoples_jobs(owner_client, owner, outsider):
    mine, theirs = make_job(owner), make_job(outsider)
    data = owner_client.get(STATUSES, {"ids": f"{mine.pk},{theirs.pk}"}).json()
    assert [j["id"] for j in data["jobs"]] == [mine.pk]


def test_a_single_job_status_is_404_for_an_outsider(client, owner, outsider):
    job = make_job(owner)
    client.force_login(outsider)
    assert client.get(reverse("jobs:status", args=[job.pk])).status_code == 404
    client.force_login(owner)
    assert client.get(reverse("jobs:status", args=[job.pk])).json()["status"] == "pending"


def test_it_needs_a_signed_in_user(client, owner):
    job = make_job(owner)
    assert client.get(STATUSES, {"ids": str(job.pk)}).status_code == 302


def test_garbage_ids_are_ignored(owner_client):
    assert owner_client.get(STATUSES, {"ids": "1,abc,,-3,9999999999999999999999"}).json()["jobs"] == []


def test_a_completed_job_carries_its_video_and_charge(owner_client, owner):
    job = make_job(
        owner,
        status=Status.COMPLETED,
        output_url="https://cdn.example/v.mp4",
        poster_url="https://cdn.example/p.jpg",
        api_cost_micro_cents=337_500,
    )
    data = owner_client.get(reverse("jobs:status", args=[job.pk])).json()
    assert data["video"] == "https://cdn.example/v.mp4" and data["poster"] == "https://cdn.example/p.jpg"
    assert (data["inFlight"], data["progress"], data["charge"], data["charged"]) == (
        False,
        100,
        "$0.3375",
        True,
    )


def test_a_failed_job_is_never_shown_as_running_and_says_it_was_not_charged(owner_client, owner):
    job = make_job(owner, status=Status.FAILED, error_message="Model inference failed")
    data = owner_client.get(reverse("jobs:status", args=[job.pk])).json()
    assert (data["inFlight"], data["charged"], data["charge"]) == (False, False, "$0.00")
    page = owner_client.get(job.get_absolute_url()).content.decode()
    assert "nothing was charged" in page


def test_a_late_job_is_slow_and_a_very_late_one_is_stuck(owner_client, owner):
    now = timezone.now()
    slow = make_job(
        owner, submitted_at=now - timedelta(seconds=200), estimated_completion_at=now - timedelta(seconds=20)
    )
    stuck = make_job(
        owner, submitted_at=now - timedelta(seconds=600), estimated_completion_at=now - timedelta(seconds=420)
    )
    data = {j["id"]: j for j in owner_client.get(STATUSES, {"ids": f"{slow.pk},{stuck.pk}"}).json()["jobs"]}
    assert (data[slow.pk]["slow"], data[slow.pk]["stuck"]) == (True, False)
    assert (data[stuck.pk]["slow"], data[stuck.pk]["stuck"]) == (True, True)
    page = owner_client.get(stuck.get_absolute_url()).content.decode()
    assert "Stuck — still checking" in page
    assert "far longer than usual" in page


def test_the_status_json_escapes_nothing_it_should_not_carry(owner_client, owner):
    job = make_job(owner, error_message="<script>alert(1)</script>", status=Status.FAILED)
    response = owner_client.get(reverse("jobs:status", args=[job.pk]))
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "<script>alert(1)</script>"
    page = owner_client.get(job.get_absolute_url()).content.decode()
    assert "<script>alert(1)</script>" not in page
