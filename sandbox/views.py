"""The sandbox's HTTP face: PixelByte's paths, envelopes and error bodies.

Only on while the studio has no real API key, and only for the studio itself: it
answers a request only with the key every studio process derives from SECRET_KEY
(settings.SANDBOX_API_KEY). Submit and list answer flat, status answers wrapped in
``{success, data, requestId}``: the contract says both shapes occur, so the studio
meets both every day.
"""

import hmac
import json
import secrets
import time
from functools import wraps

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, JsonResponse
from django.templatetags.static import static
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

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
        media_base=request.build_absolute_uri(static("sandbox/")),
        pending_s=settings.SANDBOX_PENDING_SECONDS,
        processing_s=settings.SANDBOX_PROCESSING_SECONDS,
        webhook_secret=settings.PIXELBYTE_WEBHOOK_SECRET,
        callback_origin=settings.PUBLIC_BASE_URL,
        keep_s=settings.SANDBOX_KEEP_SECONDS,
        max_jobs=settings.SANDBOX_MAX_JOBS,
    )


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
