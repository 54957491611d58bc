# chaosbot: the Slack app served by gunicorn; migrations run on start.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DATABASE_URL=sqlite:////data/chaosbot.db \
    CHAOSBOT_LOG_FORMAT=json \
    PORT=3000

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY adapters ./adapters
COPY storage ./storage
RUN pip install . \
    && useradd --create-home --uid 10001 chaosbot \
    && mkdir -p /data && chown chaosbot /data

USER chaosbot
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=4)"
CMD ["sh", "-c", "chaosbot db upgrade && exec chaosbot serve"]
