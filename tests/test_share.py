"""Share links: made and revoked by whoever looks after a job, watched by anyone with the link
(the studio's own copy, ranges and all), counted, expired, audited, and nothing else shown."""

import re
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
import requests
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jobs import archive, share
from jobs.models import ArchiveStatus, AuditAction, AuditEntry, ShareLink, Status

from .helpers import make_archived, make_job

VIDEO = bytes(range(256)) * 40
SIZE = len(VIDEO)
PROMPT = "A paper boat drifting down a rain gutter, macro lens"


def finished(owner, team, **overrides):
    values = {
        "prompt": PROMPT,
        "status": Status.COMPLETED,
        "output_url": "https://cdn.example/v.mp4",
        "poster_url": "https://cdn.example/p.jpg",
        "api_cost_micro_cents": 337_500,
    }
    values.update(overrides)
    return make_job(owner, team=team, **values)


@pytest.fixture
def kept(owner, team):
    """A finished job of the owner's whose files the studio keeps (a poster among them)."""
    job = finished(owner, team)
    make_archived(job, video_bytes=VIDEO, thumbnail_bytes=b"thumb-bytes", poster_bytes=b"poster-bytes")
    return job


def link_to(job, by, **fields):
    values = {"expires_at": timezone.now() + timedelta(days=7)}
    values.update(fields)
    return share.create(job, by=by, **values)


def post_share(client, job, **data):
    form = {"share-expires": "week"}
    form.update({f"share-{key}": value for key, value in data.items()})
    return client.post(reverse("jobs:share", args=[job.pk]), form)


def page(token):
    return reverse("jobs:shared", args=[token])


def body(response):
    return b"".join(response.streaming_content) if response.streaming else response.content


# --- who may make a link -----------------------------------------------------------------------


@pytest.mark.parametrize("who", ["owner", "manager", "staff"])
def test_the_owner_a_manager_of_the_team_and_staff_may_make_a_link(client, kept, who, request):
    person = request.getfixturevalue(who)
    client.force_login(person)
    response = post_share(client, kept)
    assert response.status_code == 302
    assert response["Location"] == reverse("jobs:share", args=[kept.pk]) + "#share"
    link = ShareLink.objects.get(job=kept)
    assert link.created_by == person and not link.show_prompt and link.views == 0
    assert share.well_formed(link.token) and len(link.token) == 32


@pytest.mark.parametrize("who", ["teammate", "outsider", "loner"])
def test_anyone_else_gets_404_and_no_link_is_made(client, kept, who, request):
    client.force_login(request.getfixturevalue(who))
    assert client.get(reverse("jobs:share", args=[kept.pk])).status_code == 404
    assert post_share(client, kept).status_code == 404
    assert not ShareLink.objects.exists()


@pytest.mark.parametrize("who", ["teammate", "outsider"])
def test_anyone_else_may_not_revoke_a_link(client, kept, owner, who, request):
    link = link_to(kept, owner)
    client.force_login(request.getfixturevalue(who))
    revoke = reverse("jobs:share_revoke", args=[kept.pk, link.pk])
    assert client.get(revoke).status_code == 404
    assert client.post(revoke).status_code == 404
    link.refresh_from_db()
    assert link.revoked_at is None


def test_a_link_is_revoked_only_under_its_own_job(owner_client, owner, team, kept):
    other = finished(owner, team)
    make_archived(other, video_bytes=VIDEO)
    link = link_to(kept, owner)
    assert owner_client.post(reverse("jobs:share_revoke", args=[other.pk, link.pk])).status_code == 404


def test_a_signed_out_person_is_sent_to_sign_in(client, kept):
    response = post_share(client, kept)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert not ShareLink.objects.exists()


