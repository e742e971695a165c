"""API tokens: the /tokens/ page (made, shown once, listed, revoked), who may see and revoke
whose, the operator's command, the archived media URLs with a bearer token, and the history's
mark on jobs sent through the API."""

import hashlib
import json
import re
import uuid
from datetime import date, datetime, timedelta
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from jobs import audit, pricing, tokens
from jobs.models import ApiToken, AuditAction, AuditEntry, Status, TokenScope

from .helpers import make_archived, make_job

TOKENS = reverse("jobs:tokens")
MEDIA_VIEWS = ("video", "thumbnail", "poster", "sidecar", "download")
VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4


def form(**overrides):
    data = {
        "name": "nightly CI",
        "expires": "90",
        "expires_on": "",
        "scopes": ["submit", "read"],
        "budget": "",
        "form_key": str(uuid.uuid4()),
    }
    data.update(overrides)
    return data


def revoke_url(token):
    return reverse("jobs:token_revoke", args=[token.pk])


def shown_token(response):
    """The token a page shows in its once-only panel."""
    found = re.search(r'id="new-token"[^>]*>(ks_[A-Za-z0-9_-]+)<', response.content.decode())
    return found.group(1) if found else None


def make_token(user, **fields):
    return tokens.create(user, name=fields.pop("name", "script"), **fields)


def entries(action):
    return AuditEntry.objects.filter(action=action)


def bearer(raw):
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def body(response):
    return b"".join(response.streaming_content) if response.streaming else response.content


# --- making a token -------------------------------------------------------------------------


def test_a_new_token_is_shown_once_with_its_secret_a_copy_button_and_a_curl_line(
    owner_client, owner, settings
):
    settings.PUBLIC_BASE_URL = "https://studio.example"
    response = owner_client.post(TOKENS, form())
    assert response.status_code == 201
    raw = shown_token(response)
    token = ApiToken.objects.get(user=owner)
    html = response.content.decode()
    assert raw.startswith("ks_") and token.webhook_secret in html
    assert "it will not be shown again" in html
    assert 'data-copy-target="new-token"' in html and "js/tokens.js" in html
    assert f'curl -H "Authorization: Bearer {raw}" https://studio.example/api/v1/me' in html.replace(
        "&quot;", '"'
    )
    assert "no-store" in response["Cache-Control"]

    again = owner_client.get(TOKENS).content.decode()
    assert raw not in again and token.webhook_secret not in again
    assert f"{token.prefix}…" in again and "nightly CI" in again


def test_only_the_hash_and_the_prefix_are_kept(owner_client, owner):
    raw = shown_token(owner_client.post(TOKENS, form()))
    token = ApiToken.objects.get(user=owner)
    assert token.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert token.prefix == raw[: tokens.SHOWN_CHARS] and len(token.prefix) < len(raw)
    stored = json.dumps(list(ApiToken.objects.values().get()), default=str)
    assert raw not in stored


def test_the_token_goes_into_no_url_session_or_message(owner_client, owner):
    response = owner_client.post(TOKENS, form())
    raw = shown_token(response)
    assert response.status_code == 201 and "Location" not in response
    session = owner_client.session
    assert raw not in json.dumps(dict(session.items()), default=str)
    assert list(response.context["messages"]) == []
    assert raw not in AuditEntry.objects.get().summary


def test_the_token_goes_into_no_log_line(owner_client, caplog):
    with caplog.at_level("DEBUG"):
        raw = shown_token(owner_client.post(TOKENS, form()))
        tokens.authenticate(raw, address="127.0.0.1")
    assert raw not in caplog.text


