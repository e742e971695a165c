"""Settings for Kling Studio.

Every value comes from the environment (or an optional ``.env`` file beside
``manage.py``) through django-environ's typed readers; this is the only module
that reads the environment. The defaults run locally with no configuration:
SQLite in the project folder and the built-in PixelByte sandbox.
"""

from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from sandbox.engine import api_key_for as sandbox_api_key_for

BASE_DIR = Path(__file__).resolve().parent.parent

# Used only while DEBUG is on; startup refuses it otherwise (see below).
INSECURE_DEV_SECRET_KEY = "django-insecure-kling-studio-local-development-only"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def env_flag(name, default):
    """A strict boolean: a typo fails loudly instead of meaning False."""
    raw = env.str(name, default="").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}.")


DEBUG = env_flag("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default=INSECURE_DEV_SECRET_KEY)
if not DEBUG and (
    SECRET_KEY == INSECURE_DEV_SECRET_KEY
    or SECRET_KEY.startswith("django-insecure-")
    or len(SECRET_KEY) < 50
    or len(set(SECRET_KEY)) < 5
):
    raise ImproperlyConfigured(
        "SECRET_KEY must be set to a long random value when DEBUG is off "
        '(for example: python -c "import secrets; print(secrets.token_urlsafe(50))").'
    )

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])


def local_url(address):
    """The http:// URL of ``host:port``. A server on every interface is reached on
    loopback, a host the default ALLOWED_HOSTS answers to."""
    host, sep, port = address.rpartition(":")
    if not (sep and host and port.isdigit()):
        raise ImproperlyConfigured(f"STUDIO_ADDRESS must be host:port, not {address!r}.")
    if host in ("0.0.0.0", "::", "[::]"):  # noqa: S104 (compared, not bound)
        host = "127.0.0.1"
    return f"http://{host}:{port}"


# The address this studio serves on (`make run` sets it from HOST and PORT), so that with
# no explicit URLs below it sends sandbox calls and webhooks to itself, not to port 8000.
studio_url = local_url(env.str("STUDIO_ADDRESS", default="") or "127.0.0.1:8000")
# The public address of this studio, used to build webhook URLs for the API.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default=studio_url).rstrip("/")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
if PUBLIC_BASE_URL.startswith("https://"):
    CSRF_TRUSTED_ORIGINS.append(PUBLIC_BASE_URL)

# --- PixelByte ---------------------------------------------------------------
# With no API key the studio talks to its built-in sandbox (same client, real HTTP).
PIXELBYTE_API_KEY = env.str("PIXELBYTE_API_KEY", default="")
PIXELBYTE_API_URL = env.str("PIXELBYTE_API_URL", default="https://api.muvi.video").rstrip("/")
PIXELBYTE_WEBHOOK_SECRET = env.str("PIXELBYTE_WEBHOOK_SECRET", default="")
# A webhook signed more than this many seconds before or after our clock is refused.
PIXELBYTE_WEBHOOK_TOLERANCE = env.int("PIXELBYTE_WEBHOOK_TOLERANCE", default=300)
# Days the webhook log keeps deliveries for our jobs (see sync_jobs.prune_deliveries).
WEBHOOK_LOG_DAYS = env.int("WEBHOOK_LOG_DAYS", default=90)
SANDBOX_API_URL = env.str("SANDBOX_API_URL", default=studio_url + "/sandbox").rstrip("/")
# The bearer key the studio sends its own sandbox, which refuses any other. Derived, not
# configured: the web server and the sync worker compute the same one, and nobody without
# SECRET_KEY can (the development default is public: set SECRET_KEY on a shared machine).
# Never shown or logged.
SANDBOX_API_KEY = sandbox_api_key_for(SECRET_KEY)
# Seconds a sandbox job spends pending, then processing.
SANDBOX_PENDING_SECONDS = env.float("SANDBOX_PENDING_SECONDS", default=2.0)
SANDBOX_PROCESSING_SECONDS = env.float("SANDBOX_PROCESSING_SECONDS", default=4.0)
# Seconds the sandbox waits before answering a submit (for measuring our own overhead).
SANDBOX_SUBMIT_DELAY = env.float("SANDBOX_SUBMIT_DELAY", default=0.0)
# The sandbox holds its jobs in memory: a finished one is forgotten this many seconds after
# its webhook is done, and it never holds more than SANDBOX_MAX_JOBS at once.
SANDBOX_KEEP_SECONDS = env.int("SANDBOX_KEEP_SECONDS", default=3600)
SANDBOX_MAX_JOBS = env.int("SANDBOX_MAX_JOBS", default=1000)
# Seconds the output of an [expire] job stays on the sandbox's CDN after it completes: by
# default none, so it is gone before the archiver's first try and is seen lost at source.
SANDBOX_EXPIRE_SECONDS = env.float("SANDBOX_EXPIRE_SECONDS", default=0.0)
if SANDBOX_KEEP_SECONDS < 0 or SANDBOX_MAX_JOBS < 1:
    raise ImproperlyConfigured("SANDBOX_KEEP_SECONDS must be 0 or more and SANDBOX_MAX_JOBS 1 or more.")

