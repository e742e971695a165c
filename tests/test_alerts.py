"""Budget alerts: each line of each budget is told once a month, by email through a real SMTP
server on loopback (aiosmtpd) and to a team's chat webhook (a loopback HTTP server).

Most tests pass the worker's clock (``now``) to a month safely in the future, so the day of
the month (the projection waits for the 8th) and the next month are the test's to choose;
messages queued at the real time are due at any such clock.
"""

import email
import email.policy
import json
import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from io import StringIO

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from django.core.management import call_command
from django.db import connection, connections
from django.urls import reverse
from django.utils import timezone

from jobs import access, alerts, lifecycle, outbox, pricing, submission
from jobs.models import BudgetAlert, BudgetRaise, OutgoingMessage, Role, Status
from jobs.pixelbyte import RemoteJob
from jobs.reporting import StudioExceptionReporterFilter

from .helpers import FakeApi, Reply, closed_port, make_job, make_member, make_team

DOLLAR = 1_000_000
JOB = 225_000  # a 5-second standard video: $0.225
PARAMS = {"prompt": "A lighthouse at dusk", "quality": "std", "duration": "5", "aspect_ratio": "16:9"}


def month_from_now(months):
    """The first day of the month ``months`` after this one (UTC)."""
    today = timezone.now().date()
    index = today.year * 12 + today.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


MONTH, NEXT_MONTH = month_from_now(2), month_from_now(3)


def on(day, hour=12, month=MONTH):
    return datetime.combine(month.replace(day=day), time(hour), tzinfo=UTC)


# --- a real SMTP server on loopback ------------------------------------------------------------


@dataclass(frozen=True)
class Mail:
    to: list
    sender: str
    subject: str
    body: str


class Inbox:
    """aiosmtpd's handler: keeps every message it accepts."""

    def __init__(self):
        self.mails = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        mail = Mail(
            sorted(envelope.rcpt_tos),
            message["From"],
            message["Subject"],
            message.get_body(("plain",)).get_content(),
        )
        with self.lock:
            self.mails.append(mail)
        return "250 Message accepted for delivery"


class SmtpServer:
    def __init__(self, port=None, **options):
        self.inbox = Inbox()
        self.port = port or closed_port()
        self.controller = Controller(
            self.inbox, hostname="127.0.0.1", port=self.port, server_hostname="localhost", **options
        )

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()

    @property
    def mails(self):
        with self.inbox.lock:
            return list(self.inbox.mails)

    def subjects(self):
        return sorted(mail.subject for mail in self.mails)


def send_mail_to(settings, port):
    """The studio's mail goes through Django's SMTP backend to 127.0.0.1:``port``."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    settings.DEFAULT_FROM_EMAIL = "Kling Studio <studio@example.com>"


@pytest.fixture
def smtp(settings):
    server = SmtpServer().start()
    send_mail_to(settings, server.port)
    settings.PUBLIC_BASE_URL = "https://studio.example.com"
    yield server
    server.stop()


# --- the cast, with addresses and a budget --------------------------------------------------


@pytest.fixture
def animation(team, owner, teammate, manager):
    """The shared cast's team, renamed, with a $1.00 budget, the default 50/80/100 % lines,
    and an address for everyone; a second manager too."""
    team.name, team.monthly_budget_micro_cents, team.alert_thresholds = "Animation", DOLLAR, "50, 80, 100"
    team.save()
    for user in (owner, teammate, manager):
        user.email = f"{user.username}@example.com"
        user.save()
    make_member("second_manager", team, role=Role.MANAGER)
    team.second_manager = team.profiles.get(user__username="second_manager").user
    team.second_manager.email = "second_manager@example.com"
    team.second_manager.save()
    return team


MANAGERS = ["manager@example.com", "second_manager@example.com"]


def spend(owner, team, amount=JOB, when=None, **fields):
    """A job that counts ``amount`` against its holders' month (``when``: day 3 of MONTH)."""
    return make_job(owner, team=team, estimated_micro_cents=amount, created_at=when or on(3), **fields)


def worker_pass(now=None):
    """What every pass of ``sync_jobs`` does for alerts: evaluate, then deliver what is due."""
    alerts.run_pass(now)
    outbox.deliver_due(now)


def team_subject(percent, team="Animation"):
    return f"Team {team} has used {percent}% of its monthly budget"


# --- the test -----------------------------------------------------------------------


