"""The fairest floors a Django view of each shape can reach, for `make bench` only.

Served by `settings_floors`, never by the studio's own URLs:

- ``/bench/floor/read/<id>``: behind the same middleware and session as the studio's pages
  (so a signed-in user is read), load one job by primary key and answer a few fields as
  JSON. The status JSON and the job page are measured against it.
- ``/bench/floor/write/<id>``: anonymous, verify an HMAC-SHA256 of the body, update one
  row by primary key in a transaction. The webhook receiver is measured against it.
"""

import hashlib
import hmac

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import transaction
from django.http import HttpResponseForbidden, JsonResponse
from django.urls import include, path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from jobs.models import Job


def read_floor(request, job_id):
    job = Job.objects.only("pk", "status", "progress").get(pk=job_id)
    return JsonResponse({"id": job.pk, "status": job.status, "progress": job.progress})


@csrf_exempt
@login_not_required
@require_POST
def write_floor(request, job_id):
    expected = hmac.new(settings.PIXELBYTE_WEBHOOK_SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), request.headers.get("X-Signature", "").encode()):
        return HttpResponseForbidden()
    with transaction.atomic():
        Job.objects.filter(pk=job_id).update(updated_at=timezone.now())
    return JsonResponse({"ok": True})


urlpatterns = [
    path("bench/floor/read/<int:job_id>", read_floor),
    path("bench/floor/write/<int:job_id>", write_floor),
    path("", include("kling_studio.urls")),
]
