"""What the API says about a job, a budget and an amount: plain JSON-ready dicts that the
response schemas (``schemas.py``) describe. Money goes out as integer micro-cents with the
exact dollars beside it as a string (never a float); times as ISO 8601 in UTC.
"""

from datetime import UTC
from decimal import Decimal

from django.urls import reverse

from .. import approvals, callbacks, pricing
from ..models import TERMINAL, ApprovalRequest, ArchiveStatus, FileKind


def dollars(micro_cents):
    """``225000`` → ``"0.225"``: exact, at least two decimals, no sign of a float."""
    amount = Decimal(int(micro_cents)) / pricing.MICRO_CENTS_PER_DOLLAR
    whole, _, decimals = f"{amount:.6f}".rstrip("0").partition(".")
    return f"{whole}.{decimals.ljust(2, '0')}"


def money(micro_cents):
    return {"micro_cents": int(micro_cents), "dollars": dollars(micro_cents)}


def utc(moment):
    return moment.astimezone(UTC) if moment is not None else None


def budget(found):
    """A ``budgets.Budget`` as the API shows it: limit (with raises), spent, left, reset."""
    return {
        "kind": found.kind,
        "name": found.name,
        "limit": money(found.limit),
        "spent": money(found.spent),
        "left": money(found.remaining),
        "raised": money(found.raised),
        "period_start": utc(found.period_start),
        "resets_at": utc(found.resets_at),
        "resets_on": found.resets_at.date(),
    }


def approver_names(team):
    return [person.get_username() for person in approvals.approvers(team)]


class Approvers:
    """Who decides for each job's team, read once per team (a page of jobs names them once)."""

    def __init__(self):
        self._names = {}

    def of(self, job):
        if job.team_id not in self._names:
            self._names[job.team_id] = approver_names(job.team) if job.team_id else []
        return self._names[job.team_id]


def _approval(job, approvers):
    try:
        asked = job.approval
    except ApprovalRequest.DoesNotExist:
        return None
    return {
        "reason": asked.reason,
        "explanation": asked.explanation,
        "decision": asked.decision or "waiting",
        "approvers": approvers.of(job),
        "requested_at": utc(asked.requested_at),
        "expires_at": utc(asked.expires_at),
        "decided_at": utc(asked.decided_at),
        "note": asked.note,
    }


def _own_token(found, request):
    token = getattr(request, "api_token", None)
    return token is not None and found.api_token_id == token.pk


def _links(job, request):
    def url(name):
        return request.build_absolute_uri(reverse(name, args=[job.pk]))

    # The studio's own copies (they accept the same token): only those it keeps.
    kept = {f.kind for f in job.files.all()} if job.archive_status == ArchiveStatus.ARCHIVED else set()
    return {
        "self": url("api:job"),
        "page": url("jobs:detail"),
        "video": url("jobs:video") if FileKind.VIDEO in kept else None,
        "thumbnail": url("jobs:thumbnail") if kept & {FileKind.THUMBNAIL, FileKind.POSTER} else None,
        "poster": url("jobs:poster") if FileKind.POSTER in kept else None,
    }


def job(found, request, *, approvers=None, attempts=True):
    """``found`` as the API shows it. ``attempts=False`` leaves the callback's delivery
    attempts out (``None``), as the list does: they are read per job."""
    token = found.api_token
    return {
        "id": found.pk,
        "status": found.status,
        "status_label": found.get_status_display(),
        "finished": found.status in TERMINAL,
        "progress": found.progress,
        "model": found.model_slug,
        "prompt": found.prompt,
        "options": {
            "quality": found.quality,
            "duration": found.duration,
            "aspect_ratio": found.aspect_ratio,
            "seed": found.seed,
        },
        "project": found.project,
        "estimate": money(found.estimated_micro_cents),
        "charged": found.was_charged,
        "charge": money(found.billed_micro_cents),
        "refunded": money(found.refunded_micro_cents),
        "error": {"code": found.error_code, "message": found.error_message} if found.error_message else None,
        "sent_with": {"name": token.name, "prefix": token.prefix} if token is not None else None,
        **_times(found),
        "archive_status": found.archive_status or "none",
        "approval": _approval(found, approvers or Approvers()),
        "callback": _callback(found, request, attempts),
        "links": _links(found, request),
    }


def _times(found):
    names = ("created_at", "submitted_at", "started_at", "completed_at", "estimated_completion_at")
    return {name: utc(getattr(found, name)) for name in names}


def _callback(found, request, attempts):
    if not found.callback_url:
        return None
    return {
        # Its query string may hold the receiver's secret: whole only to the token's owner.
        "url": found.callback_url if _own_token(found, request) else callbacks.shown(found.callback_url),
        "attempts": callbacks.attempts_for(found) if attempts else None,
    }