def test_four_quarter_dollar_jobs_email_the_managers_at_50_and_80_percent_once_and_again_next_month(
    smtp, animation, owner, teammate
):
    for i in range(4):  # 22.5 %, 45 %, 67.5 %, 90 %
        spend(owner if i % 2 else teammate, animation, when=on(3, 9 + i))
        for _ in range(3):  # repeated worker passes send nothing twice
            worker_pass(on(3, 9 + i, MONTH) + timedelta(minutes=5))
    assert smtp.subjects() == [team_subject(50), team_subject(80)]
    assert all(mail.to == MANAGERS for mail in smtp.mails)
    assert all(mail.sender == "Kling Studio <studio@example.com>" for mail in smtp.mails)

    for day in (4, 5, 7):  # (the projection waits for the 8th: another test)
        worker_pass(on(day))
    assert len(smtp.mails) == 2

    for i in range(4):
        spend(owner, animation, when=on(2, 9 + i, NEXT_MONTH))
    worker_pass(on(2, 18, NEXT_MONTH))
    worker_pass(on(2, 19, NEXT_MONTH))
    assert smtp.subjects() == [team_subject(50)] * 2 + [team_subject(80)] * 2


def test_the_email_says_which_budget_what_is_spent_and_left_when_it_resets_and_links_to_spend(
    smtp, animation, owner
):
    for _ in range(4):
        spend(owner, animation)
    worker_pass(on(3, 18))
    eighty = next(mail for mail in smtp.mails if "80%" in mail.subject)
    assert eighty.subject == "Team Animation has used 80% of its monthly budget"
    next_month = NEXT_MONTH.strftime("%B")
    assert f"$0.90 of $1.00 spent in {MONTH:%B} (90%), $0.10 left." in eighty.body
    assert f"The budget starts again on {next_month} 1." in eighty.body
    assert "https://studio.example.com/spend/" in eighty.body
    assert "because you manage Team Animation" in eighty.body


def test_an_alert_goes_out_within_one_worker_pass_after_the_line_is_crossed(smtp, animation, owner):
    animation.alert_on_projection = False  # the real calendar's day must not matter here
    animation.save()
    for _ in range(3):
        make_job(owner, team=animation)  # now, on the real clock: 67.5 %
    assert smtp.mails == []
    call_command("sync_jobs", stdout=StringIO())
    assert smtp.subjects() == [team_subject(50)]


def test_the_submit_raises_the_alert_at_its_commit_and_the_worker_sends_it(
    smtp, animation, owner, django_capture_on_commit_callbacks
):
    animation.alert_on_projection = False
    animation.save()
    for _ in range(2):
        make_job(owner, team=animation)
    with django_capture_on_commit_callbacks(execute=True):
        submission.record(user=owner, model=pricing.DEFAULT_MODEL, params=PARAMS, submission_key=uuid.uuid4())
    alert = BudgetAlert.objects.get()
    assert (alert.team, alert.line, alert.spent_micro_cents) == (animation, "50", 3 * JOB)
    assert smtp.mails == []  # the request only queues: the worker sends
    outbox.deliver_due()
    assert smtp.subjects() == [team_subject(50)]


# --- once per line, month and limit ---------------------------------------------------------


def test_spend_wobbling_around_a_line_alerts_once(smtp, animation, owner):
    jobs = [spend(owner, animation, remote_id=f"job_{i}") for i in range(3)]  # 67.5 %
    worker_pass(on(3, 13))
    lifecycle.cancelled(jobs[0].pk, JOB, now=on(3, 14))  # refunded: 45 %
    worker_pass(on(3, 14))
    spend(owner, animation, when=on(3, 15))  # 67.5 % again
    worker_pass(on(3, 15))
    lifecycle.apply_update(jobs[1].pk, RemoteJob(job_id="job_1", status=Status.FAILED), now=on(3, 16))
    worker_pass(on(3, 16))  # 45 %
    spend(owner, animation, when=on(3, 17))
    worker_pass(on(3, 17))  # 67.5 % once more
    assert smtp.subjects() == [team_subject(50)]
    assert BudgetAlert.objects.count() == 1


def test_a_raise_changes_the_limit_and_the_lines_are_judged_afresh(smtp, animation, owner):
    for _ in range(3):
        spend(owner, animation)  # $0.675 of $1.00
    worker_pass(on(3, 18))
    BudgetRaise.objects.create(team=animation, month=MONTH, amount_micro_cents=DOLLAR, reason="Launch week")
    worker_pass(on(3, 19))  # $0.675 of $2.00: no line crossed
    assert smtp.subjects() == [team_subject(50)]
    for _ in range(2):
        spend(owner, animation, when=on(4))  # $1.125 of $2.00
    worker_pass(on(4, 18))
    assert smtp.subjects() == [team_subject(50)] * 2
    assert "$1.125 of $2.00 spent" in smtp.mails[-1].body
    assert sorted(BudgetAlert.objects.values_list("limit_micro_cents", flat=True)) == [DOLLAR, 2 * DOLLAR]


