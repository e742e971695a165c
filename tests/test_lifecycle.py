"""The one state machine, as a table of (stored state, update) → result."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from jobs.lifecycle import Outcome, apply_update, next_check_at
from jobs.models import Job, Status
from jobs.pixelbyte import RemoteJob

from .helpers import make_job

VIDEO = "https://cdn.example/outputs/job_1/output_0.mp4"
DONE_AT = datetime(2026, 2, 18, 15, 2, 30, tzinfo=UTC)


def Update(status, remote_id="", **details):  # noqa: N802 - reads like the record it builds
    """What PixelByte says about a job, as the client hands it over."""
    return RemoteJob(job_id=remote_id, status=status, **details)


TABLE = [
    # stored,            update,                             outcome,            status after
    (Status.SUBMITTING, Update("pending"), Outcome.APPLIED, Status.PENDING),
    (Status.UNKNOWN, Update("processing"), Outcome.APPLIED, Status.PROCESSING),
    (Status.UNKNOWN, Update("completed", output_url=VIDEO), Outcome.APPLIED, Status.COMPLETED),
    (Status.PENDING, Update("processing"), Outcome.APPLIED, Status.PROCESSING),
    (Status.PENDING, Update("completed", output_url=VIDEO), Outcome.APPLIED, Status.COMPLETED),
    (Status.PENDING, Update("cancelled"), Outcome.APPLIED, Status.CANCELLED),
    (Status.PROCESSING, Update("completed", output_url=VIDEO), Outcome.APPLIED, Status.COMPLETED),
    (Status.PROCESSING, Update("failed", error_code="INTERNAL_ERROR"), Outcome.APPLIED, Status.FAILED),
    (Status.PROCESSING, Update("pending"), Outcome.STALE, Status.PROCESSING),
    (Status.PENDING, Update("pending"), Outcome.UNCHANGED, Status.PENDING),
    (Status.PROCESSING, Update("processing"), Outcome.UNCHANGED, Status.PROCESSING),
    (Status.COMPLETED, Update("processing"), Outcome.STALE, Status.COMPLETED),
    (Status.COMPLETED, Update("pending"), Outcome.STALE, Status.COMPLETED),
    (Status.COMPLETED, Update("failed"), Outcome.STALE, Status.COMPLETED),
    (Status.FAILED, Update("completed", output_url=VIDEO), Outcome.STALE, Status.FAILED),
    (Status.CANCELLED, Update("processing"), Outcome.STALE, Status.CANCELLED),
    (Status.REFUSED, Update("pending"), Outcome.STALE, Status.REFUSED),
    (Status.PENDING, Update("exploded"), Outcome.INVALID, Status.PENDING),
    (Status.PENDING, Update(""), Outcome.INVALID, Status.PENDING),
]


@pytest.mark.parametrize(("stored", "update", "outcome", "after"), TABLE)
def test_the_state_machine(owner, stored, update, outcome, after):
    job = make_job(owner, status=stored, remote_id="job_1")
    _, got = apply_update(job.pk, update)
    job.refresh_from_db()
    assert (got, job.status) == (outcome, after)


@pytest.mark.parametrize(("stored", "update", "outcome", "after"), TABLE)
def test_applying_the_same_update_twice_is_a_no_op(owner, stored, update, outcome, after):
    job = make_job(owner, status=stored, remote_id="job_1")
    apply_update(job.pk, update)
    before = Job.objects.filter(pk=job.pk).values().get()
    _, second = apply_update(job.pk, update)
    assert second in (Outcome.UNCHANGED, Outcome.STALE, Outcome.INVALID)
    assert Job.objects.filter(pk=job.pk).values().get() == before


def test_a_completion_stores_outputs_progress_and_time(owner):
    job = make_job(owner, status=Status.PROCESSING, remote_id="job_1", progress=50)
    update = Update(
        "completed",
        progress=100,
        output_url=VIDEO,
        thumbnail_url="https://cdn.example/t.jpg",
        poster_url="https://cdn.example/p.jpg",
        outputs=[{"url": VIDEO, "type": "video"}],
        completed_at=DONE_AT,
    )
    apply_update(job.pk, update)
    job.refresh_from_db()
    assert (job.output_url, job.thumbnail_url, job.poster_url) == (
        VIDEO,
        "https://cdn.example/t.jpg",
        "https://cdn.example/p.jpg",
    )
    assert job.outputs == [{"url": VIDEO, "type": "video"}]
    assert (job.progress, job.completed_at) == (100, DONE_AT)
    assert job.next_check_at is None


def test_a_failure_stores_the_error_and_counts_as_zero_spend(owner):
    job = make_job(owner, status=Status.PENDING, remote_id="job_1", api_cost_micro_cents=225_000)
    apply_update(
        job.pk, Update("failed", error_code="INTERNAL_ERROR", error_message="Model inference failed")
    )
    job.refresh_from_db()
    assert (job.error_code, job.error_message) == ("INTERNAL_ERROR", "Model inference failed")
    assert job.billed_micro_cents == 0 and not job.was_charged
    assert Job.objects.filter(pk=job.pk).spend() == 0


def test_a_later_read_fills_in_outputs_a_webhook_did_not_carry(owner):
    job = make_job(owner, status=Status.PROCESSING, remote_id="job_1")
    apply_update(job.pk, Update("completed"))
    _, outcome = apply_update(
        job.pk, Update("completed", output_url=VIDEO, poster_url="https://cdn.example/p.jpg")
    )
    job.refresh_from_db()
    assert outcome == Outcome.FILLED
    assert job.output_url == VIDEO


def test_filling_never_overwrites_what_is_stored(owner):
    job = make_job(owner, status=Status.COMPLETED, remote_id="job_1", output_url=VIDEO)
    _, outcome = apply_update(job.pk, Update("completed", output_url="https://evil.example/x.mp4"))
    job.refresh_from_db()
    assert (outcome, job.output_url) == (Outcome.UNCHANGED, VIDEO)


def test_progress_never_goes_backwards(owner):
    job = make_job(owner, status=Status.PROCESSING, remote_id="job_1", progress=50)
    apply_update(job.pk, Update("processing", progress=0))
    job.refresh_from_db()
    assert job.progress == 50


def test_processing_records_when_work_started(owner):
    job = make_job(owner, status=Status.PENDING, remote_id="job_1")
    now = timezone.now()
    apply_update(job.pk, Update("processing"), now=now)
    job.refresh_from_db()
    assert job.started_at == now


def test_an_unknown_outcome_learns_its_remote_id_from_an_update(owner):
    job = make_job(owner, status=Status.UNKNOWN)
    apply_update(job.pk, Update("pending", remote_id="job_found"))
    job.refresh_from_db()
    assert (job.status, job.remote_id) == (Status.PENDING, "job_found")


def test_young_jobs_are_checked_often_and_old_ones_rarely(owner):
    now = timezone.now()
    young = make_job(owner, remote_id="job_y", submitted_at=now - timedelta(seconds=5))
    old = make_job(owner, remote_id="job_o", submitted_at=now - timedelta(hours=2))
    done = make_job(owner, remote_id="job_d", status=Status.COMPLETED, submitted_at=now)
    assert next_check_at(young, now) == now + timedelta(seconds=3)
    assert next_check_at(old, now) == now + timedelta(seconds=60)
    assert next_check_at(done, now) is None


def test_slow_and_stuck_follow_the_estimate(owner):
    now = timezone.now()
    job = make_job(
        owner,
        remote_id="job_1",
        submitted_at=now - timedelta(seconds=100),
        estimated_completion_at=now - timedelta(seconds=100) + timedelta(seconds=60),
    )
    assert job.is_slow(now) and not job.is_stuck(now)
    assert job.is_stuck(now + timedelta(seconds=81))
    job.status = Status.FAILED
    assert not job.is_slow(now) and not job.is_stuck(now + timedelta(hours=1))


# --- a webhook can overtake the submit answer (its URL carries the job's token) --------------


def test_a_webhook_that_overtakes_the_submit_answer_is_not_undone_by_it(owner):
    from jobs import pixelbyte, submission

    job = make_job(owner, status=Status.SUBMITTING)
    apply_update(job.pk, Update("failed", remote_id="job_9", error_code="INTERNAL_ERROR"))
    answer = pixelbyte.Submitted("job_9", "req_9", "pending", 225_000, None)
    submission.settle_success(job, answer)
    job.refresh_from_db()
    assert (job.status, job.error_code, job.remote_id, job.billed_micro_cents) == (
        Status.FAILED,
        "INTERNAL_ERROR",
        "job_9",
        0,
    )
    assert job.request_id == "req_9" and job.submitted_at is not None


def test_a_lost_answer_after_a_webhook_does_not_lose_the_video(owner):
    from jobs import pixelbyte, submission

    job = make_job(owner, status=Status.SUBMITTING)
    apply_update(job.pk, Update("completed", remote_id="job_9", output_url=VIDEO))
    submission.settle_error(job, pixelbyte.NoAnswer("PixelByte did not answer"))
    job.refresh_from_db()
    assert (job.status, job.remote_id, job.output_url) == (Status.COMPLETED, "job_9", VIDEO)


# --- one writer -----------------------------------------------------------------------------

GUARDED = {"status", "api_cost_micro_cents", "refunded_micro_cents"}


def _writes_to_guarded_fields(tree):
    """Places that set a job's status or money: ``.update(status=…)``, ``x.status = …``,
    ``save(update_fields=[…"status"…])``."""
    import ast

    for node in ast.walk(tree):
        is_update = isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("update", "bulk_update")
        if is_update and any(k.arg in GUARDED for k in node.keywords):
            yield node.lineno
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for part in ast.walk(target):
                    if isinstance(part, ast.Attribute) and part.attr in GUARDED:
                        yield node.lineno
        if isinstance(node, ast.keyword) and node.arg == "update_fields":
            names = {c.value for c in ast.walk(node.value) if isinstance(c, ast.Constant)}
            if names & GUARDED:
                yield node.value.lineno


def test_nothing_but_the_lifecycle_writes_a_jobs_status_or_money():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "jobs"
    # Rows are created (not moved) with a status by the record step and the data generator.
    allowed = {"lifecycle.py", "generate_jobs.py"}
    found = []
    for path in sorted(root.rglob("*.py")):
        if "migrations" in path.parts or path.name in allowed:
            continue
        found += [
            f"{path.relative_to(root)}:{line}"
            for line in _writes_to_guarded_fields(ast.parse(path.read_text()))
        ]
    assert found == []


def test_the_guard_finds_a_writer_where_there_is_one():
    import ast

    for source in (
        "Job.objects.filter(pk=1).update(status='refused')",
        "job.status = 'completed'",
        "job.refunded_micro_cents += 5",
        "job.save(update_fields=['api_cost_micro_cents'])",
    ):
        assert list(_writes_to_guarded_fields(ast.parse(source))), source


def test_every_status_has_a_row_in_the_transitions_table():
    from jobs.lifecycle import TRANSITIONS
    from jobs.models import TERMINAL

    assert set(TRANSITIONS) == set(Status)
    assert all(TRANSITIONS[status] == set() for status in TERMINAL)
    assert all(status not in targets for status, targets in TRANSITIONS.items())
