"""Production settings and the defences a person relies on without seeing them (SEC-01…14)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from jobs.models import Job, Role, Status

from .helpers import make_job, make_member, make_team, make_user

ROOT = Path(__file__).resolve().parent.parent
SECRET_KEY = "x7#Qp2@vL9!mR4$tK8^wN3&zB6*cF1(hJ5)dG0-sY2_uE7+aP4=iO9"
PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": SECRET_KEY,
    "ALLOWED_HOSTS": "studio.example",
    "PUBLIC_BASE_URL": "https://studio.example",
    "PIXELBYTE_API_KEY": "pb_live_production_probe_key",
    "PIXELBYTE_WEBHOOK_SECRET": "whsec_production_probe",
    "EMAIL_URL": "smtp+tls://studio:mail_probe_password@mail.studio.example:587",
}


def run(args, env_extra, tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIXELBYTE_", "DJANGO_", "DEBUG", "SECRET_KEY"))
    }
    env.pop("DATABASE_URL", None)
    env.pop("TEST_DATABASE_URL", None)
    env.update(PRODUCTION)
    env.update(
        {"DATABASE_URL": f"sqlite:///{tmp_path / 'prod.sqlite3'}", "STATIC_ROOT": str(tmp_path / "static")}
    )
    env.update(env_extra)
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def probe(tmp_path, **env_extra):
    result = run(["tests/production_probe.py"], env_extra, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_sec01_check_deploy_is_clean_with_production_settings(tmp_path):
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], {}, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pb_live_production_probe_key" not in result.stdout + result.stderr
    assert "mail_probe_password" not in result.stdout + result.stderr


def test_a_production_studio_that_only_prints_its_mail_is_warned(tmp_path):
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], {"EMAIL_URL": ""}, tmp_path)
    assert result.returncode != 0
    assert "jobs.W005" in result.stderr and "only printed" in result.stderr


def test_sec02_production_refuses_to_start_with_a_real_key_and_no_webhook_secret(tmp_path):
    result = run(["manage.py", "check"], {"PIXELBYTE_WEBHOOK_SECRET": ""}, tmp_path)
    assert result.returncode != 0 and "jobs.E003" in result.stderr


def test_sec03_sec04_sec13_cookies_headers_and_hosts_in_production(tmp_path):
    report = probe(tmp_path)
    assert report["login_status"] == 302
    assert report["login_redirect"] == "/"  # next=https://evil.example is ignored
    assert report["session_cookie"] == {"secure": True, "httponly": True, "samesite": "Lax"}
    assert report["csrf_cookie"]["secure"] is True
    headers = report["headers"]
    assert headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    script_src = re.search(r"script-src ([^;]*)", headers["Content-Security-Policy"]).group(1)
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
    assert report["bad_host_status"] == 400


def test_sec04_the_hsts_age_is_configurable(tmp_path):
    report = probe(tmp_path, SECURE_HSTS_SECONDS="600")
    assert report["headers"]["Strict-Transport-Security"].startswith("max-age=600")


def test_sec05_a_forwarded_proto_is_trusted_only_behind_a_proxy(tmp_path):
    assert probe(tmp_path)["forwarded_proto_status"] == 301  # redirected to https: not trusted
    assert probe(tmp_path, BEHIND_PROXY="1")["forwarded_proto_status"] == 200


# --- SEC-07: sign-in throttling ------------------------------------------------------------------


@pytest.fixture
def throttled(settings, db):
    settings.LOGIN_MAX_FAILURES = 3
    return make_user("victim")


def attempt(client, password, ip="203.0.113.5", **extra):
    return client.post(
        reverse("login"), {"username": "victim", "password": password}, REMOTE_ADDR=ip, **extra
    )


def test_sec07_three_wrong_passwords_lock_the_account_from_that_address(client, throttled):
    from .helpers import PASSWORD

    for _ in range(3):
        assert attempt(client, "wrong").status_code == 200
    locked = attempt(client, PASSWORD)
    assert locked.status_code == 429
    assert "Too many wrong passwords" in locked.content.decode()
    assert "_auth_user_id" not in client.session


def test_sec07_another_address_is_not_locked_with_it(client, throttled):
    from .helpers import PASSWORD

    for _ in range(3):
        attempt(client, "wrong", ip="203.0.113.5")
    assert attempt(Client(), PASSWORD, ip="198.51.100.7").status_code == 302


def test_sec07_behind_a_proxy_clients_are_told_apart_and_a_forged_header_does_not_help(
    client, throttled, settings
):
    from .helpers import PASSWORD

    settings.PROXY_COUNT = 1
    proxy = "10.0.0.2"
    for _ in range(3):
        attempt(client, "wrong", ip=proxy, HTTP_X_FORWARDED_FOR="203.0.113.5")
    # the guesser forges a left-most address; the proxy appends the real one
    forged = attempt(Client(), PASSWORD, ip=proxy, HTTP_X_FORWARDED_FOR="198.51.100.99, 203.0.113.5")
    assert forged.status_code == 429
    other = attempt(Client(), PASSWORD, ip=proxy, HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert other.status_code == 302


def test_sec07_a_successful_sign_in_clears_the_count(client, throttled):
    from .helpers import PASSWORD

    attempt(client, "wrong")
    attempt(client, "wrong")
    assert attempt(client, PASSWORD).status_code == 302
    client.logout()
    attempt(client, "wrong")
    attempt(client, "wrong")
    assert attempt(client, PASSWORD).status_code == 302


# --- SEC-08 … SEC-12 ------------------------------------------------------------------------------


def test_sec08_every_view_but_sign_in_the_webhook_and_the_health_check_needs_a_user(client, db):
    job = make_job(make_user())
    for url in (
        reverse("jobs:new"),
        reverse("jobs:list"),
        reverse("jobs:spend"),
        reverse("jobs:spend_export"),
        reverse("jobs:statuses"),
        job.get_absolute_url(),
        reverse("jobs:status", args=[job.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login")), url
    assert client.post(reverse("jobs:cancel", args=[job.pk])).status_code == 302


def what_each_surface_shows(client, person, ids):
    """The ids of the jobs each surface shows ``person``, from the viewer and the pages."""
    import contextlib
    import csv
    import io

    from django.http import Http404

    from jobs.access import Viewer

    viewer, found = Viewer(person), []
    for pk in ids:
        with contextlib.suppress(Http404):
            found.append(viewer.job_or_404(pk))
    client.force_login(person)
    history = client.get(reverse("jobs:list"), {"per_page": "100"}).context["page"].jobs
    statuses = client.get(reverse("jobs:statuses"), {"ids": ",".join(map(str, ids))}).json()["jobs"]
    export = b"".join(client.get(reverse("jobs:spend_export")).streaming_content).decode()
    return {
        "list": set(viewer.jobs().filter(pk__in=ids).values_list("pk", flat=True)),
        "by id": set(viewer.jobs_by_id(ids).values_list("pk", flat=True)),
        "one by one": {job.pk for job in found},
        "sees": {job.pk for job in Job.objects.filter(pk__in=ids) if viewer.sees(job)},
        "may cancel": {job.pk for job in Job.objects.filter(pk__in=ids) if viewer.may_cancel(job)},
        "spend scope": set(viewer.spend_scope().jobs.filter(pk__in=ids).values_list("pk", flat=True)),
        "history page": {job.pk for job in history},
        "status json": {job["id"] for job in statuses},
        "csv": {int(row["pixelbyte_job_id"][4:]) for row in csv.DictReader(io.StringIO(export))},
    }


def test_sec08_every_surface_follows_exactly_the_one_access_rule(client, db):
    team, other = make_team("Alpha"), make_team("Beta")
    people = {
        "boss": make_member("boss", team, role=Role.MANAGER),
        "member": make_member("member", team),
        "outsider": make_member("outsider", other),
        "loner": make_user("loner"),
        "lone_boss": make_member("lone_boss", None, role=Role.MANAGER),  # a manager of no team
        "staff": make_user("staff", is_staff=True),
    }
    owners = [
        (people["member"], team),
        (people["boss"], team),
        (people["boss"], None),  # made before the boss joined the team
        (people["outsider"], other),
        (people["loner"], None),
        (people["lone_boss"], None),
    ]
    jobs = [make_job(owner, team=in_team) for owner, in_team in owners]
    for job in jobs:
        Job.objects.filter(pk=job.pk).update(remote_id=f"job_{job.pk}")
    ids = [job.pk for job in jobs]
    expected = {
        "boss": {ids[0], ids[1]},
        "member": {ids[0]},
        "outsider": {ids[3]},
        "loner": {ids[4]},
        "lone_boss": {ids[5]},
        "staff": set(ids),
    }
    for name, person in people.items():
        for surface, shown in what_each_surface_shows(client, person, ids).items():
            assert shown == expected[name], (name, surface)


def test_the_health_check_answers_anyone_and_reads_no_database(client, db, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200 and response.content == b"ok\n"
    assert response["Cache-Control"] == "no-store"
    assert client.post("/healthz").status_code == 405


def test_a_monitor_may_check_health_over_plain_http_while_pages_redirect(client, settings, db):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz").status_code == 200
    assert client.get("/accounts/login/").status_code == 301


EVIL = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def test_sec09_a_hostile_prompt_is_escaped_everywhere(client, db):
    admin = make_user("root", is_staff=True, is_superuser=True)
    job = make_job(admin, prompt=EVIL, status=Status.FAILED, error_message=EVIL, project=EVIL)
    client.force_login(admin)
    for url in (
        job.get_absolute_url(),
        reverse("jobs:list"),
        reverse("jobs:spend"),
        reverse("admin:jobs_job_changelist"),
        reverse("admin:jobs_job_change", args=[job.pk]),
        reverse("jobs:new") + f"?from={job.pk}",
    ):
        html = client.get(url).content.decode()
        assert EVIL not in html, url
        assert "<img src=x" not in html, url
    assert json.loads(client.get(reverse("jobs:status", args=[job.pk])).content)["error"] == EVIL


def test_sec10_the_key_and_secret_reach_no_page_no_admin_and_no_error_page(client, settings, db):
    settings.PIXELBYTE_API_KEY = "pb_live_secret_key_shh"
    settings.PIXELBYTE_WEBHOOK_SECRET = "whsec_secret_shh"
    admin = make_user("root", is_staff=True, is_superuser=True)
    job = make_job(admin)
    client.force_login(admin)
    urls = [
        reverse("jobs:new"),
        reverse("jobs:list"),
        reverse("jobs:spend"),
        job.get_absolute_url(),
        reverse("admin:index"),
        reverse("admin:jobs_job_change", args=[job.pk]),
        reverse("admin:jobs_webhookdelivery_changelist"),
    ]
    for url in urls:
        html = client.get(url).content.decode()
        assert "pb_live_secret_key_shh" not in html and "whsec_secret_shh" not in html, url


def test_sec10_the_500_page_says_nothing_of_the_configuration(client, settings, db, monkeypatch):
    from jobs import views

    settings.PIXELBYTE_API_KEY = "pb_live_secret_key_shh"
    client.force_login(make_user())
    monkeypatch.setattr(views, "_page_size", lambda request: 1 / 0)
    client.raise_request_exception = False
    response = client.get(reverse("jobs:list"))
    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong" in html and "pb_live_secret_key_shh" not in html


def test_sec12_a_one_megabyte_query_string_is_a_4xx_never_a_500(client, db):
    client.force_login(make_user())
    for url in (reverse("jobs:list"), reverse("jobs:statuses"), reverse("jobs:spend")):
        response = client.get(url + "?" + "&".join(f"f{i}=x" for i in range(110_000)))
        assert 400 <= response.status_code < 500 or response.status_code == 200, url
        response = client.get(url + "?q=" + "x" * 1_000_000)
        assert response.status_code < 500, url


def test_sec12_an_overlong_prompt_is_refused_kindly(client, db):
    from .helpers import form_data

    client.force_login(make_user())
    response = client.post(reverse("jobs:new"), form_data(prompt="y" * 100_000))
    assert response.status_code == 422 and "the limit is 2500" in response.content.decode()
    assert Job.objects.count() == 0


def test_sec13_an_unknown_host_is_400(client, db):
    assert client.get(reverse("login"), HTTP_HOST="evil.example").status_code == 400


def test_sec13_next_to_another_site_lands_on_the_studio(client, db):
    from .helpers import PASSWORD

    make_user("nina")
    response = client.post(
        reverse("login") + "?next=https://evil.example/", {"username": "nina", "password": PASSWORD}
    )
    assert response.status_code == 302 and response["Location"] == reverse("jobs:new")


def test_sec14_django_is_pinned_to_a_5_2_patch_release():
    pins = dict(
        line.split("==") for line in (ROOT / "requirements.txt").read_text().splitlines() if "==" in line
    )
    major, minor, patch = (int(x) for x in pins["Django"].split("."))
    assert (major, minor) == (5, 2) and patch >= 19


@pytest.mark.django_db(transaction=True)  # the other connection must see the committed user
def test_sec_busy_database_shows_a_retry_page_not_a_500(client, sandbox):
    import sqlite3

    from django.db import connection

    from .helpers import form_data

    if connection.vendor != "sqlite":
        pytest.skip("SQLite's database lock; PostgreSQL waits on row locks instead")
    client.force_login(make_user())
    options = connection.settings_dict["OPTIONS"]
    usual_wait = options["timeout"]
    # SQLite reads the wait when connecting: half a second here, not the studio's 20 s.
    connection.close()
    options["timeout"] = 0.5
    # Another process in the middle of a write holds the database's write lock.
    holder = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        response = client.post(reverse("jobs:new"), form_data())
    finally:
        holder.rollback()
        holder.close()
        options["timeout"] = usual_wait
        connection.close()
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert "The studio is busy" in response.content.decode()
    assert Job.objects.count() == 0 and sandbox.submit_count == 0


# --- error reports: no secret on a debug page, every 500 logged ------------------------------

REPORT_KEY = "pb_live_report_key_4b1d"
REPORT_SECRET = "whsec_report_secret_9c2e"


@pytest.fixture
def debug_pages(client, settings, db):
    """Django's own debug page for an unhandled error, as a developer with DEBUG on sees it."""
    settings.DEBUG = True
    settings.PIXELBYTE_API_KEY = REPORT_KEY
    settings.PIXELBYTE_WEBHOOK_SECRET = REPORT_SECRET
    client.raise_request_exception = False
    return client


