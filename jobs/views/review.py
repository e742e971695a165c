"""Reviewing many videos: a person's star and rating of a job, and videos compared side by side."""

from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from .. import history, pricing
from ..access import Viewer
from ..models import ArchiveStatus

MIN_COMPARED, MAX_COMPARED = 2, 4


def _wants_json(request):
    """A ``fetch()`` from review.js asks for JSON; a plain form post gets a redirect."""
    return "application/json" in request.headers.get("Accept", "")


def _back(request, job):
    """Where a plain form post returns to: the page it came from (``next``), else the job."""
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=False):
        return redirect(target)
    return redirect(job)


def _mark_changes(data):
    """The star and rating a mark form asks for, as ``set_mark`` keywords; ValueError if
    it asks for nothing or for something else than "0"/"1" and a rating from 0 (none) to 5."""
    changes = {}
    if "starred" in data:
        if data["starred"] not in ("0", "1"):
            raise ValueError("Star with 1, unstar with 0.")
        changes["starred"] = data["starred"] == "1"
    if "rating" in data:
        if data["rating"] not in ("", "0", "1", "2", "3", "4", "5"):
            raise ValueError("A rating is a whole number from 1 to 5 (0 clears it).")
        changes["rating"] = int(data["rating"]) if data["rating"] not in ("", "0") else None
    if not changes:
        raise ValueError("Say whether to star the video or how to rate it.")
    return changes


@require_POST
def job_mark(request, job_id):
    """Star, unstar or rate a job the person may see (anyone who may see it marks it, for
    themselves): JSON with the redrawn marks for review.js, a redirect back for a plain post."""
    job = Viewer.for_request(request).job_or_404(job_id, fields=("pk", "status"))
    try:
        changes = _mark_changes(request.POST)
    except ValueError as exc:
        if _wants_json(request):
            return JsonResponse({"ok": False, "error": str(exc)}, status=422)
        messages.error(request, str(exc))
        return _back(request, job)
    mark = history.set_mark(request.user, job, **changes)
    if not _wants_json(request):
        return _back(request, job)
    context = {"job": job, "starred": mark.starred, "rating": mark.rating, "next": request.POST.get("next")}
    return JsonResponse(
        {
            "ok": True,
            "starred": mark.starred,
            "rating": mark.rating,
            "html": render_to_string("jobs/_marks.html", context, request=request).strip(),
        }
    )


# --- compare ------------------------------------------------------------------------------------


def _compared_ids(request):
    """The ids in ``?ids=1,2,3`` (or ``ids=1&ids=2`` from a plain form), in order, once each;
    None when one of them is not a number."""
    parts = [part.strip() for raw in request.GET.getlist("ids")[:10] for part in raw.split(",")[:10]]
    ids = []
    for part in [part for part in parts if part][:10]:  # more than four is refused anyway
        if not (part.isascii() and part.isdigit() and len(part) <= 18):
            return None
        if int(part) not in ids:
            ids.append(int(part))
    return ids


def _choice_label(job, name, value):
    model = job.catalog_model
    try:
        return model.input(name).choice(str(value)).label if model else str(value)
    except (KeyError, StopIteration):
        return str(value)


def _poster_url(job):
    if job.archive_status == ArchiveStatus.ARCHIVED:
        return reverse("jobs:thumbnail", args=[job.pk]) if (job.thumbnail_url or job.poster_url) else None
    return job.poster_url or job.thumbnail_url or None


def _facts(job):
    """What was asked for and what it cost, as (label, value) rows under the video."""
    model = job.catalog_model
    return [
        ("Quality", _choice_label(job, "quality", job.quality)),
        ("Duration", f"{job.duration} s"),
        ("Aspect ratio", job.aspect_ratio),
        ("Seed", "random" if job.seed is None else str(job.seed)),
        ("Model", model.name if model else job.model_slug),
        ("Price", pricing.format_dollars(job.billed_micro_cents) if job.was_charged else "Not charged"),
        ("Project", job.project or "—"),
    ]


def _columns(jobs):
    """One column per job: the job, its video and poster, and its facts, each marked when it
    differs from the others' (so a different seed or quality stands out)."""
    facts = [_facts(job) for job in jobs]
    differs = {label for label, _ in facts[0] if len({dict(rows)[label] for rows in facts}) > 1}
    return [
        {
            "job": job,
            "video": history.video_url(job),
            "poster": _poster_url(job),
            "facts": [(label, value, label in differs) for label, value in rows],
        }
        for job, rows in zip(jobs, facts, strict=True)
    ]


def _box(jobs):
    """The shape of the box every compared video plays in: the tallest of theirs."""
    shapes = {job.aspect_ratio for job in jobs}
    return "tall" if "9:16" in shapes else "square" if "1:1" in shapes else "wide"


@require_GET
def compare(request):
    """Two to four videos side by side, played in sync (static/js/review.js). Every id must
    be a job the person may see: one that is not makes the page a 404, as the job's would be."""
    ids = _compared_ids(request)
    if ids is None:
        raise Http404("No such job.")
    if not MIN_COMPARED <= len(ids) <= MAX_COMPARED:
        messages.info(request, "Choose two to four videos to compare: tick them in the history.")
        return redirect("jobs:list")
    viewer = Viewer.for_request(request)
    found = history.with_marks(viewer.jobs_by_id(ids), request.user).select_related("owner")
    by_id = {job.pk: job for job in found}
    if len(by_id) != len(ids):
        raise Http404("No such job.")
    jobs = [by_id[pk] for pk in ids]
    prompts = {job.prompt for job in jobs}
    context = {
        "columns": _columns(jobs),
        "same_prompt": prompts.pop() if len(prompts) == 1 else None,
        "box": _box(jobs),
        "show_owner": viewer.sees_owners,
    }
    return render(request, "jobs/compare.html", context)