def test_a_lowered_budget_tells_the_lines_it_now_passes_that_were_never_told(smtp, animation, owner):
    for _ in range(3):
        spend(owner, animation)
    worker_pass(on(3, 18))
    animation.monthly_budget_micro_cents = 600_000  # $0.675 is now 112 %
    animation.save()
    worker_pass(on(3, 19))
    worker_pass(on(3, 20))
    # The 50 % line was told at this very spend: only the 80 % and 100 % lines are news.
    assert smtp.subjects() == sorted([team_subject(50), team_subject(80), team_subject(100)])
    over = next(mail for mail in smtp.mails if "100%" in mail.subject)
    assert "$0.675 of $0.60 spent in" in over.body and "(112%)" in over.body and "$0.075 over." in over.body


def test_the_projection_warns_once_and_only_from_the_8th(smtp, animation, owner):
    animation.alert_thresholds = ""  # the projection alone
    animation.save()
    spend(owner, animation, when=on(1))
    worker_pass(on(8))  # $0.225 in 8 days: about $0.87 by month end, within the budget
    spend(owner, animation, when=on(2))
    worker_pass(on(7, 23))  # $0.45 in 7 days would be $2 by month end, but it is too early
    assert smtp.mails == []
    worker_pass(on(8))
    worker_pass(on(9))
    worker_pass(on(15))
    assert smtp.subjects() == ["Team Animation is on track to go over its monthly budget"]
    body = smtp.mails[0].body
    assert "At the pace so far, Team Animation will spend about $1." in body
    assert "more than its budget of $1.00" in body


def test_a_team_may_turn_the_projection_off(smtp, animation, owner):
    animation.alert_on_projection = False
    animation.alert_thresholds = ""
    animation.save()
    for _ in range(3):
        spend(owner, animation, when=on(1))
    worker_pass(on(10))
    assert smtp.mails == []


# --- who is told ----------------------------------------------------------------------------


def test_a_persons_budget_tells_the_person_and_a_teams_budget_only_its_managers(
    smtp, animation, owner, teammate
):
    owner.profile.monthly_budget_micro_cents = 500_000
    owner.profile.save()
    for _ in range(2):
        spend(owner, animation)  # owner: 90 % of $0.50; the team: 45 % of $1.00
    worker_pass(on(3, 18))
    assert sorted((mail.to, mail.subject) for mail in smtp.mails) == [
        (["owner@example.com"], "You have used 50% of your monthly budget"),
        (["owner@example.com"], "You have used 80% of your monthly budget"),
    ]
    spend(teammate, animation)  # the team: 67.5 %
    worker_pass(on(3, 19))
    assert (smtp.mails[-1].to, smtp.mails[-1].subject) == (MANAGERS, team_subject(50))
    assert len(smtp.mails) == 3


def test_someone_in_no_team_has_the_default_lines_and_the_projection(smtp, db):
    solo = make_member("solo", None, monthly_budget_micro_cents=DOLLAR)
    solo.email = "solo@example.com"
    solo.save()
    for _ in range(3):
        make_job(solo, created_at=on(1))
    worker_pass(on(9))
    assert smtp.subjects() == [
        "You are on track to go over your monthly budget",
        "You have used 50% of your monthly budget",
    ]
    assert {tuple(mail.to) for mail in smtp.mails} == {("solo@example.com",)}


def test_the_teams_chat_hears_both_kinds_of_alert_as_json_text(smtp, animation, owner):
    chat = FakeApi(Reply(status=200, body="ok"))
    try:
        animation.chat_webhook_url = chat.url + "/hooks/T000/B000/XXXX"
        animation.save()
        owner.profile.monthly_budget_micro_cents = 400_000
        owner.profile.save()
        for _ in range(3):
            spend(owner, animation)  # the team: 67.5 %; owner: 169 % of $0.40
        worker_pass(on(3, 18))
        texts = sorted(json.loads(request["body"])["text"] for request in chat.requests)
    finally:
        chat.stop()
    assert len(texts) == 4  # the team's 50 %, and the owner's 50, 80 and 100 %
    assert texts[0].startswith(
        f"Team Animation has used 50% of its monthly budget: $0.675 of $1.00 spent in {MONTH:%B} (67%), $0.325 left."
    )
    assert texts[0].endswith("https://studio.example.com/spend/")
    assert texts[1].startswith("owner has used 100% of their monthly budget: $0.675 of $0.40 spent")
    assert all(request["path"] == "/hooks/T000/B000/XXXX" for request in chat.requests)
    assert OutgoingMessage.objects.filter(sent_at__isnull=True).count() == 0