# Outbound timeouts, in seconds. A submit answers the person within
# PIXELBYTE_SUBMIT_DEADLINE whatever happens on the network.
PIXELBYTE_CONNECT_TIMEOUT = env.float("PIXELBYTE_CONNECT_TIMEOUT", default=3.05)
PIXELBYTE_READ_TIMEOUT = env.float("PIXELBYTE_READ_TIMEOUT", default=20.0)
PIXELBYTE_SUBMIT_DEADLINE = env.float("PIXELBYTE_SUBMIT_DEADLINE", default=30.0)
# Without a Retry-After header a 429 pauses new submissions this long; a longer
# Retry-After is clamped to the cap.
PIXELBYTE_DEFAULT_COOLDOWN = env.int("PIXELBYTE_DEFAULT_COOLDOWN", default=10)
PIXELBYTE_MAX_COOLDOWN = env.int("PIXELBYTE_MAX_COOLDOWN", default=300)
# After five submits in a row get no answer, new ones fail at once for this long.
PIXELBYTE_BREAKER_COOLOFF = env.int("PIXELBYTE_BREAKER_COOLOFF", default=30)

# --- Django ------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "ninja",  # the JSON API's reference page: its template and its vendored Swagger UI files
    "jobs",
    "sandbox",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "jobs.middleware.StudioCSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "jobs.middleware.UserTimezoneMiddleware",
    "jobs.middleware.DatabaseBusyMiddleware",
]

# --- Security ----------------------------------------------------------------
# HTTPS is assumed whenever DEBUG is off; every value can still be set explicitly.
HTTPS = env_flag("HTTPS", default=not DEBUG)
SECURE_SSL_REDIRECT = env_flag("SECURE_SSL_REDIRECT", default=HTTPS)
# A monitor on the machine itself may check the process over plain http.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_flag("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=HTTPS)
SECURE_HSTS_PRELOAD = env_flag("SECURE_HSTS_PRELOAD", default=False)
# Preloading is a promise to browsers that is slow to undo: each team decides, so the
# check that asks for it is silenced until SECURE_HSTS_PRELOAD is set (see README).
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Behind a TLS proxy (nginx, Caddy…) that sets X-Forwarded-Proto and appends the
# client's address to X-Forwarded-For. Off by default: trusting those headers
# without such a proxy would let anyone forge them.
BEHIND_PROXY = env_flag("BEHIND_PROXY", default=False)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# How many proxies append to X-Forwarded-For (the client is that many entries from the right).
PROXY_COUNT = env.int("PROXY_COUNT", default=1 if BEHIND_PROXY else 0)
# Presigned object-storage URLs the browser is redirected to (an https endpoint is
# covered by https: already; a plain-http one, such as MinIO on loopback, is not).
_endpoint = env.str("AWS_S3_ENDPOINT_URL", default="")
MEDIA_ORIGINS = [_endpoint.rstrip("/")] if _endpoint.startswith("http://") else []
# Content-Security-Policy (django-csp): scripts only from our own static files (no
# inline script). Videos and their posters come from PixelByte's CDN over https.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "https:", "data:", *MEDIA_ORIGINS],
        "media-src": [SELF, "https:", *MEDIA_ORIGINS],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# --- The JSON API (jobs/api/) ---------------------------------------------------
