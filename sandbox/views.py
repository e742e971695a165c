"""The sandbox's HTTP face: PixelByte's paths, envelopes and error bodies.

Only on while the studio has no real API key, and only for the studio itself: it
answers a request only with the key every studio process derives from SECRET_KEY
(settings.SANDBOX_API_KEY). Submit and list answer flat, status answers wrapped in
``{success, data, requestId}``: the contract says both shapes occur, so the studio
meets both every day.

The outputs are served at ``/sandbox/cdn/<job id>/<file>`` as a CDN would: to anyone
with the link, with ETags and single byte ranges (what players and downloaders use).
"""

import hashlib
import hmac
import json
import mimetypes
import re
import secrets
import time
from functools import lru_cache, wraps

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST, require_safe

from .engine import SANDBOX, ApiFailure


def api_view(view):
    @csrf_exempt
    @login_not_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if settings.PIXELBYTE_API_KEY:
            raise Http404("The sandbox is off while a real API key is configured.")
        try:
            check_key(request)
            return JsonResponse(view(request, *args, **kwargs))
        except ApiFailure as exc:
            return failure(exc)

    return wrapper


def check_key(request):
    """Refuse any caller but the studio, without echoing what was sent."""
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer ") or not auth[7:].strip():
        raise ApiFailure(401, "UNAUTHORIZED", "No API key in the request.")
    sent = auth[7:].strip().encode()
    if not hmac.compare_digest(sent, settings.SANDBOX_API_KEY.encode()):
        raise ApiFailure(401, "INVALID_API_KEY", "The API key is not valid.")


def failure(exc):
    body = {
        "success": False,
        "error": {"code": exc.code, "message": exc.message},
        "requestId": "req_" + secrets.token_hex(6),
    }
    response = JsonResponse(body, status=exc.http_status)
    for name, value in exc.headers.items():
        response[name] = value
    return response


@require_POST
@api_view
def submit(request):
    try:
        body = json.loads(request.body)
    except ValueError:
        raise ApiFailure(400, "INVALID_INPUT", "The request body is not valid JSON.") from None
    if settings.SANDBOX_SUBMIT_DELAY:
        time.sleep(settings.SANDBOX_SUBMIT_DELAY)
    return SANDBOX.submit(
        body,
        media_base=cdn_base(request),
        pending_s=settings.SANDBOX_PENDING_SECONDS,
        processing_s=settings.SANDBOX_PROCESSING_SECONDS,
        webhook_secret=settings.PIXELBYTE_WEBHOOK_SECRET,
        callback_origin=settings.PUBLIC_BASE_URL,
        keep_s=settings.SANDBOX_KEEP_SECONDS,
        max_jobs=settings.SANDBOX_MAX_JOBS,
        expire_s=settings.SANDBOX_EXPIRE_SECONDS,
    )


def cdn_base(request):
    """The CDN's root URL as this request reached the sandbox; a job's files are below it."""
    return request.build_absolute_uri(reverse("sandbox:cdn", args=["job", "file"])).removesuffix("job/file")


@require_GET
@api_view
def job_status(request, job_id):
    return {"success": True, "data": SANDBOX.get(job_id), "requestId": "req_" + secrets.token_hex(6)}


@require_GET
@api_view
def list_jobs(request):
    q = request.GET
    return SANDBOX.list(
        limit=q.get("limit", 20), cursor=q.get("cursor"), status=q.get("status"), model=q.get("modelId")
    )


@require_POST
@api_view
def cancel(request, job_id):
    return SANDBOX.cancel(job_id)


# --- the CDN ----------------------------------------------------------------

SINGLE_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@require_safe
@login_not_required
def cdn(request, job_id, name):
    if settings.PIXELBYTE_API_KEY:
        raise Http404("The sandbox is off while a real API key is configured.")
    path = SANDBOX.media_file(job_id, name)
    if path is None:
        raise Http404("No such file on the sandbox's CDN.")
    body, etag = read_sample(path)
    if etag in request.headers.get("If-None-Match", ""):
        response = HttpResponse(status=304)
    else:
        response = ranged(request, body, etag)
        response["Content-Type"] = mimetypes.guess_type(name)[0]
    response["ETag"] = etag
    response["Accept-Ranges"] = "bytes"
    return response


@lru_cache(maxsize=16)
def read_sample(path):
    """A sample's bytes and ETag (tens of KB each, so held in memory once read)."""
    body = path.read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def ranged(request, body, etag):
    """The whole body, or the one range asked for (206), or 416 when it starts past the end.

    A Range this CDN does not serve (several ranges, another unit, bad syntax) or one
    with an If-Range for another version is ignored: the whole file, as RFC 9110 allows.
    """
    size = len(body)
    match = SINGLE_RANGE.fullmatch(request.headers.get("Range", ""))
    if not match or request.headers.get("If-Range", etag) != etag or match.groups() == ("", ""):
        return HttpResponse(body)
    first, last = match.groups()
    if first:  # bytes=first- or bytes=first-last
        start, end = int(first), min(int(last) if last else size - 1, size - 1)
        if last and int(last) < start:
            return HttpResponse(body)  # an invalid range is ignored
    else:  # bytes=-suffix: the last bytes of the file
        start, end = max(size - int(last), 0), size - 1
    if start > end:  # starts past the end, or an empty suffix
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    response = HttpResponse(body[start : end + 1], status=206)
    response["Content-Range"] = f"bytes {start}-{end}/{size}"
    return response
