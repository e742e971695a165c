"""``manage.py reconcile``: PixelByte's job list against the studio's jobs, over the sandbox."""

import logging
import uuid
from datetime import timedelta
from io import StringIO

import pytest
import requests
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from jobs import lifecycle, pricing, reconcile, rollup, spend, submission
from jobs.access import Viewer
from jobs.management.commands.reconcile import Command
from jobs.models import ArchiveStatus, Job, OutsideJob, PriceDrift, SpendMonth, Status
from jobs.pixelbyte import RemoteJob
from sandbox import engine

from .helpers import Reply, make_job, make_user

pytestmark = pytest.mark.django_db

PARAMS = {"prompt": "A glass whale", "quality": "std", "duration": "5", "aspect_ratio": "16:9"}
SLUG = pricing.DEFAULT_MODEL.slug
DAY = 86_400


def submit(owner, prompt="A glass whale", **options):
    """A job the studio sends to the sandbox (no webhook can reach the test studio)."""
    return submission.submit_job(
        user=owner,
        model=pricing.DEFAULT_MODEL,
        params={**PARAMS, **options, "prompt": prompt},
        submission_key=uuid.uuid4(),
    )


def made_elsewhere(studio_server, settings, prompt="Made with the same key elsewhere", **options):
    """A job posted to the sandbox with the studio's key but not by the studio (no webhook)."""
    key = engine.api_key_for(settings.SECRET_KEY)
    answer = requests.post(
        studio_server.sandbox_url + "/v1/jobs/submit",
        json={"model": SLUG, "input": {**PARAMS, **options, "prompt": prompt}},
        headers={"Authorization": f"Bearer {key}"},
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["jobId"]


def age(remote_id, seconds):
    """Pretend the sandbox created this job ``seconds`` ago."""
    engine.SANDBOX.jobs[remote_id].created -= seconds


def today():
    """Today where the command counts its days (DISPLAY_TIME_ZONE)."""
    return timezone.localdate(timezone=reconcile.display_zone())


def run(*args):
    out = StringIO()
    call_command("reconcile", *args, stdout=out)
    return out.getvalue()


def lines_starting_with(output, remote_id):
    return [line for line in output.splitlines() if line.split()[:1] == [remote_id]]


@pytest.fixture
def calm(sandbox, settings):
    """The sandbox, with jobs that stay pending for a while unless a test ages them."""
    settings.SANDBOX_PENDING_SECONDS = 30
    return sandbox


def spend_page(client, user):
    client.force_login(user)
    return client.get(reverse("jobs:spend")).content.decode()


# --- jobs the studio never sent ----------------------------------------------------------------


def test_jobs_made_outside_the_studio_are_listed_one_id_a_line_and_recorded_outside(
    owner, calm, studio_server, settings
):
    ours = submit(owner)
    elsewhere = [made_elsewhere(studio_server, settings) for _ in range(2)]
    age(elsewhere[0], 60)  # completed by now
    output = run()
    for remote_id in elsewhere:
        (line,) = lines_starting_with(output, remote_id)
        assert "(new)" in line
    assert lines_starting_with(output, ours.remote_id) == []
    assert "1 matched, 2 outside the studio (2 new), 0 fixed, 0 drifted." in output
    recorded = {row.remote_id: row for row in OutsideJob.objects.all()}
    assert set(recorded) == set(elsewhere)
    assert recorded[elsewhere[0]].status == "completed" and recorded[elsewhere[0]].completed_at
    assert recorded[elsewhere[1]].model_slug == SLUG


def test_outside_jobs_are_in_no_budget_nor_spend_total(owner, sandbox, studio_server, settings):
    ours = submit(owner)
    for _ in range(3):
        made_elsewhere(studio_server, settings, quality="pro", duration="10")
    run()
    assert Job.objects.count() == 1
    assert rollup.differences() == {}
    months = SpendMonth.objects.filter(owner=owner)
    assert [(m.billed_micro_cents, m.jobs) for m in months] == [(ours.billed_micro_cents, 1)]
    assert Job.objects.spend() == 225_000


def test_a_second_run_changes_nothing(owner, calm, studio_server, settings):
    submit(owner, prompt="Charged more [surcharge]")
    made_elsewhere(studio_server, settings)
    run()
    first_seen = list(OutsideJob.objects.values_list("remote_id", "first_seen_at"))
    drifts = list(PriceDrift.objects.values_list("quality", "duration", "jobs"))
    output = run()
    assert "1 matched, 1 outside the studio (0 new), 0 fixed, 1 drifted." in output
    assert list(OutsideJob.objects.values_list("remote_id", "first_seen_at")) == first_seen
    assert list(PriceDrift.objects.values_list("quality", "duration", "jobs")) == drifts == [("std", 5, 1)]


def test_a_job_an_unsettled_row_may_yet_claim_is_held_back(owner, sandbox, studio_server, settings):
    make_job(owner, status=Status.UNKNOWN)  # its submit answer was lost a moment ago
    remote_id = made_elsewhere(studio_server, settings)
    output = run()
    assert "1 held back" in output and lines_starting_with(output, remote_id) == []
    assert not OutsideJob.objects.exists()


def test_an_outside_job_staff_later_name_as_the_studios_is_outside_no_more(
    owner, calm, studio_server, settings
):
    remote_id = made_elsewhere(studio_server, settings)
    run()
    make_job(owner, remote_id=remote_id)
    output = run()
    assert "1 matched, 0 outside the studio" in output
    assert not OutsideJob.objects.exists()


# --- status differences -----------------------------------------------------------------------------


def test_a_completed_job_the_studio_still_thinks_is_processing_is_fixed_through_the_lifecycle(owner, sandbox):
    job = submit(owner)
    age(job.remote_id, 0.3)
    lifecycle.apply_update(job.pk, RemoteJob(job_id=job.remote_id, status="processing"))
    billed = Job.objects.get(pk=job.pk).billed_micro_cents
    age(job.remote_id, 5)  # PixelByte finished it; no webhook ever reached the studio
    output = run()
    assert f"Fixed video #{job.pk}: processing -> completed" in output
    assert "1 fixed" in output
    job.refresh_from_db()
    assert (job.status, job.progress, job.next_check_at) == (Status.COMPLETED, 100, None)
    assert job.output_url.endswith(f"/sandbox/cdn/{job.remote_id}/video.mp4")
    assert job.outputs[0]["posterImage"].endswith("/poster.jpg") and job.completed_at
    assert job.archive_status == ArchiveStatus.QUEUED
    assert job.billed_micro_cents == billed == 225_000
    assert rollup.differences() == {}
    assert "0 fixed" in run()


def test_a_finished_job_is_never_touched(owner, sandbox):
    job = submit(owner)
    lifecycle.apply_update(job.pk, RemoteJob(job_id=job.remote_id, status="cancelled"))
    age(job.remote_id, 5)  # PixelByte says completed
    output = run()
    assert "0 fixed" in output and "1 finished job(s) disagree" in output
    job.refresh_from_db()
    assert job.status == Status.CANCELLED and job.output_url == ""


def test_a_job_pixelbyte_has_behind_the_studio_is_left_alone(owner, calm):
    job = submit(owner)
    lifecycle.apply_update(job.pk, RemoteJob(job_id=job.remote_id, status="processing"))
    output = run()  # the sandbox still says pending
    job.refresh_from_db()
    assert job.status == Status.PROCESSING and "0 fixed" in output


# --- cost differences ---------------------------------------------------------------------------------


def test_a_charge_other_than_the_catalogs_is_flagged_for_its_option_combination(owner, sandbox):
    job = submit(owner, prompt="A pricier whale [surcharge]", quality="pro", duration="10")
    submit(owner)  # charged as the catalog says
    assert job.api_cost_micro_cents == 742_500 != pricing.DEFAULT_MODEL.cost(job.params) == 675_000
    output = run()
    assert "1 drifted" in output
    assert "Price drift: Pro · 10 s: PixelByte charged $0.7425, the catalog says $0.675 (1 job)" in output
    (drift,) = PriceDrift.objects.all()
    assert (drift.model_slug, drift.quality, drift.duration) == (SLUG, "pro", 10)
    assert (drift.catalog_micro_cents, drift.charged_micro_cents, drift.jobs) == (675_000, 742_500, 1)


def test_with_two_drifting_jobs_staff_see_the_warning_and_a_manager_or_member_see_nothing(
    client, owner, manager, staff, sandbox, studio_server, settings
):
    warning = "Pro · 10 s: PixelByte charged $0.7425, the catalog says $0.675 (2 jobs) — the catalog may be out of date"
    submit(owner, prompt="A pricier whale [surcharge]", quality="pro", duration="10")
    made_elsewhere(studio_server, settings)
    run()
    assert "Price drift" not in spend_page(client, staff)  # one job is not a pattern
    submit(owner, prompt="Another pricier whale [surcharge]", quality="pro", duration="10")
    run()
    page = spend_page(client, staff)
    assert warning in page
    # Dollars and cents, the exact range in the tooltip; the drift above keeps its exact amounts.
    outside = "1 job made outside the studio this month, between $0.23 and $0.68."
    assert f'title="Exactly $0.225 to $0.675">{outside}' in page
    for person in (manager, owner):
        page = spend_page(client, person)
        assert "Price drift" not in page and "outside the studio" not in page


def test_a_corrected_catalog_warns_no_more(owner, staff, sandbox):
    for _ in range(2):
        submit(owner, prompt="A pricier whale [surcharge]")
    run()
    period = spend.period_for("this_month", timezone.localdate(), timezone.get_current_timezone())
    assert len(reconcile.spend_notes(Viewer(staff), period)["drifts"]) == 1
    PriceDrift.objects.update(catalog_micro_cents=200_000)  # compared with an older catalog
    assert reconcile.spend_notes(Viewer(staff), period) == {}


# --- /spend/ ---------------------------------------------------------------------------------------------


def test_staff_see_the_outside_jobs_as_a_separate_line_with_the_range_the_catalog_allows(
    client, owner, staff, calm, studio_server, settings
):
    submit(owner)
    for _ in range(2):
        made_elsewhere(studio_server, settings)
    failed = made_elsewhere(studio_server, settings, prompt="Elsewhere [fail]")
    age(failed, 60)
    run()
    page = spend_page(client, staff)
    expected = "2 jobs made outside the studio this month, between $0.45 and $1.35; 1 more failed or was cancelled (refunded)."
    assert expected in page
    # The studio's own spend only, in dollars and cents (the exact amount in the tooltip).
    assert 'id="stat-total"><span class="money" title="$0.225 exactly (225,000 µ¢)">$0.23<' in page


def test_the_outside_line_links_to_the_admin_list_of_the_period(client, sandbox, studio_server, settings):
    remote_id = made_elsewhere(studio_server, settings)
    old = OutsideJob.objects.create(remote_id="job_long_ago", created_at=timezone.now() - timedelta(days=400))
    run()
    admin = make_user("admin", is_staff=True, is_superuser=True)
    period = spend.period_for("this_month", timezone.localdate(), timezone.get_current_timezone())
    link = reconcile.spend_notes(Viewer(admin), period)["outside"]["url"]
    client.force_login(admin)
    listing = client.get(link)
    assert listing.status_code == 200
    text = listing.content.decode()
    assert remote_id in text and old.remote_id not in text


def test_the_bill_takes_two_queries_and_nothing_for_anyone_but_staff(
    owner, manager, staff, sandbox, studio_server, settings, django_assert_num_queries
):
    made_elsewhere(studio_server, settings)
    for _ in range(2):
        submit(owner, prompt="A pricier whale [surcharge]")
    run()
    period = spend.period_for("this_month", timezone.localdate(), timezone.get_current_timezone())
    with django_assert_num_queries(2):
        notes = reconcile.spend_notes(Viewer(staff), period)
    assert notes["outside"]["count"] == 1 and len(notes["drifts"]) == 1
    for person in (owner, manager):
        with django_assert_num_queries(0):
            assert reconcile.spend_notes(Viewer(person), period) == {}


# --- the window --------------------------------------------------------------------------------------------


def test_since_bounds_the_walk(sandbox, studio_server, settings):
    recent = made_elsewhere(studio_server, settings)
    old = made_elsewhere(studio_server, settings)
    age(old, 40 * DAY)
    since = (today() - timedelta(days=10)).isoformat()
    output = run("--since", since)
    assert lines_starting_with(output, recent) and not lines_starting_with(output, old)
    assert list(OutsideJob.objects.values_list("remote_id", flat=True)) == [recent]
    assert f"Since {since} ({settings.DISPLAY_TIME_ZONE}): 1 job(s) at PixelByte" in output


def test_by_default_the_walk_goes_back_to_the_first_of_last_month(sandbox, studio_server, settings):
    inside, outside = made_elsewhere(studio_server, settings), made_elsewhere(studio_server, settings)
    first_of_last_month = (today().replace(day=1) - timedelta(days=1)).replace(day=1)
    days = (today() - first_of_last_month).days
    age(inside, days * DAY)  # the first of last month, at this time of day
    age(outside, (days + 2) * DAY)
    output = run()
    assert f"Since {first_of_last_month:%Y-%m-%d}" in output
    assert lines_starting_with(output, inside) and not lines_starting_with(output, outside)


def listed(job_id, created_at):
    return {"jobId": job_id, "status": "completed", "model": SLUG, "createdAt": created_at.isoformat()}


def page(*jobs, cursor=None):
    return Reply(body={"jobs": list(jobs), "nextCursor": cursor, "hasMore": cursor is not None})


def test_the_walk_stops_at_the_first_page_older_than_since(fake_api):
    now = timezone.now()
    api = fake_api(
        page(listed("job_new", now), cursor="c1"),
        page(
            listed("job_edge", now - timedelta(days=3)),
            listed("job_old", now - timedelta(days=30)),
            cursor="c2",
        ),
        page(listed("job_older", now - timedelta(days=60))),
    )
    output = run("--since", (today() - timedelta(days=5)).isoformat())
    assert api.count("GET", "/v1/jobs") == 2
    assert (
        "c1" in api.requests[1]["path"] and f"modelId={SLUG.replace('/', '%2F')}" in api.requests[0]["path"]
    )
    assert sorted(OutsideJob.objects.values_list("remote_id", flat=True)) == ["job_edge", "job_new"]
    assert "job_old" not in output


def test_a_cursor_loop_is_an_error_and_changes_nothing(fake_api):
    api = fake_api(page(listed("job_1", timezone.now()), cursor="again"))
    with pytest.raises(CommandError, match="cursor loop"):
        run()
    assert api.count("GET", "/v1/jobs") == 2
    assert not OutsideJob.objects.exists()


# --- errors ---------------------------------------------------------------------------------------------------


def test_an_api_error_mid_way_exits_non_zero_with_a_message_that_keeps_the_key_out(
    fake_api, settings, capsys, monkeypatch
):
    fake_api(
        page(listed("job_1", timezone.now()), cursor="c1"),
        Reply(status=401, body={"error": {"code": "INVALID_API_KEY", "message": "bad key"}}),
    )
    # As from a shell, but keeping the test's database connection open afterwards.
    monkeypatch.setattr("django.core.management.base.connections.close_all", lambda: None)
    with pytest.raises(SystemExit) as exit:
        Command().run_from_argv(["manage.py", "reconcile", "--skip-checks"])
    assert exit.value.code != 0
    err = capsys.readouterr().err
    assert "PixelByte does not recognise the studio's API key" in err
    assert settings.PIXELBYTE_API_KEY not in err and len(err.strip().splitlines()) == 1
    assert not OutsideJob.objects.exists()


def test_an_error_reading_a_job_back_is_an_error_too(owner, fake_api):
    job = make_job(owner, remote_id="job_1", status=Status.PROCESSING)
    fake_api(
        page({**listed("job_1", timezone.now()), "status": "completed"}),
        Reply(status=404, body={"error": {"code": "JOB_NOT_FOUND", "message": "gone"}}),
    )
    with pytest.raises(CommandError, match="PixelByte does not know this job."):
        run()
    job.refresh_from_db()
    assert job.status == Status.PROCESSING


@pytest.mark.parametrize("value", ["2026-13-01", "yesterday", "01/03/2026", "2026-3-1", "", "9999-01-01"])
def test_a_bad_since_is_a_clear_error(value, db):
    with pytest.raises(CommandError, match=r"YYYY-MM-DD|in the future"):
        run("--since", value)


# --- the worker's daily run --------------------------------------------------------------------------------------


def test_run_daily_runs_once_a_day(sandbox, studio_server, settings, caplog):
    made_elsewhere(studio_server, settings)
    caplog.set_level(logging.INFO, logger="jobs.reconcile")
    result = reconcile.run_daily()
    assert len(result.outside) == 1 and "daily reconcile: Since" in caplog.text
    made_elsewhere(studio_server, settings)
    assert reconcile.run_daily() is None  # the same day, from this worker or another
    assert OutsideJob.objects.count() == 1
    cache.delete(reconcile.DAILY_KEY)  # a day later
    assert len(reconcile.run_daily().outside) == 2


def test_run_daily_logs_an_api_error_never_raises_and_tries_again_later(fake_api, settings, caplog):
    api = fake_api(Reply(status=401, body={"error": {"code": "INVALID_API_KEY", "message": "bad key"}}))
    assert reconcile.run_daily() is None
    assert "could not read PixelByte" in caplog.text and settings.PIXELBYTE_API_KEY not in caplog.text
    assert reconcile.run_daily() is None
    assert api.count("GET", "/v1/jobs") == 1  # not again on every pass of the worker


def test_run_daily_waits_while_pixelbyte_asked_every_caller_to_wait(fake_api):
    from jobs import throttle

    api = fake_api(page())
    throttle.pause(30)
    assert reconcile.run_daily() is None
    assert api.count("GET", "/v1/jobs") == 0
    cache.delete(throttle.PAUSE_KEY)
    assert reconcile.run_daily() is not None
