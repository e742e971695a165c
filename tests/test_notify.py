"""Finished while you were away: the endpoint every page asks (access, what it answers, its
queries), the preferences page, and the email when a long job ends (only if asked for)."""

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from jobs import lifecycle, notify, outbox
from jobs.models import OutgoingMessage, Profile, Status
from jobs.pixelbyte import RemoteJob

from .helpers import make_job, make_member

FINISHED = reverse("jobs:finished")


def ended(owner, status=Status.COMPLETED, at=None, **fields):
    """A job of ``owner``'s that ended (the lifecycle's stamp ``at``, default now)."""
    at = at or timezone.now()
    return make_job(
        owner,
        team=getattr(getattr(owner, "profile", None), "team", None),
        status=status,
        completed_at=at,
        updated_at=at,
        **fields,
    )


def ask(client, since):
    return client.get(FINISHED, {"since": since.isoformat()})


# --- the endpoint --------------------------------------------------------------------------


def test_a_signed_out_visitor_is_sent_to_sign_in(client, db):
    response = client.get(FINISHED)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_the_first_question_learns_only_the_servers_time(owner_client, owner, django_assert_num_queries):
    ended(owner)
    with django_assert_num_queries(2):  # the session and the user: no job is read
        response = owner_client.get(FINISHED)
    data = response.json()
    assert data["jobs"] == [] and abs(
        timezone.datetime.fromisoformat(data["serverTime"]) - timezone.now()
    ) < timedelta(seconds=5)
    assert response["Cache-Control"] == "private, no-store"


def test_it_names_the_persons_own_jobs_that_ended_since(owner_client, owner, team):
    start = timezone.now() - timedelta(minutes=5)
    before = ended(owner, at=start - timedelta(seconds=1))
    ready = ended(owner, at=start + timedelta(seconds=10), prompt="A red kite over a hill " * 6)
    failed = ended(owner, Status.FAILED, at=start + timedelta(seconds=20))
    make_job(owner, team=team, status=Status.PROCESSING, updated_at=start + timedelta(seconds=30))
    ended(owner, Status.CANCELLED, at=start + timedelta(seconds=40))
    jobs = ask(owner_client, start).json()["jobs"]
    assert [job["id"] for job in jobs] == [failed.pk, ready.pk]
    assert before.pk not in [job["id"] for job in jobs]
    first = jobs[1]
    assert first["status"] == "completed" and first["label"] == f"Video #{ready.pk} is ready"
    assert first["url"] == ready.get_absolute_url() and first["prompt"].endswith("…")
    assert len(first["prompt"]) == notify.PROMPT_CHARS
    assert jobs[0]["label"] == f"Video #{failed.pk} failed"


def test_a_manager_hears_only_of_their_own_jobs_not_the_teams(client, owner, manager):
    start = timezone.now() - timedelta(minutes=1)
    ended(owner)
    mine = ended(manager)
    client.force_login(manager)
    assert [job["id"] for job in ask(client, start).json()["jobs"]] == [mine.pk]


@pytest.mark.parametrize("who", ["teammate", "outsider", "staff"])
def test_nobody_hears_of_someone_elses_jobs(client, owner, who, request):
    ended(owner)
    client.force_login(request.getfixturevalue(who))
    assert ask(client, timezone.now() - timedelta(minutes=1)).json()["jobs"] == []


def test_a_question_costs_one_query_for_the_jobs_whoever_asks(
    client, owner, manager, staff, loner, django_assert_num_queries
):
    for person in (owner, manager, staff, loner):
        for _ in range(3):
            ended(person)
        client.force_login(person)
        with django_assert_num_queries(3):  # the session, the user, the jobs
            assert len(ask(client, timezone.now() - timedelta(minutes=1)).json()["jobs"]) == 3


def test_at_most_an_hour_back_and_twenty_jobs_are_answered(owner_client, owner):
    old = ended(owner, at=timezone.now() - timedelta(hours=2))
    for _ in range(notify.MAX_JOBS + 2):
        ended(owner)
    jobs = ask(owner_client, timezone.now() - timedelta(days=3)).json()["jobs"]
    assert len(jobs) == notify.MAX_JOBS and old.pk not in [job["id"] for job in jobs]


@pytest.mark.parametrize("since", ["yesterday", "2025-01-01T00:00:00", "9" * 500, ""])
def test_an_unreadable_or_naive_since_is_a_first_question(owner_client, owner, since):
    ended(owner)
    response = owner_client.get(FINISHED, {"since": since})
    assert response.status_code == 200 and response.json()["jobs"] == []


def test_an_offset_whose_plus_arrived_as_a_space_still_reads(owner_client, owner):
    job = ended(owner)
    since = (timezone.now() - timedelta(minutes=1)).isoformat()
    response = owner_client.get(FINISHED + "?since=" + since.replace("+", " "))
    assert [j["id"] for j in response.json()["jobs"]] == [job.pk]


def test_the_lifecycle_stamps_the_moment_the_studio_learned_of_the_end(owner_client, owner, team):
    """PixelByte's completedAt may be long past when the studio hears of it: still announced."""
    job = make_job(owner, team=team, status=Status.PROCESSING, remote_id="job_late")
    start = timezone.now()
    long_ago = start - timedelta(hours=3)
    lifecycle.apply_update(job.pk, RemoteJob(job_id="job_late", status="completed", completed_at=long_ago))
    assert [j["id"] for j in ask(owner_client, start).json()["jobs"]] == [job.pk]


# --- the preferences page -------------------------------------------------------------------


