from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header, urlencode
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST, require_safe

from .. import alerts, archive, budgets, callbacks, history, live, media, pricing, reconcile, spend, webhooks
from .. import audit as audit_trail  # not "audit": the views.audit submodule takes that name here
from ..access import Viewer
from ..approvals import form_rule
from ..bearer import token_or_session
from ..forms import HistoryFilterForm, JobForm, SpendFilterForm
from ..models import ArchiveStatus, FileKind, Status, TokenScope
from ..spend.report import storage_report
from ..stacks import TRAY_SESSION_KEY, in_tray, remember_in_tray, tray_of
from ..submission import CannotCancel, ForeignSubmissionKey, cancel_and_record, submit_form
from ..throttle import SubmissionPaused, pause_remaining
from ..watching import may_stop as may_stop_watching
from .approvals import raises_context
from .share import share_context


def whole_number(raw, max_digits=18):
    """The number ``raw`` spells in ASCII digits (at most ``max_digits``), else None."""
    if raw.isascii() and raw.isdigit() and len(raw) <= max_digits:
        return int(raw)
    return None


def _render_form(request, form, status=200, refused_job=None, source_job=None, paused=None, sent=()):
    """The prompt form with its tray. ``sent``: the jobs this post made (marked new in the
    tray); ``paused``: the ``SubmissionPaused`` that refused it (or the pause PixelByte asked
    for is read, after a post), shown with a retry button that waits it out."""
    viewer = Viewer.for_request(request)
    context = {
        "form": form,
        "catalog": pricing.catalog_for_browser(form.model),
        "budgets": [b.as_json() for b in budgets.budgets_of(request.user, viewer.profile)],
        "warn_at_percent": budgets.WARN_AT_PERCENT,
        "approval": form_rule(request.user, viewer.profile),
        "project_labels": viewer.project_labels(),
        "refused_job": refused_job,
        "source_job": source_job,
        "tray": tray_of(request.session, viewer),
        "sent_ids": [job.pk for job in sent],
        "gone_out": [job for job in sent if job.status not in (Status.AWAITING, Status.REFUSED)],
        "awaiting": [job for job in sent if job.status == Status.AWAITING],
    }
    context["wait"] = _wait(paused, pause_remaining() if request.method == "POST" else 0)
    return render(request, "jobs/new.html", context, status=status)


def _wait(paused, busy):
    """What the form says about waiting (or None): the ``SubmissionPaused`` that refused a post,
    or ``busy``, the seconds left of the pause PixelByte asked for."""
    if paused is not None and not busy:
        # Not PixelByte's pause but the studio's breaker: its own words, and the wait.
        return {"seconds": paused.seconds, "text": str(paused)}
    if paused is not None or busy:
        seconds = paused.seconds if paused is not None else busy
        text = f"PixelByte is busy: try again in {seconds} s. Nothing was sent, so nothing was charged."
        return {"seconds": seconds, "text": text}
    return None


def _answer_in_place(request, form, status=200, refused_job=None, paused=None, made=None):
    """The answer to a post tray.js makes (``X-Requested-With: fetch``): only what a post
    changes on the form page (its messages, key and field errors; the tray's news and the
    videos it made; the budgets), drawn by the page's partials (``jobs/_form_answer.html``).

    ``made`` (a ``submission.Made``) is what the post made. The budgets come from the check
    that recorded the jobs, plus what they now count; nothing is read again unless the post
    was refused by a budget or repeated an earlier one. PixelByte's pause is read only when
    something was not sent."""
    jobs = made.jobs if made is not None else []
    if made is not None and made.recorded:
        shown = made.budgets
    elif made is not None or status == 409:  # a repeated post, or a refusal by a budget
        shown = budgets.budgets_of(request.user, Viewer.for_request(request).profile)
    else:
        shown = None
    unsent = made is None or any(job.status == Status.REFUSED for job in jobs)
    context = {
        "form": form,
        "refused_job": refused_job,
        "wait": _wait(paused, pause_remaining() if unsent else 0),
        "tray": in_tray(jobs),
        "tray_ids": request.session.get(TRAY_SESSION_KEY, []),
        "sent_ids": [job.pk for job in jobs],
        "gone_out": [job for job in jobs if job.status not in (Status.AWAITING, Status.REFUSED)],
        "awaiting": [job for job in jobs if job.status == Status.AWAITING],
        "budgets": None if shown is None else [budget.as_json() for budget in shown],
    }
    return render(request, "jobs/_form_answer.html", context, status=status)