# --- delivery trouble -----------------------------------------------------------------------


def test_a_silent_mail_server_costs_one_attempt_a_pass_not_one_per_message(settings, db):
    send_mail_to(settings, closed_port())
    for n in range(3):
        outbox.queue_email([f"person{n}@example.com"], f"Message {n}", "Body")
    assert outbox.deliver_due() == 0
    # The first failure puts off the rest of this pass's mail: the worker moves on.
    assert sorted(OutgoingMessage.objects.values_list("attempts", flat=True)) == [0, 0, 1]


def test_with_the_mail_server_down_the_submit_succeeds_and_the_mail_follows_once_it_is_up(
    settings, animation, owner, sandbox, caplog, django_capture_on_commit_callbacks
):
    down = closed_port()
    send_mail_to(settings, down)
    animation.alert_on_projection = False
    animation.save()
    for _ in range(2):
        make_job(owner, team=animation)
    with django_capture_on_commit_callbacks(execute=True):
        job = submission.submit_job(
            user=owner, model=pricing.DEFAULT_MODEL, params=PARAMS, submission_key=uuid.uuid4()
        )
    assert job.status == Status.PENDING and job.remote_id  # sent to PixelByte and accepted

    now = timezone.now()
    with caplog.at_level(logging.WARNING, logger="jobs"):
        call_command("sync_jobs", stdout=StringIO())
    message = OutgoingMessage.objects.get()
    assert message.sent_at is None and message.attempts == 1
    assert message.last_error.startswith("ConnectionRefusedError")
    assert "not delivered (attempt 1)" in caplog.text

    server = SmtpServer(port=down).start()
    try:
        outbox.deliver_due(now)  # not due yet: it waits out its back-off
        assert server.mails == []
        outbox.deliver_due(now + timedelta(seconds=30))
        outbox.deliver_due(now + timedelta(minutes=5))
        assert server.subjects() == [team_subject(50)]
    finally:
        server.stop()
    message.refresh_from_db()
    assert message.sent_at is not None and message.attempts == 2


def test_the_mail_password_never_reaches_a_log_or_an_error_report(settings, animation, owner, caplog):
    def refuse(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=False, handled=False)

    server = SmtpServer(authenticator=refuse, auth_require_tls=False).start()
    try:
        send_mail_to(settings, server.port)
        settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = "studio", "hunter2-smtp-secret"
        for _ in range(3):
            spend(owner, animation)
        with caplog.at_level(logging.DEBUG):
            worker_pass(on(3, 18))
    finally:
        server.stop()
    message = OutgoingMessage.objects.get()
    assert message.sent_at is None and "SMTPAuthenticationError" in message.last_error
    assert "hunter2-smtp-secret" not in caplog.text + message.last_error
    shown = StudioExceptionReporterFilter().get_safe_settings()
    assert shown["EMAIL_HOST_PASSWORD"] == StudioExceptionReporterFilter.cleansed_substitute


# --- cost, and what /spend/ shows -----------------------------------------------------------


def test_a_worker_pass_costs_a_fixed_handful_of_queries_however_many_budgets(
    animation, outsider, django_assert_max_num_queries
):
    for i in range(8):
        make_member(
            None, make_team(f"Team {i}", monthly_budget_micro_cents=DOLLAR), monthly_budget_micro_cents=DOLLAR
        )
    spend(outsider, None)
    with django_assert_max_num_queries(5):
        assert alerts.run_pass(on(3, 18)) == 0


def test_spend_changed_reads_a_few_rows_and_never_raises(
    animation, owner, django_assert_max_num_queries, caplog
):
    owner.profile.monthly_budget_micro_cents = DOLLAR
    owner.profile.save()
    with django_assert_max_num_queries(8):
        alerts.spend_changed(owner.pk, animation.pk)
    with caplog.at_level(logging.ERROR, logger="jobs.alerts"):
        alerts.spend_changed("not an id", animation.pk)
    assert "not evaluated" in caplog.text


def shown(user, team_id=None, now=None):
    viewer = access.Viewer(user)
    return [(a.budget, a.line) for a in alerts.sent_for(viewer, viewer.spend_scope(team_id), now or on(20))]


