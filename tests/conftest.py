import os
import shutil
from pathlib import Path

import pytest

from sandbox.engine import SANDBOX

from .helpers import FakeApi, StudioServer, make_user


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


@pytest.fixture
def owner(db):
    return make_user("owner")


@pytest.fixture
def outsider(db):
    return make_user("outsider")


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


def sign_in(page, user):
    """Log the browser in as ``user`` by handing it a session cookie."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"]
    page.context.add_cookies([{"name": "sessionid", "value": cookie.value, "url": page.base_url}])


def wait_until(page, expression, timeout=10.0):
    """Poll ``expression`` in the page until it is truthy (Playwright's wait_for_function
    compiles its predicate with eval, which the studio's CSP rightly forbids)."""
    import time as _time

    deadline = _time.monotonic() + timeout
    while _time.monotonic() < deadline:
        if page.evaluate(expression):
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"still false after {timeout} s: {expression}")