def _source_job(request):
    """The job named by ``?from=<id>`` (Re-run, Vary seed), if the user may see it."""
    source = whole_number(request.GET.get("from", ""))
    if source is None:
        return None
    return Viewer.for_request(request).job_or_404(source)


# What a link to the form may fill in (``/?prompt=…&quality=pro``): shown, never sent by itself.
PREFILLED = ("prompt", "quality", "duration", "aspect_ratio", "count", "seed", "project")


def _blank_form(request):
    """The form to fill: again from a job (``?from=``), from a link's values (the prompt
    library's "Use"), or empty."""
    source = _source_job(request)
    if source:
        form = JobForm.again(source, vary_seed=request.GET.get("vary") == "seed")
    else:
        form = JobForm(initial={name: request.GET[name] for name in PREFILLED if name in request.GET})
    return _render_form(request, form, source_job=source)


@require_http_methods(["GET", "POST"])
def new_job(request):
    """The prompt form. A post makes its videos (``count`` of them, as one stack) and answers
    the form again, everything typed kept under a fresh key, with the videos in its tray; a
    post made by the page's script is answered with only what changed (``_answer_in_place``)."""
    if request.method == "GET":
        return _blank_form(request)
    in_place = request.headers.get("X-Requested-With") == "fetch"
    answer = _answer_in_place if in_place else _render_form
    form = JobForm(request.POST)
    if not form.is_valid():
        return answer(request, form, status=422)
    try:
        made = submit_form(
            user=request.user,
            model=form.model,
            params=form.params(),
            count=form.cleaned_data["count"],
            submission_key=form.cleaned_data["submission_key"],
            project=form.cleaned_data["project"],
            request=request,
        )
    except SubmissionPaused as exc:
        return answer(request, form, status=429, paused=exc)
    except budgets.OverBudget as exc:
        form.add_error(None, str(exc))
        return answer(request, form, status=409)
    except ForeignSubmissionKey:
        raise Http404("No such form.") from None
    jobs = made.jobs
    remember_in_tray(request.session, jobs)
    refused = [job for job in jobs if job.status == Status.REFUSED]
    # Nothing was sent or charged: keep everything typed and say why.
    refused_job = refused[0] if len(refused) == len(jobs) else None
    if in_place:
        return _answer_in_place(request, form.with_new_key(), refused_job=refused_job, made=made)
    return _render_form(request, form.with_new_key(), refused_job=refused_job, sent=jobs)


LIST_FIELDS = [
    "pk",
    "owner__username",
    "project",
    "prompt",
    "quality",
    "duration",
    "aspect_ratio",
    "seed",
    "status",
    "progress",
    "created_at",
    "submitted_at",
    "estimated_completion_at",
    "thumbnail_url",
    "poster_url",
    "output_url",
    "api_cost_micro_cents",
    "estimated_micro_cents",
    "model_slug",
    "archive_status",
    "api_token__name",  # "sent through the API with <token>"
    "stack_key",  # made together from one post: shown as one row that opens
    "watch_stopped_at",  # a stuck job its people stopped watching says so
]