def test_each_viewer_sees_the_alerts_of_the_budgets_they_account_for(
    smtp, animation, owner, teammate, manager, outsider, staff
):
    owner.profile.monthly_budget_micro_cents = 400_000
    owner.profile.save()
    outsider.profile.monthly_budget_micro_cents = 400_000
    outsider.profile.save()
    for _ in range(3):
        spend(owner, animation)  # the team 67.5 %, owner 169 %
    spend(outsider, outsider.profile.team)
    worker_pass(on(3, 18))
    team_row = ("Team Animation", "50% used")
    owner_rows = [("owner's own budget", f"{p}% used") for p in (100, 80, 50)]

    assert shown(manager) == [team_row, *owner_rows]
    assert shown(owner) == [("Your budget", f"{p}% used") for p in (100, 80, 50)]
    assert shown(teammate) == []
    assert shown(outsider) == [("Your budget", "50% used")]
    assert len(shown(staff)) == 5
    assert shown(staff, animation.pk) == [team_row, *owner_rows]
    assert shown(manager, now=on(2, month=NEXT_MONTH)) == []  # a new month starts empty


def test_the_spend_page_lists_this_months_alerts_and_whether_they_were_sent(
    smtp, client, animation, owner, outsider
):
    animation.alert_on_projection = False
    animation.save()
    for _ in range(3):
        make_job(owner, team=animation)  # the real month, as the page shows it
    worker_pass()
    client.force_login(animation.second_manager)
    page = client.get(reverse("jobs:spend")).content.decode()
    assert "Budget alerts this month" in page
    assert "Team Animation" in page and "50% used" in page and "Sent" in page

    client.force_login(outsider)
    page = client.get(reverse("jobs:spend")).content.decode()
    assert "Budget alerts this month" not in page


# --- several processes at once (PostgreSQL) -------------------------------------------------


def in_threads(count, work):
    """Run ``work(i)`` in ``count`` threads that start together, each on its own connection."""
    barrier = threading.Barrier(count)

    def run(i):
        try:
            barrier.wait()
            return work(i)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL row locks: run `make test-postgres`"
)
@pytest.mark.django_db(transaction=True)
def test_concurrent_submits_and_workers_send_each_line_once(smtp):
    team = make_team("Animation", monthly_budget_micro_cents=DOLLAR, alert_on_projection=False)
    boss = make_member("boss", team, role=Role.MANAGER)
    boss.email = "boss@example.com"
    boss.save()
    members = [make_member(None, team) for _ in range(4)]

    def work(i):
        if i < len(members):  # four submits at once: 90 % of the budget in all
            submission.record(
                user=members[i], model=pricing.DEFAULT_MODEL, params=PARAMS, submission_key=uuid.uuid4()
            )
        for _ in range(3):  # and workers passing meanwhile
            worker_pass()

    in_threads(8, work)
    for _ in range(3):
        worker_pass()
    assert smtp.subjects() == [team_subject(50), team_subject(80)]
    assert all(mail.to == ["boss@example.com"] for mail in smtp.mails)
    assert BudgetAlert.objects.count() == OutgoingMessage.objects.filter(sent_at__isnull=False).count() == 2


def test_a_raise_does_not_repeat_a_line_below_what_the_holder_was_already_told(manager, owner, team):
    """After the 80 % alert, a raise moves the 50 % line under the spend already reported:
    nothing new to tell. Spend then passing 80 % of the raised budget is news."""
    from jobs import approvals

    team.monthly_budget_micro_cents, team.alert_on_projection = 1_000_000, False
    team.save()
    manager.email = "manager@example.com"
    manager.save()
    make_job(owner, team=team, estimated_micro_cents=850_000)
    alerts.run_pass()
    assert sorted(a.line for a in BudgetAlert.objects.filter(team=team)) == ["50", "80"]
    approvals.grant_raise(granter=manager, amount=500_000, reason="Launch", team=team)
    alerts.run_pass()  # $0.85 of $1.50: the 50 % line ($0.75) is below the $0.85 already told
    quiet = BudgetAlert.objects.get(team=team, limit_micro_cents=1_500_000)
    assert quiet.line == "50" and not quiet.told and not quiet.messages.exists()
    make_job(owner, team=team, estimated_micro_cents=400_000)  # $1.25 of $1.50: 83 %
    alerts.run_pass()
    news = BudgetAlert.objects.get(team=team, limit_micro_cents=1_500_000, line="80")
    assert news.told and news.messages.exists()