# --- what a link needs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("archive_status", "reason"),
    [
        (ArchiveStatus.NONE, "has not kept its own copy"),
        (ArchiveStatus.QUEUED, "still copying"),
        (ArchiveStatus.DELETED, "was deleted"),
        (ArchiveStatus.LOST, "no longer has this video"),
    ],
)
def test_a_video_whose_files_are_not_kept_cannot_be_shared_and_the_page_says_why(
    owner_client, owner, team, archive_status, reason
):
    job = finished(owner, team, archive_status=archive_status)
    shown = owner_client.get(reverse("jobs:share", args=[job.pk])).content.decode()
    assert reason in shown
    assert re.search(r"<button[^>]*disabled[^>]*>Make a share link</button>", shown)
    response = post_share(owner_client, job)
    assert response.status_code == 422 and reason in response.content.decode()
    assert not ShareLink.objects.exists()


def test_an_unfinished_video_cannot_be_shared(owner_client, owner, team):
    job = make_job(owner, team=team, status=Status.PROCESSING)
    assert "not finished yet" in owner_client.get(reverse("jobs:share", args=[job.pk])).content.decode()
    assert post_share(owner_client, job).status_code == 422


# --- expiry ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("choice", "days"), [("day", 1), ("week", 7), ("month", 30)])
def test_a_link_works_for_the_chosen_time(owner_client, kept, choice, days):
    before = timezone.now()
    post_share(owner_client, kept, expires=choice)
    link = ShareLink.objects.get()
    assert before + timedelta(days=days) <= link.expires_at <= timezone.now() + timedelta(days=days)


def test_a_week_is_the_default(owner_client, kept):
    shown = owner_client.get(reverse("jobs:share", args=[kept.pk])).content.decode()
    assert re.search(r'value="week"[^>]*checked', shown)


def test_a_chosen_date_works_to_the_end_of_that_day_in_the_persons_zone(owner_client, kept):
    owner_client.cookies["tz"] = "America/New_York"
    day = timezone.localdate() + timedelta(days=3)
    post_share(owner_client, kept, expires="date", expires_on=day.isoformat())
    link = ShareLink.objects.get()
    local = link.expires_at.astimezone(ZoneInfo("America/New_York"))
    assert (local.date(), local.hour, local.minute) == (day + timedelta(days=1), 0, 0)


@pytest.mark.parametrize(
    ("day", "error"),
    [
        ("", "Choose the last day the link works."),
        ("2001-01-01", "Choose today or a later day."),
        ("2999-01-01", "Choose a day within a year."),
        ("soon", "Write the date as YYYY-MM-DD."),
    ],
)
def test_a_missing_past_or_distant_date_is_refused_with_everything_kept(owner_client, kept, day, error):
    response = post_share(owner_client, kept, expires="date", expires_on=day, show_prompt="on")
    assert response.status_code == 422
    shown = response.content.decode()
    assert error in shown and "No link was made." in shown
    assert re.search(r'value="date"[^>]*checked|checked[^>]*value="date"', shown)
    assert re.search(r'name="share-show_prompt"[^>]*checked|checked[^>]*name="share-show_prompt"', shown)
    assert not ShareLink.objects.exists()


def test_an_expired_link_is_404_for_the_page_the_video_and_the_poster(client, kept, owner):
    link = link_to(kept, owner)
    ShareLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    for name in ("shared", "shared_video", "shared_poster"):
        assert client.get(reverse(f"jobs:{name}", args=[link.token])).status_code == 404


# --- the visitor's page ----------------------------------------------------------------------


def test_anyone_with_the_link_watches_the_video_without_signing_in(client, kept, owner, settings):
    settings.PUBLIC_BASE_URL = "https://studio.example.com"
    link = link_to(kept, owner)
    response = client.get(page(link.token))
    assert response.status_code == 200
    shown = response.content.decode()
    assert f'src="/s/{link.token}/video"' in shown and f'poster="/s/{link.token}/poster"' in shown
    assert f'<meta property="og:image" content="https://studio.example.com/s/{link.token}/poster">' in shown
    assert f'<meta property="og:url" content="https://studio.example.com/s/{link.token}/">' in shown
    assert '<meta property="og:title" content="A video shared with you">' in shown
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in shown
    # No price, no prompt (not chosen), no names, no studio around it.
    assert "$" not in shown and "0.34" not in shown and "micro" not in shown
    assert PROMPT not in shown and "paper boat" not in shown
    assert ">owner<" not in shown and f"#{kept.pk}" not in shown and "Video #" not in shown
    assert "History" not in shown and "Sign out" not in shown and "/jobs/" not in shown
    assert response["X-Robots-Tag"] == "noindex, nofollow"
    assert "no-store" in response["Cache-Control"]