def test_reloading_the_page_that_showed_a_token_makes_no_second_one(owner_client, owner):
    data = form()
    assert owner_client.post(TOKENS, data).status_code == 201
    again = owner_client.post(TOKENS, data)
    assert again.status_code == 409
    assert "This form was already sent" in again.content.decode() and shown_token(again) is None
    assert ApiToken.objects.filter(user=owner).count() == 1
    assert owner_client.post(TOKENS, form()).status_code == 201  # a new form makes a new token


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"name": "  "}, "name", "Name the token"),
        ({"name": "x" * 101}, "name", "at most 100 characters"),
        ({"scopes": []}, "scopes", "Choose at least one scope"),
        ({"scopes": ["admin"]}, "scopes", "Choose scopes from the list"),
        ({"expires": "7"}, "expires", "Choose when the token expires"),
        ({"expires": "date", "expires_on": ""}, "expires_on", "Choose the day the token expires"),
        ({"expires": "date", "expires_on": "2020-01-01"}, "expires_on", "Choose a day after today"),
        ({"expires": "date", "expires_on": "9999-01-01"}, "expires_on", "within ten years"),
        ({"expires": "date", "expires_on": "next week"}, "expires_on", "YYYY-MM-DD"),
        ({"budget": "-5"}, "budget", "cannot be negative"),
        ({"budget": "ten"}, "budget", "Write the budget in dollars"),
        ({"budget": "2000000"}, "budget", "at most $1,000,000"),
    ],
)
def test_invalid_input_is_answered_422_with_the_errors_and_what_was_typed(
    owner_client, owner, overrides, field, message
):
    data = form(**{"name": "catalog notebook", "budget": "12.50", "expires": "30", **overrides})
    response = owner_client.post(TOKENS, data)
    assert response.status_code == 422
    assert field in response.context["form"].errors
    html = response.content.decode()
    assert message in html and "No token was made" in html
    if field != "name":
        assert 'value="catalog notebook"' in html
    if field != "budget":
        assert 'value="12.50"' in html
    assert not ApiToken.objects.exists() and not entries(AuditAction.TOKEN_CREATED).exists()


def test_the_form_starts_with_both_scopes_and_ninety_days(owner_client):
    html = owner_client.get(TOKENS).content.decode()
    for value in ("submit", "read"):
        assert re.search(rf'<input[^>]*name="scopes"[^>]*value="{value}"[^>]*checked', html)
    assert re.search(r'<input[^>]*name="expires"[^>]*value="90"[^>]*checked', html)
    assert "must fit all of them" in html


def test_expiry_after_some_days_scopes_and_no_budget_are_stored(owner_client, owner):
    before = timezone.now()
    owner_client.post(TOKENS, form(expires="30", scopes=["read"]))
    token = ApiToken.objects.get(user=owner)
    assert before + timedelta(days=30) <= token.expires_at <= timezone.now() + timedelta(days=30)
    assert token.scopes == ["read"] and token.monthly_budget_micro_cents is None


def test_an_expiry_date_is_the_start_of_that_day_in_the_persons_zone(owner_client, owner):
    owner_client.cookies["tz"] = "Europe/Berlin"
    day = timezone.localdate() + timedelta(days=40)
    owner_client.post(TOKENS, form(expires="date", expires_on=day.isoformat()))
    token = ApiToken.objects.get(user=owner)
    assert token.expires_at == datetime(day.year, day.month, day.day, tzinfo=ZoneInfo("Europe/Berlin"))


def test_never_means_no_expiry(owner_client, owner):
    owner_client.post(TOKENS, form(expires="never"))
    assert ApiToken.objects.get(user=owner).expires_at is None


def test_a_budget_in_dollars_is_stored_in_micro_cents(owner_client, owner):
    owner_client.post(TOKENS, form(budget="12.50"))
    token = ApiToken.objects.get(user=owner)
    assert token.monthly_budget_micro_cents == 12_500_000 == pricing.dollars_to_micro_cents("12.50")


def test_the_page_needs_a_signed_in_person(client, db):
    assert client.get(TOKENS).status_code == 302
    assert client.post(TOKENS, form()).status_code == 302
    assert not ApiToken.objects.exists()


def test_the_nav_links_to_the_tokens_page(owner_client):
    html = owner_client.get(reverse("jobs:list")).content.decode()
    assert f'href="{TOKENS}"' in html


# --- the list -------------------------------------------------------------------------------


def test_the_list_shows_each_tokens_limits_spend_and_last_use(owner_client, owner, team):
    token, raw = make_token(owner, name="catalog", budget=5_000_000, scopes=["read"])
    make_job(owner, team=team, api_token=token, estimated_micro_cents=1_250_000)
    tokens.authenticate(raw, address="203.0.113.7")
    row = _row(owner_client.get(TOKENS), token)
    assert "catalog" in row and f"{token.prefix}…" in row and ">read<" in row and ">submit<" not in row
    assert "$1.25 of $5.00" in row and "this month" in row
    assert "from 203.0.113.7" in row and "Revoke…" in row


def test_times_on_the_list_are_in_the_persons_zone(owner_client, owner):
    token, raw = make_token(owner)
    moment = datetime(2030, 1, 15, 23, 30, tzinfo=ZoneInfo("UTC"))
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=moment, created_at=moment)
    owner_client.cookies["tz"] = "Asia/Tokyo"
    row = _row(owner_client.get(TOKENS), token)
    assert "Jan 16, 2030 08:30" in row


