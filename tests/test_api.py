"""The JSON API at /api/v1/, through real HTTP on loopback: tokens, scopes, the access rule,
idempotency, budgets, approvals, the pause, the rate limit, validation, and its document."""

import uuid
from datetime import timedelta

import pytest
import requests
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from openapi_spec_validator import validate

from jobs import rollup, throttle, tokens
from jobs.models import ArchivedFile, ArchiveStatus, AuditAction, AuditEntry, Job, Role, Status, TokenScope
from sandbox.engine import SANDBOX

from .helpers import make_job, make_member, make_team

pytestmark = [pytest.mark.django_db(transaction=True)]

BODY = {
    "prompt": "A lighthouse at dusk, slow aerial orbit",
    "quality": "std",
    "duration": 5,
    "aspect_ratio": "16:9",
}
PRICE = 225_000  # std, 5 s


@pytest.fixture
def studio(live_server, settings):
    """The studio over real HTTP, its sandbox served by the same server; the base URL."""
    settings.PIXELBYTE_API_KEY = ""
    settings.SANDBOX_API_URL = live_server.url + "/sandbox"
    settings.PUBLIC_BASE_URL = "http://studio.invalid"  # no PixelByte callbacks
    settings.SANDBOX_PENDING_SECONDS = 30  # long enough to cancel
    settings.SANDBOX_PROCESSING_SECONDS = 30
    # The cache lives in a table a transactional test does not flush: no pause or request
    # count of one test may reach the next.
    cache.clear()
    yield live_server.url
    cache.clear()


class Api:
    """A script holding one token (or none)."""

    def __init__(self, base, raw=None):
        self.base = base + "/api/v1"
        self.session = requests.Session()
        if raw is not None:
            self.session.headers["Authorization"] = f"Bearer {raw}"

    def get(self, path, **kwargs):
        return self.session.get(self.base + path, timeout=30, allow_redirects=False, **kwargs)

    def post(self, path, body=None, key=None, **kwargs):
        headers = {"Idempotency-Key": key} if key is not None else {}
        return self.session.post(
            self.base + path, json=body, headers=headers, timeout=30, allow_redirects=False, **kwargs
        )

    def submit(self, key=None, **changes):
        return self.post("/jobs", {**BODY, **changes}, key=key)


def api_for(studio, user, **token_fields):
    token_fields.setdefault("name", "script")
    token, raw = tokens.create(user, **token_fields)
    api = Api(studio, raw)
    api.token = token
    return api


def error_of(response, status, code):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    return error


# --- submitting -----------------------------------------------------------------------------


def test_a_token_submits_a_job_and_is_answered_201_with_the_job(studio, owner):
    api = api_for(studio, owner, name="nightly")
    response = api.submit(seed=42, project="Spring campaign")
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["status"] == Status.PENDING and not job["finished"]
    assert job["options"] == {"quality": "std", "duration": 5, "aspect_ratio": "16:9", "seed": 42}
    assert job["estimate"] == {"micro_cents": PRICE, "dollars": "0.225"}
    assert job["charged"] is True and job["charge"]["micro_cents"] == PRICE
    assert job["sent_with"] == {"name": "nightly", "prefix": api.token.prefix}
    assert job["created_at"].endswith("Z") and job["submitted_at"].endswith("Z")
    assert job["links"]["self"] == f"{studio}/api/v1/jobs/{job['id']}" == response.headers["Location"]
    assert job["links"]["page"] == f"{studio}/jobs/{job['id']}/"
    assert job["links"]["video"] is None  # nothing kept yet
    stored = Job.objects.get(pk=job["id"])
    assert stored.owner == owner and stored.api_token == api.token and stored.project == "Spring campaign"
    assert SANDBOX.submit_count == 1


def test_duration_may_be_written_as_a_string_or_a_number(studio, owner):
    api = api_for(studio, owner)
    assert api.submit(duration="10").json()["options"]["duration"] == 10
    assert api.submit(duration=10).json()["estimate"]["micro_cents"] == 2 * PRICE


