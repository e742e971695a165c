"""Share links (see ``jobs.share``): made and revoked from a job's page, watched at /s/<token>/.

The job page shows ``templates/jobs/_share.html`` with ``share_context``; /jobs/<id>/share/ is
the same panel on a page of its own (for a form with errors, and browsers without
JavaScript). Only those who look after the job may see either; anyone else gets 404.

The visitor's side (``shared_page``, ``shared_video``, ``shared_poster``) needs no sign-in: the
token is the key. A token of the wrong shape is answered 404 before the database is asked; a
link that expired, was revoked, or whose video the studio no longer keeps is 404 at once.
"""

from datetime import timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_safe

from .. import media, outbox, share
from ..access import Viewer
from ..models import ArchivedFile, FileKind

LIFETIME_CHOICES = [
    ("day", "A day"),
    ("week", "A week"),
    ("month", "A month"),
    ("date", "Until a date"),
]
# Where a form on the job page goes back to; anything else goes back to the share page.
FROM_JOB_PAGE = "job"


class ShareForm(forms.Form):
    expires = forms.ChoiceField(
        label="Link works for",
        choices=LIFETIME_CHOICES,
        initial=share.DEFAULT_LIFETIME,
        widget=forms.RadioSelect,
        error_messages={
            "required": "Choose how long the link works.",
            "invalid_choice": "Choose how long the link works.",
        },
    )
    expires_on = forms.DateField(
        label="Last day",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "Write the date as YYYY-MM-DD."},
    )
    show_prompt = forms.BooleanField(label="Show the prompt under the video", required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, prefix="share", **kwargs)

    def clean(self):
        data = super().clean()
        if data.get("expires") != "date" or "expires_on" in self.errors:
            return data
        day, today = data.get("expires_on"), timezone.localdate()
        if day is None:
            self.add_error("expires_on", "Choose the last day the link works.")
        elif day < today:
            self.add_error("expires_on", "Choose today or a later day.")
        elif day > today + timedelta(days=share.MAX_DAYS):
            self.add_error("expires_on", "Choose a day within a year.")
        return data

    def expires_at(self):
        return share.expiry(self.cleaned_data["expires"], self.cleaned_data.get("expires_on"))


def share_context(request, viewer, job, form=None):
    """The context of ``jobs/_share.html`` for ``job``: ``{"share": None}`` for someone who
    may not share it (the partial then shows nothing). One query for the job's links."""
    if not share.may_share(viewer, job):
        return {"share": None}
    now = timezone.now()
    links = job.share_links.select_related("created_by", "revoked_by")[: share.SHOWN]
    rows = [
        {
            "link": link,
            "url": share.address(link),
            "live": link.is_live(now),
            "expired": link.revoked_at is None and link.expires_at <= now,
        }
        for link in links
    ]
    rows.sort(key=lambda row: not row["live"])  # working links first, each group newest first
    return {
        "share": {
            "job": job,
            "form": form or ShareForm(),
            "why_not": share.why_not(job),
            "rows": rows,
            "from_job_page": request.resolver_match.url_name == "detail" if request.resolver_match else False,
        }
    }


def _job_to_share(request, job_id):
    viewer = Viewer.for_request(request)
    job = viewer.job_or_404(job_id)
    if not share.may_share(viewer, job):
        raise Http404("No such job.")
    return viewer, job


def _back(request, job):
    if request.POST.get("from") == FROM_JOB_PAGE:
        return redirect(job.get_absolute_url() + "#share")
    return redirect(reverse("jobs:share", args=[job.pk]) + "#share")


def _render_panel(request, viewer, job, form=None, status=200):
    context = share_context(request, viewer, job, form)
    return render(request, "share/manage.html", {"job": job, **context}, status=status)


@require_http_methods(["GET", "POST"])
def share_job(request, job_id):
    """The job's links and the form for a new one (GET); a POST makes one."""
    viewer, job = _job_to_share(request, job_id)
    if request.method == "GET":
        return _render_panel(request, viewer, job)
    form = ShareForm(request.POST)
    reason = share.why_not(job)
    if reason:
        form.add_error(None, reason)
    if not form.is_valid():
        return _render_panel(request, viewer, job, form, status=422)
    share.create(
        job,
        by=request.user,
        expires_at=form.expires_at(),
        show_prompt=form.cleaned_data["show_prompt"],
        request=request,
    )
    messages.success(request, "Share link made: copy it below and send it to whoever should watch the video.")
    return _back(request, job)


@require_http_methods(["GET", "POST"])
def share_revoke(request, job_id, link_id):
    """A confirmation page (GET, for browsers without JavaScript), then the revocation (POST):
    the link stops working with this request."""
    _, job = _job_to_share(request, job_id)
    link = get_object_or_404(job.share_links.select_related("job"), pk=link_id)
    if link.revoked_at is not None:
        messages.info(request, "That link was already revoked.")
        return _back(request, job)
    if request.method == "GET":
        return render(request, "share/confirm_revoke.html", {"job": job, "link": link})
    if share.revoke(link, by=request.user, request=request):
        messages.success(request, "Link revoked: it no longer works for anyone.")
    else:
        messages.info(request, "That link was already revoked.")
    return _back(request, job)


# --- the visitor's side ------------------------------------------------------------------------


def _missing(request):
    response = render(request, "share/missing.html", status=404)
    add_never_cache_headers(response)
    return response


@login_not_required
@require_safe
def shared_page(request, token):
    """The shared video on a page of its own; each load (not each range of the video) is a view."""
    link = share.live(token)
    if link is None:
        return _missing(request)
    if request.method == "GET":
        share.count_view(link)
    video = reverse("jobs:shared_video", args=[link.token])
    poster = reverse("jobs:shared_poster", args=[link.token]) if _has_picture(link.job) else ""
    context = {
        "job": link.job,
        "link": link,
        "video_url": video,
        "poster_url": poster,
        # Open Graph wants absolute addresses: a chat app's preview fetches them itself.
        "page_url": share.address(link),
        "absolute_video_url": outbox.studio_link(video),
        "absolute_poster_url": outbox.studio_link(poster) if poster else "",
    }
    response = render(request, "share/page.html", context)
    # Revoking must work at once: no cache keeps the page, and search engines leave it alone.
    add_never_cache_headers(response)
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _has_picture(job):
    return ArchivedFile.objects.filter(job=job, kind__in=(FileKind.POSTER, FileKind.THUMBNAIL)).exists()


def _shared(request, token, *kinds):
    """The first of ``kinds`` kept for the job a working ``token`` shows, served (one query
    to find it); the missing page otherwise. Revalidated on every request (a cheap 304), so
    a revoked link stops the video and its picture at once too."""
    jobs = share.shared_jobs(token)
    stored = media.find(jobs, kinds) if jobs is not None else None
    if stored is None:
        return _missing(request)
    return media.serve(request, stored)


@login_not_required
@require_safe
def shared_video(request, token):
    return _shared(request, token, FileKind.VIDEO)


@login_not_required
@require_safe
def shared_poster(request, token):
    """The poster, else the thumbnail: the page's still and its preview image elsewhere."""
    return _shared(request, token, FileKind.POSTER, FileKind.THUMBNAIL)
