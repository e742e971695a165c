"""SEC-06: every page runs under the strict Content-Security-Policy with nothing blocked."""

import re

import pytest

from jobs.models import Role, Status

from .helpers import make_job, make_member, make_team, make_user, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " " + e.blockedURI);
});
"""


def test_sec06_no_page_breaks_the_content_security_policy(page):
    team = make_team("CSP", monthly_budget_micro_cents=10_000_000)
    user = make_member(make_user("grace", is_staff=True, is_superuser=True), team, role=Role.MANAGER)
    media = page.base_url + "/static/sandbox/"
    done = make_job(
        user,
        team=team,
        status=Status.COMPLETED,
        output_url=media + "sample.mp4",
        poster_url=media + "poster.jpg",
    )
    running = make_job(user, team=team, status=Status.PROCESSING, remote_id="job_r")
    sign_in(page, user)
    page.add_init_script(WATCH)
    console = []
    page.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text else None)
    paths = [
        "/",
        f"/?from={done.pk}&vary=seed",
        "/jobs/",
        "/jobs/?status=completed&q=x",
        done.get_absolute_url(),
        running.get_absolute_url(),
        "/spend/",
        "/spend/?period=90d",
        "/tokens/",
        "/library/",
        "/account/",
        "/approvals/",
        "/audit/",
        "/jobs/?view=grid",
        "/admin/",
        "/admin/jobs/job/",
        f"/admin/jobs/job/{done.pk}/change/",
        "/admin/jobs/team/",
        "/admin/jobs/webhookdelivery/",
    ]
    for path in paths:
        response = page.goto(page.base_url + path)
        assert response.status == 200, path
        assert "script-src 'self'" in response.headers["content-security-policy"]
        page.wait_for_timeout(300)
        assert page.evaluate("window.__csp") == [], path
        if not path.startswith("/admin/"):
            html = page.content()
            assert not re.search(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", html), path
            assert not re.search(r"<[^>]+\son[a-z]+=", html), path
    assert console == []
