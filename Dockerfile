# One image for every leadpipe process; the command picks it:
#   ingest:   python -m services.ingest        scoring:  python -m services.scoring
#   nurture:  python -m services.nurture       notifier: python -m services.notifier
#   exporter: python -m leadpipe.exporter      canary:   leadpipe canary --interval 30
#   admin:    leadpipe topics apply | dlq ... | lag | tail TOPIC
FROM python:3.11-slim AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY schemas ./schemas
COPY services ./services
COPY leadpipe ./leadpipe
RUN uv sync --frozen --no-dev

FROM python:3.11-slim
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
CMD ["python", "-m", "services.ingest"]
