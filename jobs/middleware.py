import datetime
import logging
import zoneinfo
from urllib.parse import unquote

from csp.constants import HEADER
from csp.middleware import CSPMiddleware
from csp.utils import build_policy
from django.conf import settings
from django.db import OperationalError
from django.shortcuts import render
from django.utils import timezone

TZ_COOKIE = "tz"
log = logging.getLogger(__name__)


def zone_from(name):
    try:
        return zoneinfo.ZoneInfo(name) if name else None
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


class UserTimezoneMiddleware:
    """Shows times in the visitor's own zone.

    static/js/timezone.js stores the browser's IANA zone in a cookie; anything
    unreadable falls back to DISPLAY_TIME_ZONE.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        zone = zone_from(unquote(request.COOKIES.get(TZ_COOKIE, ""))[:64]) or zone_from(
            settings.DISPLAY_TIME_ZONE
        )
        timezone.activate(zone or datetime.UTC)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


class DatabaseBusyMiddleware:
    """A database too busy to answer (SQLite's "database is locked" after its wait)
    gets a page asking to try again, not a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, OperationalError) and "locked" in str(exception).lower():
            log.warning("database busy on %s %s: %s", request.method, request.path, exception)
            response = render(request, "busy.html", status=503)
            response["Retry-After"] = "5"
            return response
        return None


class StudioCSPMiddleware(CSPMiddleware):
    """django-csp's middleware, with the policy of a plain response built once.

    Almost every response carries neither a per-view change (``csp_update`` and friends)
    nor a nonce, and django-csp builds the same header anew for each of them (about 60 µs,
    a fifth of a small view). Anything out of the ordinary takes django-csp's own path."""

    _built_for = None
    _policy = ""

    def process_response(self, request, response):
        if not self._is_plain(request, response):
            return super().process_response(request, response)
        config = settings.CONTENT_SECURITY_POLICY
        if self._built_for is not config:  # built once per configuration (tests change it)
            self._policy, self._built_for = build_policy(), config
        if self._policy and HEADER not in response:
            response[HEADER] = self._policy
        return response

    @staticmethod
    def _is_plain(request, response):
        marked = any(hasattr(response, f"_csp_{part}{ro}") for part in PARTS for ro in ("", "_ro"))
        debug_page = settings.DEBUG and response.status_code in (404, 500)
        return not (
            marked
            or debug_page
            or getattr(request, "_csp_nonce", None)
            or getattr(settings, "CONTENT_SECURITY_POLICY_REPORT_ONLY", None)
            or (settings.CONTENT_SECURITY_POLICY or {}).get("EXCLUDE_URL_PREFIXES")
        )


PARTS = ("config", "update", "replace", "exempt")
