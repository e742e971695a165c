"""What one submit costs the studio on top of PixelByte's own answer (P-09, T-01): the
statements of a form post as the page's script (tray.js) makes it and of an API submit,
pinned; and the small answer the page's script gets, which carries everything the tray and
the form need without drawing the whole page again.

The counts are taken with real transactions (as in production: a test wrapped in one would
count a savepoint for every ``atomic``), so the budget alerts' after-commit check runs too."""

import json
import re
import uuid

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from jobs import budgets, tokens
from jobs.models import Job, Status

from .helpers import form_data, make_job, make_member, make_team

pytestmark = [pytest.mark.django_db(transaction=True)]

NEW = reverse("jobs:new")
IN_PLACE = {"X-Requested-With": "fetch", "Accept": "text/html"}
PRICE = 225_000  # std, 5 s
BUDGET = 100 * PRICE

# One form post made by tray.js, for a member of a team where both the person and the team
# have a budget (the most a submit reads), PixelByte answering at once:
#  1-2   the session and the user (the middleware)
#  3     an earlier post with the same key (a repeated post sends nothing twice)
#  4     PixelByte's pause and the circuit breaker (one cache read)
#  5-7   the budget check: lock the team, lock the person, read both months (spend, raises)
#  8-13  record: the job, its holders' zones, the person's and the team's month and day rows
#  14-17 budget alerts, after the commit: the profile, each budget, the alerts sent
#  18-19 settle PixelByte's answer: lock the job, write it
#  20    the session, whose tray now holds the job
# The answer reads nothing more: the budgets it shows are the check's, plus the job.
FORM_POST_STATEMENTS = 20
# One submit through the JSON API with a token that has a budget of its own:
#  1-2   the token (by its hash) and this minute's request count
#  3     an earlier request with the same Idempotency-Key
#  4     PixelByte's pause and the circuit breaker
#  5-8   the budget check: lock the team, the person and the token; read the three months
#  9-15  record: the job, its holders' zones, three month rows and two day rows
#  16-19 budget alerts, after the commit
#  20-21 settle PixelByte's answer
#  22    the answer: the job's approval request (none); its token is the request's own
API_SUBMIT_STATEMENTS = 22