def test_the_prompt_is_shown_only_when_the_person_chose_it(client, kept, owner):
    hidden = link_to(kept, owner)
    shown = link_to(kept, owner, show_prompt=True)
    assert PROMPT not in client.get(page(hidden.token)).content.decode()
    text = client.get(page(shown.token)).content.decode()
    assert f'<figcaption class="share-prompt">{PROMPT}</figcaption>' in text
    assert f'<meta property="og:title" content="{PROMPT}">' in text


def test_the_page_keeps_to_the_strict_csp(client, kept, owner):
    response = client.get(page(link_to(kept, owner).token))
    shown = response.content.decode()
    assert "<script" not in shown and "style=" not in shown and "<style" not in shown
    assert "script-src 'self'" in response["Content-Security-Policy"]


def test_a_signed_in_visitor_sees_the_same_page(client, kept, owner, outsider):
    link = link_to(kept, owner)
    client.force_login(outsider)
    response = client.get(page(link.token))
    assert response.status_code == 200 and "Sign out" not in response.content.decode()


def test_each_page_load_is_one_view_and_the_videos_ranges_are_not(client, kept, owner):
    link = link_to(kept, owner)
    client.get(page(link.token))
    client.get(page(link.token))
    client.head(page(link.token))
    video = reverse("jobs:shared_video", args=[link.token])
    for first in range(0, SIZE, 4096):
        client.get(video, HTTP_RANGE=f"bytes={first}-{first + 4095}")
    client.get(reverse("jobs:shared_poster", args=[link.token]))
    link.refresh_from_db()
    assert link.views == 2


def test_the_shared_video_answers_range_requests(client, kept, owner):
    link = link_to(kept, owner)
    video = reverse("jobs:shared_video", args=[link.token])
    whole = client.get(video)
    assert whole.status_code == 200 and body(whole) == VIDEO and whole["Accept-Ranges"] == "bytes"
    part = client.get(video, HTTP_RANGE="bytes=100-199")
    assert part.status_code == 206 and body(part) == VIDEO[100:200]
    assert part["Content-Range"] == f"bytes 100-199/{SIZE}"
    tail = client.get(video, HTTP_RANGE="bytes=-10")
    assert body(tail) == VIDEO[-10:]
    assert client.get(video, HTTP_RANGE=f"bytes={SIZE}-").status_code == 416
    # Revalidated every time, so a revoked link stops the video at once.
    assert whole["Cache-Control"] == "private, no-cache"


def test_the_poster_is_served_and_falls_back_to_the_thumbnail(client, owner, team, kept):
    link = link_to(kept, owner)
    assert body(client.get(reverse("jobs:shared_poster", args=[link.token]))) == b"poster-bytes"
    plain = finished(owner, team)
    make_archived(plain, video_bytes=VIDEO, thumbnail_bytes=b"thumb-only")
    other = link_to(plain, owner)
    assert body(client.get(reverse("jobs:shared_poster", args=[other.token]))) == b"thumb-only"


def test_without_a_picture_the_page_names_no_poster(client, owner, team):
    job = finished(owner, team)
    make_archived(job, video_bytes=VIDEO, thumbnail_bytes=None)
    shown = client.get(page(link_to(job, owner).token)).content.decode()
    assert "poster=" not in shown and "og:image" not in shown


def test_a_link_shows_nothing_once_the_files_are_deleted(client, kept, owner):
    link = link_to(kept, owner)
    archive.delete_files(kept, owner)
    for name in ("shared", "shared_video", "shared_poster"):
        assert client.get(reverse(f"jobs:{name}", args=[link.token])).status_code == 404


def test_a_missing_link_is_a_friendly_page_of_its_own(client, db):
    response = client.get(page("A" * 32))
    shown = response.content.decode()
    assert response.status_code == 404 and "This link does not work" in shown
    assert "History" not in shown and "<script" not in shown


