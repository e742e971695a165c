"""The audit trail: every action that changes money or access, written once.

``record`` is the only writer of ``AuditEntry``. Callers name the action, the person
acting (None for the studio's own worker), the request when there is one (for the
address), the team and person the change concerns (who may read it), and a sentence
saying what changed. Entries are never changed or deleted by the app.

The other functions turn one action into its entry (or, for a save that changed
several things, one entry per thing changed): the sentence says before → after in
dollars, ``detail`` keeps the same values in micro-cents. ``visible_to`` is who may
read which entries.

Whose an entry is (``team``): the team the change concerns; for a person, their team
after the change (before it, when they left one). A person moved from one team to
another gets one entry under the new team whose ``detail["before"]["team_id"]`` names
the old one, and ``visible_to`` lets the old team's managers read it too.
"""

import ipaddress

from django.db.models import Q

from . import pricing
from .accounts import client_ip
from .models import AuditAction, AuditEntry, Role, parse_thresholds

STUDIO = "the studio"


def _address(request):
    if request is None:
        return None
    raw = client_ip(request)
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        return None


def _name_of(actor):
    if actor is None:
        return STUDIO
    if hasattr(actor, "get_username"):
        return actor.get_username()
    return f"user #{actor}"


def record(action, summary, *, actor=None, request=None, team=None, subject=None, job=None, detail=None):
    """Write one entry; ``team``/``subject``/``job`` are objects or ids."""
    if actor is None and request is not None and request.user.is_authenticated:
        actor = request.user
    return AuditEntry.objects.create(
        action=action,
        summary=summary,
        actor_id=getattr(actor, "pk", actor),
        actor_name=_name_of(actor),
        address=_address(request),
        team_id=getattr(team, "pk", team),
        subject_id=getattr(subject, "pk", subject),
        job_id=getattr(job, "pk", job),
        detail=detail or {},
    )


def visible_to(viewer):
    """The entries ``viewer`` (a ``jobs.access.Viewer``) may read: staff every one; a manager
    their team's (a person moved out of it included) and their own; anyone else only those
    they made or that are about them."""
    entries = AuditEntry.objects.all()
    user = viewer.user
    if user.is_staff:
        return entries
    theirs = Q(actor_id=user.pk) | Q(subject_id=user.pk)
    if not viewer.is_manager:
        return entries.filter(theirs)
    team_id = viewer.profile.team_id
    moved_out = Q(action=AuditAction.TEAM_CHANGED, detail__before__team_id=team_id)
    return entries.filter(theirs | Q(team_id=team_id) | moved_out)


def dollars_or(micro_cents, none):
    return none if micro_cents is None else pricing.format_dollars(micro_cents)


def _yes_no(flag):
    return "yes" if flag else "no"


# --- teams ------------------------------------------------------------------------------


def _thresholds(text):
    try:
        found = parse_thresholds(text)
    except ValueError:
        return text
    return ", ".join(f"{n}%" for n in found) or "none"


def _chat(url):
    return "set" if url else "none"


def team_settings(team):
    """A team's money and access settings as an entry's detail keeps them (never the chat URL:
    it is a secret that lets anyone post to the channel)."""
    return {
        "name": team.name,
        "monthly_budget_micro_cents": team.monthly_budget_micro_cents,
        "approval_above_micro_cents": team.approval_above_micro_cents,
        "members_may_ask": team.members_may_ask,
        "alert_thresholds": team.alert_thresholds,
        "alert_on_projection": team.alert_on_projection,
        "chat_webhook": _chat(team.chat_webhook_url),
    }


def team_created(request, team):
    budget = dollars_or(team.monthly_budget_micro_cents, "no limit")
    return record(
        AuditAction.TEAM_CREATED,
        f"Created team {team.name} (monthly budget {budget}).",
        request=request,
        team=team,
        detail={"before": None, "after": team_settings(team)},
    )


def team_deleted(request, team, member_ids):
    """Call before the team is deleted (``member_ids``: its people, left without a team)."""
    return record(
        AuditAction.TEAM_DELETED,
        f"Deleted team {team.name}; {len(member_ids)} member(s) left without a team.",
        request=request,
        team=team,
        detail={"before": {**team_settings(team), "members": list(member_ids)}, "after": None},
    )


