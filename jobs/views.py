from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import budgets, history, pricing, spend, webhooks
from .forms import HistoryFilterForm, JobForm, SpendFilterForm
from .models import Job, Status, Team, is_manager, project_labels, team_members
from .submission import CannotCancel, ForeignSubmissionKey, SubmissionPaused, cancel_job, submit_job


def _get_job_for_user(request, job_id):
    """The job if this user may see it; 404 otherwise."""
    return get_object_or_404(Job.objects.visible_by_id_to(request.user), pk=job_id)


def _render_form(request, form, status=200, refused_job=None, source_job=None):
    context = {
        "form": form,
        "catalog": pricing.catalog_for_browser(form.model),
        "budgets": [b.as_json() for b in budgets.budgets_for(request.user)],
        "warn_at_percent": budgets.WARN_AT_PERCENT,
        "project_labels": project_labels(request.user),
        "refused_job": refused_job,
        "source_job": source_job,
    }
    return render(request, "jobs/new.html", context, status=status)


def _source_job(request):
    """The job named by ``?from=<id>`` (Re-run, Vary seed), if the user may see it."""
    source = request.GET.get("from", "")
    if not (source.isascii() and source.isdigit() and len(source) < 19):
        return None
    return _get_job_for_user(request, int(source))


@require_http_methods(["GET", "POST"])
def new_job(request):
    if request.method == "GET":
        source = _source_job(request)
        form = JobForm.again(source, vary_seed=request.GET.get("vary") == "seed") if source else JobForm()
        return _render_form(request, form, source_job=source)
    form = JobForm(request.POST)
    if not form.is_valid():
        return _render_form(request, form, status=422)
    try:
        job = submit_job(
            user=request.user,
            model=form.model,
            params=form.params(),
            submission_key=form.cleaned_data["submission_key"],
            project=form.cleaned_data["project"],
        )
    except SubmissionPaused as exc:
        form.add_error(None, str(exc))
        return _render_form(request, form, status=429)
    except budgets.OverBudget as exc:
        form.add_error(None, str(exc))
        return _render_form(request, form, status=409)
    except ForeignSubmissionKey:
        raise Http404("No such form.") from None
    if job.status == Status.REFUSED:
        # Nothing was sent or charged: keep everything typed and say why.
        return _render_form(request, form.with_new_key(), refused_job=job)
    return redirect(job)


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
]


@require_GET
def job_list(request):
    filters = HistoryFilterForm(request.GET or None, members=team_members(request.user))
    jobs = filters.apply(Job.objects.visible_to(request.user)).select_related("owner").only(*LIST_FIELDS)
    page = history.page_of(
        jobs,
        after=history.Cursor.decode(request.GET.get("after")),
        before=history.Cursor.decode(request.GET.get("before")),
        size=_page_size(request),
    )
    context = {
        "filters": filters,
        "page": page,
        "newer_url": _page_url(request, "before", page.newer),
        "older_url": _page_url(request, "after", page.older),
        "has_any_job": bool(page.jobs) or Job.objects.visible_to(request.user).exists(),
        "show_owner": request.user.is_staff or is_manager(request.user),
    }
    return render(request, "jobs/list.html", context)


def _page_size(request):
    raw = request.GET.get("per_page", "")
    size = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 4 else history.PAGE_SIZE
    return min(max(size, 1), history.MAX_PAGE_SIZE)


def _page_url(request, direction, cursor):
    if cursor is None:
        return None
    query = request.GET.copy()
    query.pop("after", None)
    query.pop("before", None)
    query[direction] = cursor.encode()
    return "?" + query.urlencode()


@require_GET
def job_detail(request, job_id):
    job = _get_job_for_user(request, job_id)
    return render(request, "jobs/detail.html", {"job": job})


@require_POST
def job_cancel(request, job_id):
    job = _get_job_for_user(request, job_id)
    try:
        job = cancel_job(job)
    except CannotCancel as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request, f"Cancelled. PixelByte refunded {pricing.format_dollars(job.refunded_micro_cents)}."
        )
    return redirect(job)