@require_GET
def job_list(request):
    viewer = Viewer.for_request(request)
    layout = history.chosen_layout(request.GET.get("view"), viewer.profile, request.session)
    filters, matching = _history(request, viewer)
    order = filters.order
    folded = order.folds_stacks and not filters.value("stack")
    rows = history.one_per_stack(matching) if folded else matching
    rows = history.with_marks(rows, request.user, team_stars=viewer.sees_owners)
    # Everything this person may see is counted by the rollup, not by reading every job.
    everything = None if filters.active or filters.value("stack") else viewer.job_count()
    rows = history.with_total(history.sorted_for(rows, order, request.user), matching, everything)
    page = history.page_of(
        rows.select_related("owner", "api_token").only(*LIST_FIELDS),
        after=order.cursor.decode(request.GET.get("after")),
        before=order.cursor.decode(request.GET.get("before")),
        size=_page_size(request),
        order=order,
    )
    members = history.with_marks(matching, request.user, team_stars=viewer.sees_owners)
    members = members.select_related("owner", "api_token").only(*LIST_FIELDS) if folded else None
    history.attach_members(page.jobs, members)
    context = {
        "filters": filters,
        "page": page,
        "order": order,
        "layout": layout,
        "total": history.total(page, matching, paged="after" in request.GET or "before" in request.GET),
        "count_cap": history.COUNT_CAP if everything is None else None,  # None: counted exactly
        "page_size": _page_size(request),
        "page_sizes": history.PAGE_SIZES,
        "newer_url": _page_url(request, "before", page.newer),
        "older_url": _page_url(request, "after", page.older),
        "layout_urls": {name: _page_url(request, "view", name) for name in history.LAYOUTS},
        "has_any_job": bool(page.jobs) or viewer.jobs().exists(),
        "show_owner": viewer.sees_owners,
        "team_stars": viewer.sees_owners,
    }
    return render(request, "jobs/list.html", context)


def _history(request, viewer):
    """(the history's filter form, the viewer's jobs it lets through): the list and its zip."""
    filters = HistoryFilterForm(
        request.GET or None, members=viewer.members(), user=request.user, team_stars=viewer.sees_owners
    )
    return filters, filters.apply(viewer.jobs())


def _page_size(request):
    size = whole_number(request.GET.get("per_page", ""), max_digits=3)
    return min(max(history.PAGE_SIZE if size is None else size, 1), history.MAX_PAGE_SIZE)


def _page_url(request, name, value):
    """This page's address with ``name`` set to ``value`` (a cursor or a word), and without
    the other cursor; None for no value."""
    if value is None:
        return None
    query = request.GET.copy()
    query.pop("after", None)
    query.pop("before", None)
    query[name] = value if isinstance(value, str) else value.encode()
    return "?" + query.urlencode()


@require_GET
def job_detail(request, job_id):
    viewer = Viewer.for_request(request)
    job = viewer.job_or_404(job_id)
    newer_id, older_id = _neighbours(viewer, job)
    context = {
        "job": job,
        "may_delete_files": viewer.may_delete_files(job),
        "may_stop_watching": may_stop_watching(viewer, job),
        "kept_bytes": job.kept_bytes(),
        "api": callbacks.card(job),  # the token that sent it and its callback (None from the form)
        "newer_id": newer_id,
        "older_id": older_id,
        "mark": history.mark_of(request.user, job),  # the viewer's own star and rating
        **share_context(request, viewer, job),
    }
    return render(request, "jobs/detail.html", context)


def _neighbours(viewer, job):
    """The ids of the viewer's jobs just newer and just older than ``job`` (or None), in
    the history's order: two one-row reads of the index the history pages with."""
    here = history.Cursor.of(job)
    ids = viewer.jobs().values_list("pk", flat=True)
    newer = ids.filter(history.newer_than(here)).order_by("created_at", "pk").first()
    older = ids.filter(history.older_than(here)).order_by("-created_at", "-pk").first()
    return newer, older


@require_POST
def job_cancel(request, job_id):
    viewer = Viewer.for_request(request)
    job = viewer.job_or_404(job_id)
    if not viewer.may_cancel(job):
        raise Http404("No such job.")
    if job.status == Status.CANCELLED:
        return redirect(job)  # a second click: the page already says it was cancelled
    try:
        cancel_and_record(job, request)
    except CannotCancel as exc:
        messages.error(request, _sentence(str(exc)))
    # Cancelled: the job's note says so, with the refund (a message too would say it twice).
    return redirect(job)


