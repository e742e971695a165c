"""What the studio keeps: serving it (ranges, validators, the proxy, S3), downloads, the
zip, deleting files, the storage figures and the system checks."""

import hashlib
import io
import time
import zipfile
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone
from django.utils.http import http_date

from jobs import archive, checks, media, rollup
from jobs.access import Scope, Viewer
from jobs.models import ArchivedFile, ArchiveStatus, FileKind, Job, Status
from jobs.spend.report import storage_report

from .helpers import closed_port, make_archived, make_job

# 10,240 bytes where every offset is recognisable.
VIDEO = bytes(range(256)) * 40
SIZE = len(VIDEO)
MEDIA_VIEWS = ("video", "thumbnail", "poster", "download", "sidecar")


def finished(owner, team=None, **overrides):
    values = {
        "status": Status.COMPLETED,
        "output_url": "https://cdn.example/v.mp4",
        "thumbnail_url": "https://cdn.example/t.jpg",
        "poster_url": "https://cdn.example/p.jpg",
        "api_cost_micro_cents": 337_500,
    }
    values.update(overrides)
    return make_job(owner, team=team, **values)


@pytest.fixture
def kept(owner, team):
    """A finished job of the owner's, in the owner's team, whose files the studio keeps."""
    job = finished(owner, team)
    make_archived(job, video_bytes=VIDEO, thumbnail_bytes=b"thumb-bytes", poster_bytes=b"poster-bytes")
    return job


def url(name, job):
    return reverse(f"jobs:{name}", args=[job.pk])


def body(response):
    return b"".join(response.streaming_content) if response.streaming else response.content


# --- the byte range parser, every case of RFC 9110's single-range syntax --------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, 999)),
        ("bytes=-100", (900, 999)),
        ("bytes=990-5000", (990, 999)),  # a last byte beyond the end is clipped
        ("bytes=0-0", (0, 0)),
        ("bytes=999-999", (999, 999)),
        ("Bytes=10-19", (10, 19)),  # the unit is case-insensitive
        ("bytes=-5000", (0, 999)),  # a suffix longer than the file: the whole file, as a range
        ("bytes=1000-", media.UNSATISFIABLE),  # first byte at or after the end
        ("bytes=5000-6000", media.UNSATISFIABLE),
        ("bytes=-0", media.UNSATISFIABLE),
        ("bytes=500-100", None),  # first > last: invalid, ignored
        ("bytes=0-1,5-6", None),  # several ranges: the whole file (allowed by the RFC)
        ("items=0-99", None),
        ("bytes=", None),
        ("bytes=-", None),
        ("bytes=abc-", None),
        ("bytes=1.5-2", None),
        ("bytes=٠-٩", None),  # digits, but not ASCII ones
        ("0-99", None),
        ("", None),
    ],
)
def test_the_range_parser_follows_rfc_9110(header, expected):
    assert media.byte_range(header, 1000) == expected


def test_an_empty_file_is_always_sent_whole():
    assert media.byte_range("bytes=0-", 0) is None
    assert media.byte_range("bytes=-5", 0) is None


# --- ranges through the view, on local storage ---------------------------------------


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, SIZE - 1),
        ("bytes=-100", SIZE - 100, SIZE - 1),
        (f"bytes=5000-{SIZE * 10}", 5000, SIZE - 1),
        (f"bytes=-{SIZE * 3}", 0, SIZE - 1),
    ],
)
def test_a_range_is_answered_with_206_and_only_its_bytes(owner_client, kept, header, first, last):
    response = owner_client.get(url("video", kept), HTTP_RANGE=header)
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes {first}-{last}/{SIZE}"
    assert response["Content-Length"] == str(last - first + 1)
    assert response["Accept-Ranges"] == "bytes" and response["Content-Type"] == "video/mp4"
    assert body(response) == VIDEO[first : last + 1]