# --- revoking ---------------------------------------------------------------------------------


def test_a_revoked_link_is_404_at_once(client, kept, owner):
    link = link_to(kept, owner)
    assert client.get(page(link.token)).status_code == 200
    manager_client = Client()
    manager_client.force_login(owner)
    response = manager_client.post(reverse("jobs:share_revoke", args=[kept.pk, link.pk]))
    assert response.status_code == 302
    for name in ("shared", "shared_video", "shared_poster"):
        assert client.get(reverse(f"jobs:{name}", args=[link.token])).status_code == 404
    link.refresh_from_db()
    assert link.revoked_at is not None and link.revoked_by == owner


def test_revoking_from_the_job_page_goes_back_to_it(owner_client, kept, owner):
    link = link_to(kept, owner)
    response = owner_client.post(reverse("jobs:share_revoke", args=[kept.pk, link.pk]), {"from": "job"})
    assert response["Location"] == kept.get_absolute_url() + "#share"


def test_without_javascript_a_confirmation_page_posts_the_revocation(owner_client, kept, owner):
    link = link_to(kept, owner)
    revoke = reverse("jobs:share_revoke", args=[kept.pk, link.pk])
    shown = owner_client.get(revoke).content.decode()
    assert "Revoke this share link?" in shown and f'action="{revoke}"' in shown
    assert ShareLink.objects.get(pk=link.pk).revoked_at is None


# --- the audit trail ----------------------------------------------------------------------------


def test_making_and_revoking_a_link_are_one_audit_entry_each(client, kept, owner, manager, team):
    client.force_login(manager)
    post_share(client, kept, expires="day", show_prompt="on")
    link = ShareLink.objects.get()
    made = AuditEntry.objects.get(action=AuditAction.SHARE_CREATED)
    assert made.actor == manager and made.job_id == kept.pk and made.team_id == team.pk
    assert made.subject_id == owner.pk and made.address == "127.0.0.1"
    assert made.summary.startswith(f"manager made a share link to video #{kept.pk}, working until ")
    assert made.summary.endswith("UTC, the prompt shown.")
    assert made.detail["link"] == link.pk and made.detail["show_prompt"] is True
    revoke = reverse("jobs:share_revoke", args=[kept.pk, link.pk])
    client.post(revoke)
    client.post(revoke)  # twice: it was revoked once
    share.revoke(ShareLink.objects.get(), by=manager)
    revoked = AuditEntry.objects.get(action=AuditAction.SHARE_REVOKED)
    assert revoked.actor == manager and revoked.job_id == kept.pk and revoked.team_id == team.pk
    assert revoked.summary == f"manager revoked a share link to video #{kept.pk} (viewed 0 times)."
    assert AuditEntry.objects.count() == 2


def test_a_refused_form_writes_no_audit_entry(owner_client, kept):
    post_share(owner_client, kept, expires="date", expires_on="")
    assert not AuditEntry.objects.exists()


# --- tokens and queries -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "short",
        "A" * 31,
        "A" * 33,
        "A" * 31 + "!",
        "A" * 31 + ".",
        "A" * 31 + "~",
        "Ä" * 32,
        "A" * 200,
        "%27%20OR%201%3D1--",
    ],
)
def test_a_token_outside_the_alphabet_is_404_without_a_query(client, db, token, django_assert_num_queries):
    for name in ("shared", "shared_video", "shared_poster"):
        with django_assert_num_queries(0):
            response = client.get(f"/s/{token}/" + ("" if name == "shared" else name.removeprefix("shared_")))
        assert response.status_code == 404


def test_an_unknown_well_formed_token_costs_one_query(client, db, django_assert_num_queries):
    with django_assert_num_queries(1):
        assert client.get(page("a" * 32)).status_code == 404
    with django_assert_num_queries(1):
        assert client.get(reverse("jobs:shared_video", args=["b" * 32])).status_code == 404


