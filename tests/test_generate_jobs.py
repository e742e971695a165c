"""manage.py generate_jobs: made-up data that looks like a real team's year."""

import io
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db.models import Count
from django.test import Client
from django.utils import timezone

from jobs import pricing
from jobs.models import IN_FLIGHT, Job, Profile, Role, Status, Team


@pytest.fixture
def generated(db):
    call_command("generate_jobs", jobs=600, teams=3, people=12, in_flight=20, seed=7, stdout=io.StringIO())


def test_it_makes_teams_people_and_every_kind_of_job(generated):
    assert Job.objects.count() == 600
    assert Team.objects.count() == 3
    assert Profile.objects.filter(role=Role.MANAGER).count() == 3
    assert Profile.objects.filter(team=None).exists()  # someone works alone
    statuses = set(Job.objects.values_list("status", flat=True))
    assert {Status.COMPLETED, Status.FAILED, Status.PENDING, Status.PROCESSING} <= statuses
    assert Job.objects.filter(status__in=IN_FLIGHT).count() == 20
    oldest = Job.objects.order_by("created_at").first().created_at
    assert timezone.now() - oldest > timedelta(days=300)


def test_prices_and_charges_follow_the_catalog(generated):
    for job in Job.objects.all()[:200]:
        assert job.estimated_micro_cents == pricing.DEFAULT_MODEL.cost(job.params)
        assert job.team_id == getattr(Profile.objects.get(user=job.owner).team, "pk", None)
        if job.status == Status.COMPLETED:
            assert job.output_url.startswith("https://") and job.completed_at >= job.created_at
        if job.status == Status.REFUSED:
            assert job.remote_id is None and job.billed_micro_cents == 0


def test_a_few_people_make_most_of_the_videos(generated):
    counts = list(
        Job.objects.values("owner").annotate(n=Count("id")).order_by("-n").values_list("n", flat=True)
    )
    assert counts[0] > 3 * counts[len(counts) // 2]


def test_people_can_sign_in_and_see_their_history(generated):
    client = Client()
    assert client.login(username="gen-001", password="kling-demo")
    newest = Job.objects.filter(owner__username="gen-001").order_by("-created_at").first()
    page = client.get("/jobs/")
    assert page.status_code == 200
    assert f'href="{newest.get_absolute_url()}"' in page.content.decode()


def test_the_same_names_twice_is_a_clear_error_and_adds_nothing(generated):
    with pytest.raises(CommandError, match="already exist"):
        call_command("generate_jobs", jobs=10, stdout=io.StringIO())
    assert Job.objects.count() == 600
    assert get_user_model().objects.filter(username__startswith="gen-").count() == 12
