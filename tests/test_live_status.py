"""The status JSON the pages poll: cheap, small, and only the person's own jobs."""

from datetime import timedelta

import pytest
from django.test.html import Parser
from django.urls import reverse
from django.utils import timezone

from jobs import live
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
    assert "<script>" not in response.json()["note"]
    page = owner_client.get(job.get_absolute_url()).content.decode()
    assert "<script>alert(1)</script>" not in page


# --- the live parts are the page's own ----------------------------------------------------


def _states(now):
    """One job of every kind the pages show, as ``make_job`` overrides."""
    priced = {"api_cost_micro_cents": 225_000}  # PixelByte reported its cost
    return {
        "submitting": {"status": Status.SUBMITTING},
        "submitting-overdue": {"status": Status.SUBMITTING, "created_at": now - timedelta(seconds=120)},
        "unknown": {"status": Status.UNKNOWN, "error_code": "Timeout", "error_message": "No answer in time."},
        "pending": {
            **priced,
            "status": Status.PENDING,
            "submitted_at": now - timedelta(seconds=5),
            "estimated_completion_at": now + timedelta(seconds=175),
        },
        "processing": {
            **priced,
            "status": Status.PROCESSING,
            "submitted_at": now - timedelta(seconds=60),
            "started_at": now - timedelta(seconds=40),
            "estimated_completion_at": now + timedelta(seconds=120),
        },
        "processing-check-error": {
            **priced,
            "status": Status.PROCESSING,
            "submitted_at": now - timedelta(seconds=60),
            "started_at": now - timedelta(seconds=40),
            "estimated_completion_at": now + timedelta(seconds=120),
            "error_code": "INTERNAL_ERROR",
            "error_message": "PixelByte had an internal error.",
        },
        "slow": {
            **priced,
            "status": Status.PROCESSING,
            "submitted_at": now - timedelta(seconds=200),
            "started_at": now - timedelta(seconds=190),
            "estimated_completion_at": now - timedelta(seconds=20),
        },
        "stuck": {
            **priced,
            "status": Status.PROCESSING,
            "submitted_at": now - timedelta(seconds=600),
            "started_at": now - timedelta(seconds=590),
            "estimated_completion_at": now - timedelta(seconds=420),
        },
        "completed": {
            **priced,
            "status": Status.COMPLETED,
            "created_at": now - timedelta(seconds=200),
            "submitted_at": now - timedelta(seconds=199),
            "started_at": now - timedelta(seconds=150),
            "completed_at": now - timedelta(seconds=10),
            "output_url": "https://cdn.example/v.mp4",
            "poster_url": "https://cdn.example/p.jpg",
            "thumbnail_url": "https://cdn.example/t.jpg",
        },
        "completed-without-link": {**priced, "status": Status.COMPLETED, "completed_at": now},
        "failed": {
            **priced,
            "status": Status.FAILED,
            "submitted_at": now - timedelta(seconds=30),
            "started_at": now - timedelta(seconds=20),
            "completed_at": now - timedelta(seconds=5),
            "error_code": "INTERNAL_ERROR",
            "error_message": "Model inference failed <for a reason>",
        },
        "cancelled": {
            **priced,
            "status": Status.CANCELLED,
            "submitted_at": now - timedelta(seconds=30),
            "completed_at": now - timedelta(seconds=25),
            "refunded_micro_cents": 225_000,
        },
        "refused": {
            "status": Status.REFUSED,
            "error_code": "RATE_LIMITED",
            "error_message": "Too many requests.",
        },
    }


STATES = list(_states(timezone.now()))


def _tree(html):
    parser = Parser()
    parser.feed(html)
    parser.close()
    parser.root.finalize()
    return parser.root


def _find(node, role, job_id):
    for child in node.children:
        if isinstance(child, str):
            continue
        attributes = dict(child.attributes)
        if attributes.get("data-role") == role and attributes.get("data-job-id") == job_id:
            return child
        found = _find(child, role, job_id)
        if found is not None:
            return found
    return None


def part(page, role, job):
    """What the page draws inside its element for ``role`` of ``job``, as comparable HTML."""
    element = _find(_tree(page), role, str(job.pk))
    assert element is not None, f"no data-role={role} for job {job.pk}"
    return element.children


def fragment(html):
    return _tree(html).children


@pytest.mark.parametrize("state", STATES)
def test_every_live_part_is_what_a_reload_shows(owner_client, owner, settings, state):
    settings.PIXELBYTE_SUBMIT_DEADLINE = 30
    job = make_job(owner, **_states(timezone.now())[state])
    one = owner_client.get(reverse("jobs:status", args=[job.pk])).json()
    [batch] = owner_client.get(STATUSES, {"ids": str(job.pk)}).json()["jobs"]
    detail = owner_client.get(job.get_absolute_url()).content.decode()
    history = owner_client.get(reverse("jobs:list")).content.decode()

    assert set(one["html"]) == set(live.PARTS) and batch["html"] == one["html"]
    assert one["note"] == one["html"]["note"]
    for role, html in one["html"].items():
        page = history if role in ("thumb", "cost") else detail
        assert part(page, role, job) == fragment(html), role
    assert part(history, "status", job) == fragment(one["html"]["status"])


def test_a_late_job_is_worded_by_the_server_and_only_a_job_on_time_counts_down(owner_client, owner):
    states = _states(timezone.now())
    jobs = {name: make_job(owner, **states[name]) for name in ("pending", "slow", "stuck", "completed")}
    ids = ",".join(str(job.pk) for job in jobs.values())
    data = {j["id"]: j["html"]["status"] for j in owner_client.get(STATUSES, {"ids": ids}).json()["jobs"]}
    status = {name: data[job.pk] for name, job in jobs.items()}
    assert "data-countdown-to" in status["pending"]
    assert "Slower than usual" in status["slow"] and "data-countdown-to" not in status["slow"]
    assert "Stuck — still checking" in status["stuck"] and "Slower than usual" not in status["stuck"]
    assert "data-countdown-to" not in status["stuck"] and "data-countdown-to" not in status["completed"]


def test_drawing_the_live_parts_of_every_kind_of_job_costs_no_query(
    owner_client, owner, settings, django_assert_num_queries
):
    settings.PIXELBYTE_SUBMIT_DEADLINE = 30
    jobs = [make_job(owner, **overrides) for overrides in _states(timezone.now()).values()]
    # session, user, then the jobs themselves
    with django_assert_num_queries(3):
        response = owner_client.get(STATUSES, {"ids": ",".join(str(j.pk) for j in jobs)})
    assert len(response.json()["jobs"]) == len(jobs)


def test_a_page_gets_only_the_parts_it_shows_and_the_note(owner_client, owner):
    job = make_job(owner)
    [data] = owner_client.get(STATUSES, {"ids": str(job.pk), "parts": "status,thumb,cost,bogus"}).json()[
        "jobs"
    ]
    assert list(data["html"]) == ["status", "note", "thumb", "cost"]
    assert "Queued" in data["html"]["status"] and data["note"] == data["html"]["note"]
    [data] = owner_client.get(STATUSES, {"ids": str(job.pk), "parts": "bogus"}).json()["jobs"]
    assert list(data["html"]) == list(live.PARTS)