def _sentence(text):
    """``text`` ending with a full stop, as every message the studio shows does."""
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


@require_GET
def job_cancel_confirm(request, job_id):
    """Cancel's confirmation as a page, for browsers without JavaScript (with it, the job
    page opens the same step in place). It posts to ``job_cancel``."""
    viewer = Viewer.for_request(request)
    job = viewer.job_or_404(job_id)
    if not viewer.may_cancel(job):
        raise Http404("No such job.")
    if job.status != Status.PENDING or not job.remote_id:
        messages.info(request, "Only a video still waiting in the queue can be cancelled.")
        return redirect(job)
    return render(request, "jobs/confirm_cancel.html", {"job": job})


@login_not_required
@require_GET
def health(request):
    """Liveness for a load balancer or monitor: the process answers. Touches no database."""
    response = HttpResponse("ok\n", content_type="text/plain; charset=utf-8")
    response["Cache-Control"] = "no-store"
    return response


# --- live status ------------------------------------------------------------------------

# Everything the live parts draw (jobs.live): a field left out here would cost a query per job.
STATUS_FIELDS = (
    "pk",
    "status",
    "team",  # a job awaiting approval names its team's managers
    "aspect_ratio",
    "progress",
    "created_at",
    "submitted_at",
    "started_at",
    "completed_at",
    "estimated_completion_at",
    "output_url",
    "thumbnail_url",
    "poster_url",
    "error_code",
    "error_message",
    "api_cost_micro_cents",
    "estimated_micro_cents",
    "refunded_micro_cents",
    "model_slug",
    "archive_status",
    "archive_lost_at",
    "files_deleted_at",
    "files_deleted_by__username",
    "watch_stopped_at",  # a stuck job nobody watches any more says so in its note
)
MAX_STATUS_IDS = 100


def _for_status(jobs):
    """``jobs`` with every column the live parts draw, the deleter's name joined in."""
    return jobs.select_related("files_deleted_by").only(*STATUS_FIELDS)


def status_payload(job, now, request):
    # Only the parts the asking page shows, and the note, which the JSON has always carried.
    html = live.fragments(job, request, {*live.requested(request.GET.get("parts", "")), "note"})
    return {
        "id": job.pk,
        "status": job.status,
        "label": job.get_status_display(),
        # Whether the page should keep asking (a job waiting for approval may move on).
        "inFlight": job.may_still_change,
        "progress": job.progress,
        "eta": job.estimated_completion_at.isoformat() if job.estimated_completion_at else None,
        "slow": job.is_slow(now),
        "stuck": job.is_stuck(now),
        "charged": job.was_charged,
        "charge": pricing.format_dollars(job.billed_micro_cents),
        "video": _studio_or_cdn(job, "jobs:video", job.output_url),
        "poster": _studio_or_cdn(job, "jobs:poster", job.poster_url),
        "error": job.error_message or None,
        "errorCode": job.error_code or None,
        "note": html["note"],
        # Each live part as the page's own partial draws it; the browser swaps them in.
        "html": html,
    }


def _studio_or_cdn(job, view, cdn_url):
    """The studio's own URL once it keeps the file, else PixelByte's link (or None)."""
    if not cdn_url:
        return None
    return reverse(view, args=[job.pk]) if job.archive_status == ArchiveStatus.ARCHIVED else cdn_url


@require_GET
def job_statuses(request):
    """Live status of the signed-in user's jobs named in ``?ids=1,2,3``, in one query."""
    parts = request.GET.get("ids", "").split(",")[:MAX_STATUS_IDS]
    ids = [number for number in map(whole_number, parts) if number is not None]
    jobs = _for_status(Viewer.for_request(request).jobs_by_id(ids))
    now = timezone.now()
    return JsonResponse(
        {"jobs": [status_payload(job, now, request) for job in jobs], "serverTime": now.isoformat()}
    )