# Requests a minute each API token may make, counted in the shared (database) cache so
# every web process counts together; past it the API answers 429 with Retry-After.
API_RATE_LIMIT = env.int("API_RATE_LIMIT", default=60)
if API_RATE_LIMIT < 1:
    raise ImproperlyConfigured("API_RATE_LIMIT must be 1 or more (requests a minute per token).")

# --- Sign-in throttling ------------------------------------------------------
# After this many passwords tried without success for one user name (as Django
# normalises it) from one address, sign-in is refused for LOGIN_LOCKOUT_SECONDS,
# even with the right password.
LOGIN_MAX_FAILURES = env.int("LOGIN_MAX_FAILURES", default=5)
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=900)

ROOT_URLCONF = "kling_studio.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "jobs.context_processors.studio",
            ],
        },
    },
]

WSGI_APPLICATION = "kling_studio.wsgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
TEST_DATABASE_URL = env.str("TEST_DATABASE_URL", default="")
if TEST_DATABASE_URL:
    DATABASES["default"] = env.db_url_config(TEST_DATABASE_URL)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE takes the write lock when a transaction starts, so two
    # submissions cannot both read the same budget and then both write.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # The job indexes carry INCLUDE columns so PostgreSQL answers spend sums from the
    # index alone; SQLite builds the same indexes without them, which is all it needs.
    SILENCED_SYSTEM_CHECKS.append("models.W040")
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Every sign-in (the studio's page, the admin's) is counted by this backend before a
# password is checked (see jobs.accounts).
AUTHENTICATION_BACKENDS = ["jobs.accounts.ThrottledModelBackend"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "jobs:new"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
# Stored times are UTC; each person sees their own zone (see jobs.middleware).
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
DISPLAY_TIME_ZONE = env.str("DISPLAY_TIME_ZONE", default="UTC")
# Dates and times as the studio's pages write them ("Mar 3, 2026 14:05", 24-hour), the
# admin included. Django's English locale would say "March 3, 2026, 2:05 p.m.", and a
# locale's formats win over DATETIME_FORMAT and friends, so they live in a format module:
# kling_studio/formats/en/formats.py.
FORMAT_MODULE_PATH = ["kling_studio.formats"]

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default="") or BASE_DIR / "staticfiles")  # empty means the default
STATICFILES_DIRS = [BASE_DIR / "static"]
# --- Archived videos ---------------------------------------------------------
# Every finished video, its thumbnail, poster and a JSON sidecar are copied into the
# studio's own storage: a folder on disk by default, S3-compatible object storage
# (AWS, MinIO, Ceph, R2…) through django-storages when a bucket is named. The files are
# served only through the studio's own views, after its access check.
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default="") or BASE_DIR / "media")  # empty means the default
MEDIA_URL = "/media/"  # never routed: archived files are served by the job views
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
AWS_S3_ENDPOINT_URL = env.str("AWS_S3_ENDPOINT_URL", default="") or None
AWS_ACCESS_KEY_ID = env.str("AWS_ACCESS_KEY_ID", default="") or None
AWS_SECRET_ACCESS_KEY = env.str("AWS_SECRET_ACCESS_KEY", default="") or None
AWS_S3_REGION_NAME = env.str("AWS_S3_REGION_NAME", default="") or None
# Downloads from S3 are redirects to a presigned URL that lives this many seconds.
AWS_QUERYSTRING_EXPIRE = env.int("AWS_QUERYSTRING_EXPIRE", default=300)
AWS_DEFAULT_ACL = None  # objects stay private: only presigned URLs reach them
AWS_S3_FILE_OVERWRITE = False
# The largest output the studio copies (bytes); a bigger one is refused at the cap.
ARCHIVE_MAX_BYTES = env.int("ARCHIVE_MAX_BYTES", default=2 * 1024**3)
# The longest one file's download may take, whatever the network does (seconds).
ARCHIVE_DOWNLOAD_DEADLINE = env.int("ARCHIVE_DOWNLOAD_DEADLINE", default=1800)
# With local storage behind nginx (or Apache), hand the bytes of a video to the proxy:
# "x-accel-redirect" (nginx, internal location MEDIA_PROXY_PREFIX) or "x-sendfile".
MEDIA_PROXY = env.str("MEDIA_PROXY", default="")
MEDIA_PROXY_PREFIX = env.str("MEDIA_PROXY_PREFIX", default="/protected-media/")
if MEDIA_PROXY not in ("", "x-accel-redirect", "x-sendfile"):
    raise ImproperlyConfigured("MEDIA_PROXY must be empty, x-accel-redirect or x-sendfile.")