def test_a_deeply_nested_api_answer_with_debug_on_is_an_unknown_outcome_not_a_debug_page(
    debug_pages, settings
):
    from .helpers import FakeApi, Reply, form_data

    server = FakeApi(Reply(body="[" * 100_000))
    settings.PIXELBYTE_API_URL = server.url
    try:
        debug_pages.force_login(make_user())
        response = debug_pages.post(reverse("jobs:new"), form_data(), follow=True)
    finally:
        server.stop()
    assert response.status_code == 200
    assert REPORT_KEY not in response.content.decode()
    assert Job.objects.get().status == Status.UNKNOWN


def test_no_debug_page_shows_the_api_key_when_the_client_fails_unexpectedly(
    debug_pages, settings, monkeypatch
):
    import urllib3

    from .helpers import FakeApi, Reply, form_data

    def explode(*args, **kwargs):
        raise RuntimeError("unexpected failure deep in the HTTP stack")

    # Deep enough that requests' and urllib3's frames (which carry the headers) are on the page.
    monkeypatch.setattr(urllib3.connectionpool.HTTPConnectionPool, "_make_request", explode)
    server = FakeApi(Reply(body={}))
    settings.PIXELBYTE_API_URL = server.url
    try:
        debug_pages.force_login(make_user())
        response = debug_pages.post(reverse("jobs:new"), form_data())
    finally:
        server.stop()
    html = response.content.decode()
    assert response.status_code == 500 and "unexpected failure deep in the HTTP stack" in html
    assert "Local vars" in html  # the debug page, with its frames
    assert REPORT_KEY not in html and REPORT_SECRET not in html


