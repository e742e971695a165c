"""The audit trail's pages: who changed money or access, when and from where.

Everyone signed in may open /audit/; ``audit.visible_to`` decides what they read (staff
everything, a manager their team's, anyone else what they did or what was done to them).
The page and its CSV share one filter form, read from the query string.
"""

import csv
import json
from datetime import UTC, timedelta

from django import forms
from django.db.models import F, Q
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET

from .. import audit, history
from ..access import Viewer
from ..forms import PlausibleDates
from ..models import AuditAction, local_midnight
from ..spend.export import safe_cell

PAGE_SIZE = 50
# What a row of the page draws (the team, person and job are joined, never fetched per row).
LIST_FIELDS = (
    "at",
    "actor_name",
    "actor_id",
    "address",
    "action",
    "summary",
    "team__name",
    "subject__username",
    "job__owner_id",
    "job__team_id",
)


class AuditFilterForm(PlausibleDates, forms.Form):
    """The trail's filters; only these names and values reach the query. A person is offered
    only among those the viewer may filter by (their team's, or for staff anyone in a team)."""

    q = forms.CharField(label="Search", required=False, max_length=200, strip=True)
    action = forms.ChoiceField(
        label="Action", required=False, choices=[("", "Any action"), *AuditAction.choices]
    )
    date_from = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, people=(), teams=(), **kwargs):
        super().__init__(*args, **kwargs)
        if people:
            self.fields["person"] = _pick("Person", "Anyone", [(p.pk, p.get_username()) for p in people])
        if teams:
            self.fields["team"] = _pick("Team", "Every team", [(t.pk, t.name) for t in teams])
        self.order_fields(["q", "action", "person", "team", "date_from", "date_to"])

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            # Neither date is used until they are put in order.
            del data["date_from"], data["date_to"]
            raise forms.ValidationError("The start date is after the end date.")
        return data

    def apply(self, entries):
        """``entries`` narrowed by every filter that is valid (one with an error is left out)."""
        data = self._valid_data()
        if data.get("q"):
            entries = entries.filter(summary__icontains=data["q"])
        if data.get("action"):
            entries = entries.filter(action=data["action"])
        if data.get("person"):
            entries = entries.filter(Q(actor_id=data["person"]) | Q(subject_id=data["person"]))
        if data.get("team"):
            entries = entries.filter(team_id=data["team"])
        if data.get("date_from"):
            entries = entries.filter(at__gte=local_midnight(data["date_from"]))
        if data.get("date_to"):
            entries = entries.filter(at__lt=local_midnight(data["date_to"] + timedelta(days=1)))
        return entries

    def _valid_data(self):
        """What passed validation (a field with an error is absent); nothing when unbound."""
        if not self.is_bound:
            return {}
        self.is_valid()  # cleans once; a field with an error is left out of cleaned_data
        return self.cleaned_data

    @property
    def active(self):
        return any(self._valid_data().get(name) for name in self.fields)


def _pick(label, everyone, choices):
    return forms.TypedChoiceField(
        label=label, required=False, coerce=int, empty_value=None, choices=[("", everyone), *choices]
    )


def _filtered(request, viewer):
    """(the filter form, the viewer's entries it lets through, the people it offers)."""
    people = viewer.members()
    form = AuditFilterForm(request.GET or None, people=people, teams=viewer.spend_teams())
    return form, form.apply(audit.visible_to(viewer)), people


@require_GET
def audit_list(request):
    viewer = Viewer.for_request(request)
    form, entries, people = _filtered(request, viewer)
    return _render(request, viewer, form, entries, people)


def _render(request, viewer, form, entries, people):
    # history.page_of cuts pages by (created_at, id); an entry's moment is ``at``, named so.
    pageable = entries.select_related("team", "subject", "job").only(*LIST_FIELDS)
    page = history.page_of(
        pageable.annotate(created_at=F("at")),
        after=history.Cursor.decode(request.GET.get("after")),
        before=history.Cursor.decode(request.GET.get("before")),
        size=PAGE_SIZE,
    )
    for entry in page.jobs:
        # A link to a job only for those who may open it (else it would answer 404).
        entry.job_link = entry.job is not None and viewer.sees(entry.job)
    context = {
        "filters": form,
        "entries": page.jobs,
        "newer_url": _page_url(request, "before", page.newer),
        "older_url": _page_url(request, "after", page.older),
        "has_any_entry": bool(page.jobs) or audit.visible_to(viewer).exists(),
        "people_ids": {person.pk for person in people},
        "show_team": request.user.is_staff,
        "export_url": reverse("jobs:audit_export") + _query(request),
    }
    # Filters with an error: the page says what is wrong, shows the rest (never a bare 400).
    return render(request, "jobs/audit.html", context, status=422 if form.errors else 200)


def _query(request):
    query = request.GET.copy()
    query.pop("after", None)
    query.pop("before", None)
    return "?" + query.urlencode() if query else ""


def _page_url(request, direction, cursor):
    if cursor is None:
        return None
    query = request.GET.copy()
    query.pop("after", None)
    query.pop("before", None)
    query[direction] = cursor.encode()
    return "?" + query.urlencode()


# --- the CSV ---------------------------------------------------------------------------------

CSV_COLUMNS = [
    "at_utc",
    "at_local",
    "actor",
    "address",
    "action",
    "team",
    "subject",
    "job_id",
    "summary",
    "detail",
]


class _Echo:
    def write(self, value):
        return value


def csv_rows(entries, zone):
    """The CSV, oldest first, a line at a time, read in chunks (never all at once). Every
    text cell that starts like a spreadsheet formula is neutralised."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    rows = entries.select_related("team", "subject").order_by("at", "pk").iterator(chunk_size=2000)
    for entry in rows:
        yield writer.writerow(
            [
                entry.at.astimezone(UTC).isoformat(),
                timezone.localtime(entry.at, zone).isoformat(),
                safe_cell(entry.actor_name),
                entry.address or "",
                entry.action,
                safe_cell(_name(entry.team, "name", entry.team_id)),
                safe_cell(_name(entry.subject, "username", entry.subject_id)),
                "" if entry.job_id is None else entry.job_id,
                safe_cell(entry.summary),
                safe_cell(json.dumps(entry.detail, sort_keys=True, ensure_ascii=False)),
            ]
        )


def _name(related, attribute, pk):
    """The related row's name; ``#id`` when it is gone (entries outlive teams and accounts)."""
    if related is not None:
        return getattr(related, attribute)
    return "" if pk is None else f"#{pk}"


@require_GET
def audit_export(request):
    viewer = Viewer.for_request(request)
    form, entries, people = _filtered(request, viewer)
    if form.errors:
        # A CSV that quietly ignored a filter would be read as the filtered one.
        return _render(request, viewer, form, entries, people)
    # Taken now: the viewer's zone is active only until the view returns, before the rows are sent.
    zone = timezone.get_current_timezone()
    response = StreamingHttpResponse(csv_rows(entries, zone), content_type="text/csv; charset=utf-8")
    name = f"kling-studio-audit-{timezone.localdate():%Y-%m-%d}.csv"
    response["Content-Disposition"] = content_disposition_header(True, name)
    response["Cache-Control"] = "private, no-store"
    return response
