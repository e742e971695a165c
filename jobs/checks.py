"""System checks for configuration mistakes an operator can make."""

from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
def check_time_zone(app_configs, **kwargs):
    if settings.TIME_ZONE != "UTC" or not settings.USE_TZ:
        return [
            Error(
                "Kling Studio stores every time in UTC.",
                hint="Keep TIME_ZONE = 'UTC' and USE_TZ = True; set DISPLAY_TIME_ZONE for display.",
                id="jobs.E001",
            )
        ]
    return []


@register()
def check_webhook_settings(app_configs, **kwargs):
    problems = []
    tolerance = getattr(settings, "PIXELBYTE_WEBHOOK_TOLERANCE", None)
    if not isinstance(tolerance, int) or not 0 < tolerance <= 3600:
        problems.append(
            Error(
                "PIXELBYTE_WEBHOOK_TOLERANCE must be a number of seconds from 1 to 3600.",
                hint="Leave it unset for the default of 300 seconds.",
                id="jobs.E002",
            )
        )
    webhooks_on = settings.PUBLIC_BASE_URL.startswith("https://")
    if settings.PIXELBYTE_API_KEY and webhooks_on and not settings.PIXELBYTE_WEBHOOK_SECRET:
        problems.append(
            Error(
                "PIXELBYTE_API_KEY and an https PUBLIC_BASE_URL are set, but PIXELBYTE_WEBHOOK_SECRET is not.",
                hint="Without the secret, webhook callbacks would be trusted on their URL token alone. "
                "Copy the webhook secret from the PixelByte dashboard.",
                id="jobs.E003",
            )
        )
    if settings.PIXELBYTE_API_KEY and not settings.PUBLIC_BASE_URL.startswith("https://"):
        problems.append(
            Warning(
                "PUBLIC_BASE_URL is not an https:// URL, so PixelByte cannot send webhooks.",
                hint="Set PUBLIC_BASE_URL to the studio's public https address, or rely on "
                "`manage.py sync_jobs --watch` alone.",
                id="jobs.W002",
            )
        )
    return problems


@register()
def check_retention(app_configs, **kwargs):
    if settings.WEBHOOK_LOG_DAYS < 1:
        return [
            Error(
                "WEBHOOK_LOG_DAYS must be at least 1: the sync worker would empty the webhook log on every pass.",
                hint="Leave it unset for the default of 90 days.",
                id="jobs.E004",
            )
        ]
    return []
