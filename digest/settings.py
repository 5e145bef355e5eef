"""Settings for the paper digest service, read from the environment.

With nothing set the service runs on embedded defaults: SQLite under ``var/``, a Celery broker
that needs no server (kombu's filesystem transport), and mail written to ``var/outbox``.
``DATABASE_URL`` and ``REDIS_URL`` switch to PostgreSQL and Redis. Every variable is listed in
the README's configuration table and in ``.env.example``.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url

from digest.env import ConfigError, env_bool, env_choice, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("DATA_DIR") or BASE_DIR / "var").resolve()

DEBUG = env_bool("DJANGO_DEBUG", False)


def _secret_key() -> str:
    """The configured key, or (outside production) one generated once and kept in DATA_DIR."""
    key = env_str("DJANGO_SECRET_KEY")
    if key:
        return key
    if env_bool("PRODUCTION", False):
        raise ConfigError("DJANGO_SECRET_KEY must be set when PRODUCTION is true")
    path = DATA_DIR / "secret_key"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "digest",
    "subscriptions",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "digest.middleware.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "digest.urls"
WSGI_APPLICATION = "digest.wsgi.application"

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
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'db.sqlite3'}"
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
except Exception as exc:  # dj_database_url raises several types for a bad URL
    raise ConfigError(
        f"DATABASE_URL is not a database URL this service understands: {exc}"
    ) from exc
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    import sqlite3

    if sqlite3.sqlite_version_info < (3, 35):  # UPDATE ... RETURNING (the planner)
        raise ConfigError(
            f"this Python's SQLite is {sqlite3.sqlite_version}; 3.35 or newer is needed "
            "(or set DATABASE_URL to a PostgreSQL database)"
        )
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # WAL lets the web server read while a worker ingests; the busy timeout rides out short
    # write locks instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
    # A file (not :memory:) so that a worker process started by a test sees the same data.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-db.sqlite3")}
elif env_str("TEST_DATABASE_NAME"):
    # Lets two test runs share one database server without dropping each other's database.
    DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Statements sent for every digest are prepared once per connection (PostgreSQL). Off for a
# connection pooler in transaction mode that does not keep prepared statements.
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", True)

# --- Cache, broker ------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

BROKER_DIR = DATA_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL or "filesystem://"
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
else:
    # Longer than the longest task (the hard time limit below), so an unacknowledged message
    # is redelivered only when its worker is really gone.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 2 * 3600, minimum=1)
    }
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 50 * 60, minimum=10)
CELERY_TASK_TIME_LIMIT = CELERY_TASK_SOFT_TIME_LIMIT + 5 * 60
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_TIMEZONE = "UTC"

# --- Ingest -------------------------------------------------------------------------------
INBOX_DIR = Path(env_str("INBOX_DIR") or DATA_DIR / "inbox").resolve()
INBOX_SCAN_SECONDS = env_int("INBOX_SCAN_SECONDS", 30, minimum=1)
INBOX_SETTLE_SECONDS = env_int("INBOX_SETTLE_SECONDS", 2, minimum=0)
INGEST_MAX_BYTES = env_int("INGEST_MAX_BYTES", 200 * 1024 * 1024, minimum=1024)
INGEST_BATCH_SIZE = env_int("INGEST_BATCH_SIZE", 1000, minimum=1)

# Real sources, fetched on a schedule when enabled (a machine with internet access).
SOURCES_ENABLED = env_bool("SOURCES_ENABLED", False)
DEFAULT_SOURCE_URLS = [
    "https://huggingface.co/api/daily_papers",
    "https://rss.arxiv.org/rss/cs.LG+cs.CL+cs.CV+cs.AI",
]
SOURCE_URLS = env_list("SOURCE_URLS", DEFAULT_SOURCE_URLS) if SOURCES_ENABLED else []
SOURCE_FETCH_MINUTES = env_int("SOURCE_FETCH_MINUTES", 60, minimum=1)
FETCH_TIMEOUT_SECONDS = env_int("FETCH_TIMEOUT_SECONDS", 30, minimum=1)
FETCH_RETRIES = env_int("FETCH_RETRIES", 3, minimum=0)
FETCH_BACKOFF_SECONDS = env_int("FETCH_BACKOFF_SECONDS", 2, minimum=0)
FETCH_USER_AGENT = env_str("FETCH_USER_AGENT", "paper-digest/0.1 (self-hosted paper digest)")

# --- Mail ---------------------------------------------------------------------------------
OUTBOX_DIR = Path(env_str("OUTBOX_DIR") or DATA_DIR / "outbox").resolve()
EMAIL_HOST = env_str("EMAIL_HOST")
if EMAIL_HOST:
    EMAIL_BACKEND = env_str("EMAIL_BACKEND", "digest.smtp.EmailBackend")
else:
    EMAIL_BACKEND = env_str("EMAIL_BACKEND", "digest.mail.OutboxBackend")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Paper Digest <digest@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Subscriptions --------------------------------------------------------------------------
SITE_NAME = env_str("SITE_NAME", "Paper Digest")
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
PENDING_SIGNUP_DAYS = env_int("PENDING_SIGNUP_DAYS", 7, minimum=1)
MANAGE_LINK_DAYS = env_int("MANAGE_LINK_DAYS", 60, minimum=1)
CONFIRMATION_INTERVAL_MINUTES = env_int("CONFIRMATION_INTERVAL_MINUTES", 10, minimum=0)
LIST_UNSUBSCRIBE_MAILTO = env_str("LIST_UNSUBSCRIBE_MAILTO")
# Fixed windows: at most N requests per window, counted in the cache (Redis when configured).
SIGNUP_LIMIT_PER_IP = env_int("SIGNUP_LIMIT_PER_IP", 10, minimum=1)
PREVIEW_LIMIT_PER_IP = env_int("PREVIEW_LIMIT_PER_IP", 60, minimum=1)  # anonymous previews
SIGNUP_LIMIT_PER_ADDRESS = env_int("SIGNUP_LIMIT_PER_ADDRESS", 3, minimum=1)
SIGNUP_LIMIT_WINDOW_SECONDS = env_int("SIGNUP_LIMIT_WINDOW_SECONDS", 3600, minimum=1)
PURGE_PENDING_HOURS = env_int("PURGE_PENDING_HOURS", 6, minimum=1)

# --- Delivery -------------------------------------------------------------------------------
SENDING_ENABLED = env_bool("SENDING_ENABLED", True)  # the kill switch (admin can pause too)
# Each chunk pays for reading its candidates, one commit of its items and a few queries: at 500
# that is a small share of sending (bench/delivery.py), and a chunk still takes seconds.
DIGEST_CHUNK_SIZE = env_int("DIGEST_CHUNK_SIZE", 500, minimum=1)
DIGEST_PLAN_MINUTES = env_int("DIGEST_PLAN_MINUTES", 5, minimum=1)
MAIL_MAX_BYTES = env_int("MAIL_MAX_BYTES", 300_000, minimum=10_000)
LIST_ID = env_str("LIST_ID")  # default: "<SITE_NAME> <digest.HOST>" from SITE_URL
DKIM_DOMAIN = env_str("DKIM_DOMAIN")
DKIM_SELECTOR = env_str("DKIM_SELECTOR")
DKIM_PRIVATE_KEY_PATH = env_str("DKIM_PRIVATE_KEY_PATH")
SMTP_RETRY_WINDOW_MINUTES = env_int("SMTP_RETRY_WINDOW_MINUTES", 120, minimum=1)
SUPPRESS_AFTER_HARD_FAILURES = env_int("SUPPRESS_AFTER_HARD_FAILURES", 2, minimum=1)

# --- Retention ----------------------------------------------------------------------------
# Digests (with their items and "view in browser" pages) older than this are deleted by a
# periodic job, in batches; 0 keeps them forever. What "no paper sent twice" needs is kept
# (see digest/retention.py).
DIGEST_RETENTION_DAYS = env_int("DIGEST_RETENTION_DAYS", 365, minimum=0)
RETENTION_HOURS = env_int("RETENTION_HOURS", 24, minimum=1)
RETENTION_BATCH_SIZE = env_int("RETENTION_BATCH_SIZE", 1000, minimum=1)

# --- Dashboard --------------------------------------------------------------------------------
# A periodic job that has not succeeded within this many of its intervals is shown as overdue.
JOB_OVERDUE_FACTOR = env_int("JOB_OVERDUE_FACTOR", 3, minimum=2)

# --- Web ----------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT") or DATA_DIR / "static").resolve()
STATICFILES_DIRS = [BASE_DIR / "static"]

# --- Security -------------------------------------------------------------------------------
PRODUCTION = env_bool("PRODUCTION", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# No inline script anywhere; inline style attributes are allowed (mail previews use them).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'; frame-src 'self'"
)
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    if env_bool("BEHIND_HTTPS_PROXY", True):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Running in production: health check, static files, logs, admin login ------------------
# Kept in one block (and added to the lists above, not written into them) so that it reads as
# one concern.

# The health check answers before any other middleware: no host check (load balancers probe by
# IP), no HTTPS redirect, no session or CSP work. Then every request gets an id for the logs.
MIDDLEWARE.insert(0, "digest.health.HealthCheckMiddleware")
MIDDLEWARE.insert(1, "digest.logs.RequestIdMiddleware")
# WhiteNoise serves /static/ from STATIC_ROOT right after SecurityMiddleware, as it documents.
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "whitenoise.middleware.WhiteNoiseMiddleware",
)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # In production: hashed names (cached for a year) and gzip/brotli copies, made by
    # collectstatic (the Docker image runs it at build time).
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
HEALTH_CHECK_TIMEOUT_SECONDS = env_int("HEALTH_CHECK_TIMEOUT_SECONDS", 3, minimum=1)

# The client's address (signup rate limits, admin lockout): REMOTE_ADDR, or behind
# TRUSTED_PROXY_COUNT reverse proxies the address the outermost one saw (digest/clientip.py).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)

# Admin brute force: django-axes locks out a username from one IP address after
# ADMIN_LOGIN_FAILURE_LIMIT failures, for ADMIN_LOGIN_COOLOFF_MINUTES; other users and other
# addresses can still log in.
AXES_CLIENT_IP_CALLABLE = "digest.clientip.client_ip"
INSTALLED_APPS.append("axes")
MIDDLEWARE.append("axes.middleware.AxesMiddleware")
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("ADMIN_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("ADMIN_LOGIN_COOLOFF_MINUTES", 30, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_SENSITIVE_PARAMETERS = ["password"]
AXES_VERBOSE = False  # lockouts are still logged as warnings

# Logs: LOG_FORMAT=json writes one JSON object per line (time, level, logger, message and the
# request id inside a web request) for a log collector; text is for people.
LOG_FORMAT = env_choice("LOG_FORMAT", "text", ("text", "json"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "digest.logs.RequestIdFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {
            "()": "digest.logs.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
# The worker and beat log through the configuration above instead of Celery's own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