def test_the_top_bar_links_the_persons_name_to_their_preferences(owner_client):
    shown = owner_client.get(reverse("jobs:list")).content.decode()
    assert f'href="{reverse("jobs:account")}"' in shown and ">owner</a>" in shown
    assert f'data-finished-url="{FINISHED}"' in shown


def test_a_person_turns_the_long_job_email_on_and_off(owner_client, owner):
    owner.email = "owner@example.com"
    owner.save()
    shown = owner_client.get(reverse("jobs:account")).content.decode()
    assert "longer than 10 minutes" in shown and "owner@example.com" in shown
    assert "data-notify-permission" in shown
    response = owner_client.post(reverse("jobs:account"), {"mail_long_jobs": "on"})
    assert response.status_code == 302 and Profile.objects.get(user=owner).mail_long_jobs
    assert "checked" in owner_client.get(reverse("jobs:account")).content.decode()
    owner_client.post(reverse("jobs:account"), {})
    assert not Profile.objects.get(user=owner).mail_long_jobs


def test_someone_without_a_profile_gets_one_in_no_team(client, loner):
    loner.email = "loner@example.com"
    loner.save()
    client.force_login(loner)
    client.post(reverse("jobs:account"), {"mail_long_jobs": "on"})
    profile = Profile.objects.get(user=loner)
    assert profile.mail_long_jobs and profile.team is None and profile.monthly_budget_micro_cents is None


def test_without_an_address_the_page_says_so_and_offers_no_email(owner_client):
    shown = owner_client.get(reverse("jobs:account")).content.decode()
    assert "has no email address" in shown and 'name="mail_long_jobs"' not in shown


# --- the long-job email -----------------------------------------------------------------------


@pytest.fixture
def opted_in(owner):
    owner.email = "owner@example.com"
    owner.save()
    Profile.objects.filter(user=owner).update(mail_long_jobs=True)
    return owner


def running(owner, minutes, **fields):
    started = timezone.now() - timedelta(minutes=minutes)
    return make_job(
        owner,
        team=owner.profile.team,
        status=Status.PROCESSING,
        remote_id=f"job_{minutes}_{fields.pop('tag', 'a')}",
        created_at=started,
        submitted_at=started,
        **fields,
    )


def end(job, status=Status.COMPLETED, capture=None, **fields):
    with capture(execute=True):
        lifecycle.apply_update(
            job.pk, RemoteJob(job_id=job.remote_id, status=status, completed_at=timezone.now(), **fields)
        )


def test_a_job_over_ten_minutes_emails_its_owner_once_when_asked(
    opted_in, django_capture_on_commit_callbacks, settings
):
    settings.PUBLIC_BASE_URL = "https://studio.example.com"
    job = running(opted_in, 14, prompt="A heron landing on a misty lake")
    end(job, capture=django_capture_on_commit_callbacks)
    message = OutgoingMessage.objects.get()
    assert message.recipients == ["owner@example.com"]
    assert message.subject == f"Your video #{job.pk} is ready"
    assert f"Your video #{job.pk} is ready. It took 14 minutes." in message.body
    assert "Prompt: A heron landing on a misty lake" in message.body
    assert f"https://studio.example.com/jobs/{job.pk}/" in message.body
    assert "https://studio.example.com/account/" in message.body
    # The same end heard again (a webhook after the poll) changes nothing and mails nothing.
    end(job, capture=django_capture_on_commit_callbacks)
    assert OutgoingMessage.objects.count() == 1
    # The worker delivers it.
    assert outbox.deliver_due() == 1
    assert [m.subject for m in mail.outbox] == [f"Your video #{job.pk} is ready"]


def test_a_failed_long_job_emails_too_and_says_it_was_not_charged(
    opted_in, django_capture_on_commit_callbacks
):
    job = running(opted_in, 25)
    end(
        job,
        Status.FAILED,
        capture=django_capture_on_commit_callbacks,
        error_message="The prompt was refused.",
    )
    message = OutgoingMessage.objects.get()
    assert message.subject == f"Your video #{job.pk} failed"
    assert "failed after 25 minutes. The prompt was refused. Failed videos are not charged." in message.body


def test_a_job_of_ten_minutes_or_less_sends_nothing(opted_in, django_capture_on_commit_callbacks):
    end(running(opted_in, 9), capture=django_capture_on_commit_callbacks)
    assert not OutgoingMessage.objects.exists()


def test_nothing_is_sent_to_someone_who_did_not_ask(owner, django_capture_on_commit_callbacks):
    owner.email = "owner@example.com"
    owner.save()
    end(running(owner, 30), capture=django_capture_on_commit_callbacks)
    assert not OutgoingMessage.objects.exists()


def test_nothing_is_sent_without_an_address_or_for_a_cancelled_job(
    opted_in, django_capture_on_commit_callbacks
):
    end(running(opted_in, 30, tag="c"), Status.CANCELLED, capture=django_capture_on_commit_callbacks)
    opted_in.email = ""
    opted_in.save()
    end(running(opted_in, 30, tag="d"), capture=django_capture_on_commit_callbacks)
    assert not OutgoingMessage.objects.exists()


def test_someone_in_no_team_is_emailed_too(db, django_capture_on_commit_callbacks):
    person = make_member("solo", None, mail_long_jobs=True)
    person.email = "solo@example.com"
    person.save()
    end(running(person, 12), capture=django_capture_on_commit_callbacks)
    assert OutgoingMessage.objects.get().recipients == ["solo@example.com"]
