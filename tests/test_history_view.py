"""The history list: filters, search, keyset paging, empty states and access."""

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from jobs import history
from jobs.models import Job, Status

from .helpers import make_job

LIST = reverse("jobs:list")


def ids_on(response):
    return [job.pk for job in response.context["page"].jobs]


def test_it_lists_only_my_jobs_newest_first(owner_client, owner, outsider):
    old = make_job(owner, prompt="old", created_at=timezone.now() - timedelta(days=2))
    new = make_job(owner, prompt="new")
    make_job(outsider, prompt="theirs")
    response = owner_client.get(LIST)
    assert ids_on(response) == [new.pk, old.pk]
    assert "theirs" not in response.content.decode()


def test_rows_show_what_a_person_needs(owner_client, owner):
    make_job(
        owner,
        prompt="A very long prompt " * 20,
        quality="pro",
        duration=10,
        aspect_ratio="9:16",
        status=Status.COMPLETED,
        api_cost_micro_cents=675_000,
        thumbnail_url="https://cdn.example/t.jpg",
    )
    html = owner_client.get(LIST).content.decode()
    assert "pro · 10 s · 9:16" in html
    assert "$0.675" in html
    assert 'src="https://cdn.example/t.jpg"' in html
    assert ("A very long prompt " * 20)[:89] + "…" in html
    assert ("A very long prompt " * 20)[:95] not in html
    assert "Completed" in html


def test_created_times_are_shown_in_the_browsers_time_zone(owner_client, owner):
    make_job(owner, created_at=datetime(2026, 3, 1, 23, 30, tzinfo=UTC))
    owner_client.cookies["tz"] = "Asia/Tokyo"
    html = owner_client.get(LIST).content.decode()
    assert "Mar 2, 2026 08:30" in html and "Asia/Tokyo" in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"status": "completed"}, {"done-pro-10"}),
        ({"status": "failed"}, {"failed-std-5"}),
        ({"status": "active"}, {"queued-std-10", "unknown-pro-5"}),
        ({"quality": "pro"}, {"done-pro-10", "unknown-pro-5"}),
        ({"duration": "10"}, {"done-pro-10", "queued-std-10"}),
        ({"aspect_ratio": "1:1"}, {"queued-std-10"}),
        ({"q": "DONE"}, {"done-pro-10"}),
        ({"q": "pro", "status": "active"}, {"unknown-pro-5"}),
        ({"quality": "pro", "duration": "10", "status": "completed"}, {"done-pro-10"}),
    ],
)
def test_filters_combine(owner_client, owner, query, expected):
    make_job(owner, prompt="done-pro-10", status=Status.COMPLETED, quality="pro", duration=10)
    make_job(owner, prompt="failed-std-5", status=Status.FAILED)
    make_job(owner, prompt="queued-std-10", status=Status.PENDING, duration=10, aspect_ratio="1:1")
    make_job(owner, prompt="unknown-pro-5", status=Status.UNKNOWN, quality="pro")
    response = owner_client.get(LIST, query)
    assert {job.prompt for job in response.context["page"].jobs} == expected


def test_the_date_range_is_read_in_my_time_zone(owner_client, owner):
    # 2026-03-01 23:30 UTC is already March 2 in Tokyo.
    late = make_job(owner, prompt="late", created_at=datetime(2026, 3, 1, 23, 30, tzinfo=UTC))
    make_job(owner, prompt="earlier", created_at=datetime(2026, 3, 1, 10, 0, tzinfo=UTC))
    owner_client.cookies["tz"] = "Asia/Tokyo"
    response = owner_client.get(LIST, {"date_from": "2026-03-02", "date_to": "2026-03-02"})
    assert ids_on(response) == [late.pk]


def test_a_reversed_date_range_says_so_and_filters_nothing(owner_client, owner):
    make_job(owner)
    response = owner_client.get(LIST, {"date_from": "2026-03-05", "date_to": "2026-03-01"})
    assert "The start date is after the end date." in response.content.decode()
    assert len(ids_on(response)) == 1