@pytest.fixture(autouse=True)
def _no_pause():
    """The cache (PixelByte's pause, the breaker) lives in a table that a test with real
    transactions does not roll back: no pause of one test may reach the next."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def member(db):
    team = make_team("Speed", monthly_budget_micro_cents=BUDGET)
    return make_member("speedy", team, monthly_budget_micro_cents=BUDGET)


@pytest.fixture
def member_client(client, member):
    client.force_login(member)
    return client


# Transaction control is left out of the counts: SQLite's BEGIN IMMEDIATE and COMMIT pass
# through Django's cursor, PostgreSQL's driver sends its own.
CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def statements_of(call):
    """(what ``call()`` returned, the SQL statements it ran on this thread's connection)."""
    with CaptureQueriesContext(connection) as captured:
        result = call()
    return result, [q["sql"] for q in captured.captured_queries if not q["sql"].startswith(CONTROL)]


def in_place(client, **overrides):
    return client.post(NEW, form_data(**overrides), headers=IN_PLACE)


def budgets_shown(html):
    found = re.search(r'<script id="budget-info" type="application/json">(.*?)</script>', html)
    return None if found is None else json.loads(found.group(1))


# --- statements -------------------------------------------------------------------------------


def test_a_form_post_made_by_the_pages_script_runs_a_fixed_handful_of_statements(member_client, sandbox):
    in_place(member_client)  # the first post of the month creates the month's rows
    response, sql = statements_of(lambda: in_place(member_client))
    assert response.status_code == 200
    assert len(sql) <= FORM_POST_STATEMENTS, "\n".join(sql)


def test_the_statements_do_not_grow_with_the_history(member, member_client, sandbox):
    in_place(member_client)
    _, few = statements_of(lambda: in_place(member_client))
    for _ in range(30):
        make_job(member, team=member.profile.team, project="Old")
    _, many = statements_of(lambda: in_place(member_client))
    assert len(many) == len(few)


def test_an_api_submit_runs_a_fixed_handful_of_statements(member, sandbox, client):
    _, raw = tokens.create(member, name="script", budget=BUDGET)
    headers = {"Authorization": f"Bearer {raw}"}
    body = {"prompt": "A kite over dunes", "quality": "std", "duration": 5, "aspect_ratio": "16:9"}

    def submit():
        key = {"Idempotency-Key": str(uuid.uuid4())}
        return client.post("/api/v1/jobs", body, content_type="application/json", headers=headers | key)

    submit()
    response, sql = statements_of(submit)
    assert response.status_code == 201, response.content
    assert len(sql) <= API_SUBMIT_STATEMENTS, "\n".join(sql)


def test_the_budget_check_locks_then_reads_every_budget_in_one_statement(member):
    from django.db import transaction

    def check():
        with transaction.atomic():
            return budgets.lock(member)

    locked, sql = statements_of(check)
    assert [b.kind for b in locked.budgets] == ["user", "team"]
    assert locked.team == member.profile.team and locked.profile.user_id == member.pk
    assert len(sql) == 3, sql  # lock the team, lock the person, read both months


def test_a_person_and_a_team_budget_are_read_together_as_each_alone(member):
    team = member.profile.team
    make_job(member, team=team)
    (person, theirs), sql = statements_of(lambda: budgets.person_and_team(member, member.profile, team))
    assert len(sql) == 1
    assert person == budgets.person_budget(member, member.profile) and person.spent == PRICE
    assert theirs == budgets.team_budget(team) and theirs.spent == PRICE
    assert budgets.person_and_team(member, None, None) == (None, None)


# --- what the page's script gets ---------------------------------------------------------------


def test_the_answer_in_place_carries_the_new_video_the_new_key_and_the_budgets(
    member, member_client, sandbox
):
    first = in_place(member_client, prompt="A kite over dunes")
    response = in_place(member_client, prompt="A kite over the sea")
    html = response.content.decode()
    assert response.status_code == 200
    older, job = Job.objects.filter(owner=member).order_by("pk")
    # Only what a post changes, not the page: no layout, no form, no scripts.
    assert html.lstrip().startswith('<div id="form-answer">') and "<html" not in html
    assert 'id="job-form"' not in html and "<script src" not in html
    assert len(html) < len(member_client.get(NEW).content.decode()) / 3
    # The new video, drawn as the tray draws it, and only it; the tray keeps both.
    assert f'data-tray-job="{job.pk}"' in html and f'data-tray-job="{older.pk}"' not in html
    assert "A kite over the sea" in html and "is-new" in html
    assert re.search(rf'<ol id="tray-items" data-keep="{job.pk},{older.pk}">', html)
    assert 'id="tray-news"' in html and "Sent: your video appears below" in html
    # A fresh key for the next post.
    key = re.search(r'name="submission_key" value="([^"]+)"', html).group(1)
    assert key not in first.content.decode() and uuid.UUID(key) != job.submission_key
    # Each budget with both videos counted, as a fresh read says.
    shown = budgets_shown(html)
    assert [b["spentMicroCents"] for b in shown] == [2 * PRICE, 2 * PRICE]
    assert shown == [b.as_json() for b in budgets.budgets_for(member)]


def test_a_stack_answers_its_videos_in_the_order_made_with_their_places(member_client, sandbox):
    html = in_place(member_client, count="3", seed="7").content.decode()
    assert re.findall(r'class="stack-tag"[^>]*>([^<]+)<', html) == ["1 of 3", "2 of 3", "3 of 3"]
    assert "Sent: your 3 videos appear below" in html
    assert [b["spentMicroCents"] for b in budgets_shown(html)] == [3 * PRICE, 3 * PRICE]


def test_a_repeated_post_answers_the_same_video_and_sends_nothing(member_client, sandbox):
    data = form_data()
    member_client.post(NEW, data, headers=IN_PLACE)
    again = member_client.post(NEW, data, headers=IN_PLACE)
    assert again.status_code == 200 and sandbox.submit_count == 1
    (job,) = Job.objects.all()
    assert f'data-tray-job="{job.pk}"' in again.content.decode()
    assert [b["spentMicroCents"] for b in budgets_shown(again.content.decode())] == [PRICE, PRICE]


def test_a_field_error_in_place_keeps_the_tray_and_sends_nothing(member_client, sandbox):
    in_place(member_client)
    response = in_place(member_client, seed="-5")
    html = response.content.decode()
    assert response.status_code == 422 and sandbox.submit_count == 1
    assert "The seed must be at least 0." in html and 'id="errors-seed"' in html
    assert "Please correct the highlighted fields. Nothing was sent." in html
    (job,) = Job.objects.all()
    assert f'data-keep="{job.pk}"' in html and "data-tray-job" not in html
    assert budgets_shown(html) is None  # nothing changed them


def test_a_refusal_by_a_budget_in_place_says_why_with_the_budgets_as_they_are(member, member_client, sandbox):
    make_job(member, team=member.profile.team, estimated_micro_cents=BUDGET - PRICE // 2)
    response = in_place(member_client)
    html = response.content.decode()
    assert response.status_code == 409 and sandbox.submit_count == 0
    assert "Not sent: this video costs $0.225, but your monthly budget has" in html
    assert [b["spentMicroCents"] for b in budgets_shown(html)] == [BUDGET - PRICE // 2] * 2


def test_a_post_during_pixelbytes_pause_answers_the_wait_in_place(member_client, sandbox):
    html = in_place(member_client, prompt="A crowded harbour [busy]").content.decode()
    assert "Not sent — nothing was charged." in html
    assert re.search(r"PixelByte is busy: try again in \d+ s\.", html)
    paused = in_place(member_client, prompt="A quiet harbour")
    assert paused.status_code == 429 and 'id="wait-panel"' in paused.content.decode()
    assert Job.objects.filter(status=Status.REFUSED).count() == 1 and sandbox.submit_count == 1


def test_without_the_script_the_post_still_answers_the_whole_page(member_client, sandbox):
    response = member_client.post(NEW, form_data())
    html = response.content.decode()
    assert response.status_code == 200 and 'id="job-form"' in html and 'id="form-answer"' not in html
    (job,) = Job.objects.all()
    assert f'data-tray-job="{job.pk}"' in html and budgets_shown(html)[0]["spentMicroCents"] == PRICE


def test_someone_elses_key_in_place_is_404(member_client, outsider, sandbox):
    theirs = make_job(outsider, prompt="Their secret prompt")
    response = in_place(member_client, submission_key=str(theirs.submission_key))
    assert response.status_code == 404 and "Their secret prompt" not in response.content.decode()
