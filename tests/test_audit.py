"""The audit trail: every change of money or access leaves exactly one entry (admin forms
posted as staff, the job page's cancel and delete-files), who reads which entries, the
page's filters and pages, its CSV, and that nothing in the app edits or deletes an entry."""

import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django import forms
from django.urls import reverse
from django.utils import timezone

from jobs import audit, pricing, submission
from jobs.access import Viewer
from jobs.models import (
    ArchiveStatus,
    AuditAction,
    AuditEntry,
    Job,
    Profile,
    Role,
    Status,
    Team,
    Verdict,
    WebhookDelivery,
)

from .helpers import Reply, make_archived, make_job, make_member, make_team, make_user

ADDRESS = "203.0.113.7"
AUDIT = reverse("jobs:audit")
EXPORT = reverse("jobs:audit_export")
CHAT_URL = "https://hooks.chat.example/services/T000/B000/very-secret-token"


@pytest.fixture
def root(db):
    return make_user("root", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(client, root):
    client.force_login(root)
    return client


def the_entry(action=None):
    """The one entry written (of ``action``); fails when there are none or several."""
    entries = AuditEntry.objects.all()
    if action is not None:
        entries = entries.filter(action=action)
    found = list(entries)
    assert len(found) == 1, [e.summary for e in AuditEntry.objects.order_by("pk")]
    return found[0]


# --- posting the admin's own forms ------------------------------------------------------------


def _fill(data, bound):
    """Put what the admin's page would send back for one field, unchanged."""
    value, widget = bound.value(), bound.field.widget
    if isinstance(widget, forms.MultiWidget):
        for index, part in enumerate(widget.decompress(value)):
            data[f"{bound.html_name}_{index}"] = "" if part is None else str(part)
    elif isinstance(value, bool):
        if value:
            data[bound.html_name] = "on"
    elif isinstance(value, (list, tuple)):
        data[bound.html_name] = [str(item) for item in value]
    elif value is not None:
        data[bound.html_name] = str(value)


def page_form(client, url):
    """Everything an admin add or change page would post back, its inline rows included."""
    response = client.get(url)
    assert response.status_code == 200
    every_form = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        every_form += [inline.formset.management_form, *inline.formset.forms]
    data = {}
    for form in every_form:
        for bound in form:
            if not bound.field.disabled:
                _fill(data, bound)
    return data


def post(client, url, data):
    """Post from ADDRESS as the admin's page does; the admin answers a saved form with a redirect."""
    response = client.post(url, data, REMOTE_ADDR=ADDRESS)
    if response.status_code != 302 and response.context and "adminform" in response.context:
        errors = [response.context["adminform"].form.errors]
        errors += [inline.formset.errors for inline in response.context["inline_admin_formsets"]]
        raise AssertionError(errors)
    assert response.status_code == 302, response.status_code
    return response


def change(client, obj, **changes):
    url = reverse(f"admin:jobs_{obj._meta.model_name}_change", args=[obj.pk])
    return post(client, url, {**page_form(client, url), **changes})


def changelist_action(client, model, action, pks):
    url = reverse(f"admin:jobs_{model._meta.model_name}_changelist")
    return post(client, url, {"action": action, "_selected_action": [str(pk) for pk in pks]})


def without(data, *names):
    return {name: value for name, value in data.items() if name not in names}


# --- teams ---------------------------------------------------------------------------------


def test_creating_a_team_leaves_one_entry_with_who_and_the_address(admin_client, root):
    url = reverse("admin:jobs_team_add")
    post(
        admin_client, url, {**page_form(admin_client, url), "name": "Sales", "monthly_budget_dollars": "250"}
    )
    team = Team.objects.get(name="Sales")
    entry = the_entry()
    assert (entry.action, entry.team_id, entry.actor_id, entry.actor_name) == (
        AuditAction.TEAM_CREATED,
        team.pk,
        root.pk,
        "root",
    )
    assert entry.address == ADDRESS
    assert entry.summary == "Created team Sales (monthly budget $250.00)."
    assert entry.detail["after"]["monthly_budget_micro_cents"] == 250_000_000


def test_changing_a_team_budget_leaves_one_entry_before_and_after(admin_client, team):
    Team.objects.filter(pk=team.pk).update(monthly_budget_micro_cents=100_000_000)
    change(admin_client, team, monthly_budget_dollars="150.5")
    entry = the_entry()
    assert entry.action == AuditAction.BUDGET_CHANGED and entry.team_id == team.pk
    assert entry.summary == "Team Studio's monthly budget: $100.00 → $150.50."
    assert entry.detail == {"before": 100_000_000, "after": 150_500_000}
    assert entry.address == ADDRESS


def test_removing_a_team_budget_says_no_limit(admin_client, team):
    Team.objects.filter(pk=team.pk).update(monthly_budget_micro_cents=100_000_000)
    change(admin_client, team, monthly_budget_dollars="")
    assert the_entry().summary == "Team Studio's monthly budget: $100.00 → no limit."


def test_saving_a_team_unchanged_leaves_no_entry(admin_client, team, owner, manager):
    change(admin_client, team)
    assert not AuditEntry.objects.exists()


def test_changing_the_approval_rule_leaves_one_entry(admin_client, team):
    change(admin_client, team, approval_above_dollars="5", members_may_ask="on")
    entry = the_entry()
    assert entry.action == AuditAction.APPROVAL_RULE_CHANGED
    assert entry.summary == (
        "Team Studio's approval rule: approval needed above never → $5.00; "
        "members may ask when over budget no → yes."
    )
    assert entry.detail == {
        "before": {"approval_above_micro_cents": None, "members_may_ask": False},
        "after": {"approval_above_micro_cents": 5_000_000, "members_may_ask": True},
    }


def test_changing_alert_settings_leaves_one_entry_that_never_holds_the_chat_url(admin_client, team):
    change(admin_client, team, alert_thresholds="80, 100", chat_webhook_url=CHAT_URL)
    entry = the_entry()
    assert entry.action == AuditAction.ALERTS_CHANGED
    assert (
        entry.summary
        == "Team Studio's alert settings: thresholds 50%, 80%, 100% → 80%, 100%; chat webhook set."
    )
    assert "hooks.chat.example" not in entry.summary + json.dumps(entry.detail)
    Team.objects.filter(pk=team.pk).update(chat_webhook_url=CHAT_URL + "-new")
    change(admin_client, team, chat_webhook_url=CHAT_URL)
    change(admin_client, team, chat_webhook_url="")
    said = list(AuditEntry.objects.order_by("pk").values_list("summary", flat=True))[1:]
    assert said == [
        "Team Studio's alert settings: chat webhook changed.",
        "Team Studio's alert settings: chat webhook removed.",
    ]
    assert "hooks.chat.example" not in json.dumps(list(AuditEntry.objects.values("summary", "detail")))


def test_thresholds_written_differently_are_not_a_change(admin_client, team):
    change(admin_client, team, alert_thresholds="100,50 ,80%")
    assert not AuditEntry.objects.exists()


def test_a_budget_and_alerts_changed_in_one_save_leave_one_entry_each(admin_client, team):
    change(admin_client, team, monthly_budget_dollars="10", alert_on_projection="")
    assert sorted(AuditEntry.objects.values_list("action", flat=True)) == [
        AuditAction.ALERTS_CHANGED,
        AuditAction.BUDGET_CHANGED,
    ]


def test_deleting_a_team_leaves_one_entry_naming_its_members(admin_client, db):
    team = make_team("Gone")
    member = make_member("leaver", team)
    post(admin_client, reverse("admin:jobs_team_delete", args=[team.pk]), {"post": "yes"})
    entry = the_entry()
    assert (entry.action, entry.team_id) == (AuditAction.TEAM_DELETED, team.pk)
    assert entry.summary == "Deleted team Gone; 1 member(s) left without a team."
    assert entry.detail["before"]["members"] == [member.pk] and entry.detail["after"] is None


def test_deleting_teams_in_bulk_leaves_one_entry_per_team(admin_client, db):
    teams = [make_team("One"), make_team("Two")]
    url = reverse("admin:jobs_team_changelist")
    selected = {"action": "delete_selected", "_selected_action": [t.pk for t in teams]}
    post(admin_client, url, {**selected, "post": "yes"})
    assert sorted(AuditEntry.objects.values_list("team_id", flat=True)) == sorted(t.pk for t in teams)


# --- people --------------------------------------------------------------------------------


def test_a_role_change_leaves_one_entry_about_the_person(admin_client, owner, team):
    change(admin_client, owner.profile, role=Role.MANAGER)
    entry = the_entry()
    assert (entry.action, entry.subject_id, entry.team_id) == (AuditAction.ROLE_CHANGED, owner.pk, team.pk)
    assert entry.summary == "owner's role in team Studio: member → manager."
    assert entry.detail == {"before": "member", "after": "manager"}


def test_a_persons_budget_change_leaves_one_entry_in_dollars_and_micro_cents(admin_client, owner, team):
    change(admin_client, owner.profile, monthly_budget_dollars="12.345678")
    entry = the_entry()
    assert (entry.action, entry.subject_id, entry.team_id) == (AuditAction.BUDGET_CHANGED, owner.pk, team.pk)
    assert entry.summary == "owner's own monthly budget: no limit → $12.345678."
    assert entry.detail == {"before": None, "after": 12_345_678}


def test_moving_a_person_leaves_one_entry_both_teams_managers_read(
    admin_client, owner, team, manager, outsider
):
    elsewhere = outsider.profile.team
    other_manager = make_member("other-manager", elsewhere, role=Role.MANAGER)
    change(admin_client, owner.profile, team=str(elsewhere.pk))
    entry = the_entry()
    assert (entry.action, entry.team_id, entry.subject_id) == (
        AuditAction.TEAM_CHANGED,
        elsewhere.pk,
        owner.pk,
    )
    assert entry.summary == "owner moved from team Studio to team Elsewhere."
    assert entry.detail["before"] == {"team_id": team.pk, "team": "Studio"}
    for person in (manager, other_manager, owner):
        assert list(audit.visible_to(Viewer(person))) == [entry], person
    assert not audit.visible_to(Viewer(outsider)).exists()


def test_a_person_leaving_every_team_is_recorded_under_the_team_they_left(admin_client, owner, team, manager):
    change(admin_client, owner.profile, team="")
    entry = the_entry()
    assert (entry.team_id, entry.summary) == (team.pk, "owner left team Studio.")
    assert audit.visible_to(Viewer(manager)).get() == entry


def test_adding_a_person_on_the_team_page_leaves_one_entry(admin_client, team, owner):
    newcomer = make_user("newcomer")
    url = reverse("admin:jobs_team_change", args=[team.pk])
    data = page_form(admin_client, url)
    row = int(data["profiles-TOTAL_FORMS"])
    data.update(
        {
            "profiles-TOTAL_FORMS": str(row + 1),
            f"profiles-{row}-user": str(newcomer.pk),
            f"profiles-{row}-role": Role.MEMBER,
            f"profiles-{row}-team": str(team.pk),
        }
    )
    post(admin_client, url, data)
    entry = the_entry()
    assert (entry.action, entry.subject_id, entry.team_id) == (AuditAction.TEAM_CHANGED, newcomer.pk, team.pk)
    assert entry.summary == "newcomer joined team Studio."


def test_changing_a_role_on_the_team_page_leaves_one_entry(admin_client, team, owner, teammate):
    url = reverse("admin:jobs_team_change", args=[team.pk])
    data = page_form(admin_client, url)
    row = next(key for key, value in data.items() if key.endswith("-user") and value == str(teammate.pk))
    post(admin_client, url, {**data, row.replace("-user", "-role"): Role.MANAGER})
    entry = the_entry()
    assert (entry.action, entry.subject_id) == (AuditAction.ROLE_CHANGED, teammate.pk)


def test_removing_a_person_on_the_team_page_leaves_one_entry(admin_client, team, owner, teammate):
    url = reverse("admin:jobs_team_change", args=[team.pk])
    data = page_form(admin_client, url)
    row = next(key for key, value in data.items() if key.endswith("-user") and value == str(teammate.pk))
    post(admin_client, url, {**data, row.replace("-user", "-DELETE"): "on"})
    assert not Profile.objects.filter(user=teammate).exists()
    entry = the_entry()
    assert (entry.action, entry.subject_id, entry.team_id) == (AuditAction.TEAM_CHANGED, teammate.pk, team.pk)
    assert entry.summary == "teammate left team Studio."


def test_deleting_a_profile_leaves_one_entry(admin_client, owner, team):
    profile = owner.profile
    post(admin_client, reverse("admin:jobs_profile_delete", args=[profile.pk]), {"post": "yes"})
    assert the_entry().summary == "owner left team Studio."


def test_giving_staff_access_leaves_one_entry(admin_client, owner, team):
    change_url = reverse("admin:auth_user_change", args=[owner.pk])
    post(admin_client, change_url, {**page_form(admin_client, change_url), "is_staff": "on"})
    entry = the_entry()
    assert (entry.action, entry.subject_id, entry.team_id) == (AuditAction.ACCESS_CHANGED, owner.pk, team.pk)
    assert entry.summary == "owner's access: staff no → yes."
    assert entry.detail["before"]["is_staff"] is False and entry.detail["after"]["is_staff"] is True


def test_stopping_someone_signing_in_leaves_one_entry(admin_client, owner):
    change_url = reverse("admin:auth_user_change", args=[owner.pk])
    post(admin_client, change_url, without(page_form(admin_client, change_url), "is_active"))
    assert the_entry(AuditAction.ACCESS_CHANGED).summary == "owner's access: may sign in yes → no."


def test_creating_an_account_leaves_one_entry(admin_client):
    url = reverse("admin:auth_user_add")
    password = {"password1": "a long enough password 42", "password2": "a long enough password 42"}
    post(admin_client, url, {**page_form(admin_client, url), "username": "newcomer", **password})
    entry = the_entry()
    assert (entry.action, entry.summary) == (AuditAction.ACCESS_CHANGED, "Created the account newcomer.")
    assert entry.subject.username == "newcomer" and entry.detail["before"] is None


def test_saving_an_account_unchanged_leaves_no_entry(admin_client, owner):
    change_url = reverse("admin:auth_user_change", args=[owner.pk])
    post(admin_client, change_url, page_form(admin_client, change_url))
    assert not AuditEntry.objects.exists()


# --- jobs ----------------------------------------------------------------------------------


def test_naming_the_pixelbyte_job_leaves_one_entry(admin_client, owner, team):
    job = make_job(owner, team=team, status=Status.UNKNOWN, error_code="NEEDS_DECISION")
    change(admin_client, job, remote_id="job_found")
    job.refresh_from_db()
    assert job.remote_id == "job_found"
    entry = the_entry()
    assert (entry.action, entry.job_id, entry.subject_id, entry.team_id) == (
        AuditAction.JOB_ADOPTED,
        job.pk,
        owner.pk,
        team.pk,
    )
    assert entry.detail == {"before": {"remote_id": None}, "after": {"remote_id": "job_found"}}


def test_marking_jobs_not_sent_leaves_one_entry_per_job_that_moved(admin_client, owner, team):
    lost = make_job(owner, status=Status.UNKNOWN)
    running = make_job(owner, status=Status.PROCESSING, remote_id="job_running")
    changelist_action(admin_client, Job, "mark_not_sent", [lost.pk, running.pk])
    entry = the_entry()
    assert (entry.action, entry.job_id) == (AuditAction.MARKED_NOT_SENT, lost.pk)
    assert entry.detail == {"before": lost.estimated_micro_cents, "after": 0}
    assert entry.summary == f"Marked video #{lost.pk} as never sent: charge $0.225 → $0.00."
    assert entry.address == ADDRESS


def test_reapplying_a_delivery_leaves_one_entry_per_delivery(admin_client, owner, team):
    job = make_job(owner, team=team, status=Status.PROCESSING, remote_id="job_1")
    body = {"jobId": "job_1", "status": "completed", "output": {"videoUrl": "https://cdn.example/v.mp4"}}
    delivery = WebhookDelivery.objects.create(
        job=job, verdict=Verdict.APPLIED, http_status=200, signature_valid=True, body=json.dumps(body)
    )
    refused = WebhookDelivery.objects.create(
        job=job, verdict=Verdict.BAD_SIGNATURE, http_status=401, signature_valid=False, body="{}"
    )
    changelist_action(admin_client, WebhookDelivery, "reapply", [delivery.pk, refused.pk])
    entry = the_entry()
    assert (entry.action, entry.job_id, entry.team_id) == (AuditAction.WEBHOOK_REAPPLIED, job.pk, team.pk)
    assert entry.detail["delivery"] == delivery.pk and entry.detail["outcome"] == "applied"
    assert Job.objects.get(pk=job.pk).status == Status.COMPLETED


def submit_pending(owner):
    params = {"prompt": "A tram in the fog", "quality": "pro", "duration": "10", "aspect_ratio": "9:16"}
    return submission.submit_job(
        user=owner, model=pricing.DEFAULT_MODEL, params=params, submission_key=uuid.uuid4()
    )


def test_cancelling_a_job_leaves_one_entry_with_the_refund(client, manager, owner, team, sandbox):
    job = submit_pending(owner)
    client.force_login(manager)
    client.post(reverse("jobs:cancel", args=[job.pk]), REMOTE_ADDR=ADDRESS)
    entry = the_entry()
    assert (entry.action, entry.actor_id, entry.subject_id, entry.team_id, entry.job_id) == (
        AuditAction.CANCELLED,
        manager.pk,
        owner.pk,
        team.pk,
        job.pk,
    )
    assert entry.address == ADDRESS
    assert entry.detail == {"before": 675_000, "after": 0, "refunded_micro_cents": 675_000}
    assert "PixelByte refunded $0.675" in entry.summary


def test_a_cancel_that_fails_leaves_no_entry(owner_client, owner, fake_api):
    fake_api(Reply(status=403, body={"error": {"code": "UNAUTHORIZED_ACCESS", "message": "no"}}))
    job = make_job(owner, status=Status.PENDING, remote_id="job_p")
    owner_client.post(reverse("jobs:cancel", args=[job.pk]))
    assert not AuditEntry.objects.exists()


def test_deleting_files_leaves_one_entry(owner_client, owner, team):
    job = make_job(owner, team=team, status=Status.COMPLETED, api_cost_micro_cents=337_500)
    make_archived(job, video_bytes=b"v" * 100, thumbnail_bytes=b"t" * 10)
    owner_client.post(reverse("jobs:delete_files", args=[job.pk]), REMOTE_ADDR=ADDRESS)
    assert Job.objects.get(pk=job.pk).archive_status == ArchiveStatus.DELETED
    entry = the_entry()
    assert (entry.action, entry.actor_id, entry.team_id, entry.job_id) == (
        AuditAction.FILES_DELETED,
        owner.pk,
        team.pk,
        job.pk,
    )
    assert entry.address == ADDRESS and entry.detail["before"]["files"] == 3
    owner_client.post(reverse("jobs:delete_files", args=[job.pk]))  # nothing left: no second entry
    assert AuditEntry.objects.count() == 1


def test_entries_outlive_the_team_and_account_they_name(admin_client, client, staff, db):
    team = make_team("Gone")
    leaver = make_member("leaver", team)
    post(admin_client, reverse("admin:auth_user_delete", args=[leaver.pk]), {"post": "yes"})
    post(admin_client, reverse("admin:jobs_team_delete", args=[team.pk]), {"post": "yes"})
    assert sorted(AuditEntry.objects.values_list("action", flat=True)) == [
        AuditAction.ACCESS_CHANGED,
        AuditAction.TEAM_DELETED,
    ]
    for url in (reverse("admin:jobs_auditentry_changelist"), AUDIT):
        assert admin_client.get(url).status_code == 200
    entry = AuditEntry.objects.get(action=AuditAction.ACCESS_CHANGED)
    assert admin_client.get(reverse("admin:jobs_auditentry_change", args=[entry.pk])).status_code == 200
    html = admin_client.get(AUDIT).content.decode()
    assert "Deleted the account leaver." in html and "Team (deleted)" in html and "a deleted account" in html
    rows = read_csv(admin_client.get(EXPORT))
    assert {row["team"] for row in rows} == {f"#{team.pk}"}
    assert {row["subject"] for row in rows} == {f"#{leaver.pk}", ""}


# --- nobody edits or deletes an entry ----------------------------------------------------------


def test_the_admin_shows_entries_but_cannot_add_change_or_delete_them(admin_client, team):
    entry = audit.record(AuditAction.BUDGET_CHANGED, '=HYPERLINK("x")', team=team)
    assert admin_client.get(reverse("admin:jobs_auditentry_changelist")).status_code == 200
    change_url = reverse("admin:jobs_auditentry_change", args=[entry.pk])
    assert admin_client.get(change_url).status_code == 200  # read-only
    assert admin_client.post(change_url, {"summary": "rewritten"}).status_code == 403
    delete_url = reverse("admin:jobs_auditentry_delete", args=[entry.pk])
    assert admin_client.get(delete_url).status_code == 403
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert admin_client.get(reverse("admin:jobs_auditentry_add")).status_code == 403
    assert AuditEntry.objects.get().summary == entry.summary


def test_delete_selected_cannot_delete_entries(admin_client, team):
    entry = audit.record(AuditAction.BUDGET_CHANGED, "kept", team=team)
    page = admin_client.get(reverse("admin:jobs_auditentry_changelist")).content.decode()
    assert "delete_selected" not in page
    admin_client.post(
        reverse("admin:jobs_auditentry_changelist"),
        {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"},
    )
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_the_model_refuses_to_change_or_delete_an_entry(team):
    entry = audit.record(AuditAction.BUDGET_CHANGED, "kept", team=team)
    entry.summary = "rewritten"
    with pytest.raises(TypeError):
        entry.save()
    with pytest.raises(TypeError):
        AuditEntry.objects.filter(pk=entry.pk).update(summary="rewritten")
    with pytest.raises(TypeError):
        entry.delete()
    assert AuditEntry.objects.get().summary == "kept"


# --- who reads what ----------------------------------------------------------------------------


@pytest.fixture
def trail(team, owner, teammate, manager, outsider, staff):
    """One entry of each kind a person might read: the team's, each member's, another team's."""
    elsewhere = outsider.profile.team
    return {
        "team": audit.record(AuditAction.BUDGET_CHANGED, "Team budget", actor=staff, team=team),
        "owner": audit.record(
            AuditAction.BUDGET_CHANGED, "Owner budget", actor=staff, team=team, subject=owner
        ),
        "teammate": audit.record(
            AuditAction.ROLE_CHANGED, "Teammate role", actor=staff, team=team, subject=teammate
        ),
        "by_owner": audit.record(AuditAction.FILES_DELETED, "Owner deleted", actor=owner, team=team),
        "other": audit.record(AuditAction.BUDGET_CHANGED, "Other team", actor=staff, team=elsewhere),
        "outsider": audit.record(
            AuditAction.CANCELLED, "Outsider cancel", actor=outsider, team=elsewhere, subject=outsider
        ),
    }


def seen_by(client, viewer, **query):
    client.force_login(viewer)
    response = client.get(AUDIT, query)
    assert response.status_code == 200
    return {entry.summary for entry in response.context["entries"]}


def test_staff_read_every_entry(client, staff, trail):
    assert seen_by(client, staff) == {entry.summary for entry in trail.values()}


def test_a_manager_reads_their_teams_entries_and_not_another_teams(client, manager, trail):
    assert seen_by(client, manager) == {"Team budget", "Owner budget", "Teammate role", "Owner deleted"}


def test_a_member_reads_only_what_they_did_or_what_was_done_to_them(client, owner, trail):
    assert seen_by(client, owner) == {"Owner budget", "Owner deleted"}


def test_a_member_reads_none_of_another_teams_entries(client, outsider, trail):
    assert seen_by(client, outsider) == {"Outsider cancel"}


def test_a_member_cannot_widen_their_view_with_filters(client, owner, trail, team):
    client.force_login(owner)
    response = client.get(AUDIT, {"person": trail["teammate"].subject_id, "team": team.pk})
    assert {entry.summary for entry in response.context["entries"]} == {"Owner budget", "Owner deleted"}
    assert (
        "person" not in response.context["filters"].fields
        and "team" not in response.context["filters"].fields
    )


def test_a_manager_may_not_filter_by_someone_outside_the_team(client, manager, outsider, trail):
    client.force_login(manager)
    response = client.get(AUDIT, {"person": outsider.pk})
    assert response.status_code == 422
    assert "Outsider cancel" not in response.content.decode()


def test_the_audit_pages_are_for_signed_in_people_and_read_only(client, owner):
    for url in (AUDIT, EXPORT):
        response = client.get(url)
        assert response.status_code == 302 and reverse("login") in response["Location"]
    client.force_login(owner)
    assert client.post(AUDIT).status_code == 405
    assert client.post(EXPORT).status_code == 405


# --- the page ----------------------------------------------------------------------------------


LATE = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)  # already March 2nd east of UTC


def written_at(at, summary, **fields):
    """An entry as ``audit.record`` writes it, at a chosen moment."""
    return AuditEntry.objects.create(at=at, summary=summary, **{"actor_name": "staff", **fields})


def test_the_page_shows_when_who_what_and_links_in_the_viewers_zone(client, manager, owner, team):
    job = make_job(owner, team=team)
    written_at(
        LATE,
        f"Cancelled video #{job.pk}.",
        action=AuditAction.CANCELLED,
        actor=manager,
        actor_name="manager",
        team=team,
        subject=owner,
        job=job,
    )
    client.force_login(manager)
    client.cookies["tz"] = "Asia/Tokyo"
    html = client.get(AUDIT).content.decode()
    assert "Mar 2, 2026 08:30:00" in html and "Asia/Tokyo" in html
    assert f"Cancelled video #{job.pk}." in html and "Job cancelled" in html
    assert f'href="?person={owner.pk}"' in html and f'href="?person={manager.pk}"' in html
    assert f'href="{job.get_absolute_url()}"' in html
    assert "no address" in html


def test_a_job_the_viewer_may_not_open_is_named_but_not_linked(client, owner, outsider, team):
    job = make_job(outsider)
    audit.record(AuditAction.CANCELLED, "Someone else's video", team=team, subject=owner, job=job)
    client.force_login(owner)
    html = client.get(AUDIT).content.decode()
    assert f"Video #{job.pk}" in html and f'href="{job.get_absolute_url()}"' not in html


def test_the_address_is_shown(client, staff, team, rf):
    request = rf.get("/", REMOTE_ADDR=ADDRESS)
    request.user = staff
    audit.record(AuditAction.BUDGET_CHANGED, "With an address", request=request, team=team)
    client.force_login(staff)
    assert ADDRESS in client.get(AUDIT).content.decode()


def test_the_page_explains_an_empty_trail(client, owner):
    client.force_login(owner)
    response = client.get(AUDIT)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Nothing recorded yet" in html and "from which address" in html
    assert "Export CSV" not in html


def test_filters_narrow_by_action_person_team_words_and_dates(client, staff, trail, owner, outsider):
    assert seen_by(client, staff, action=AuditAction.ROLE_CHANGED) == {"Teammate role"}
    assert seen_by(client, staff, person=owner.pk) == {"Owner budget", "Owner deleted"}
    assert seen_by(client, staff, team=outsider.profile.team_id) == {"Other team", "Outsider cancel"}
    assert seen_by(client, staff, q="OUTSIDER") == {"Outsider cancel"}
    today = timezone.localdate()
    assert len(seen_by(client, staff, date_from=today, date_to=today)) == 6
    assert seen_by(client, staff, date_to=today - timedelta(days=1)) == set()
    html = client.get(AUDIT, {"date_to": today - timedelta(days=1)}).content.decode()
    assert "No entries match these filters" in html


def test_dates_are_days_in_the_viewers_zone(client, staff, team):
    written_at(LATE, "Late", action=AuditAction.BUDGET_CHANGED, team=team)
    client.cookies["tz"] = "Europe/Berlin"
    assert seen_by(client, staff, date_from="2026-03-02", date_to="2026-03-02") == {"Late"}
    assert seen_by(client, staff, date_to="2026-03-01") == set()
    client.cookies["tz"] = "UTC"
    assert seen_by(client, staff, date_from="2026-03-01", date_to="2026-03-01") == {"Late"}


def test_an_invalid_filter_is_shown_with_its_error_not_a_bare_400(client, staff, trail):
    client.force_login(staff)
    response = client.get(AUDIT, {"date_from": "2026-05-02", "date_to": "2026-05-01", "action": "nonsense"})
    assert response.status_code == 422
    html = response.content.decode()
    assert "The start date is after the end date." in html and "Select a valid choice" in html
    assert 'value="2026-05-02"' in html
    response = client.get(EXPORT, {"date_from": "1066-10-14"})
    assert response.status_code == 422 and not response.streaming
    assert "between the years 2000 and 9000" in response.content.decode()


def test_pages_hold_fifty_entries_newest_first(client, staff, team):
    start = datetime(2026, 3, 1, 12, tzinfo=UTC)
    AuditEntry.objects.bulk_create(
        AuditEntry(
            action=AuditAction.BUDGET_CHANGED,
            summary=f"Change {n}",
            actor_name="staff",
            team=team,
            at=start + timedelta(minutes=n % 60),
        )
        for n in range(120)
    )
    client.force_login(staff)
    first = client.get(AUDIT)
    entries = first.context["entries"]
    assert len(entries) == 50 and first.context["newer_url"] is None
    assert [e.at for e in entries] == sorted((e.at for e in entries), reverse=True)
    second = client.get(AUDIT + first.context["older_url"])
    third = client.get(AUDIT + second.context["older_url"])
    seen = [e.pk for page in (first, second, third) for e in page.context["entries"]]
    assert len(seen) == len(set(seen)) == 120 and third.context["older_url"] is None
    back = client.get(AUDIT + second.context["newer_url"])
    assert [e.pk for e in back.context["entries"]] == [e.pk for e in entries]


def test_the_page_reads_a_constant_number_of_queries(
    client, staff, team, owner, django_assert_max_num_queries
):
    job = make_job(owner)
    for n in range(30):
        audit.record(AuditAction.CANCELLED, f"Entry {n}", actor=owner, team=team, subject=owner, job=job)
    client.force_login(staff)
    client.get(AUDIT)
    # Session, user, profile, notices, the people and teams offered, one page of entries.
    with django_assert_max_num_queries(8):
        assert len(client.get(AUDIT).context["entries"]) == 30


# --- the CSV -----------------------------------------------------------------------------------


def read_csv(response):
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_csv_has_the_same_filters_and_neutralises_formulas(client, manager, team, owner, outsider):
    audit.record(
        AuditAction.BUDGET_CHANGED, '=HYPERLINK("http://evil.example","click")', actor=manager, team=team
    )
    audit.record(AuditAction.ROLE_CHANGED, "Role", actor=manager, team=team, subject=owner)
    audit.record(AuditAction.BUDGET_CHANGED, "Not theirs", team=outsider.profile.team)
    client.force_login(manager)
    rows = read_csv(client.get(EXPORT, {"action": AuditAction.BUDGET_CHANGED}))
    assert [row["summary"] for row in rows] == ['\'=HYPERLINK("http://evil.example","click")']
    assert (
        rows[0]["actor"] == "manager"
        and rows[0]["team"] == "Studio"
        and rows[0]["action"] == "budget_changed"
    )
    assert len(read_csv(client.get(EXPORT))) == 2


def test_the_csv_gives_times_in_utc_and_the_viewers_zone(client, staff, team):
    written_at(LATE, "Zoned", action=AuditAction.BUDGET_CHANGED, team=team)
    client.force_login(staff)
    client.cookies["tz"] = "Asia/Tokyo"
    response = client.get(EXPORT)
    assert 'filename="kling-studio-audit-' in response["Content-Disposition"]
    (row,) = read_csv(response)
    assert (row["at_utc"], row["at_local"]) == ("2026-03-01T23:30:00+00:00", "2026-03-02T08:30:00+09:00")
