"""Who is calling, and how often: a bearer token with a scope, and a rate per token.

Only the ``Authorization: Bearer`` header signs an API request in: a browser's session
cookie is never looked at, so a page a person has open cannot be made to call the API
for them (and the API needs no CSRF token). A live token acts as its person:
``request.user`` is set to them for the rest of the request, so the access rule, the
budgets and the audit trail see the same person the page would.
"""

import threading

from django.conf import settings
from django.views.decorators.debug import sensitive_variables
from ninja.security import HttpBearer
from ninja.throttling import AuthRateThrottle

from .. import tokens
from ..accounts import client_ip
from . import errors


class TokenAuth(HttpBearer):
    """A live API token (``jobs.tokens``) that has ``scope``; 401 without one, 403 without the scope."""

    def __init__(self, scope):
        super().__init__()
        self.scope = scope

    @sensitive_variables("token")
    def authenticate(self, request, token):
        found = tokens.authenticate(token, address=client_ip(request))
        if found is None:
            return None
        if not found.allows(self.scope):
            raise errors.scope_required(self.scope)
        request.user, request.api_token = found.user, found
        return found


class _PerThread:
    """An attribute kept per thread (see ``TokenRateThrottle``)."""

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, throttle, owner=None):
        return self if throttle is None else getattr(throttle.local, self.name)

    def __set__(self, throttle, value):
        setattr(throttle.local, self.name, value)


class TokenRateThrottle(AuthRateThrottle):
    """ninja's per-token rate limit (its key is the token's ``str``, unique per token), at
    ``API_RATE_LIMIT`` requests a minute, read on each request. The counts live in the
    default cache, the database, so every web process counts together.

    ninja keeps one throttle object for every request and notes the one being judged on it
    between ``allow_request`` and ``wait``; a threaded server judges several at once, so
    those notes are kept per thread here."""

    scope = "token"
    duration = 60
    key = _PerThread()
    history = _PerThread()
    now = _PerThread()

    def __init__(self):  # the rate is read per request, not parsed once
        self.local = threading.local()

    @property
    def num_requests(self):
        return settings.API_RATE_LIMIT

    @property
    def rate(self):
        return f"{settings.API_RATE_LIMIT}/min"

    def wait(self):
        """Seconds until this token may call again: until the oldest request still counted
        against the limit leaves the minute (ninja's own spreads the wait over the limit)."""
        counted = self.history[: self.num_requests]
        if len(counted) < self.num_requests:
            return None
        return max(1.0, counted[-1] + self.duration - self.now)
