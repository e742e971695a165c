import datetime
import zoneinfo
from urllib.parse import unquote

from django.conf import settings
from django.utils import timezone

TZ_COOKIE = "tz"


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