STORAGES = {
    "default": (
        {"BACKEND": "storages.backends.s3.S3Storage"}
        if AWS_STORAGE_BUCKET_NAME
        else {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    ),
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# In the database, so a pause PixelByte asks for (429) holds for every web
# process and worker alike. A migration creates its table, so `migrate` is enough.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "studio_cache",
    }
}

# Error reports (the debug page, the mail to ADMINS) never show a secret, in any mode.
DEFAULT_EXCEPTION_REPORTER_FILTER = "jobs.reporting.StudioExceptionReporterFilter"

# --- Email -------------------------------------------------------------------
# Budget alerts and the error mails to ADMINS leave through one mail server, given as a URL
# (see .env.example): smtp://user:password@host:587, smtp+tls:// (STARTTLS), smtp+ssl://
# (TLS from the start), or consolemail:// (the default) to print each message on stdout,
# so `make run` shows them; a check warns when a production studio still prints its mail.
# The password lands in EMAIL_HOST_PASSWORD, a name every error report hides.
_email_url = env.str("EMAIL_URL", default="") or "consolemail://"
vars().update(
    {
        name: value
        for name, value in env.email_url_config(_email_url).items()
        # Unset parts keep Django's defaults (port 25, no user); query options are not settings.
        if name.startswith("EMAIL_") and value is not None
    }
)
del _email_url
# Seconds to wait for the mail server, so a silent one never holds up the worker.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="") or "Kling Studio <studio@localhost>"
# The sender of the error mails to ADMINS.
SERVER_EMAIL = env.str("SERVER_EMAIL", default="") or DEFAULT_FROM_EMAIL


def admins_from_env():
    """ADMINS from comma-separated ``Name <email>`` or plain addresses."""
    admins = []
    for entry in env.list("ADMINS", default=[]):
        name, _, address = entry.strip().rpartition("<")
        address = address.removesuffix(">").strip()
        if "@" not in address or " " in address:
            raise ImproperlyConfigured(f"ADMINS: {entry!r} is neither an email address nor Name <email>.")
        admins.append((name.strip(), address))
    return admins


# Who is mailed the traceback of a production error; nobody when empty.
ADMINS = admins_from_env()
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# Everything ends at the root logger's console handler (stderr), in every mode: the
# studio's own lines, warnings from libraries, and each unhandled error with its
# traceback (django.request logs it at ERROR). Only runserver's access lines have a
# handler of their own, so nothing is printed twice.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"require_debug_false": {"()": "django.utils.log.RequireDebugFalse"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "django.server": {
            "()": "django.utils.log.ServerFormatter",
            "format": "[{server_time}] {message}",
            "style": "{",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        # runserver's access lines, as Django formats them.
        "django.server": {"class": "logging.StreamHandler", "formatter": "django.server"},
        "mail_admins": {
            "class": "django.utils.log.AdminEmailHandler",
            "level": "ERROR",
            "filters": ["require_debug_false"],
            "include_html": False,
        },
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        # Configured here so Django's default handlers on it (a console only while DEBUG is
        # on, which would print errors a second time) are replaced.
        "django": {"handlers": ["mail_admins"] if ADMINS else [], "level": "INFO"},
        "django.server": {"handlers": ["django.server"], "level": "INFO", "propagate": False},
        "jobs": {"level": LOG_LEVEL},
        "sandbox": {"level": LOG_LEVEL},
    },
}