def test_the_job_sent_through_the_api_shows_in_its_persons_history(studio, owner):
    job = api_for(studio, owner, name="batch").submit(prompt="A red kite over the dunes").json()
    browser = Client()
    browser.force_login(owner)
    page = browser.get("/jobs/")
    assert page.status_code == 200
    assert "A red kite over the dunes" in page.content.decode()
    assert job["id"] in [j.pk for j in page.context["page"].jobs]


def test_a_webhook_url_is_kept_on_the_job_and_its_attempts_are_shown(studio, owner):
    job = api_for(studio, owner).submit(webhook_url="http://127.0.0.1:9/hook").json()
    assert job["callback"] == {"url": "http://127.0.0.1:9/hook", "attempts": []}
    assert Job.objects.get(pk=job["id"]).callback_url == "http://127.0.0.1:9/hook"


# --- who may call --------------------------------------------------------------------------


def test_without_a_live_token_every_route_answers_401_in_json(studio, owner):
    job = make_job(owner)
    calls = [
        ("post", "/jobs"),
        ("get", "/jobs"),
        ("get", f"/jobs/{job.pk}"),
        ("post", f"/jobs/{job.pk}/cancel"),
        ("post", "/estimate"),
        ("get", "/me"),
    ]
    for headers in ({}, {"Authorization": "Bearer ks_not_a_token"}, {"Authorization": "Basic b3duZXI6cHc="}):
        api = Api(studio)
        api.session.headers.update(headers)
        for method, path in calls:
            response = getattr(api, method)(path)
            error_of(response, 401, "UNAUTHORIZED")
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert SANDBOX.submit_count == 0


def test_a_session_cookie_alone_never_authorises_an_api_call(studio, owner):
    browser = Client()
    browser.force_login(owner)
    api = Api(studio)
    api.session.cookies.set("sessionid", browser.cookies["sessionid"].value)
    assert api.session.get(studio + "/jobs/", allow_redirects=False).status_code == 200  # the cookie works
    error_of(api.get("/me"), 401, "UNAUTHORIZED")
    error_of(api.submit(), 401, "UNAUTHORIZED")
    assert not Job.objects.exists()


def test_a_token_needs_no_csrf_token_even_beside_a_session_cookie(studio, owner):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(owner)
    api = api_for(studio, owner)
    api.session.cookies.set("sessionid", browser.cookies["sessionid"].value)
    assert api.submit().status_code == 201


def test_an_expired_token_is_refused(studio, owner):
    api = api_for(studio, owner, expires_at=timezone.now() + timedelta(days=1))
    assert api.get("/me").status_code == 200
    api.token.expires_at = timezone.now() - timedelta(seconds=1)
    api.token.save()
    error_of(api.get("/me"), 401, "UNAUTHORIZED")


def test_a_revoked_token_stops_working_at_once(studio, owner):
    api = api_for(studio, owner)
    assert api.get("/me").status_code == 200
    tokens.revoke(api.token, by=owner)
    error_of(api.get("/me"), 401, "UNAUTHORIZED")
    error_of(api.submit(), 401, "UNAUTHORIZED")
    assert SANDBOX.submit_count == 0


def test_a_token_of_a_closed_account_is_refused(studio, owner):
    api = api_for(studio, owner)
    owner.is_active = False
    owner.save()
    error_of(api.get("/me"), 401, "UNAUTHORIZED")


def test_each_route_needs_its_scope(studio, owner):
    job = make_job(owner)
    reader = api_for(studio, owner, scopes=[TokenScope.READ])
    submitter = api_for(studio, owner, scopes=[TokenScope.SUBMIT])
    error_of(reader.submit(), 403, "SCOPE_REQUIRED")
    error_of(reader.post(f"/jobs/{job.pk}/cancel"), 403, "SCOPE_REQUIRED")
    for path in ("/me", "/jobs", f"/jobs/{job.pk}"):
        assert reader.get(path).status_code == 200
        error_of(submitter.get(path), 403, "SCOPE_REQUIRED")
    error_of(submitter.post("/estimate", BODY), 403, "SCOPE_REQUIRED")
    assert reader.post("/estimate", BODY).status_code == 200
    assert submitter.submit().status_code == 201
    assert Job.objects.count() == 2 and SANDBOX.submit_count == 1


