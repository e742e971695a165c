"""Who is calling, and how often: a bearer token with a scope, and a rate per token.

Only the ``Authorization: Bearer`` header signs an API request in: a browser's session
cookie is never looked at, so a page a person has open cannot be made to call the API
for them (and the API needs no CSRF token). A live token acts as its person:
``request.user`` is set to them for the rest of the request, so the access rule, the
budgets and the audit trail see the same person the page would.
"""

import threading
import time

from django.conf import settings
from django.db import connection
from django.views.decorators.debug import sensitive_variables
from ninja.security import HttpBearer
from ninja.throttling import BaseThrottle

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


class TokenRateThrottle(BaseThrottle):
    """At most ``API_RATE_LIMIT`` requests per token in each minute of the clock, counted in
    the database (``RateWindow``) with one atomic statement per request, so every web process
    counts together and concurrent requests cannot slip past the limit."""

    def allow_request(self, request):
        token = getattr(request, "api_token", None)
        if token is None:
            return True  # nothing authenticated: the auth check answers 401
        now = time.time()
        minute = int(now // 60)
        with connection.cursor() as cursor:
            cursor.execute(COUNT_SQL, [token.pk, minute])
            (count,) = cursor.fetchone()
        self.local.wait = 60 - (now - minute * 60)  # ninja asks ``wait`` right after, same thread
        return count <= settings.API_RATE_LIMIT

    def __init__(self):
        self.local = threading.local()

    def wait(self):
        """Seconds until the minute is over (ninja sends it as ``Retry-After``)."""
        return max(1.0, getattr(self.local, "wait", 60.0))


# One statement on PostgreSQL and SQLite (3.35+): count this request, answer the minute's total.
COUNT_SQL = """
    INSERT INTO jobs_ratewindow (token_id, minute, count) VALUES (%s, %s, 1)
    ON CONFLICT (token_id, minute) DO UPDATE SET count = jobs_ratewindow.count + 1
    RETURNING count
"""
