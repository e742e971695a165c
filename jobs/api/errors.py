"""Every error the API answers, in one shape: ``{"error": {"code", "message", "fields"?}}``.

Views raise; the handlers installed on the API (``install``) turn each exception into its
status and code, so no route writes an error body of its own. The codes are a contract
(README, "The JSON API"): scripts branch on them, people read the message.
"""

import logging

from django.conf import settings
from django.db import OperationalError
from django.http import Http404
from django.utils.log import log_response
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError

from .. import budgets
from ..submission import CannotCancel, ForeignSubmissionKey
from ..throttle import SubmissionPaused
from . import present

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An answer other than success: raised by a route, rendered by ``install``'s handler."""

    def __init__(self, status, code, message, fields=None, headers=None, **extra):
        super().__init__(message)
        self.http_status, self.code, self.message = status, code, message
        self.fields, self.headers, self.extra = fields, headers or {}, extra


def invalid(form):
    """A 422 from a Django form's errors (the same rules, and words, as the page's)."""
    fields = {name: list(errors) for name, errors in form.errors.items() if name != "__all__"}
    general = list(form.non_field_errors())
    names = ", ".join(fields)
    message = " ".join(general) or f"The request was not accepted: see {names}."
    return ApiError(422, "VALIDATION_FAILED", message, fields=fields)


def scope_required(scope):
    return ApiError(403, "SCOPE_REQUIRED", f"This token does not have the “{scope}” scope this call needs.")


def render(request, api, exc):
    body = {"code": exc.code, "message": exc.message}
    if exc.fields is not None:
        body["fields"] = exc.fields
    body.update(exc.extra)
    response = api.create_response(request, {"error": body}, status=exc.http_status)
    for name, value in exc.headers.items():
        response[name] = value
    return response


def _pydantic_fields(errors):
    """ninja's (pydantic's) errors as {field: [messages]}, the shape the forms give. A body
    field sits under ninja's ("body", "payload"); a query, header or path one under its
    source. A value of the wrong type for a field that takes either of two (duration: a
    number or a string) gets one message naming both."""
    found = {}
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        depth = 2 if loc[:1] == ["body"] else 1
        name = loc[depth] if len(loc) > depth else (loc[0] if loc else "body")
        found.setdefault(name, []).append(error.get("msg", "Not valid."))
    return {name: _merged(messages) for name, messages in found.items()}


def _merged(messages):
    prefix = "Input should be "
    if len(messages) > 1 and all(message.startswith(prefix) for message in messages):
        return [prefix + " or ".join(message.removeprefix(prefix) for message in messages)]
    return list(dict.fromkeys(messages))


def _unauthorized():
    return ApiError(
        401,
        "UNAUTHORIZED",
        "Send a live API token as “Authorization: Bearer <token>”: this request had none, or one "
        "that is unknown, revoked or expired. (A signed-in browser session does not count here.)",
        headers={"WWW-Authenticate": 'Bearer realm="Kling Studio"'},
    )


def _over_budget(exc):
    budget = exc.budget
    return ApiError(
        402,
        "BUDGET_EXCEEDED",
        str(exc),
        budget=present.budget(budget),
        cost=present.money(exc.cost),
        over_by=present.money(budget.over_by(exc.cost)),
    )


def _translate(exc):
    """The ``ApiError`` an exception from a route or from ninja stands for (None: a bug)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, AuthenticationError):
        return _unauthorized()
    if isinstance(exc, ValidationError):
        fields = _pydantic_fields(exc.errors)
        return ApiError(
            422, "VALIDATION_FAILED", f"The request was not accepted: see {', '.join(fields)}.", fields=fields
        )
    if isinstance(exc, Throttled):
        limit = settings.API_RATE_LIMIT
        return ApiError(
            429, "RATE_LIMITED", f"This token may make {limit} requests a minute; wait and try again."
        )
    if isinstance(exc, Http404):
        return ApiError(404, "NOT_FOUND", "No such job (or it is not yours to see).")
    if isinstance(exc, budgets.TokenNotLive):
        return _unauthorized()
    if isinstance(exc, budgets.OverBudget):
        return _over_budget(exc)
    if isinstance(exc, SubmissionPaused):
        return ApiError(503, "SUBMISSIONS_PAUSED", str(exc), headers={"Retry-After": str(exc.seconds)})
    if isinstance(exc, CannotCancel):
        return ApiError(409, "JOB_CANNOT_BE_CANCELLED", str(exc))
    if isinstance(exc, ForeignSubmissionKey):
        return reused_key()
    if isinstance(exc, HttpError):  # ninja's own: a body that is not JSON, say
        return ApiError(exc.status_code, "BAD_REQUEST", str(exc))
    if isinstance(exc, OperationalError) and "locked" in str(exc).lower():
        # As DatabaseBusyMiddleware answers a page: SQLite's write lock outwaited its timeout.
        log.warning("database busy: %s", exc)
        return ApiError(
            503, "DATABASE_BUSY", "The studio is busy; try again shortly.", headers={"Retry-After": "5"}
        )
    return None


def reused_key():
    return ApiError(
        409,
        "IDEMPOTENCY_KEY_REUSED",
        "This Idempotency-Key was already used with a different request; use a new key for a new job.",
    )


def install(api):
    """Answer every exception in the API's shape; a bug is logged as Django logs a 500 (so
    ADMINS are mailed) and answered 500 ``INTERNAL_ERROR`` in the same shape."""

    def handle(request, exc):
        known = _translate(exc)
        if known is None:
            known = ApiError(500, "INTERNAL_ERROR", "Something went wrong in the studio; it has been logged.")
            response = render(request, api, known)
            log_response(
                "Internal Server Error: %s", request.path, response=response, request=request, exception=exc
            )
            return response
        return render(request, api, known)

    # ninja's own handlers for these are more specific than Exception: replace each.
    for kind in (Exception, Http404, HttpError, ValidationError):
        api.add_exception_handler(kind, handle)