def test_an_expired_token_says_so_and_a_revoked_one_says_when_and_by_whom(owner_client, owner, manager):
    old, _ = make_token(owner, name="old", expires_at=timezone.now() - timedelta(days=1))
    gone, _ = make_token(owner, name="gone")
    tokens.revoke(gone, by=manager)
    page = owner_client.get(TOKENS)
    assert "Expired" in _row(page, old)
    revoked = _row(page, gone)
    assert "Revoked" in revoked and "by manager" in revoked and "Revoke…" not in revoked


def _row(response, token):
    html = response.content.decode()
    start = html.index(f'id="token-{token.pk}"')
    return html[start : html.index("</tr>", start)]


# --- who sees and revokes whose -------------------------------------------------------------


def test_members_see_and_revoke_only_their_own_tokens(client, owner, teammate):
    mine, _ = make_token(owner, name="mine")
    theirs, _ = make_token(teammate, name="theirs")
    client.force_login(owner)
    listed = client.get(TOKENS).context["rows"]
    assert [row["token"] for row in listed] == [mine]
    assert client.get(revoke_url(theirs)).status_code == 404
    assert client.post(revoke_url(theirs)).status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None and not entries(AuditAction.TOKEN_REVOKED).exists()


def test_managers_see_and_revoke_their_teams_tokens_and_not_another_teams(client, owner, manager, outsider):
    members, _ = make_token(owner, name="members")
    other, _ = make_token(outsider, name="elsewhere")
    client.force_login(manager)
    page = client.get(TOKENS)
    assert [row["token"] for row in page.context["rows"]] == [members]
    assert "owner" in _row(page, members)  # the owner is named
    assert client.post(revoke_url(other)).status_code == 404
    assert client.post(revoke_url(members)).status_code == 302
    members.refresh_from_db()
    other.refresh_from_db()
    assert members.revoked_by == manager and other.revoked_at is None


def test_staff_see_and_revoke_everyones_tokens(client, staff, owner, outsider):
    first, _ = make_token(owner)
    second, _ = make_token(outsider)
    client.force_login(staff)
    page = client.get(TOKENS)
    assert {row["token"] for row in page.context["rows"]} == {first, second}
    assert "outsider" in _row(page, second)
    assert client.post(revoke_url(second)).status_code == 302
    second.refresh_from_db()
    assert second.revoked_by == staff


def test_an_outsider_gets_404_for_someone_elses_token(client, owner, outsider):
    token, _ = make_token(owner)
    client.force_login(outsider)
    assert client.get(revoke_url(token)).status_code == 404
    assert client.post(revoke_url(token)).status_code == 404
    assert client.post(reverse("jobs:token_revoke", args=[token.pk + 1000])).status_code == 404


# --- revoking -------------------------------------------------------------------------------


def test_revoking_is_immediate(owner_client, owner):
    token, raw = make_token(owner)
    assert tokens.authenticate(raw) == token
    response = owner_client.post(revoke_url(token))
    assert response.status_code == 302 and response["Location"] == TOKENS
    assert tokens.authenticate(raw) is None
    page = owner_client.get(TOKENS).content.decode()
    assert "it no longer works" in page and raw not in page


def test_the_revoke_link_asks_first_and_changes_nothing(owner_client, owner):
    token, raw = make_token(owner, name="nightly")
    response = owner_client.get(revoke_url(token))
    assert response.status_code == 200
    assert "Revoke the token “nightly”?" in response.content.decode()
    assert tokens.authenticate(raw) is not None


def test_revoking_twice_says_so_and_records_once(owner_client, owner):
    token, _ = make_token(owner)
    owner_client.post(revoke_url(token))
    again = owner_client.post(revoke_url(token), follow=True)
    assert "was already revoked" in again.content.decode()
    assert entries(AuditAction.TOKEN_REVOKED).count() == 1


def test_revoking_needs_a_csrf_token(client, owner):
    token, raw = make_token(owner)
    client.handler.enforce_csrf_checks = True
    client.force_login(owner)
    assert client.post(revoke_url(token)).status_code == 403
    assert tokens.authenticate(raw) is not None


# --- the audit trail ------------------------------------------------------------------------


def test_each_creation_and_revocation_leaves_exactly_one_audit_entry(owner_client, owner, team):
    owner_client.post(TOKENS, form(name="nightly CI", budget="5"))
    token = ApiToken.objects.get()
    made = entries(AuditAction.TOKEN_CREATED).get()
    assert made.actor_id == owner.pk and made.subject_id == owner.pk and made.team_id == team.pk
    assert "nightly CI" in made.summary and "$5.00 a month" in made.summary
    assert made.address == "127.0.0.1"
    owner_client.post(revoke_url(token))
    gone = entries(AuditAction.TOKEN_REVOKED).get()
    assert gone.actor_id == owner.pk and token.prefix in gone.summary
    assert AuditEntry.objects.count() == 2