def test_tokens_of_three_people_in_two_teams_see_only_what_the_access_rule_allows(
    studio, owner, teammate, manager, outsider, staff
):
    team = owner.profile.team
    mine, theirs, elsewhere = make_job(owner, team=team), make_job(teammate, team=team), make_job(outsider)
    seen = {
        owner: {mine},
        manager: {mine, theirs},
        outsider: {elsewhere},
        staff: {mine, theirs, elsewhere},
    }
    for person, visible in seen.items():
        api = api_for(studio, person)
        listed = {job["id"] for job in api.get("/jobs").json()["jobs"]}
        assert listed == {job.pk for job in visible}, person
        for job in (mine, theirs, elsewhere):
            response = api.get(f"/jobs/{job.pk}")
            if job in visible:
                assert response.status_code == 200 and response.json()["id"] == job.pk
            else:
                error_of(response, 404, "NOT_FOUND")  # never 403: that would say it exists
                error_of(api.post(f"/jobs/{job.pk}/cancel"), 404, "NOT_FOUND")
    error_of(api_for(studio, owner).get("/jobs/999999"), 404, "NOT_FOUND")


# --- reading jobs ----------------------------------------------------------------------------


def test_the_list_pages_with_a_cursor_and_applies_the_historys_filters(studio, owner):
    base = timezone.now() - timedelta(hours=1)
    for i in range(3):
        make_job(owner, prompt=f"Lighthouse {i}", created_at=base + timedelta(minutes=i))
    make_job(owner, prompt="A fox", status=Status.COMPLETED, created_at=base + timedelta(minutes=9))
    api = api_for(studio, owner)

    first = api.get("/jobs", params={"q": "lighthouse", "per_page": 2}).json()
    assert [j["prompt"] for j in first["jobs"]] == ["Lighthouse 2", "Lighthouse 1"]
    assert first["next_cursor"] and "q=lighthouse" in first["next"]
    second = api.session.get(first["next"], timeout=30).json()
    assert [j["prompt"] for j in second["jobs"]] == ["Lighthouse 0"]
    assert second["next_cursor"] is None and second["next"] is None

    done = api.get("/jobs", params={"status": "completed"}).json()["jobs"]
    assert [j["prompt"] for j in done] == ["A fox"]


def test_a_filter_or_cursor_the_history_would_not_accept_is_a_422_naming_it(studio, owner):
    api = api_for(studio, owner)
    fields = error_of(
        api.get("/jobs", params={"status": "nope", "date_from": "soon"}), 422, "VALIDATION_FAILED"
    )["fields"]
    assert set(fields) == {"status", "date_from"}
    assert error_of(api.get("/jobs", params={"after": "garbage"}), 422, "VALIDATION_FAILED")["fields"] == {
        "after": ["Not a cursor."]
    }
    assert (
        "per_page" in error_of(api.get("/jobs", params={"per_page": 0}), 422, "VALIDATION_FAILED")["fields"]
    )


def test_a_kept_job_links_to_the_studios_own_copies(studio, owner):
    job = make_job(owner, status=Status.COMPLETED, output_url="https://cdn.example/v.mp4")
    job.archive_status = ArchiveStatus.ARCHIVED
    job.save()
    ArchivedFile.objects.create(
        job=job, kind="video", name=f"{job.pk}/v.mp4", size=3, content_type="video/mp4"
    )
    rollup.files_kept(job, 3, 1)  # as the archiver counts what it keeps
    links = api_for(studio, owner).get(f"/jobs/{job.pk}").json()["links"]
    assert links["video"] == f"{studio}/jobs/{job.pk}/video"
    assert links["poster"] is None and links["thumbnail"] is None


def test_the_list_reads_a_fixed_number_of_queries_whatever_its_length(owner, django_assert_max_num_queries):
    _, raw = tokens.create(owner, name="count")
    browser = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    make_job(owner)
    browser.get("/api/v1/jobs")  # the token's "last used" is written on the first call
    with django_assert_max_num_queries(30) as one:
        assert browser.get("/api/v1/jobs").status_code == 200
    for _ in range(20):
        make_job(owner)
    with django_assert_max_num_queries(len(one.captured_queries)):
        assert len(browser.get("/api/v1/jobs").json()["jobs"]) == 21


# --- cancelling ----------------------------------------------------------------------------


