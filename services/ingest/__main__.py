"""``python -m services.ingest``: serve the capture API on INGEST_HOST:INGEST_PORT."""

from __future__ import annotations

import asyncio

import uvicorn

from leadpipe.runtime.logs import setup_logging
from services.ingest.app import create_app
from services.ingest.bootstrap import build_deps
from services.ingest.config import IngestSettings


async def serve(settings: IngestSettings) -> None:
    # aiokafka clients must be built inside the running loop.
    app = create_app(settings, build_deps(settings))
    config = uvicorn.Config(
        app,
        host=settings.ingest_host,
        port=settings.ingest_port,
        log_config=None,
        access_log=False,
        proxy_headers=settings.ingest_trust_forwarded_for,
    )
    await uvicorn.Server(config).serve()


def main() -> None:
    settings = IngestSettings()  # from the environment
    setup_logging("ingest", level=settings.log_level, json_logs=settings.log_json)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
