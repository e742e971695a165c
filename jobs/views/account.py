"""A person's own preferences (/account/), and what every page asks to tell them that one of
their videos ended (/jobs/finished/, see ``jobs.notify``)."""

from django import forms
from django.contrib import messages
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_http_methods

from .. import notify
from ..access import Viewer
from ..models import Profile


class PreferencesForm(forms.Form):
    mail_long_jobs = forms.BooleanField(
        label=f"Email me when a video that took longer than {notify.LONG_JOB.seconds // 60} minutes "
        "is ready or has failed",
        required=False,
    )


@require_http_methods(["GET", "POST"])
def account(request):
    profile = Viewer.for_request(request).profile
    if request.method == "POST":
        form = PreferencesForm(request.POST)
        if form.is_valid():
            _save(request.user, profile, form.cleaned_data)
            messages.success(request, "Your preferences are saved.")
            return redirect("jobs:account")
    else:
        form = PreferencesForm(initial={"mail_long_jobs": profile.mail_long_jobs if profile else False})
    context = {"form": form, "profile": profile, "long_minutes": notify.LONG_JOB.seconds // 60}
    return render(request, "jobs/account.html", context)


def _save(user, profile, data):
    if profile is None:
        # A person in no team has no profile yet: one in no team, with no budget, is the same.
        Profile.objects.get_or_create(user=user, defaults={"mail_long_jobs": data["mail_long_jobs"]})
        return
    Profile.objects.filter(pk=profile.pk).update(mail_long_jobs=data["mail_long_jobs"])


@require_GET
def finished(request):
    """The person's own jobs that ended since ``?since=`` (an ISO time this endpoint gave),
    and the time to ask from next. Without ``since``, only the time: a page's first question."""
    now = timezone.now()
    since = _moment(request.GET.get("since", ""))
    jobs = notify.ended_since(Viewer.for_request(request), since, now) if since else []
    response = JsonResponse({"serverTime": now.isoformat(), "jobs": [notify.as_json(job) for job in jobs]})
    response["Cache-Control"] = "private, no-store"
    return response


def _moment(raw):
    try:
        # A "+" of the offset that was not encoded arrives as a space.
        moment = parse_datetime(raw[:40].replace(" ", "+"))
    except ValueError:
        return None
    if moment is None or timezone.is_naive(moment):
        return None
    return moment