def test_a_queued_job_is_cancelled_and_refunded(studio, owner):
    api = api_for(studio, owner)
    job = api.submit().json()
    response = api.post(f"/jobs/{job['id']}/cancel")
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert cancelled["status"] == Status.CANCELLED and cancelled["finished"]
    assert cancelled["charged"] is False and cancelled["refunded"]["micro_cents"] == PRICE
    entry = AuditEntry.objects.get(action=AuditAction.CANCELLED)
    assert entry.actor_id == owner.pk and entry.job_id == job["id"]


def test_a_job_that_can_no_longer_be_cancelled_is_a_409(studio, owner):
    done = make_job(owner, status=Status.COMPLETED, remote_id="job_done")
    error_of(api_for(studio, owner).post(f"/jobs/{done.pk}/cancel"), 409, "JOB_CANNOT_BE_CANCELLED")


# --- idempotency --------------------------------------------------------------------------


def test_a_retry_with_the_same_idempotency_key_answers_the_same_job(studio, owner):
    api = api_for(studio, owner)
    first = api.submit(key="order-1138")
    again = api.submit(key="order-1138")
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert Job.objects.count() == 1 and SANDBOX.submit_count == 1


def test_the_same_key_with_another_body_is_refused_with_409(studio, owner):
    api = api_for(studio, owner)
    assert api.submit(key="k").status_code == 201
    for change in ({"prompt": "Something else"}, {"quality": "pro"}, {"project": "X"}, {"seed": 1}):
        error_of(api.submit(key="k", **change), 409, "IDEMPOTENCY_KEY_REUSED")
    assert Job.objects.count() == 1 and SANDBOX.submit_count == 1


def test_an_idempotency_key_belongs_to_its_token(studio, owner):
    one, other = api_for(studio, owner), api_for(studio, owner)
    assert one.submit(key="same").json()["id"] != other.submit(key="same").json()["id"]
    assert SANDBOX.submit_count == 2


def test_without_a_key_each_request_is_a_new_job(studio, owner):
    api = api_for(studio, owner)
    assert api.submit().json()["id"] != api.submit().json()["id"]
    assert SANDBOX.submit_count == 2


def test_an_empty_or_overlong_idempotency_key_is_a_422(studio, owner):
    api = api_for(studio, owner)
    for key in ("", "k" * 256):
        assert "Idempotency-Key" in error_of(api.submit(key=key), 422, "VALIDATION_FAILED")["fields"]
    assert not Job.objects.exists()


# --- budgets and approvals --------------------------------------------------------------


def _refused_by(api, kind, name):
    error = error_of(api.submit(), 402, "BUDGET_EXCEEDED")
    assert error["budget"]["kind"] == kind and error["budget"]["name"] == name
    assert name in error["message"]
    assert error["cost"]["micro_cents"] == PRICE
    return error


def test_the_tokens_own_budget_refuses_when_it_is_the_one_that_does_not_fit(studio, owner):
    team = owner.profile.team
    team.monthly_budget_micro_cents = 100 * PRICE
    team.save()
    owner.profile.monthly_budget_micro_cents = 100 * PRICE
    owner.profile.save()
    api = api_for(studio, owner, name="ci", budget=PRICE + 1000)
    assert api.submit().status_code == 201
    error = _refused_by(api, "token", "the token's monthly budget (ci)")
    assert error["over_by"]["micro_cents"] == PRICE - 1000
    assert error["budget"]["left"]["micro_cents"] == 1000
    assert Job.objects.count() == 1 and SANDBOX.submit_count == 1
    # The person's other tokens are not held back by this one's budget.
    assert api_for(studio, owner).submit().status_code == 201