@pytest.mark.parametrize(
    "query",
    [
        {"status": "owner__password__startswith"},
        {"quality": "'; DROP TABLE jobs_job; --"},
        {"order": "owner__password"},
        {"duration": "7"},
        {"date_from": "yesterday"},
        {"after": "not-a-cursor"},
        {"before": "%%%"},
        {"per_page": "99999999999999999999"},
        {"q": "x" * 5000},
    ],
)
def test_crafted_parameters_are_ignored_never_passed_to_the_orm(owner_client, owner, query):
    make_job(owner)
    response = owner_client.get(LIST, query)
    assert response.status_code == 200
    assert Job.objects.count() == 1


@pytest.mark.parametrize(
    ("per_page", "shown"),
    [("2", 2), ("0", 1), ("100", 3), ("1000", 3), ("-2", 3), ("٣", 3), ("2.5", 3), ("", 3)],
)
def test_the_page_size_is_a_plain_number_of_up_to_three_digits(owner_client, owner, per_page, shown):
    for _ in range(3):
        make_job(owner)
    assert len(ids_on(owner_client.get(LIST, {"per_page": per_page}))) == shown


def test_filters_live_in_the_url_and_paging_keeps_them(owner_client, owner):
    for i in range(5):
        make_job(owner, prompt=f"sunset {i}", quality="pro", created_at=timezone.now() - timedelta(minutes=i))
    make_job(owner, prompt="sunrise", quality="std")
    response = owner_client.get(LIST, {"quality": "pro", "per_page": "2"})
    older = response.context["older_url"]
    assert "quality=pro" in older and "per_page=2" in older and "after=" in older
    html = response.content.decode()
    assert 'option value="pro" selected' in html