def team_changed(request, before, after):
    """One entry for each kind of setting that changed between two states of a team."""
    entries = []
    if before.monthly_budget_micro_cents != after.monthly_budget_micro_cents:
        old, new = before.monthly_budget_micro_cents, after.monthly_budget_micro_cents
        entries.append(
            record(
                AuditAction.BUDGET_CHANGED,
                f"Team {after.name}'s monthly budget: {dollars_or(old, 'no limit')} → {dollars_or(new, 'no limit')}.",
                request=request,
                team=after,
                detail={"before": old, "after": new},
            )
        )
    rule = _approval_rule_changes(before, after)
    if rule:
        entries.append(
            record(
                AuditAction.APPROVAL_RULE_CHANGED,
                f"Team {after.name}'s approval rule: " + "; ".join(rule[0]) + ".",
                request=request,
                team=after,
                detail={"before": rule[1], "after": rule[2]},
            )
        )
    alerts = _alert_changes(before, after)
    if alerts:
        entries.append(
            record(
                AuditAction.ALERTS_CHANGED,
                f"Team {after.name}'s alert settings: " + "; ".join(alerts[0]) + ".",
                request=request,
                team=after,
                detail={"before": alerts[1], "after": alerts[2]},
            )
        )
    return entries


def _approval_rule_changes(before, after):
    """(phrases, before, after) of the approval settings that changed, or None."""
    phrases, old, new = [], {}, {}
    if before.approval_above_micro_cents != after.approval_above_micro_cents:
        a, b = before.approval_above_micro_cents, after.approval_above_micro_cents
        phrases.append(f"approval needed above {dollars_or(a, 'never')} → {dollars_or(b, 'never')}")
        old["approval_above_micro_cents"], new["approval_above_micro_cents"] = a, b
    if before.members_may_ask != after.members_may_ask:
        phrases.append(
            f"members may ask when over budget {_yes_no(before.members_may_ask)} → {_yes_no(after.members_may_ask)}"
        )
        old["members_may_ask"], new["members_may_ask"] = before.members_may_ask, after.members_may_ask
    return (phrases, old, new) if phrases else None


def _alert_changes(before, after):
    """(phrases, before, after) of the alert settings that changed, or None. The chat URL is
    said to be set, changed or removed, never written down."""
    phrases, old, new = [], {}, {}
    if _thresholds(before.alert_thresholds) != _thresholds(after.alert_thresholds):
        a, b = _thresholds(before.alert_thresholds), _thresholds(after.alert_thresholds)
        phrases.append(f"thresholds {a} → {b}")
        old["alert_thresholds"], new["alert_thresholds"] = a, b
    if before.alert_on_projection != after.alert_on_projection:
        a, b = _yes_no(before.alert_on_projection), _yes_no(after.alert_on_projection)
        phrases.append(f"month-end projection warning {a} → {b}")
        old["alert_on_projection"], new["alert_on_projection"] = (
            before.alert_on_projection,
            after.alert_on_projection,
        )
    if before.chat_webhook_url != after.chat_webhook_url:
        verb = "removed" if not after.chat_webhook_url else "changed" if before.chat_webhook_url else "set"
        phrases.append(f"chat webhook {verb}")
        old["chat_webhook"], new["chat_webhook"] = _chat(before.chat_webhook_url), verb
    return (phrases, old, new) if phrases else None


# --- people ------------------------------------------------------------------------------

# A person with no profile: in no team, a member, no budget of their own.
NO_PROFILE = {"team_id": None, "team": None, "role": Role.MEMBER, "budget": None}


def person_state(profile):
    """What an entry compares of a person's profile (None: no profile)."""
    if profile is None:
        return dict(NO_PROFILE)
    return {
        "team_id": profile.team_id,
        "team": profile.team.name if profile.team_id else None,
        "role": profile.role,
        "budget": profile.monthly_budget_micro_cents,
    }


def person_changed(request, user, before, after):
    """One entry for each of a person's team, role and own budget that changed between two
    ``person_state``s."""
    team_id = after["team_id"] or before["team_id"]
    return [
        record(action, summary, request=request, team=team_id, subject=user, detail=detail)
        for action, summary, detail in _person_changes(user.get_username(), team_id, before, after)
    ]


def _person_changes(name, team_id, before, after):
    """(action, summary, detail) of each fact that changed."""
    if before["team_id"] != after["team_id"]:
        detail = {
            key: {"team_id": state["team_id"], "team": state["team"]} for key, state in _pair(before, after)
        }
        yield AuditAction.TEAM_CHANGED, _moved(name, before["team"], after["team"]), detail
    if before["role"] != after["role"]:
        where = f" in team {after['team'] or before['team']}" if team_id else ""
        old, new = Role(before["role"]).label.lower(), Role(after["role"]).label.lower()
        yield (
            AuditAction.ROLE_CHANGED,
            f"{name}'s role{where}: {old} → {new}.",
            _before_after(before, after, "role"),
        )
    if before["budget"] != after["budget"]:
        old, new = dollars_or(before["budget"], "no limit"), dollars_or(after["budget"], "no limit")
        summary = f"{name}'s own monthly budget: {old} → {new}."
        yield AuditAction.BUDGET_CHANGED, summary, _before_after(before, after, "budget")


