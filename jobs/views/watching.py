"""Stop watching a stuck job (its note offers it): one POST, then back to the job page."""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from .. import watching
from ..access import Viewer


@require_POST
def stop_watching(request, job_id):
    viewer = Viewer.for_request(request)
    job = viewer.job_or_404(job_id)
    if not watching.may_stop(viewer, job):
        raise Http404("No such job.")
    try:
        watching.stop_watching(job, request.user, request=request)
    except watching.CannotStop as exc:
        messages.info(request, str(exc))
    # Done: the job's note says so (a message too would say it twice).
    return redirect(job)
