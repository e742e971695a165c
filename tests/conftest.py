import pytest
from django.core.cache import cache

from sandbox.engine import SANDBOX

from .helpers import FakeApi, StudioServer, make_user


@pytest.fixture(scope="session")
def studio_server():
    server = StudioServer()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh_state():
    SANDBOX.reset()
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def sandbox(settings, studio_server):
    """The built-in sandbox over real HTTP, with quick timings; the studio points at it."""
    settings.PIXELBYTE_API_KEY = ""
    settings.SANDBOX_API_URL = studio_server.sandbox_url
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
