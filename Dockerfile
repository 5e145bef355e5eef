# One image for web, worker and beat (docker-compose.yml picks the command).
FROM python:3.11-slim

# PYTHONPATH: every process (gunicorn, celery, manage.py) imports the code in /app, next to
# templates/ and static/, never the copy pip puts in site-packages (whose BASE_DIR has neither).
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app DATA_DIR=/data INBOX_DIR=/data/inbox STATIC_ROOT=/app/staticfiles
WORKDIR /app

# Dependencies first (a layer that survives code changes); the prod extra adds gunicorn.
COPY pyproject.toml README.md ./
COPY digest ./digest
COPY subscriptions ./subscriptions
RUN pip install --no-cache-dir ".[prod]"

COPY . .
# Static files with hashed names and compressed copies, served by WhiteNoise. The key only
# lets settings load for this build step; it is not kept in the image.
RUN DJANGO_SECRET_KEY=collectstatic-only PRODUCTION=true DATA_DIR=/tmp/build \
    python manage.py collectstatic --noinput -v0 && rm -rf /tmp/build

# /data holds the generated secret key, the inbox and the outbox: created here so the named
# volume mounted on it starts out owned by the app user.
RUN useradd --create-home --uid 1000 app && mkdir -p /data/inbox && chown -R app /data
USER app
EXPOSE 8000
CMD ["gunicorn", "digest.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]
