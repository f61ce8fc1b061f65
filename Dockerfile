# One image for every leadpipe process; the command picks it:
#   ingest:   python -m services.ingest        scoring:  python -m services.scoring
#   nurture:  python -m services.nurture       notifier: python -m services.notifier
#   exporter: python -m leadpipe.exporter      canary:   leadpipe canary --interval 30
#   admin:    leadpipe topics apply | dlq ... | lag | tail TOPIC
# BASE: any Debian-like image with Python 3.11 and its venv module. The public python:3.11-slim by
# default; `make image` (scripts/images.sh) passes a locally built Debian bookworm + python3 image
# where no registry is reachable.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never UV_PYTHON=python3.11 UV_SYSTEM_CERTS=1
# uv in its own venv of the build stage only: the final stage gets none of it.
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir -q uv==0.13.9
WORKDIR /app
# The dependencies' layer depends on the lock only: README and source edits reuse it.
COPY pyproject.toml uv.lock ./
RUN /opt/uv/bin/uv sync --frozen --no-dev --no-install-project
COPY README.md ./
COPY schemas ./schemas
COPY services ./services
COPY leadpipe ./leadpipe
RUN /opt/uv/bin/uv sync --frozen --no-dev

FROM ${BASE}
RUN useradd --create-home --uid 10001 leadpipe \
    && mkdir -p /var/lib/leadpipe && chown leadpipe /var/lib/leadpipe
WORKDIR /app
COPY --from=build --chown=leadpipe /app /app
ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    LEADPIPE_STATE_DIR=/var/lib/leadpipe \
    INGEST_HOST=0.0.0.0 \
    OPS_HOST=0.0.0.0 \
    EXPORTER_HOST=0.0.0.0 \
    CANARY_HOST=0.0.0.0 \
    KAFKA_ENABLE_IDEMPOTENCE=true
USER leadpipe
VOLUME /var/lib/leadpipe
EXPOSE 8080 9101 9102 9103 9104 9105
# Alive = the process's own HTTP port answers /healthz (ingest: INGEST_PORT; workers: OPS_PORT;
# exporter: EXPORTER_PORT; canary: CANARY_PORT). A one-off admin command has none of them set and
# exits before the first check.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 CMD ["python", "-c", "import os, urllib.request as u; e = os.environ; p = e.get('INGEST_PORT') or e.get('OPS_PORT') or e.get('EXPORTER_PORT') or e.get('CANARY_PORT') or '8080'; u.urlopen(f'http://127.0.0.1:{p}/healthz', timeout=4)"]
CMD ["python", "-m", "services.ingest"]
