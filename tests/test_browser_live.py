"""The live page is the page: at every step a job takes, what the browser swapped in is
what a reload of the same page shows (headless Chromium, the sandbox over real HTTP)."""

import io
import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from jobs.models import Job, Status
from sandbox.engine import SANDBOX

from .conftest import sign_in, wait_until
from .helpers import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Each live part of the page, by role and job, outside whitespace; the countdown's text is
# left out (it ticks in each page on its own clock), the Cancel form is only present or not
# (its CSRF token differs between two loads).
PARTS = r"""
() => Object.fromEntries(
  Array.from(document.querySelectorAll('[data-role][data-job-id]')).map((el) => {
    const key = el.dataset.role + '#' + el.dataset.jobId;
    if (el.dataset.role === 'cancel') return [key, 'present'];
    const copy = el.cloneNode(true);
    copy.querySelectorAll('[data-countdown-to]').forEach((eta) => { eta.textContent = ''; });
    return [key, copy.outerHTML.replace(/\s+/g, ' ').replace(/\s*([<>])\s*/g, '$1').trim()];
  })
)
"""
# Every text the status parts' late-job wording shows, from the first paint on.
RECORD_ETA = """
window.__etaSeen = [];
new MutationObserver(() => {
  document.querySelectorAll('[data-role=eta]').forEach((eta) => window.__etaSeen.push(eta.textContent));
}).observe(document, { subtree: true, childList: true, characterData: true });
"""
BADGE = "document.querySelector('[data-role=status] [data-role=badge]').textContent"


def assert_same_as_reload(page):
    """The live page's parts equal those of the same URL freshly loaded beside it."""
    live = page.evaluate(PARTS)
    fresh = page.context.new_page()
    try:
        fresh.goto(page.url)
        reloaded = fresh.evaluate(PARTS)
    finally:
        fresh.close()
    assert live == reloaded
    return live


def submit(page, prompt):
    page.goto(page.base_url + "/")
    page.fill("textarea[name=prompt]", prompt)
    page.click("#submit-button")
    page.locator(".tray-item .tray-open").first.click()  # the form stays; the tray opens the job
    page.wait_for_url(re.compile(r"/jobs/\d+/$"))
    return Job.objects.get(pk=int(page.url.rstrip("/").rsplit("/", 1)[1]))


def advance(job, seconds):
    """Let ``seconds`` pass for the job in the sandbox, then have the worker check it once."""
    SANDBOX.jobs[job.remote_id].created -= seconds
    Job.objects.filter(pk=job.pk).update(next_check_at=timezone.now())
    call_command("sync_jobs", stdout=io.StringIO())
    job.refresh_from_db()


def history_of(page):
    history = page.context.new_page()
    history.goto(page.base_url + "/jobs/")
    return history


@pytest.fixture
def slow_sandbox(settings):
    """Jobs that stay queued, then generating, until a test moves the sandbox's clock; no
    webhooks, so the worker's checks (``advance``) are the only news."""
    settings.PUBLIC_BASE_URL = "http://studio.invalid"
    settings.SANDBOX_PENDING_SECONDS = 600
    settings.SANDBOX_PROCESSING_SECONDS = 600


def test_queued_generating_completed_each_look_as_after_a_reload(page, slow_sandbox):
    sign_in(page, make_user("grace"))
    job = submit(page, "Kites over a windy beach")
    page.evaluate("window.__sameDocument = true")
    history = history_of(page)
    assert job.status == Status.PENDING
    parts = assert_same_as_reload(page)
    assert "Queued" in parts[f"status#{job.pk}"] and parts[f"cancel#{job.pk}"] == "present"
    assert "…" in assert_same_as_reload(history)[f"thumb#{job.pk}"]

    advance(job, 600)
    assert job.status == Status.PROCESSING
    for each in (page, history):
        wait_until(each, f"{BADGE} === 'Generating'")
    parts = assert_same_as_reload(page)
    assert "Generating" in parts[f"timeline#{job.pk}"] and f"cancel#{job.pk}" not in parts
    assert_same_as_reload(history)

    advance(job, 600)
    assert job.status == Status.COMPLETED and job.thumbnail_url
    for each in (page, history):
        wait_until(each, f"{BADGE} === 'Completed'")
    parts = assert_same_as_reload(page)
    assert "<video" in parts[f"player#{job.pk}"] and "Completed" in parts[f"timeline#{job.pk}"]
    assert job.thumbnail_url in assert_same_as_reload(history)[f"thumb#{job.pk}"]
    wait_until(page, "document.querySelector('[data-role=player] video').readyState >= 2")
    assert page.evaluate("window.__sameDocument") is True  # never reloaded


def test_a_stuck_job_says_so_live_and_never_slower_than_usual(page, slow_sandbox):
    sign_in(page, make_user("margaret"))
    job = submit(page, "A clock tower that never finishes [stuck]")
    advance(job, 600)
    assert job.status == Status.PROCESSING
    wait_until(page, f"{BADGE} === 'Generating'")
    page.evaluate(RECORD_ETA)
    history = history_of(page)

    # Long past three times its expected duration.
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(
        submitted_at=now - timedelta(seconds=600), estimated_completion_at=now - timedelta(seconds=420)
    )
    for each in (page, history):
        wait_until(each, "document.querySelector('[data-role=eta]').textContent === 'Stuck — still checking'")
    parts = assert_same_as_reload(page)
    assert "far longer than usual" in parts[f"note#{job.pk}"]
    assert_same_as_reload(history)
    page.wait_for_timeout(2500)  # another poll
    seen = page.evaluate("window.__etaSeen")
    assert "Stuck — still checking" in seen and "Slower than usual" not in seen

    # A fresh page of the stuck job, watched from its first paint through two polls.
    fresh = page.context.new_page()
    fresh.add_init_script(RECORD_ETA)
    fresh.goto(page.url)
    fresh.wait_for_timeout(4500)
    seen = fresh.evaluate("window.__etaSeen")
    fresh.close()
    assert "Stuck — still checking" in seen and "Slower than usual" not in seen


def test_a_failed_job_looks_as_after_a_reload_on_the_page_and_in_the_history(page, slow_sandbox):
    sign_in(page, make_user("ada"))
    job = submit(page, "A bridge that will not render [fail]")
    history = history_of(page)
    advance(job, 600)
    for each in (page, history):
        wait_until(each, f"{BADGE} === 'Generating'")
    advance(job, 600)
    assert job.status == Status.FAILED
    for each in (page, history):
        wait_until(each, f"{BADGE} === 'Failed'")
    parts = assert_same_as_reload(page)
    assert "Generation failed (INTERNAL_ERROR)." in parts[f"note#{job.pk}"]
    assert "No video." in parts[f"player#{job.pk}"] and "nothing" in parts[f"charge#{job.pk}"]
    parts = assert_same_as_reload(history)
    assert "—" in parts[f"thumb#{job.pk}"] and "nothing" in parts[f"cost#{job.pk}"]