def test_the_persons_budget_refuses_when_it_is_the_one_that_does_not_fit(studio, owner):
    owner.profile.monthly_budget_micro_cents = PRICE // 2
    owner.profile.save()
    error = _refused_by(api_for(studio, owner, budget=100 * PRICE), "user", "your monthly budget")
    assert error["over_by"] == {"micro_cents": PRICE // 2, "dollars": "0.1125"}
    assert not Job.objects.exists() and SANDBOX.submit_count == 0


def test_the_teams_budget_refuses_when_it_is_the_one_that_does_not_fit(studio, owner, teammate):
    team = owner.profile.team
    team.monthly_budget_micro_cents = PRICE
    team.save()
    assert api_for(studio, teammate).submit().status_code == 201
    _refused_by(api_for(studio, owner), "team", "the team budget (Studio)")
    assert Job.objects.count() == 1 and SANDBOX.submit_count == 1


def test_a_job_a_manager_must_approve_is_answered_202_with_who_can_approve(studio, owner, manager):
    team = owner.profile.team
    team.approval_above_micro_cents = PRICE // 2
    team.save()
    api = api_for(studio, owner)
    response = api.submit(key="big-one")
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == Status.AWAITING and job["charged"] is False
    assert job["approval"]["decision"] == "waiting"
    assert job["approval"]["approvers"] == ["manager"]
    assert job["approval"]["reason"] == "above_threshold"
    assert SANDBOX.submit_count == 0
    replay = api.submit(key="big-one")
    assert replay.status_code == 202 and replay.headers["Idempotent-Replayed"] == "true"
    assert api.get("/me").json()["approval_rule"] == {
        "above": {"micro_cents": PRICE // 2, "dollars": "0.1125"},
        "may_ask": False,
        "approvers": ["manager"],
    }


def test_a_member_who_may_ask_is_answered_202_instead_of_402(studio, owner, manager):
    team = owner.profile.team
    team.monthly_budget_micro_cents, team.members_may_ask = PRICE // 2, True
    team.save()
    job = api_for(studio, owner).submit().json()
    assert job["status"] == Status.AWAITING and job["approval"]["reason"] == "over_budget"


def test_while_submissions_are_paused_a_submit_is_a_503_with_retry_after(studio, owner):
    throttle.pause(30)
    api = api_for(studio, owner)
    response = api.submit()
    error_of(response, 503, "SUBMISSIONS_PAUSED")
    assert 1 <= int(response.headers["Retry-After"]) <= 30
    assert not Job.objects.exists() and SANDBOX.submit_count == 0
    assert api.get("/me").status_code == 200  # reading is not paused


# --- the rate limit ----------------------------------------------------------------------


def test_a_token_past_its_rate_is_answered_429_with_retry_after(studio, owner, settings):
    settings.API_RATE_LIMIT = 3
    api, other = api_for(studio, owner), api_for(studio, owner)
    assert [api.get("/me").status_code for _ in range(3)] == [200, 200, 200]
    response = api.get("/me")
    error_of(response, 429, "RATE_LIMITED")
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    error_of(api.submit(), 429, "RATE_LIMITED")
    assert other.get("/me").status_code == 200  # counted per token
    assert SANDBOX.submit_count == 0


# --- validation ------------------------------------------------------------------------------


def test_json_of_the_wrong_types_is_a_422_naming_each_field(studio, owner):
    response = api_for(studio, owner).submit(prompt=5, duration=5.5, seed="x", aspect_ratio=None)
    fields = error_of(response, 422, "VALIDATION_FAILED")["fields"]
    assert set(fields) == {"prompt", "duration", "seed", "aspect_ratio"}
    assert fields["duration"] == ["Input should be a valid integer or a valid string"]
    assert not Job.objects.exists()


def test_a_body_that_is_not_json_is_a_400(studio, owner):
    api = api_for(studio, owner)
    response = api.session.post(api.base + "/jobs", data="{", headers={"Content-Type": "application/json"})
    error_of(response, 400, "BAD_REQUEST")


def test_the_forms_rules_are_a_422_in_the_forms_words(studio, owner):
    api = api_for(studio, owner)
    response = api.submit(
        prompt="x" * 2501, quality="ultra", duration=7, seed=-1, webhook_url="http://example.com/hook"
    )
    fields = error_of(response, 422, "VALIDATION_FAILED")["fields"]
    assert set(fields) == {"prompt", "quality", "duration", "seed", "webhook_url"}
    assert fields["prompt"] == [
        "The prompt is 2501 characters long; the limit is 2500. Shorten it and try again."
    ]
    assert fields["quality"] == ["“ultra” is not an allowed quality. Choose one of: std, pro."]
    assert fields["duration"] == ["“7” is not an allowed duration. Choose one of: 5, 10."]
    error_of(api.submit(prompt="   "), 422, "VALIDATION_FAILED")
    assert not Job.objects.exists() and SANDBOX.submit_count == 0


def test_a_webhook_url_must_be_https_or_loopback_in_sandbox_mode(studio, owner, settings):
    api = api_for(studio, owner)
    fine = ["https://hooks.example.com/kling", "http://127.0.0.1:9000/hook", "http://localhost/hook"]
    for url in fine:
        assert api.post("/estimate", {**BODY, "webhook_url": url}).status_code == 200, url
    for url in [
        "http://hooks.example.com/kling",
        "ftp://example.com/x",
        "not a url",
        "https://" + "a" * 2000,
    ]:
        assert (
            "webhook_url"
            in error_of(api.post("/estimate", {**BODY, "webhook_url": url}), 422, "VALIDATION_FAILED")[
                "fields"
            ]
        ), url
    settings.PIXELBYTE_API_KEY = "pb_live_key"  # a real studio: no plain http, nothing internal
    for url in [
        "http://127.0.0.1:9000/hook",
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://localhost/",
    ]:
        error_of(api.post("/estimate", {**BODY, "webhook_url": url}), 422, "VALIDATION_FAILED")
    assert api.post("/estimate", {**BODY, "webhook_url": fine[0]}).status_code == 200


# --- estimate and me ---------------------------------------------------------------------


def test_the_estimate_prices_a_body_and_says_what_each_budget_would_do(studio, owner):
    owner.profile.monthly_budget_micro_cents = 1_000_000
    owner.profile.save()
    api = api_for(studio, owner)
    body = {**BODY, "quality": "pro", "duration": "10"}
    answer = api.post("/estimate", body).json()
    assert answer["estimate"] == {"micro_cents": 675_000, "dollars": "0.675"}
    assert answer["outcome"] == "send" and answer["approval"] is None
    (budget,) = answer["budgets"]
    assert budget["kind"] == "user" and budget["fits"] is True
    assert budget["left_after"]["micro_cents"] == 325_000
    api.post("/jobs", body)
    again = api.post("/estimate", body).json()
    assert again["outcome"] == "refused" and "your monthly budget" in again["message"]
    assert again["budgets"][0]["fits"] is False and again["budgets"][0]["left_after"]["dollars"] == "-0.35"
    assert Job.objects.count() == 1  # estimating records nothing


def test_the_estimate_says_when_a_manager_would_have_to_approve(studio, owner, manager):
    team = owner.profile.team
    team.approval_above_micro_cents = PRICE
    team.save()
    answer = api_for(studio, owner).post("/estimate", {**BODY, "duration": 10}).json()
    assert answer["outcome"] == "approval"
    assert (
        answer["approval"]["approvers"] == ["manager"] and answer["approval"]["reason"] == "above_threshold"
    )
    assert api_for(studio, manager).post("/estimate", {**BODY, "duration": 10}).json()["outcome"] == "send"


def test_me_names_the_person_the_token_and_every_budget_that_applies(studio, owner):
    owner.first_name, owner.email = "Ada", "ada@example.com"
    owner.save()
    owner.profile.monthly_budget_micro_cents = 5_000_000
    owner.profile.save()
    team = owner.profile.team
    team.monthly_budget_micro_cents = 50_000_000
    team.save()
    expires = timezone.now() + timedelta(days=30)
    api = api_for(studio, owner, name="notebook", expires_at=expires, budget=2_000_000)
    api.submit()
    me = api.get("/me").json()
    assert me["user"] == {"username": "owner", "name": "Ada", "email": "ada@example.com"}
    assert me["team"] == {"id": team.pk, "name": "Studio"} and me["role"] == Role.MEMBER
    assert me["token"]["name"] == "notebook" and me["token"]["prefix"] == api.token.prefix
    assert me["token"]["scopes"] == ["read", "submit"]
    assert me["token"]["monthly_budget"] == {"micro_cents": 2_000_000, "dollars": "2.00"}
    assert me["token"]["expires_at"].startswith(expires.strftime("%Y-%m-%dT%H:%M"))
    kinds = [
        (b["kind"], b["limit"]["micro_cents"], b["spent"]["micro_cents"], b["left"]["micro_cents"])
        for b in me["budgets"]
    ]
    assert kinds == [
        ("token", 2_000_000, PRICE, 2_000_000 - PRICE),
        ("user", 5_000_000, PRICE, 5_000_000 - PRICE),
        ("team", 50_000_000, PRICE, 50_000_000 - PRICE),
    ]
    resets_on = me["budgets"][1]["resets_on"]
    assert resets_on.endswith("-01") and resets_on > timezone.now().date().isoformat()


# --- the door itself ---------------------------------------------------------------------


def test_no_api_url_sends_anyone_to_the_sign_in_page(studio, owner):
    api = Api(studio)
    for path in ("/jobs", "/me", "/jobs/1", "/openapi.json", "/docs"):
        assert api.get(path).status_code in (200, 401), path
    assert api.post("/jobs/1/cancel").status_code == 401
    assert api.get("/").status_code == 404  # the API's root is nothing, but not a redirect either


def test_the_openapi_document_validates_and_lists_every_route(studio):
    response = Api(studio).get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    validate(document)  # OpenAPI 3.1
    assert document["openapi"].startswith("3.1")
    routes = {(path, method) for path, item in document["paths"].items() for method in item}
    assert routes == {
        ("/api/v1/jobs", "post"),
        ("/api/v1/jobs", "get"),
        ("/api/v1/jobs/{job_id}", "get"),
        ("/api/v1/jobs/{job_id}/cancel", "post"),
        ("/api/v1/estimate", "post"),
        ("/api/v1/me", "get"),
    }
    schemes = document["components"]["securitySchemes"]
    assert {scheme["scheme"] for scheme in schemes.values()} == {"bearer"}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert operation["security"], (path, method)
            for status in ("401", "403", "429"):
                ref = operation["responses"][status]["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/Error", (path, method, status)
    submit = document["paths"]["/api/v1/jobs"]["post"]["responses"]
    assert {"201", "202", "402", "409", "422", "503"} <= set(submit)
    body = document["components"]["schemas"]["JobIn"]
    assert body["properties"]["quality"]["enum"] == ["std", "pro"]
    assert set(body["required"]) == {"prompt", "quality", "duration", "aspect_ratio"}


def test_the_reference_page_is_served_from_the_studios_own_files(studio):
    api = Api(studio)
    response = api.get("/docs")
    assert response.status_code == 200
    html = response.text
    assert "/static/ninja/swagger-ui-bundle.js" in html and "/static/ninja/swagger-ui.css" in html
    assert "cdn" not in html.lower() and "https://" not in html
    assert api.session.get(studio + "/static/ninja/swagger-ui-bundle.js", timeout=30).status_code == 200


def test_a_token_made_for_someone_else_by_staff_acts_as_that_person(studio, staff):
    person = make_member("grace", make_team("Other"))
    _, raw = tokens.create(person, name="ops", actor=staff)
    job = Api(studio, raw).submit().json()
    assert Job.objects.get(pk=job["id"]).owner == person


def test_each_key_makes_one_job_however_often_it_is_sent(studio, owner):
    api = api_for(studio, owner)
    keys = [str(uuid.uuid4()) for _ in range(3)]
    ids = {api.submit(key=key).json()["id"] for key in keys for _ in range(2)}
    assert len(ids) == 3 and SANDBOX.submit_count == 3


def test_someone_in_no_team_has_no_budgets_and_no_approval_rule(studio, loner):
    api = api_for(studio, loner)
    me = api.get("/me").json()
    assert me["team"] is None and me["role"] is None and me["budgets"] == [] and me["approval_rule"] is None
    answer = api.post("/estimate", BODY).json()
    assert answer["outcome"] == "send" and answer["budgets"] == []


def test_a_bug_is_answered_500_in_the_same_shape_and_logged(studio, owner, monkeypatch, caplog):
    from jobs.api import present

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(present, "job", broken)
    job = make_job(owner)
    error = error_of(api_for(studio, owner).get(f"/jobs/{job.pk}"), 500, "INTERNAL_ERROR")
    assert "a bug" not in error["message"]
    assert any(
        r.levelname == "ERROR" and r.exc_info and "a bug" in str(r.exc_info[1]) for r in caplog.records
    )
