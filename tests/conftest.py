import os
import shutil
from pathlib import Path

import pytest

from jobs.models import Role
from sandbox.engine import SANDBOX

from .helpers import FakeApi, StudioServer, make_member, make_team, make_user

# Re-exported: browser tests written before helpers.py held these import them from here.
from .helpers import sign_in as sign_in
from .helpers import wait_until as wait_until


def pytest_configure(config):
    from django.conf import settings

    # Hashing with the production hasher costs ~0.3 s a user; the tests make many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session")
def django_db_modify_db_settings(tmp_path_factory):
    """SQLite tests use a file, not shared memory, so threads get separate connections
    and real locking, as in production (the budget races need it)."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("db") / "test.sqlite3")


@pytest.fixture(scope="session")
def studio_server():
    server = StudioServer()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh_state():
    # The cache lives in the database, which every test rolls back or flushes.
    SANDBOX.reset()


@pytest.fixture
def sandbox(settings, studio_server):
    """The built-in sandbox over real HTTP, with quick timings; the studio points at it."""
    settings.PIXELBYTE_API_KEY = ""
    settings.SANDBOX_API_URL = studio_server.sandbox_url
    settings.PUBLIC_BASE_URL = "http://studio.invalid"  # no callbacks unless a test asks for them
    settings.SANDBOX_PENDING_SECONDS = 0.2
    settings.SANDBOX_PROCESSING_SECONDS = 0.4
    return SANDBOX


@pytest.fixture
def fake_api(settings):
    """Start a scripted fake API (call with Reply objects); the studio points at it."""
    servers = []

    def start(*replies):
        api = FakeApi(*replies)
        servers.append(api)
        settings.PIXELBYTE_API_KEY = "pb_test_secret_key_123"
        settings.PIXELBYTE_API_URL = api.url
        return api

    yield start
    for api in servers:
        api.stop()


# --- the cast: three people in one team, one in another team, one in none, and staff ---


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 endpoint on loopback (moto in server mode), for the whole session."""
    from moto.server import ThreadedMotoServer

    from .helpers import closed_port

    port = closed_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(settings, s3_server, tmp_path):
    """The studio's default storage is a fresh bucket on the loopback S3 endpoint; returns
    a boto3 client for looking into it."""
    import uuid

    import boto3

    bucket = f"kling-{uuid.uuid4().hex[:12]}"
    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1", **credentials)
    client.create_bucket(Bucket=bucket)
    settings.AWS_STORAGE_BUCKET_NAME = bucket
    settings.AWS_S3_ENDPOINT_URL = s3_server
    settings.AWS_ACCESS_KEY_ID, settings.AWS_SECRET_ACCESS_KEY = "testing", "testing"
    settings.AWS_S3_REGION_NAME = "us-east-1"
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "storages.backends.s3.S3Storage"}}
    client.bucket = bucket
    return client


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    """Archived files of each test go to a folder of its own, never the project's media/."""
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def team(db):
    return make_team("Studio")


@pytest.fixture
def owner(team):
    return make_member("owner", team)


@pytest.fixture
def teammate(team):
    return make_member("teammate", team)


@pytest.fixture
def manager(team):
    return make_member("manager", team, role=Role.MANAGER)


@pytest.fixture
def outsider(db):
    return make_member("outsider", make_team("Elsewhere"))


@pytest.fixture
def loner(db):
    """Someone in no team, with no profile: no budget applies to them."""
    return make_user("loner")


@pytest.fixture
def staff(db):
    return make_user("staff", is_staff=True)


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


# --- browser tests -----------------------------------------------------------------

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


DATABASE_FIXTURES = {"db", "transactional_db", "live_server", "django_db_reset_sequences"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """After every test that wrote to the database (and passed), the spend rollup must equal
    what its jobs say: whatever a test did through the studio's own paths, the months and
    days of every holder are exact (``manage.py verify_spend`` on the suite's data)."""
    outcome = yield
    uses_database = DATABASE_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker(
        "django_db"
    )
    if outcome.excinfo is not None or not uses_database or item.get_closest_marker("rollup_left_behind"):
        return
    from jobs import rollup

    found = rollup.differences()
    if found:
        shown = "; ".join(
            f"{key}: rollup {kept}, jobs {truth}" for key, (kept, truth) in list(found.items())[:5]
        )
        outcome.force_exception(AssertionError(f"the spend rollup differs from the jobs: {shown}"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def browser():
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian's chromium is not installed: run `make test`, which installs it.")
    # Playwright's sync API runs an event loop in this thread; the tests still touch the
    # database from it between browser steps, which is safe here.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request, live_server, settings):
    """A fresh browser page on the live studio, whose sandbox is served by the same server."""
    settings.PIXELBYTE_API_KEY = ""
    settings.SANDBOX_API_URL = live_server.url + "/sandbox"
    settings.SANDBOX_PENDING_SECONDS = 0.5
    settings.SANDBOX_PROCESSING_SECONDS = 1.0
    context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="Europe/Berlin")
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.base_url = live_server.url
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