@pytest.mark.parametrize("header", ["bytes=500-100", "bytes=0-1,5-6", "items=0-9", "bytes=x-", "bytes=-"])
def test_an_invalid_malformed_or_multiple_range_gets_the_whole_file(owner_client, kept, header):
    response = owner_client.get(url("video", kept), HTTP_RANGE=header)
    assert response.status_code == 200 and "Content-Range" not in response
    assert response["Content-Length"] == str(SIZE) and body(response) == VIDEO


@pytest.mark.parametrize("header", [f"bytes={SIZE}-", f"bytes={SIZE + 10}-{SIZE + 20}", "bytes=-0"])
def test_an_unsatisfiable_range_is_416_with_the_size(owner_client, kept, header):
    response = owner_client.get(url("video", kept), HTTP_RANGE=header)
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{SIZE}"
    assert body(response) == b""


def test_without_a_range_the_whole_video_comes_with_its_validators(owner_client, kept):
    response = owner_client.get(url("video", kept))
    stored = kept.files.get(kind=FileKind.VIDEO)
    assert response.status_code == 200 and body(response) == VIDEO
    assert response["Accept-Ranges"] == "bytes"
    assert response["ETag"] == f'"{hashlib.sha256(VIDEO).hexdigest()}"'
    assert response["Last-Modified"] == http_date(stored.archived_at.timestamp())
    assert "Content-Disposition" not in response


def test_a_range_reads_only_its_slice_in_chunks(owner_client, owner, team, monkeypatch):
    big = bytes(range(256)) * 4096 * 3  # 3 MiB
    job = finished(owner, team)
    make_archived(job, video_bytes=big)
    read = []
    real_open = default_storage.open

    class Counting:
        def __init__(self, file):
            self.file = file

        def read(self, size=-1):
            read.append(size)
            return self.file.read(size)

        def __getattr__(self, name):
            return getattr(self.file, name)

    def counting_open(name, mode="rb"):
        stored = real_open(name, mode)
        stored.file = Counting(stored.file)
        return stored

    monkeypatch.setattr(default_storage, "open", counting_open)
    response = owner_client.get(url("video", job), HTTP_RANGE="bytes=-100000")
    chunks = list(response.streaming_content)
    assert b"".join(chunks) == big[-100_000:]
    assert all(len(chunk) <= media.CHUNK for chunk in chunks)
    assert sum(read) == 100_000 and max(read) <= media.CHUNK  # never from the start


# --- conditional requests ------------------------------------------------------------


