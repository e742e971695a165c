"""manage.py generate_jobs: made-up data that looks like a real team's year.

On PostgreSQL the jobs are written by one INSERT … SELECT (``make test-postgres`` runs
these tests there too); elsewhere as Python objects. Both must make the same kind of jobs.
"""

import io
import random
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Count
from django.test import Client
from django.utils import timezone

from jobs import pricing, rollup
from jobs.management.commands.generate_jobs import Command
from jobs.models import IN_FLIGHT, Job, Profile, Role, SpendMonth, Status, Team

# Every status the generator makes: a year of settled jobs and this week's unfinished ones.
GENERATED = {
    Status.COMPLETED,
    Status.FAILED,
    Status.CANCELLED,
    Status.REFUSED,
    Status.PENDING,
    Status.PROCESSING,
    Status.UNKNOWN,
}
on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the bulk SQL path is PostgreSQL's: run `make test-postgres`"
)


def generate(**options):
    out = io.StringIO()
    call_command(
        "generate_jobs", **{"jobs": 600, "teams": 3, "people": 12, "in_flight": 20, **options}, stdout=out
    )
    return out.getvalue()


@pytest.fixture
def generated(db):
    generate(seed=7)


def test_it_makes_teams_people_and_every_kind_of_job(generated):
    assert Job.objects.count() == 600
    assert Team.objects.count() == 3
    assert Profile.objects.filter(role=Role.MANAGER).count() == 3
    assert Profile.objects.filter(team=None).exists()  # someone works alone
    assert set(Job.objects.values_list("status", flat=True)) == GENERATED
    assert Job.objects.filter(status__in=IN_FLIGHT).count() == 20
    oldest = Job.objects.order_by("created_at").first().created_at
    assert timezone.now() - oldest > timedelta(days=300)


def test_it_makes_the_number_of_jobs_asked_for_in_teams_and_alone(db):
    said = generate(jobs=2345, in_flight=45, seed=3)
    assert Job.objects.count() == 2345
    assert Job.objects.filter(status__in=IN_FLIGHT).count() == 45
    assert Job.objects.filter(team=None).exists() and Job.objects.exclude(team=None).exists()
    assert set(Job.objects.values_list("status", flat=True)) == GENERATED
    assert "2,345 jobs" in said and "spend rollup rebuilt in" in said


def test_prices_and_charges_follow_the_catalog(generated):
    for job in Job.objects.all()[:200]:
        assert job.estimated_micro_cents == pricing.DEFAULT_MODEL.cost(job.params)
        assert job.params["prompt"] == job.prompt and int(job.params["duration"]) == job.duration
        assert job.params.get("seed") == job.seed
        assert job.team_id == getattr(Profile.objects.get(user=job.owner).team, "pk", None)
        if job.status == Status.COMPLETED:
            assert job.output_url.startswith("https://") and job.completed_at >= job.created_at
            assert job.outputs == {"video_url": job.output_url} and job.progress == 100
        if job.status == Status.REFUSED:
            assert job.remote_id is None and job.billed_micro_cents == 0 and job.error_code
        if job.status in (Status.FAILED, Status.CANCELLED):
            assert job.refunded_micro_cents == job.api_cost_micro_cents == job.estimated_micro_cents
        if job.status in IN_FLIGHT:
            assert job.next_check_at is not None and job.completed_at is None


def test_the_spend_rollup_equals_the_jobs_afterwards(generated):
    assert SpendMonth.objects.exists()
    assert rollup.differences() == {}


def test_the_same_seed_makes_the_same_jobs(db):
    generate(seed=11)
    first = _made()
    _forget_everyone()
    generate(seed=11)
    assert _made() == first
    _forget_everyone()
    generate(seed=12)
    assert _made() != first


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


@on_postgres
def test_on_postgresql_the_jobs_are_written_in_sql_and_the_table_keeps_every_index(db):
    before = _indexes_and_constraints()
    said = generate(seed=5)
    assert "written in SQL" in said
    assert _indexes_and_constraints() == before


@on_postgres
def test_both_paths_fill_the_same_columns_for_each_status(db):
    generate(seed=5)
    in_sql = _shapes(Job.objects.all())
    people = [
        (p.user, p.team) for p in Profile.objects.select_related("user", "team").order_by("user__username")
    ]
    options = {"jobs": 600, "in_flight": 20, "days": 365}
    Command()._jobs(random.Random(5), people, timezone.now(), options)
    rollup.rebuild()  # rows written behind the lifecycle's back, as the command itself does
    in_python = _shapes(Job.objects.order_by("-pk")[:600])
    assert in_sql == in_python


# --- helpers ------------------------------------------------------------------------------


def _made():
    """The generated jobs, comparable between two runs: people and teams by name, times
    relative to the newest job (each run draws back from its own "now"), the webhook token
    left out (the Python path takes the model's random default)."""
    jobs = list(Job.objects.select_related("owner", "team").order_by("pk"))
    newest = max(job.created_at for job in jobs)
    skipped = {"id", "owner_id", "team_id", "webhook_token"}
    rows = []
    for job in jobs:
        row = {
            f.attname: getattr(job, f.attname) for f in Job._meta.concrete_fields if f.attname not in skipped
        }
        for name, value in row.items():
            if hasattr(value, "tzinfo"):
                row[name] = value - newest
        rows.append((job.owner.username, getattr(job.team, "name", None), row))
    return rows


def _forget_everyone():
    Job.objects.all().delete()
    get_user_model().objects.all().delete()
    Team.objects.all().delete()
    if connection.vendor == "postgresql":
        # The deletes' deferred checks would still be pending in the test's transaction, and
        # PostgreSQL alters no table with pending checks: run them now.
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def _shapes(jobs):
    """For each status, which columns are empty (None, "" or 0) and which are filled."""
    found = {}
    for job in jobs:
        shape = frozenset(
            f.attname for f in Job._meta.concrete_fields if getattr(job, f.attname) in (None, "", 0)
        )
        # A seed, a project and a team are drawn (or not) whatever the status.
        found.setdefault(job.status, set()).add(shape - {"seed", "project", "team_id"})
    return found


def _indexes_and_constraints():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = %s "
            "UNION ALL SELECT conname || ' ' || pg_get_constraintdef(oid) || ' ' || convalidated "
            "FROM pg_constraint WHERE conrelid = %s::regclass ORDER BY 1",
            [Job._meta.db_table, Job._meta.db_table],
        )
        return [row[0] for row in cursor.fetchall()]