def _pair(before, after):
    return (("before", before), ("after", after))


def _before_after(before, after, key):
    return {"before": before[key], "after": after[key]}


def _moved(name, old, new):
    if old is None:
        return f"{name} joined team {new}."
    if new is None:
        return f"{name} left team {old}."
    return f"{name} moved from team {old} to team {new}."


ACCESS_FLAGS = {"is_active": "may sign in", "is_staff": "staff", "is_superuser": "superuser"}


def access_flags(user):
    return {flag: getattr(user, flag) for flag in ACCESS_FLAGS}


def access_changed(request, user, before, team_id):
    """One entry if the account's sign-in, staff or superuser flag changed (``before``:
    ``access_flags`` of the stored account; None for a new one)."""
    after = access_flags(user)
    name = user.get_username()
    if before is None:
        granted = [ACCESS_FLAGS[flag] for flag, on in after.items() if on and flag != "is_active"]
        summary = f"Created the account {name}" + (f" ({', '.join(granted)})." if granted else ".")
    else:
        changed = [
            f"{label} {_yes_no(before[flag])} → {_yes_no(after[flag])}"
            for flag, label in ACCESS_FLAGS.items()
            if before[flag] != after[flag]
        ]
        if not changed:
            return None
        summary = f"{name}'s access: " + "; ".join(changed) + "."
    return record(
        AuditAction.ACCESS_CHANGED,
        summary,
        request=request,
        team=team_id,
        subject=user,
        detail={"before": before, "after": after},
    )


def account_deleted(request, user, team_id):
    return record(
        AuditAction.ACCESS_CHANGED,
        f"Deleted the account {user.get_username()}.",
        request=request,
        team=team_id,
        subject=user,
        detail={"before": access_flags(user), "after": None},
    )


# --- jobs --------------------------------------------------------------------------------


def _about_job(action, summary, request, job, detail):
    return record(
        action, summary, request=request, team=job.team_id, subject=job.owner_id, job=job, detail=detail
    )


def job_cancelled(request, job, billed_before):
    refund = pricing.format_dollars(job.refunded_micro_cents)
    return _about_job(
        AuditAction.CANCELLED,
        f"Cancelled video #{job.pk}; PixelByte refunded {refund} "
        f"(charge {pricing.format_dollars(billed_before)} → {pricing.format_dollars(job.billed_micro_cents)}).",
        request,
        job,
        {
            "before": billed_before,
            "after": job.billed_micro_cents,
            "refunded_micro_cents": job.refunded_micro_cents,
        },
    )


def files_deleted(request, job, files, size, failed):
    """``files``/``size``: what the studio kept before; ``failed``: how many the storage refused."""
    left = f" {failed} could not be removed from the storage." if failed else ""
    return _about_job(
        AuditAction.FILES_DELETED,
        f"Deleted the studio's copy of video #{job.pk}: {files} file(s), {size or 0:,} bytes.{left}",
        request,
        job,
        {"before": {"files": files, "bytes": size or 0}, "after": {"files": failed}},
    )


def job_adopted(request, job, remote_id):
    return _about_job(
        AuditAction.JOB_ADOPTED,
        f"Named PixelByte job {remote_id} as video #{job.pk} (outcome unknown): its charge of "
        f"{pricing.format_dollars(job.estimated_micro_cents)} stays counted; the worker reads its status.",
        request,
        job,
        {"before": {"remote_id": None}, "after": {"remote_id": remote_id}},
    )


def marked_not_sent(request, job, billed_before):
    return _about_job(
        AuditAction.MARKED_NOT_SENT,
        f"Marked video #{job.pk} as never sent: charge {pricing.format_dollars(billed_before)} → $0.00.",
        request,
        job,
        {"before": billed_before, "after": 0},
    )


def webhook_reapplied(request, delivery, job, billed_before, outcome):
    """``job``: the delivery's job as it is now; ``billed_before``: its charge before."""
    return _about_job(
        AuditAction.WEBHOOK_REAPPLIED,
        f"Re-applied webhook delivery {delivery.pk} to video #{job.pk}: {outcome}; status "
        f"{job.get_status_display().lower()}, charge {pricing.format_dollars(billed_before)} → "
        f"{pricing.format_dollars(job.billed_micro_cents)}.",
        request,
        job,
        {
            "before": billed_before,
            "after": job.billed_micro_cents,
            "delivery": delivery.pk,
            "outcome": str(outcome),
        },
    )