def test_a_matching_etag_or_date_gets_304_and_no_bytes(owner_client, kept):
    first = owner_client.get(url("video", kept))
    again = owner_client.get(url("video", kept), HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304 and again.content == b""
    assert again["ETag"] == first["ETag"]
    dated = owner_client.get(url("video", kept), HTTP_IF_MODIFIED_SINCE=first["Last-Modified"])
    assert dated.status_code == 304
    other = owner_client.get(url("video", kept), HTTP_IF_NONE_MATCH='"something-else"')
    assert other.status_code == 200 and body(other) == VIDEO


def test_if_range_resumes_only_the_same_file(owner_client, kept):
    first = owner_client.get(url("video", kept))
    same = owner_client.get(url("video", kept), HTTP_RANGE="bytes=10-19", HTTP_IF_RANGE=first["ETag"])
    assert same.status_code == 206 and body(same) == VIDEO[10:20]
    by_date = owner_client.get(
        url("video", kept), HTTP_RANGE="bytes=10-19", HTTP_IF_RANGE=first["Last-Modified"]
    )
    assert by_date.status_code == 206
    changed = owner_client.get(url("video", kept), HTTP_RANGE="bytes=10-19", HTTP_IF_RANGE='"old"')
    assert changed.status_code == 200 and body(changed) == VIDEO
    weak = owner_client.get(url("video", kept), HTTP_RANGE="bytes=10-19", HTTP_IF_RANGE="W/" + first["ETag"])
    assert weak.status_code == 200
    old_date = http_date((timezone.now() - timedelta(days=3)).timestamp())
    stale = owner_client.get(url("video", kept), HTTP_RANGE="bytes=10-19", HTTP_IF_RANGE=old_date)
    assert stale.status_code == 200


def test_pictures_may_be_kept_by_the_browser_and_videos_are_revalidated(owner_client, kept):
    assert owner_client.get(url("thumbnail", kept))["Cache-Control"] == "private, max-age=3600"
    assert owner_client.get(url("video", kept))["Cache-Control"] == "private, no-cache"


# --- who gets the bytes -----------------------------------------------------------------


@pytest.mark.parametrize("name", MEDIA_VIEWS)
def test_the_owner_manager_and_staff_get_each_file(client, kept, manager, staff, name):
    for person in (kept.owner, manager, staff):
        client.force_login(person)
        assert client.get(url(name, kept)).status_code == 200, person


@pytest.mark.parametrize("name", MEDIA_VIEWS)
def test_another_member_or_team_gets_404_and_no_bytes(client, kept, teammate, outsider, loner, name):
    for person in (teammate, outsider, loner):
        client.force_login(person)
        response = client.get(url(name, kept), HTTP_RANGE="bytes=0-99")
        assert response.status_code == 404 and VIDEO[:100] not in response.content, person


@pytest.mark.parametrize("name", MEDIA_VIEWS)
def test_an_anonymous_visitor_is_sent_to_sign_in_and_gets_no_bytes(client, kept, name):
    response = client.get(url(name, kept))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert response.content == b""


def test_the_zip_needs_a_signed_in_user(client, kept):
    response = client.get(reverse("jobs:export_zip"))
    assert response.status_code == 302 and not response.streaming


def test_a_file_costs_three_queries_whoever_asks(client, kept, outsider, django_assert_num_queries):
    client.force_login(kept.owner)
    with django_assert_num_queries(3):  # session, user, the file with the access rule inside
        assert client.get(url("video", kept)).status_code == 200
    client.force_login(outsider)
    # ... and the not-found page one more: its menu reads the person's role (and notices).
    with django_assert_num_queries(4):
        assert client.get(url("video", kept)).status_code == 404


def test_nothing_is_served_before_archiving_or_after_deletion(owner_client, owner, team, kept):
    waiting = finished(owner, team)
    assert owner_client.get(url("video", waiting)).status_code == 404
    kept.archive_status = ArchiveStatus.DELETED
    kept.save(update_fields=["archive_status"])
    for name in MEDIA_VIEWS:
        assert owner_client.get(url(name, kept)).status_code == 404


def test_the_thumbnail_falls_back_to_the_poster(owner_client, owner, team):
    job = finished(owner, team)
    make_archived(job, thumbnail_bytes=None, poster_bytes=b"only-a-poster")
    assert body(owner_client.get(url("thumbnail", job))) == b"only-a-poster"


def test_the_sidecar_is_the_kept_json(owner_client, kept):
    response = owner_client.get(url("sidecar", kept))
    assert response["Content-Type"] == "application/json"
    assert b'"studio_job_id": %d' % kept.pk in body(response)


# --- downloads --------------------------------------------------------------------------


def test_the_download_is_named_by_local_date_prompt_and_id(owner_client, owner, team):
    job = finished(
        owner,
        team,
        prompt="Ünïcode café: a lighthouse on a cliff at dusk, waves crashing slowly!",
        created_at=datetime(2025, 3, 1, 23, 30, tzinfo=UTC),
    )
    make_archived(job, video_bytes=VIDEO)
    owner_client.cookies["tz"] = "Europe/Berlin"  # already March 2 there
    response = owner_client.get(url("download", job))
    expected = f"2025-03-02-unicode-cafe-a-lighthouse-on-a-cliff-at-{job.pk}.mp4"
    assert response["Content-Disposition"] == f'attachment; filename="{expected}"'
    assert body(response) == VIDEO


@pytest.mark.parametrize(
    ("prompt", "slug"),
    [
        ("A lighthouse", "a-lighthouse"),
        ("   ***   ", "video"),
        ("日本語だけ", "video"),
        ("x" * 60, "x" * 40),
        ("Crème brûlée -- under_scores & CAPS", "creme-brulee-under-scores-caps"),
        ("one two three four five six seven eight nine", "one-two-three-four-five-six-seven-eight"),
    ],
)
def test_the_prompt_slug_is_short_lowercase_ascii_with_hyphens(prompt, slug):
    made = media.prompt_slug(prompt)
    assert made == slug and len(made) <= media.SLUG_LENGTH


def test_a_download_can_resume_with_a_range(owner_client, kept):
    response = owner_client.get(url("download", kept), HTTP_RANGE="bytes=-10")
    assert response.status_code == 206 and body(response) == VIDEO[-10:]
    assert response["Content-Disposition"].startswith("attachment;")


# --- the proxy hand-off --------------------------------------------------------------------


def test_x_accel_redirect_hands_the_file_to_nginx(owner_client, kept, settings):
    settings.MEDIA_PROXY, settings.MEDIA_PROXY_PREFIX = "x-accel-redirect", "/protected-media/"
    stored = kept.files.get(kind=FileKind.VIDEO)
    response = owner_client.get(url("download", kept))
    assert response["X-Accel-Redirect"] == "/protected-media/" + stored.name
    assert response.content == b"" and response["Content-Type"] == "video/mp4"
    assert response["Content-Disposition"].startswith("attachment;")


def test_x_sendfile_names_the_absolute_path(owner_client, kept, settings):
    settings.MEDIA_PROXY = "x-sendfile"
    response = owner_client.get(url("video", kept))
    assert response.content == b""
    with open(response["X-Sendfile"], "rb") as handed:
        assert handed.read() == VIDEO


def test_the_proxy_is_never_asked_for_someone_elses_file(client, kept, outsider, settings):
    settings.MEDIA_PROXY = "x-accel-redirect"
    client.force_login(outsider)
    response = client.get(url("video", kept))
    assert response.status_code == 404 and "X-Accel-Redirect" not in response


# --- the player, the thumbnails and the status JSON ------------------------------------------


def test_before_archiving_the_page_plays_the_cdn_link_and_says_so(owner_client, owner, team):
    job = finished(owner, team)
    html = owner_client.get(job.get_absolute_url()).content.decode()
    assert 'src="https://cdn.example/v.mp4"' in html
    assert "The studio has not kept its own copy of this video yet" in html
    assert "Delete files" not in html


def test_once_archived_the_page_uses_only_the_studios_copy(owner_client, kept):
    html = owner_client.get(kept.get_absolute_url()).content.decode()
    assert (
        f'<video class="shape-wide" controls preload="metadata" src="{url("video", kept)}" '
        f'poster="{url("poster", kept)}">' in html
    )
    assert f'href="{url("download", kept)}">Download video' in html
    assert "cdn.example" not in html and "not kept its own copy" not in html
    assert "Delete files…" in html and "(10.1\xa0KB)" in html


def test_the_history_thumbnail_follows_the_archive(owner_client, owner, team, kept):
    waiting = finished(owner, team, thumbnail_url="https://cdn.example/waiting.jpg")
    html = owner_client.get(reverse("jobs:list")).content.decode()
    assert f'src="{url("thumbnail", kept)}"' in html
    assert 'src="https://cdn.example/waiting.jpg"' in html and 'src="https://cdn.example/t.jpg"' not in html
    assert url("thumbnail", waiting) not in html


def test_a_lost_video_says_when_it_was_noticed(owner_client, owner, team):
    job = finished(
        owner,
        team,
        archive_status=ArchiveStatus.LOST,
        archive_lost_at=datetime(2025, 5, 4, 10, 0, tzinfo=UTC),
    )
    html = owner_client.get(job.get_absolute_url()).content.decode()
    assert "PixelByte no longer has this video (noticed" in html and "May 4, 2025" in html
    assert "<video" not in html


def test_the_status_json_points_at_the_studios_copy_in_three_queries(
    owner_client, owner, team, kept, manager, django_assert_num_queries
):
    deleted = finished(owner, team)
    make_archived(deleted)
    archive.delete_files(deleted, manager)
    plain = finished(owner, team)
    ids = ",".join(str(job.pk) for job in (kept, deleted, plain))
    with django_assert_num_queries(3):  # session, user, the jobs with the deleter's name
        data = {j["id"]: j for j in owner_client.get(reverse("jobs:statuses"), {"ids": ids}).json()["jobs"]}
    assert data[kept.pk]["video"] == url("video", kept) and data[kept.pk]["poster"] == url("poster", kept)
    assert url("video", kept) in data[kept.pk]["html"]["player"]
    assert "deleted by manager" in data[deleted.pk]["html"]["player"]
    assert data[plain.pk]["video"] == "https://cdn.example/v.mp4"


def test_the_live_player_is_what_a_reload_shows(owner_client, kept):
    from .test_live_status import fragment, part

    one = owner_client.get(reverse("jobs:status", args=[kept.pk])).json()
    page = owner_client.get(kept.get_absolute_url()).content.decode()
    assert part(page, "player", kept) == fragment(one["html"]["player"])
    history = owner_client.get(reverse("jobs:list")).content.decode()
    assert part(history, "thumb", kept) == fragment(one["html"]["thumb"])


# --- the zip -------------------------------------------------------------------------------


def unzip(response):
    assert response["Content-Type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


def test_the_zip_holds_the_kept_videos_and_sidecars_the_viewer_may_see(owner_client, owner, team, outsider):
    day = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    first = finished(owner, team, prompt="A red fox", created_at=day)
    second = finished(owner, team, prompt="A blue whale", created_at=day + timedelta(days=1))
    make_archived(first, video_bytes=b"fox-video")
    make_archived(second, video_bytes=VIDEO)
    finished(owner, team, prompt="Not kept yet")
    make_archived(finished(outsider, None, prompt="Someone else's"), video_bytes=b"secret")

    archive = unzip(owner_client.get(reverse("jobs:export_zip")))
    assert archive.namelist() == [
        f"2025-06-02-a-blue-whale-{second.pk}.mp4",
        f"2025-06-02-a-blue-whale-{second.pk}.json",
        f"2025-06-01-a-red-fox-{first.pk}.mp4",
        f"2025-06-01-a-red-fox-{first.pk}.json",
    ]
    assert archive.read(f"2025-06-02-a-blue-whale-{second.pk}.mp4") == VIDEO
    assert archive.read(f"2025-06-01-a-red-fox-{first.pk}.mp4") == b"fox-video"
    assert b'"prompt": "A red fox"' in archive.read(f"2025-06-01-a-red-fox-{first.pk}.json")
    assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
    assert archive.testzip() is None


def test_the_zip_applies_the_historys_filters(owner_client, owner, team):
    june = finished(owner, team, prompt="A fox in June", created_at=datetime(2025, 6, 10, tzinfo=UTC))
    july = finished(owner, team, prompt="A fox in July", created_at=datetime(2025, 7, 10, tzinfo=UTC))
    whale = finished(owner, team, prompt="A whale in June", created_at=datetime(2025, 6, 11, tzinfo=UTC))
    for job in (june, july, whale):
        make_archived(job)
    month = {"date_from": "2025-06-01", "date_to": "2025-06-30"}
    names = unzip(owner_client.get(reverse("jobs:export_zip"), month)).namelist()
    assert sorted(names) == sorted(
        [f"2025-06-10-a-fox-in-june-{june.pk}.mp4", f"2025-06-10-a-fox-in-june-{june.pk}.json"]
        + [f"2025-06-11-a-whale-in-june-{whale.pk}.mp4", f"2025-06-11-a-whale-in-june-{whale.pk}.json"]
    )
    names = unzip(owner_client.get(reverse("jobs:export_zip"), {**month, "q": "fox"})).namelist()
    assert names == [f"2025-06-10-a-fox-in-june-{june.pk}.mp4", f"2025-06-10-a-fox-in-june-{june.pk}.json"]


def test_a_manager_zips_the_teams_videos_and_a_member_only_their_own(client, owner, teammate, manager, team):
    mine, theirs = finished(owner, team), finished(teammate, team)
    make_archived(mine)
    make_archived(theirs)
    client.force_login(manager)
    assert len(unzip(client.get(reverse("jobs:export_zip"))).namelist()) == 4
    client.force_login(teammate)
    names = unzip(client.get(reverse("jobs:export_zip"))).namelist()
    assert names and all(name.endswith((f"-{theirs.pk}.mp4", f"-{theirs.pk}.json")) for name in names)


def test_an_empty_zip_is_still_a_zip(owner_client, owner):
    assert unzip(owner_client.get(reverse("jobs:export_zip"))).namelist() == []


def test_the_history_links_to_the_zip_with_its_filters(owner_client, owner, team):
    finished(owner, team)
    html = owner_client.get(reverse("jobs:list"), {"q": "lighthouse", "quality": "std"}).content.decode()
    assert f'href="{reverse("jobs:export_zip")}?q=lighthouse&amp;quality=std"' in html
    assert "Download videos (zip)" in html


# --- deleting files -----------------------------------------------------------------------


def test_the_owner_deletes_the_files_and_the_job_stays(owner_client, owner, kept):
    names = list(kept.files.values_list("name", flat=True))
    assert all(default_storage.exists(name) for name in names)
    response = owner_client.post(url("delete_files", kept))
    assert response.status_code == 302 and response["Location"] == kept.get_absolute_url()
    assert not any(default_storage.exists(name) for name in names)
    assert not ArchivedFile.objects.filter(job=kept).exists()
    job = Job.objects.get(pk=kept.pk)
    assert job.archive_status == ArchiveStatus.DELETED and job.files_deleted_by == owner
    assert job.files_deleted_at is not None and job.api_cost_micro_cents == 337_500
    html = owner_client.get(job.get_absolute_url()).content.decode()
    assert "The files were deleted by owner on" in html and "The files were deleted." in html
    assert "<video" not in html and "Delete files" not in html


def test_a_manager_or_staff_may_delete_a_teams_files(client, owner, team, manager, staff):
    for person in (manager, staff):
        job = finished(owner, team)
        make_archived(job)
        client.force_login(person)
        client.post(url("delete_files", job))
        job.refresh_from_db()
        assert job.archive_status == ArchiveStatus.DELETED and job.files_deleted_by == person


def test_a_teammate_or_outsider_gets_404_and_deletes_nothing(client, kept, teammate, outsider):
    for person in (teammate, outsider):
        client.force_login(person)
        assert client.get(url("delete_files", kept)).status_code == 404
        assert client.post(url("delete_files", kept)).status_code == 404
    kept.refresh_from_db()
    assert kept.archive_status == ArchiveStatus.ARCHIVED and kept.files.count() == 4


def test_may_delete_files_is_the_owner_the_teams_manager_or_staff(kept, teammate, manager, staff, outsider):
    from .helpers import make_member

    other_manager = make_member("other-manager", outsider.profile.team, role="manager")
    allowed = {person: Viewer(person).may_delete_files(kept) for person in (kept.owner, manager, staff)}
    refused = {
        person: Viewer(person).may_delete_files(kept) for person in (teammate, outsider, other_manager)
    }
    assert all(allowed.values()) and not any(refused.values())


def test_without_javascript_a_confirmation_page_posts_the_deletion(owner_client, kept):
    html = owner_client.get(url("delete_files", kept)).content.decode()
    assert f'<form method="post" action="{url("delete_files", kept)}"' in html
    assert "Delete the files of video" in html and "Video" in html and "10.0\xa0KB" in html
    kept.refresh_from_db()
    assert kept.archive_status == ArchiveStatus.ARCHIVED  # a GET deletes nothing


def test_deleting_twice_deletes_once(owner_client, manager, kept):
    archive.delete_files(kept, manager)
    response = owner_client.post(url("delete_files", kept), follow=True)
    assert "The studio keeps no files of this video." in response.content.decode()
    kept.refresh_from_db()
    assert kept.files_deleted_by == manager
    with pytest.raises(archive.NothingToDelete):
        archive.delete_files(kept, manager)


def test_a_file_the_storage_refuses_to_delete_keeps_its_row(owner, kept, monkeypatch, caplog):
    video = kept.files.get(kind=FileKind.VIDEO)
    real_delete = default_storage.delete

    def refuse_the_video(name):
        if name == video.name:
            raise OSError("read-only file system")
        real_delete(name)

    monkeypatch.setattr(default_storage, "delete", refuse_the_video)
    assert archive.delete_files(kept, owner) == [video.name]
    assert list(kept.files.values_list("name", flat=True)) == [video.name]
    assert video.name in caplog.text
    assert owner_client_get_404(kept)


def owner_client_get_404(job):
    from django.test import Client

    client = Client()
    client.force_login(job.owner)
    return client.get(url("video", job)).status_code == 404


# --- storage on the spend page --------------------------------------------------------------


def test_the_spend_page_shows_what_the_studio_keeps(client, owner, teammate, manager, team, outsider):
    kept_for = {owner: 1_288_490_189, teammate: 5_000_000}
    for person, size in kept_for.items():
        job = finished(person, team, project="ads" if person == owner else "")
        ArchivedFile.objects.create(
            job=job,
            kind=FileKind.VIDEO,
            name=f"v/{job.pk}.mp4",
            size=size,
            content_type="video/mp4",
            sha256="0",
        )
        rollup.files_kept(job, size, 1)  # as the archiver counts what it keeps
    other = finished(outsider, outsider.profile.team)
    ArchivedFile.objects.create(
        job=other, kind=FileKind.VIDEO, name="v/x.mp4", size=10**12, content_type="x", sha256="0"
    )
    rollup.files_kept(other, 10**12, 1)
    client.force_login(manager)
    html = client.get(reverse("jobs:spend")).content.decode()
    assert '<p class="stat-value" id="stat-storage">1.2\xa0GB</p>' in html
    assert "storage-by-member" in html and "4.8\xa0MB" in html and "No project" in html
    client.force_login(owner)
    html = client.get(reverse("jobs:spend")).content.decode()
    assert '<p class="stat-value" id="stat-storage">1.2\xa0GB</p>' in html and "storage-by-member" not in html


def test_the_storage_figures_are_one_query_of_the_kept_totals(
    owner, teammate, team, django_assert_num_queries
):
    for person, project, size in (
        (owner, "ads", 100),
        (owner, "ads", 50),
        (owner, "", 7),
        (teammate, "ads", 20),
    ):
        make_archived(finished(person, team, project=project), video_bytes=b"v" * size, thumbnail_bytes=None)
    scope = Scope(Job.objects.filter(team=team), "Team", team, True)
    sidecars = sum(f.size for f in ArchivedFile.objects.filter(kind=FileKind.SIDECAR))
    with django_assert_num_queries(1):
        figures = storage_report(scope)
    assert figures.total == 177 + sidecars and figures.files == 8
    assert [row["owner__username"] for row in figures.by_member] == ["owner", "teammate"]
    assert figures.by_project[0]["project"] == "ads" and figures.by_project[0]["files"] == 6


# --- S3 ----------------------------------------------------------------------------------------


def test_on_s3_the_studio_redirects_to_a_short_lived_presigned_url(owner_client, owner, team, s3, settings):
    job = finished(owner, team, prompt="A lighthouse", created_at=datetime(2025, 1, 2, 12, tzinfo=UTC))
    make_archived(job, video_bytes=VIDEO)
    response = owner_client.get(url("video", job))
    assert response.status_code == 302 and response["Cache-Control"] == "private, no-store"
    target = response["Location"]
    assert target.startswith(settings.AWS_S3_ENDPOINT_URL) and s3.bucket in target
    query = parse_qs(urlsplit(target).query)
    # Signed for AWS_QUERYSTRING_EXPIRE seconds (signature v2 names the moment, v4 the length).
    lifetime = (
        int(query["Expires"][0]) - time.time() if "Expires" in query else int(query["X-Amz-Expires"][0])
    )
    assert 290 <= lifetime <= 300
    fetched = requests.get(target, timeout=10)
    assert fetched.status_code == 200 and fetched.content == VIDEO
    ranged = requests.get(target, headers={"Range": "bytes=-100"}, timeout=10)
    assert ranged.status_code == 206 and ranged.content == VIDEO[-100:]


def test_on_s3_a_download_is_named_by_the_presigned_url(owner_client, owner, team, s3):
    job = finished(owner, team, prompt="A lighthouse", created_at=datetime(2025, 1, 2, 12, tzinfo=UTC))
    make_archived(job, video_bytes=VIDEO)
    target = owner_client.get(url("download", job))["Location"]
    fetched = requests.get(target, timeout=10)
    assert fetched.content == VIDEO
    assert (
        fetched.headers["Content-Disposition"]
        == f'attachment; filename="2025-01-02-a-lighthouse-{job.pk}.mp4"'
    )


def test_on_s3_an_outsider_gets_404_not_a_url(client, owner, team, outsider, s3):
    job = finished(owner, team)
    make_archived(job)
    client.force_login(outsider)
    response = client.get(url("video", job))
    assert response.status_code == 404 and "Location" not in response


def test_on_s3_the_zip_streams_from_the_bucket(owner_client, owner, team, s3):
    job = finished(owner, team, prompt="A lighthouse", created_at=datetime(2025, 1, 2, 12, tzinfo=UTC))
    make_archived(job, video_bytes=VIDEO)
    archive = unzip(owner_client.get(reverse("jobs:export_zip")))
    assert archive.read(f"2025-01-02-a-lighthouse-{job.pk}.mp4") == VIDEO


def test_on_s3_deleting_removes_the_objects(owner_client, owner, team, s3):
    job = finished(owner, team)
    make_archived(job, poster_bytes=b"poster")
    assert s3.list_objects_v2(Bucket=s3.bucket)["KeyCount"] == 4
    owner_client.post(url("delete_files", job))
    assert s3.list_objects_v2(Bucket=s3.bucket)["KeyCount"] == 0
    job.refresh_from_db()
    assert job.archive_status == ArchiveStatus.DELETED


# --- system checks -------------------------------------------------------------------------------


def test_an_unwritable_media_root_is_a_warning(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    assert checks.check_media_storage(None) == []  # not there yet, but it can be made
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    settings.MEDIA_ROOT = str(blocker / "media")
    assert [w.id for w in checks.check_media_storage(None)] == ["jobs.W010"]


def test_a_bucket_that_answers_passes_and_one_that_does_not_is_a_warning(s3, settings):
    assert checks.check_media_storage(None) == []
    settings.AWS_STORAGE_BUCKET_NAME = "no-such-bucket"
    settings.STORAGES = {**settings.STORAGES}  # a fresh storage with the new name
    assert [w.id for w in checks.check_media_storage(None)] == ["jobs.W011"]
    settings.AWS_S3_ENDPOINT_URL = f"http://127.0.0.1:{closed_port()}"
    settings.STORAGES = {**settings.STORAGES}
    warnings = checks.check_media_storage(None)
    assert [w.id for w in warnings] == ["jobs.W011"] and "cannot be reached" in warnings[0].msg