@require_GET
def job_status(request, job_id):
    job = get_object_or_404(_for_status(Viewer.for_request(request).jobs_by_id([job_id])))
    return JsonResponse(status_payload(job, timezone.now(), request))


# --- what the studio keeps ---------------------------------------------------------------


def _kept(request, job_id, *kinds):
    """The first of ``kinds`` kept for the job, if this person may see it; 404 otherwise."""
    stored = media.find(Viewer.for_request(request).jobs_by_id([job_id]), kinds)
    if stored is None:
        raise Http404("No such file.")
    return stored


@token_or_session(TokenScope.READ)
@require_safe
def job_video(request, job_id):
    return media.serve(request, _kept(request, job_id, FileKind.VIDEO))


@token_or_session(TokenScope.READ)
@require_safe
def job_thumbnail(request, job_id):
    """The history's picture: the thumbnail, else the poster."""
    stored = _kept(request, job_id, FileKind.THUMBNAIL, FileKind.POSTER)
    return media.serve(request, stored, cache=media.PICTURE_CACHE)


@token_or_session(TokenScope.READ)
@require_safe
def job_poster(request, job_id):
    return media.serve(request, _kept(request, job_id, FileKind.POSTER), cache=media.PICTURE_CACHE)


@token_or_session(TokenScope.READ)
@require_safe
def job_sidecar(request, job_id):
    return media.serve(request, _kept(request, job_id, FileKind.SIDECAR))


@token_or_session(TokenScope.READ)
@require_safe
def job_download(request, job_id):
    stored = _kept(request, job_id, FileKind.VIDEO)
    name = media.file_name(stored.job, stored, timezone.get_current_timezone())
    return media.serve(request, stored, filename=name)


@token_or_session(TokenScope.READ)
@require_GET
def export_zip(request):
    """The kept videos and sidecars of the history's jobs, its filters applied, as one zip."""
    _, jobs = _history(request, Viewer.for_request(request))
    # Taken now: the viewer's zone is active only until the view returns, before the zip is sent.
    zone = timezone.get_current_timezone()
    response = StreamingHttpResponse(
        media.zip_chunks(media.files_to_zip(jobs), zone), content_type="application/zip"
    )
    name = f"kling-studio-videos-{timezone.localdate():%Y-%m-%d}.zip"
    response["Content-Disposition"] = content_disposition_header(True, name)
    response["Cache-Control"] = "private, no-store"
    return response


@require_http_methods(["GET", "POST"])
def job_delete_files(request, job_id):
    """A confirmation page (GET, for browsers without JavaScript), then the deletion (POST)."""
    viewer = Viewer.for_request(request)
    job = viewer.job_or_404(job_id)
    if not viewer.may_delete_files(job):
        raise Http404("No such job.")
    if job.archive_status != ArchiveStatus.ARCHIVED:
        messages.info(request, "The studio keeps no files of this video.")
        return redirect(job)
    if request.method == "GET":
        files = job.files.order_by("kind")
        return render(request, "jobs/confirm_delete_files.html", {"job": job, "files": files})
    sizes = list(job.files.values_list("size", flat=True))  # what is about to go, for the audit trail
    try:
        failed = archive.delete_files(job, request.user)
    except archive.NothingToDelete:
        messages.info(request, "The studio keeps no files of this video.")
        return redirect(job)
    audit_trail.files_deleted(request, job, len(sizes), sum(sizes), len(failed))
    if failed:
        messages.error(
            request, f"{len(failed)} file(s) could not be removed from the storage; the log names them."
        )
    else:
        messages.success(request, "The files were deleted. The job, its charge and its record stay.")
    return redirect(job)


# --- webhooks --------------------------------------------------------------------------


