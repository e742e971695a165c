from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from . import pricing
from .forms import JobForm
from .models import Job, Status
from .submission import ForeignSubmissionKey, SubmissionPaused, submit_job


def _get_job_for_user(request, job_id):
    """The job if this user may see it; 404 otherwise."""
    return get_object_or_404(Job.objects.visible_to(request.user), pk=job_id)


def _render_form(request, form, status=200, refused_job=None):
    context = {
        "form": form,
        "catalog": pricing.catalog_for_browser(form.model),
        "refused_job": refused_job,
    }
    return render(request, "jobs/new.html", context, status=status)


@require_http_methods(["GET", "POST"])
def new_job(request):
    if request.method == "GET":
        return _render_form(request, JobForm())
    form = JobForm(request.POST)
    if not form.is_valid():
        return _render_form(request, form, status=422)
    try:
        job = submit_job(
            user=request.user,
            model=form.model,
            params=form.params(),
            submission_key=form.cleaned_data["submission_key"],
        )
    except SubmissionPaused as exc:
        form.add_error(None, str(exc))
        return _render_form(request, form, status=429)
    except ForeignSubmissionKey:
        raise Http404("No such form.") from None
    if job.status == Status.REFUSED:
        # Nothing was sent or charged: keep everything typed and say why.
        return _render_form(request, form.with_new_key(), refused_job=job)
    return redirect(job)


@require_GET
def job_list(request):
    jobs = Job.objects.visible_to(request.user)[:50]
    return render(
        request,
        "jobs/list.html",
        {"jobs": jobs, "total_spend": Job.objects.visible_to(request.user).spend()},
    )


@require_GET
def job_detail(request, job_id):
    job = _get_job_for_user(request, job_id)
    return render(request, "jobs/detail.html", {"job": job})
