"""An API token at the studio's own doors: the archived media URLs a script is handed.

``token_or_session(scope)`` lets a view be reached with ``Authorization: Bearer <token>``
as well as with a session. A request that carries a bearer token is judged by the token
alone: a live token with the scope acts as its person (so the view's access rule answers
404 for jobs they may not see); an unknown, revoked or expired one gets a 401 in the API's
JSON shape, never the sign-in page a script cannot follow. A request without one is the
browser's: signed in, or sent to sign in, as LoginRequiredMiddleware would. The token is
read from its row on every request (``jobs.tokens.authenticate``); nothing is cached.
"""

from functools import wraps

from django.contrib.auth.decorators import login_not_required, login_required
from django.http import JsonResponse
from django.views.decorators.debug import sensitive_variables

from . import tokens
from .accounts import client_ip


def bearer_token(request):
    """The token in the request's ``Authorization: Bearer`` header; None without one (another
    scheme, such as a proxy's Basic credentials, is not ours to judge)."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


def error(status, code, message):
    """An error in the API's shape: ``{"error": {"code", "message"}}``."""
    response = JsonResponse({"error": {"code": code, "message": message}}, status=status)
    response["Cache-Control"] = "no-store"
    return response


def unauthorized():
    response = error(401, "UNAUTHORIZED", "The token is missing, unknown, revoked or expired.")
    response["WWW-Authenticate"] = 'Bearer realm="Kling Studio", error="invalid_token"'
    return response


def token_or_session(scope):
    """Decorate a view so a bearer token with ``scope`` may stand in for a session."""

    def decorate(view):
        for_people = login_required(view)

        @login_not_required
        @wraps(view)
        @sensitive_variables("raw")
        def wrapped(request, *args, **kwargs):
            raw = bearer_token(request)
            if raw is None:
                return for_people(request, *args, **kwargs)
            token = tokens.authenticate(raw, address=client_ip(request))
            if token is None:
                return unauthorized()
            if not token.allows(scope):
                # The same code and words as the API's (jobs.api.errors).
                return error(
                    403, "SCOPE_REQUIRED", f"This token does not have the “{scope}” scope this call needs."
                )
            request.user, request.api_token = token.user, token
            return view(request, *args, **kwargs)

        return wrapped

    return decorate
