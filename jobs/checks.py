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


@register()
def check_mail(app_configs, **kwargs):
    """Alerts, approval requests and error mails are printed, not sent, with the default EMAIL_URL."""
    if settings.DEBUG or not settings.EMAIL_BACKEND.endswith("console.EmailBackend"):
        return []
    return [
        Warning(
            "EMAIL_URL is consolemail://: budget alerts, approval mail and error mails are only printed.",
            hint="Set EMAIL_URL to your mail server, e.g. smtp+tls://user:password@mail.example.com:587.",
            id="jobs.W005",
        )
    ]


# A check runs with every management command: a bucket that does not answer must not hold them up.
STORAGE_PROBE_SECONDS = 3


@register()
def check_media_storage(app_configs, **kwargs):
    """The archive's storage can be written: MEDIA_ROOT on disk, or the bucket reachable."""
    from django.core.files.storage import default_storage

    from .media import keeps_local_files

    if keeps_local_files(default_storage):
        return _check_media_root(settings.MEDIA_ROOT)
    if getattr(default_storage, "bucket_name", None):
        return _check_bucket(default_storage)
    return []


def _check_media_root(root):
    """W010 when MEDIA_ROOT, or the folder it would be made in, is not writable."""
    import os
    from pathlib import Path

    folder = Path(root)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if folder.is_dir() and os.access(folder, os.W_OK | os.X_OK):
        return []
    return [
        Warning(
            f"MEDIA_ROOT ({root}) cannot be written: finished videos will not be kept.",
            hint="Create the folder and give the user running the studio and its workers write access, "
            "or set MEDIA_ROOT to a folder they can write.",
            id="jobs.W010",
        )
    ]


def _check_bucket(storage):
    """W011 when the bucket does not answer a HEAD within a few seconds."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        _quick_twin(storage).connection.meta.client.head_bucket(Bucket=storage.bucket_name)
    except (BotoCoreError, ClientError) as exc:
        return [
            Warning(
                f"The bucket {storage.bucket_name!r} cannot be reached: {exc}",
                hint="Check AWS_STORAGE_BUCKET_NAME, AWS_S3_ENDPOINT_URL and the credentials; "
                "until it answers, finished videos are not kept.",
                id="jobs.W011",
            )
        ]
    return []


def _quick_twin(storage):
    """The default storage again, configured the same but giving up after a few seconds."""
    from botocore.config import Config
    from django.core.files.storage import storages

    quick = Config(
        connect_timeout=STORAGE_PROBE_SECONDS,
        read_timeout=STORAGE_PROBE_SECONDS,
        retries={"total_max_attempts": 1},
    )
    backend = settings.STORAGES["default"]
    options = {**backend.get("OPTIONS", {}), "client_config": storage.client_config.merge(quick)}
    return storages.create_storage({**backend, "OPTIONS": options})
