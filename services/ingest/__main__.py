"""``python -m services.ingest``: serve the capture API on INGEST_HOST:INGEST_PORT."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import uvicorn
import uvloop

from leadpipe.runtime.asgi import QuietServer
from leadpipe.runtime.keystore import install_from_env
from leadpipe.runtime.logs import setup_logging
from services.ingest.app import create_app
from services.ingest.bootstrap import build_deps
from services.ingest.config import IngestSettings

Server = Literal["fast", "plain"]


def server_config(settings: IngestSettings, app: Any, server: Server = "fast") -> uvicorn.Config:
    """How ingest is served. ``fast`` (the default): the C HTTP parser (httptools parses a form
    post in a fraction of h11's time) and no access log (a log line per request costs more than
    the request's own work). ``plain``: uvicorn's pure-Python h11 parser, for comparison
    (bench/ingest_bench.py measures both in one run)."""
    return uvicorn.Config(
        app,
        host=settings.ingest_host,
        port=settings.ingest_port,
        log_config=None,
        access_log=False,
        http="httptools" if server == "fast" else "h11",
        proxy_headers=settings.ingest_trust_forwarded_for,
    )


async def serve(settings: IngestSettings) -> None:
    # aiokafka clients must be built inside the running loop.
    app = create_app(settings, build_deps(settings))
    await QuietServer(server_config(settings, app), young_threshold=settings.gc_young_threshold).serve()


def run(main: Any, server: Server = "fast") -> None:
    """Runs ``main`` on uvloop (``fast``: the event loop's own overhead per request and per
    Kafka/Redis round trip is a good part of ingest's CPU under asyncio's pure-Python loop),
    or on asyncio's default loop (``plain``)."""
    if server == "fast":
        uvloop.run(main)
    else:
        asyncio.run(main)


def main() -> None:
    settings = IngestSettings()  # from the environment
    setup_logging("ingest", level=settings.log_level, json_logs=settings.log_json)
    install_from_env("ingest")  # privacy hook: the crypto-shredding keyring (docs/privacy.md)
    run(serve(settings))


if __name__ == "__main__":
    main()