def test_keyset_pages_walk_forward_and_back_without_gaps(owner_client, owner):
    base = timezone.now()
    jobs = [make_job(owner, created_at=base - timedelta(seconds=i // 2)) for i in range(7)]  # ties on purpose
    expected = [j.pk for j in sorted(jobs, key=lambda j: (j.created_at, j.pk), reverse=True)]
    seen, url = [], LIST + "?per_page=3"
    pages = []
    while url:
        response = owner_client.get(url if url.startswith("/") else LIST + url)
        pages.append(ids_on(response))
        seen += ids_on(response)
        url = response.context["older_url"]
    assert seen == expected
    assert [len(p) for p in pages] == [3, 3, 1]
    back = owner_client.get(LIST + response.context["newer_url"])
    assert ids_on(back) == pages[1]
    assert back.context["newer_url"] is not None
    first = owner_client.get(LIST + back.context["newer_url"])
    assert ids_on(first) == pages[0] and first.context["newer_url"] is None


def test_a_cursor_round_trips_and_rejects_junk():
    cursor = history.Cursor(datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC), 42)
    assert history.Cursor.decode(cursor.encode()) == cursor
    for junk in ("", "abc", "MjAyNnwx", "x" * 500, "bm9uZXw0Mg"):
        assert history.Cursor.decode(junk) is None


def test_a_new_user_is_told_what_to_do_next(owner_client):
    html = owner_client.get(LIST).content.decode()
    assert "No videos yet" in html and "Make your first video" in html


def test_filters_that_match_nothing_say_so(owner_client, owner):
    make_job(owner, prompt="a cat")
    html = owner_client.get(LIST, {"q": "dog"}).content.decode()
    assert "No videos match these filters" in html and "No videos yet" not in html


def test_the_history_needs_a_signed_in_user(client):
    assert client.get(LIST).status_code == 302


@pytest.mark.rollup_left_behind  # jobs written in bulk, to count queries
def test_one_row_or_fifty_rows_cost_the_same_queries(owner_client, owner, django_assert_num_queries):
    make_job(owner)
    with django_assert_num_queries(4):  # session, user, profile, one page of jobs
        owner_client.get(LIST, {"per_page": "50"})
    Job.objects.bulk_create(
        [
            Job(
                owner=owner,
                submission_key=uuid.uuid4(),
                prompt=f"p{i}",
                quality="std",
                duration=5,
                aspect_ratio="16:9",
                estimated_micro_cents=225_000,
                model_slug="kling/kling-text2video-v25/text-to-video",
            )
            for i in range(60)
        ]
    )
    with django_assert_num_queries(4):
        response = owner_client.get(LIST, {"per_page": "50", "status": "submitting", "q": "p"})
    assert len(ids_on(response)) == 50


@pytest.mark.rollup_left_behind  # jobs written in bulk, to count queries
def test_a_hundred_thousand_jobs_cost_the_same_queries_as_ten(
    owner_client, owner, outsider, django_assert_num_queries
):
    start = timezone.now() - timedelta(days=365)
    rows = [
        Job(
            owner=owner if i % 2 else outsider,
            submission_key=uuid.uuid4(),
            prompt=f"prompt {i}",
            quality="pro" if i % 3 else "std",
            duration=5,
            aspect_ratio="16:9",
            status=Status.COMPLETED,
            estimated_micro_cents=225_000,
            created_at=start + timedelta(minutes=5 * i),
            model_slug="kling/kling-text2video-v25/text-to-video",
        )
        for i in range(100_000)
    ]
    Job.objects.bulk_create(rows, batch_size=5000)
    with django_assert_num_queries(4):
        first = owner_client.get(LIST)
    deep = history.Cursor.of(Job.objects.filter(owner=owner).order_by("created_at", "pk")[100])
    with django_assert_num_queries(4):
        response = owner_client.get(LIST, {"after": deep.encode(), "quality": "pro"})
    assert len(ids_on(first)) == len(ids_on(response)) == 25
    assert all(job.owner_id == owner.pk for job in response.context["page"].jobs)


def test_the_page_carries_no_inline_script(owner_client, owner):
    make_job(owner)
    html = owner_client.get(LIST).content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)", html)
    assert not re.search(r"\son[a-z]+=", html)


@pytest.mark.parametrize(
    "query",
    [
        {"date_to": "9999-12-31"},
        {"date_from": "0001-01-01"},
        {"after": history.Cursor(datetime(2026, 1, 1, tzinfo=UTC), 5).encode().replace("MjAyNi", "MDAwMS")},
    ],
)
@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "Pacific/Kiritimati", "America/Adak"])
def test_extreme_dates_and_cursors_never_500(owner_client, owner, query, zone):
    make_job(owner)
    owner_client.cookies["tz"] = zone
    assert owner_client.get(LIST, query).status_code == 200


def test_an_extreme_cursor_is_refused():
    import base64

    raw = base64.urlsafe_b64encode(b"0001-01-01T00:00:00+01:00|5").decode()
    assert history.Cursor.decode(raw) is None


def test_with_no_filter_the_count_is_every_job_the_person_may_see(client, owner, teammate, manager, staff):
    for person, jobs in ((owner, 3), (teammate, 2)):
        for _ in range(jobs):
            make_job(person, team=person.profile.team, status=Status.COMPLETED)
    make_job(owner, team=None, status=Status.REFUSED)  # made before joining: still theirs
    for person, seen in ((owner, 4), (manager, 5), (staff, 6)):
        client.force_login(person)
        html = client.get(LIST).content.decode()
        assert f"<strong>{seen}</strong> videos match" in html, person


def test_a_filter_matching_more_than_the_cap_says_so(owner_client, owner, monkeypatch):
    monkeypatch.setattr(history, "COUNT_CAP", 3)
    for _ in range(5):
        make_job(owner, team=owner.profile.team, status=Status.COMPLETED)
    make_job(owner, team=owner.profile.team, status=Status.FAILED)
    html = owner_client.get(LIST, {"status": "completed"}).content.decode()
    assert "<strong>3+</strong> videos match" in html
    html = owner_client.get(LIST, {"status": "failed"}).content.decode()
    assert "<strong>1</strong> video matches" in html
    assert "<strong>6</strong> videos match" in owner_client.get(LIST).content.decode()
