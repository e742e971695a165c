"""API requests racing each other through real HTTP: on SQLite (a file, IMMEDIATE
transactions) in `make test`, and on a real PostgreSQL server in `make test-postgres`."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.core.cache import cache

from jobs import tokens
from jobs.models import Job
from sandbox.engine import SANDBOX

from .helpers import make_member, make_team

pytestmark = [pytest.mark.django_db(transaction=True)]

BODY = {"prompt": "Race", "quality": "std", "duration": 5, "aspect_ratio": "16:9"}
PRICE = 225_000
ROOM_FOR_FIVE = 5 * PRICE


@pytest.fixture
def studio(live_server, settings):
    settings.PIXELBYTE_API_KEY = ""
    settings.SANDBOX_API_URL = live_server.url + "/sandbox"
    settings.PUBLIC_BASE_URL = "http://studio.invalid"
    cache.clear()  # the cache's table is not flushed between transactional tests
    yield live_server.url + "/api/v1/jobs"
    cache.clear()


def at_once(count, send):
    """``send(i)`` in ``count`` threads released together; their answers, in order."""
    barrier = threading.Barrier(count)

    def run(i):
        barrier.wait()
        return send(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def post(url, raw, key=None):
    headers = {"Authorization": f"Bearer {raw}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return requests.post(url, json=BODY, headers=headers, timeout=60)


def test_twenty_identical_requests_at_once_with_one_key_make_one_job_and_one_submit(studio, owner):
    _, raw = tokens.create(owner, name="retrying script")
    answers = at_once(20, lambda _: post(studio, raw, key="batch-7/row-12"))
    assert [a.status_code for a in answers] == [201] * 20, [a.text for a in answers if a.status_code != 201]
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 19
    assert Job.objects.count() == 1 and SANDBOX.submit_count == 1


def _capped(answers, name):
    statuses = [a.status_code for a in answers]
    assert statuses.count(201) == 5 and statuses.count(402) == 15, statuses
    refusals = [a.json()["error"] for a in answers if a.status_code == 402]
    assert all(e["code"] == "BUDGET_EXCEEDED" and e["budget"]["name"] == name for e in refusals)
    assert SANDBOX.submit_count == 5
    assert Job.objects.count() == 5 and Job.objects.spend() == ROOM_FOR_FIVE


def test_twenty_submits_at_once_through_tokens_against_room_for_five_send_exactly_five(studio):
    person = make_member(None, team=None, monthly_budget_micro_cents=ROOM_FOR_FIVE)
    raws = [tokens.create(person, name=f"worker {i}")[1] for i in range(4)]
    _capped(at_once(20, lambda i: post(studio, raws[i % 4])), "your monthly budget")


def test_a_team_budget_holds_against_twenty_submits_from_five_peoples_tokens(studio):
    team = make_team("Racers", monthly_budget_micro_cents=ROOM_FOR_FIVE)
    raws = [tokens.create(make_member(None, team), name="ci")[1] for _ in range(5)]
    _capped(at_once(20, lambda i: post(studio, raws[i % 5])), "the team budget (Racers)")


def test_a_tokens_own_budget_holds_against_twenty_submits_at_once(studio):
    person = make_member(None, team=None)
    _, raw = tokens.create(person, name="capped", budget=ROOM_FOR_FIVE)
    _capped(at_once(20, lambda _: post(studio, raw)), "the token's monthly budget (capped)")


def test_forty_requests_at_once_get_exactly_the_tokens_rate(studio, owner, settings):
    settings.API_RATE_LIMIT = 5
    _, raw = tokens.create(owner, name="impatient script")
    me = studio.replace("/jobs", "/me")
    answers = at_once(40, lambda _: requests.get(me, headers={"Authorization": f"Bearer {raw}"}, timeout=60))
    codes = sorted(a.status_code for a in answers)
    # The minute may turn during the burst (a new window): at most twice the rate, never all.
    assert codes.count(200) in (5, 10) and codes.count(429) == 40 - codes.count(200), codes
    assert all(int(a.headers["Retry-After"]) >= 1 for a in answers if a.status_code == 429)


def test_a_full_cache_never_wipes_the_pause_pixelbyte_asked_for(studio, owner, settings):
    from jobs import throttle

    throttle.pause(120)
    for n in range(310):  # more tokens than the cache keeps entries: the counts are not in it
        _, raw = tokens.create(owner, name=f"token {n}")
        assert requests.get(
            studio.replace("/jobs", "/me"), headers={"Authorization": f"Bearer {raw}"}, timeout=60
        ).ok
    assert throttle.pause_remaining() > 60