# --- the operator's command -----------------------------------------------------------------


def run(*args):
    out = StringIO()
    call_command("create_api_token", *args, stdout=out)
    return out.getvalue()


def test_the_command_prints_the_token_alone_as_its_last_line_and_it_works(owner):
    output = run("owner")
    raw = output.splitlines()[-1]
    assert re.fullmatch(r"ks_[A-Za-z0-9_-]{40}", raw)
    token = tokens.authenticate(raw)
    assert token.user == owner and token.name == "created by an operator"
    assert token.scopes == ["read", "submit"] and token.expires_at is None
    assert "owner" in output and token.webhook_secret in output


def test_the_command_takes_a_name_an_expiry_and_a_budget(owner):
    before = timezone.now()
    raw = run("owner", "--name", "nightly", "--expires-days", "30", "--budget-dollars", "12.5").splitlines()[
        -1
    ]
    token = tokens.authenticate(raw)
    assert token.name == "nightly" and token.monthly_budget_micro_cents == 12_500_000
    assert before + timedelta(days=30) <= token.expires_at <= timezone.now() + timedelta(days=30)


def test_the_command_is_recorded_as_the_studios_doing(owner, team):
    run("owner")
    entry = entries(AuditAction.TOKEN_CREATED).get()
    assert entry.actor_id is None and entry.actor_name == audit.STUDIO
    assert entry.subject_id == owner.pk and entry.team_id == team.pk
    assert "An operator" in entry.summary and AuditEntry.objects.count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody"], "No user named “nobody”"),
        (["owner", "--expires-days", "ten"], "--expires-days must be a whole number"),
        (["owner", "--expires-days", "0"], "--expires-days must be a whole number"),
        (["owner", "--expires-days", "-3"], "--expires-days must be a whole number"),
        (["owner", "--expires-days", "99999"], "--expires-days must be a whole number"),
        (["owner", "--budget-dollars", "-1"], "cannot be negative"),
        (["owner", "--budget-dollars", "lots"], "must be an amount in dollars"),
        (["owner", "--budget-dollars", "NaN"], "must be an amount in dollars"),
        (["owner", "--budget-dollars", "1e12"], "at most $1,000,000"),
        (["owner", "--name", "  "], "--name must not be empty"),
    ],
)
def test_the_command_refuses_clearly(owner, args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        run(*args)
    assert not ApiToken.objects.exists() and not AuditEntry.objects.exists()


def test_the_command_refuses_an_inactive_person(owner):
    owner.is_active = False
    owner.save()
    with pytest.raises(CommandError, match="inactive"):
        run("owner")


# --- the archived media with a bearer token -------------------------------------------------


@pytest.fixture
def kept(owner, team):
    """A finished job of the owner's, in the owner's team, whose files the studio keeps."""
    job = make_job(owner, team=team, status=Status.COMPLETED, output_url="https://cdn.example/v.mp4")
    make_archived(job, video_bytes=VIDEO, thumbnail_bytes=b"thumb-bytes", poster_bytes=b"poster-bytes")
    return job


def media_url(name, job):
    return reverse(f"jobs:{name}", args=[job.pk])


@pytest.mark.parametrize("name", MEDIA_VIEWS)
def test_the_media_urls_answer_a_bearer_token_without_a_session(client, owner, kept, name):
    _, raw = make_token(owner, scopes=["read"])
    response = client.get(media_url(name, kept), **bearer(raw))
    assert response.status_code == 200
    assert len(body(response)) > 0 and "sessionid" not in response.cookies


def test_a_bearer_token_gets_the_same_bytes_and_ranges_as_a_session(client, owner, kept):
    _, raw = make_token(owner)
    response = client.get(media_url("video", kept), HTTP_RANGE="bytes=0-9", **bearer(raw))
    assert response.status_code == 206 and body(response) == VIDEO[:10]
    download = client.get(media_url("download", kept), **bearer(raw))
    assert "attachment" in download["Content-Disposition"]


def test_a_managers_token_reads_the_teams_media(client, manager, kept):
    _, raw = make_token(manager)
    assert client.get(media_url("video", kept), **bearer(raw)).status_code == 200


@pytest.mark.parametrize("name", MEDIA_VIEWS)
def test_another_teams_token_gets_404(client, outsider, kept, name):
    _, raw = make_token(outsider)
    assert client.get(media_url(name, kept), **bearer(raw)).status_code == 404


def test_a_teammates_token_gets_404_for_the_owners_job(client, teammate, kept):
    _, raw = make_token(teammate)
    assert client.get(media_url("video", kept), **bearer(raw)).status_code == 404


def _revoked(owner):
    token, raw = make_token(owner)
    tokens.revoke(token, by=owner)
    return raw


def _expired(owner):
    return make_token(owner, expires_at=timezone.now() - timedelta(seconds=1))[1]


@pytest.mark.parametrize(
    "spoil",
    [
        lambda owner: "ks_" + "x" * 40,
        lambda owner: "not-a-token",
        lambda owner: "",
        _revoked,
        _expired,
    ],
    ids=["unknown", "garbled", "empty", "revoked", "expired"],
)
def test_a_bad_token_gets_a_401_in_json_not_the_sign_in_page(client, owner, kept, spoil):
    response = client.get(media_url("video", kept), **bearer(spoil(owner)))
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "UNAUTHORIZED" and response.json()["error"]["message"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_bad_token_is_refused_even_with_a_signed_in_session(owner_client, kept):
    response = owner_client.get(media_url("video", kept), **bearer("ks_" + "x" * 40))
    assert response.status_code == 401


def test_a_token_without_the_read_scope_gets_403(client, owner, kept):
    _, raw = make_token(owner, scopes=[TokenScope.SUBMIT])
    response = client.get(media_url("video", kept), **bearer(raw))
    assert response.status_code == 403 and response.json()["error"]["code"] == "SCOPE_REQUIRED"


def test_a_revoked_token_stops_reading_media_at_once(owner_client, owner, kept, client):
    token, raw = make_token(owner)
    assert client.get(media_url("video", kept), **bearer(raw)).status_code == 200
    owner_client.post(revoke_url(token))
    assert client.get(media_url("video", kept), **bearer(raw)).status_code == 401


def test_without_a_token_the_media_urls_still_need_a_session(owner_client, kept):
    assert Client().get(media_url("video", kept))["Location"].startswith(reverse("login"))
    assert owner_client.get(media_url("video", kept)).status_code == 200
    # Another scheme (a proxy's Basic credentials) is left to the session.
    basic = {"HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz"}
    assert owner_client.get(media_url("video", kept), **basic).status_code == 200


def test_a_media_read_notes_the_tokens_last_use_and_address(client, owner, kept):
    token, raw = make_token(owner)
    client.get(media_url("video", kept), REMOTE_ADDR="198.51.100.4", **bearer(raw))
    token.refresh_from_db()
    assert token.last_used_ip == "198.51.100.4" and token.last_used_at is not None


def test_the_zip_export_answers_a_bearer_token(client, owner, kept, outsider):
    _, raw = make_token(owner)
    response = client.get(reverse("jobs:export_zip"), **bearer(raw))
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert body(response)[:2] == b"PK"
    _, theirs = make_token(outsider)
    assert b"clip" not in body(client.get(reverse("jobs:export_zip"), **bearer(theirs)))


# --- the history marks jobs sent through the API --------------------------------------------


def test_the_history_marks_jobs_sent_through_the_api(owner_client, owner, team):
    token, _ = make_token(owner, name="nightly CI")
    make_job(owner, team=team, api_token=token, prompt="Sent by a script")
    make_job(owner, team=team, prompt="Made on the page")
    html = owner_client.get(reverse("jobs:list")).content.decode()
    assert html.count("API · nightly CI") == 1
    script_row = html[html.index("Sent by a script") :]
    assert script_row.index("API · nightly CI") < script_row.index("</tr>")


def test_api_jobs_cost_the_history_no_extra_query(owner_client, owner, team, django_assert_num_queries):
    token, _ = make_token(owner, name="nightly CI")
    for i in range(30):
        make_job(owner, team=team, api_token=token if i % 2 else None, prompt=f"p{i}")
    with django_assert_num_queries(4):  # session, user, profile, one page of jobs
        response = owner_client.get(reverse("jobs:list"), {"per_page": "50"})
    assert response.content.decode().count("API · nightly CI") == 15


def test_the_tokens_page_costs_the_same_queries_for_one_token_or_twenty(owner_client, owner):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert owner_client.get(TOKENS).status_code == 200
        return len(captured)

    make_token(owner, name="first")
    one = queries()
    for i in range(19):
        make_token(owner, name=f"t{i}")
    assert queries() == one


def test_an_expiry_date_far_in_the_past_or_future_never_500s(owner_client):
    for day in ("0001-01-01", "9999-12-31", date.max.isoformat()):
        assert owner_client.post(TOKENS, form(expires="date", expires_on=day)).status_code == 422
