FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_DIR=/data INBOX_DIR=/data/inbox
WORKDIR /app

COPY pyproject.toml README.md ./
COPY digest ./digest
COPY subscriptions ./subscriptions
RUN pip install --no-cache-dir ".[prod]"

COPY . .
RUN useradd --create-home --uid 1000 app && mkdir -p /data && chown app /data
USER app
EXPOSE 8000
CMD ["gunicorn", "digest.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