def test_no_debug_page_shows_the_webhook_secret(debug_pages, monkeypatch):
    import time

    from jobs import webhooks

    def explode(*args, **kwargs):
        raise RuntimeError("unexpected failure while checking a signature")

    monkeypatch.setattr(webhooks, "hmac_sha256", explode)
    job = make_job(make_user())
    response = debug_pages.post(
        reverse("jobs:webhook", args=[job.webhook_token]),
        b"{}",
        content_type="application/json",
        HTTP_X_PIXELBYTE_TIMESTAMP=str(int(time.time())),
        HTTP_X_PIXELBYTE_SIGNATURE="sha256=00",
    )
    html = response.content.decode()
    assert response.status_code == 500 and "unexpected failure while checking a signature" in html
    assert REPORT_SECRET not in html and REPORT_KEY not in html


ERROR_PROBE = """
import json, os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kling_studio.settings")
import django
django.setup()
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from jobs import views

call_command("collectstatic", interactive=False, verbosity=0)
call_command("migrate", verbosity=0)
call_command("createcachetable", verbosity=0)
settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
mail.outbox = []
client = Client(HTTP_HOST="studio.example", raise_request_exception=False)
client.force_login(get_user_model().objects.create_user("probe"))
views._page_size = lambda request: 1 / 0
response = client.get(reverse("jobs:list"), secure=True)
mails = [{"to": m.to, "subject": m.subject, "body": m.body, "html": bool(m.alternatives)} for m in mail.outbox]
json.dump({"status": response.status_code, "mails": mails}, sys.stdout)
"""