@csrf_exempt
@login_not_required
@require_POST
def pixelbyte_webhook(request, token):
    """PixelByte's callback: verified before anything is parsed (see jobs.webhooks)."""
    # Read one byte past the limit, never more: a bigger body is refused unread.
    body = request.read(webhooks.MAX_BODY + 1)
    receipt = webhooks.receive(
        token=token, headers=request.headers, body=body, source_ip=request.META.get("REMOTE_ADDR")
    )
    return JsonResponse(
        {"ok": receipt.http_status < 300, "result": receipt.message}, status=receipt.http_status
    )


# --- spend --------------------------------------------------------------------------------


def _spend_request(request, remember=False):
    """(form, scope, period, the choice shown, the person's default choice) for the dashboard
    and its CSV, the choices as query parameters. What the query string says, else (with
    ``remember``, on the dashboard) what the session remembers; the defaults fill the rest:
    this month, and for staff their own team if they manage one, else every team."""
    viewer = Viewer.for_request(request)
    teams = viewer.spend_teams()
    default = {"period": "this_month"}
    if teams:
        default["team"] = str(viewer.profile.team_id) if viewer.is_manager else SpendFilterForm.EVERY_TEAM
    asked = {name: request.GET[name] for name in SpendFilterForm.FIELDS if request.GET.get(name)}
    given = asked
    if remember and not asked:
        given = request.session.get(SpendFilterForm.SESSION_KEY) or {}
    form = SpendFilterForm({**default, **given}, teams=teams)
    valid = form.is_valid()
    if remember and not valid:
        request.session.pop(SpendFilterForm.SESSION_KEY, None)  # a bad link, or a team since deleted
    elif remember and asked and request.session.get(SpendFilterForm.SESSION_KEY) != form.choice():
        request.session[SpendFilterForm.SESSION_KEY] = form.choice()
    shown = form if valid else SpendFilterForm(default, teams=teams)
    shown.is_valid()  # the defaults always are
    values = shown.cleaned_data
    team = values.get("team")
    scope = viewer.spend_scope(None if team == SpendFilterForm.EVERY_TEAM else team)
    period = spend.period_for(
        values["period"] or "this_month",
        timezone.localdate(),
        timezone.get_current_timezone(),
        values["start"],
        values["end"],
    )
    return form, scope, period, shown.choice(), default


@require_GET
def spend_dashboard(request):
    if "reset" in request.GET:
        request.session.pop(SpendFilterForm.SESSION_KEY, None)
        return redirect("jobs:spend")
    viewer = Viewer.for_request(request)
    form, scope, period, choice, default = _spend_request(request, remember=True)
    held = spend.scope_budgets(request.user, scope)
    result = spend.report(scope, period, held=held)
    page = spend.page
    members = page.with_shares(spend.member_rows(scope, result), result.total)
    raising = raises_context(request, viewer, scope)
    context = {
        "form": form,
        "scope": scope,
        "report": result,
        "money": page.figures(result),
        "charts": spend.charts(result, page.in_cents),
        "days": page.days(result),
        "members": members,
        "member_budgets": any(row["budget"] is not None for row in members),
        "breakdowns": page.breakdowns(result),
        "budget_cards": page.budget_cards(held, budgets.WARN_AT_PERCENT),
        # Another choice than the person's default: the page offers a way back to it.
        "reset_to": None if choice == default else form.describe(default),
        "storage": storage_report(scope),
        "export_url": reverse("jobs:spend_export") + "?" + urlencode(choice),
        "warn_at_percent": budgets.WARN_AT_PERCENT,
        **raising,
        **page.partials(
            alerts.sent_for(viewer, scope), raising["raises"], reconcile.spend_notes(viewer, period)
        ),
    }
    return render(request, "jobs/spend.html", context)


@require_GET
def spend_export(request):
    _, scope, period, *_ = _spend_request(request)
    jobs = scope.jobs.in_period(period.start, period.end)
    response = StreamingHttpResponse(
        spend.csv_rows(jobs, period.zone), content_type="text/csv; charset=utf-8"
    )
    name = f"kling-studio-spend-{period.first_day:%Y%m%d}-{period.last_day:%Y%m%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