@login_not_required
@require_GET
def health(request):
    """Liveness for a load balancer or monitor: the process answers. Touches no database."""
    response = HttpResponse("ok\n", content_type="text/plain; charset=utf-8")
    response["Cache-Control"] = "no-store"
    return response


# --- live status ------------------------------------------------------------------------

STATUS_FIELDS = (
    "pk",
    "status",
    "progress",
    "submitted_at",
    "created_at",
    "estimated_completion_at",
    "output_url",
    "poster_url",
    "error_code",
    "error_message",
    "api_cost_micro_cents",
    "estimated_micro_cents",
    "model_slug",
)
MAX_STATUS_IDS = 100


def status_payload(job, now, request):
    return {
        "id": job.pk,
        "status": job.status,
        "label": job.get_status_display(),
        "inFlight": job.in_flight,
        "progress": job.progress,
        "eta": job.estimated_completion_at.isoformat() if job.estimated_completion_at else None,
        "slow": job.is_slow(now),
        "stuck": job.is_stuck(now),
        "charged": job.was_charged,
        "charge": pricing.format_dollars(job.billed_micro_cents),
        "video": job.output_url or None,
        "poster": job.poster_url or None,
        "error": job.error_message or None,
        "errorCode": job.error_code or None,
        # The note under the status, rendered by the same template as the page.
        "note": render_to_string("jobs/_note_body.html", {"job": job, "request": request}).strip(),
    }


@require_GET
def job_statuses(request):
    """Live status of the signed-in user's jobs named in ``?ids=1,2,3``, in one query."""
    parts = request.GET.get("ids", "").split(",")[:MAX_STATUS_IDS]
    ids = [int(p) for p in parts if p.isascii() and p.isdigit() and len(p) <= 18]
    jobs = Job.objects.visible_by_id_to(request.user).filter(pk__in=ids).only(*STATUS_FIELDS)
    now = timezone.now()
    return JsonResponse(
        {"jobs": [status_payload(job, now, request) for job in jobs], "serverTime": now.isoformat()}
    )


@require_GET
def job_status(request, job_id):
    job = get_object_or_404(Job.objects.visible_by_id_to(request.user).only(*STATUS_FIELDS), pk=job_id)
    return JsonResponse(status_payload(job, timezone.now(), request))


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


def _spend_request(request):
    """(form, scope, period) for the dashboard and its CSV, from the query string."""
    teams = list(Team.objects.order_by("name")) if request.user.is_staff else []
    form = SpendFilterForm(request.GET or None, teams=teams)
    scope = spend.scope_for(request.user, form.value("team"))
    zone = timezone.get_current_timezone()
    period = spend.period_for(
        form.value("period") or "this_month",
        timezone.localdate(),
        zone,
        form.value("start"),
        form.value("end"),
    )
    return form, scope, period


@require_GET
def spend_dashboard(request):
    form, scope, period = _spend_request(request)
    result = spend.report(scope, period, request.user)
    context = {
        "form": form,
        "scope": scope,
        "report": result,
        "chart": spend.chart(result),
        "members": spend.member_rows(scope, result) if scope.is_team else [],
        "export_url": reverse("jobs:spend_export") + ("?" + request.GET.urlencode() if request.GET else ""),
        "warn_at_percent": budgets.WARN_AT_PERCENT,
    }
    return render(request, "jobs/spend.html", context)


@require_GET
def spend_export(request):
    _, scope, period = _spend_request(request)
    jobs = scope.jobs.in_period(period.start, period.end)
    response = StreamingHttpResponse(
        spend.csv_rows(jobs, period.zone), content_type="text/csv; charset=utf-8"
    )
    name = f"kling-studio-spend-{period.first_day:%Y%m%d}-{period.last_day:%Y%m%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