def test_a_production_500_logs_its_traceback_to_stderr_without_secrets(tmp_path):
    result = run(["-c", ERROR_PROBE], {}, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report == {"status": 500, "mails": []}  # no ADMINS: nobody to mail
    assert "ERROR django.request Internal Server Error: /jobs/" in result.stderr
    assert "Traceback (most recent call last)" in result.stderr and "ZeroDivisionError" in result.stderr
    assert result.stderr.count("Internal Server Error") == 1
    for secret in ("pb_live_production_probe_key", "whsec_production_probe", SECRET_KEY):
        assert secret not in result.stderr


def test_a_production_500_mails_the_admins_when_there_are_some(tmp_path):
    admins = "Ops Team <ops@studio.example>, dev@studio.example"
    result = run(["-c", ERROR_PROBE], {"ADMINS": admins}, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (mail,) = json.loads(result.stdout)["mails"]
    assert mail["to"] == ["ops@studio.example", "dev@studio.example"]
    assert "Internal Server Error" in mail["subject"] and "ZeroDivisionError" in mail["body"]
    assert not mail["html"]
    for secret in ("pb_live_production_probe_key", "whsec_production_probe", SECRET_KEY):
        assert secret not in mail["subject"] + mail["body"]


def test_the_policy_is_the_one_django_csp_builds_and_a_view_may_still_change_it(client, db):
    from csp.decorators import csp_update
    from csp.utils import build_policy
    from django.http import HttpResponse
    from django.test import RequestFactory

    from jobs.middleware import StudioCSPMiddleware

    assert client.get(reverse("login"))["Content-Security-Policy"] == build_policy()

    @csp_update({"media-src": ["https://bucket.example"]})
    def view(request):
        return HttpResponse("ok")

    middleware = StudioCSPMiddleware(view)
    changed = middleware(RequestFactory().get("/"))["Content-Security-Policy"]
    assert "https://bucket.example" in changed and changed != build_policy()