def test_the_page_costs_three_queries_and_a_file_one(client, kept, owner, django_assert_num_queries):
    link = link_to(kept, owner)
    with django_assert_num_queries(3):  # the link with its job, the view, whether a picture is kept
        assert client.get(page(link.token)).status_code == 200
    with django_assert_num_queries(1):
        assert client.get(reverse("jobs:shared_video", args=[link.token])).status_code == 200


# --- the job page's panel -----------------------------------------------------------------------


def test_the_panel_lists_each_link_with_its_dates_views_copy_and_revoke(
    client, kept, owner, manager, settings
):
    settings.PUBLIC_BASE_URL = "https://studio.example.com"
    working = link_to(kept, owner, expires_at=datetime(2031, 5, 6, 7, 8, tzinfo=UTC))
    ShareLink.objects.filter(pk=working.pk).update(views=3)
    gone = link_to(kept, manager)
    share.revoke(gone, by=manager)
    client.force_login(manager)
    client.cookies["tz"] = "UTC"
    shown = client.get(reverse("jobs:share", args=[kept.pk])).content.decode()
    assert f'value="https://studio.example.com/s/{working.token}/"' in shown
    assert f'data-share-copy="share-url-{working.pk}"' in shown and "Copy link" in shown
    assert "Works until <time" in shown and "May 6, 2031 07:08" in shown
    assert '<strong data-role="share-views">3</strong> views' in shown
    assert "by owner" in shown and "Revoked</span>" in shown and "by manager" in shown
    assert reverse("jobs:share_revoke", args=[kept.pk, working.pk]) in shown
    # A revoked link's address is not offered again, nor may it be revoked twice.
    assert gone.token not in shown
    assert reverse("jobs:share_revoke", args=[kept.pk, gone.pk]) not in shown
    assert 'src="/static/js/share.js"' in shown


def test_share_context_is_empty_for_someone_who_may_not_share(rf, kept, teammate, owner):
    from jobs.access import Viewer
    from jobs.views.share import share_context

    request = rf.get("/")
    request.user = owner
    request.resolver_match = None
    assert share_context(request, Viewer(owner), kept)["share"]["job"] == kept
    request.user = teammate
    assert share_context(request, Viewer(teammate), kept) == {"share": None}


def test_the_panel_costs_one_query_for_the_links(rf, kept, owner, django_assert_num_queries):
    from jobs.access import Viewer
    from jobs.views.share import share_context

    for _ in range(3):
        link_to(kept, owner)
    request = rf.get("/")
    request.user = owner
    request.resolver_match = None
    viewer = Viewer(owner)
    viewer.profile  # noqa: B018 (read by every page already)
    with django_assert_num_queries(1):
        context = share_context(request, viewer, kept)
    assert len(context["share"]["rows"]) == 3


# --- object storage -----------------------------------------------------------------------------


def test_on_s3_the_shared_video_redirects_to_a_presigned_url(client, owner, team, s3, settings):
    job = finished(owner, team)
    make_archived(job, video_bytes=VIDEO)
    link = link_to(job, owner)
    response = client.get(reverse("jobs:shared_video", args=[link.token]))
    assert response.status_code == 302 and response["Cache-Control"] == "private, no-store"
    target = response["Location"]
    assert urlsplit(target).netloc == urlsplit(settings.AWS_S3_ENDPOINT_URL).netloc
    ranged = requests.get(target, headers={"Range": "bytes=0-9"}, timeout=10)
    assert ranged.status_code == 206 and ranged.content == VIDEO[:10]
    share.revoke(link, by=owner)
    assert client.get(reverse("jobs:shared_video", args=[link.token])).status_code == 404


def test_expiry_choices_are_a_day_a_week_a_month_or_a_date():
    now = datetime(2030, 1, 1, 12, tzinfo=UTC)
    assert share.expiry("day", now=now) == now + timedelta(days=1)
    assert share.expiry("week", now=now) == now + timedelta(days=7)
    assert share.expiry("month", now=now) == now + timedelta(days=30)
    with timezone.override(UTC):
        assert share.expiry("date", date(2030, 2, 3)) == datetime(2030, 2, 4, tzinfo=UTC)
