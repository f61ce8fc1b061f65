"""``python -m services.console``: serve the sales console on CONSOLE_HOST:CONSOLE_PORT and run
its projector (consumer group ``console``) in the same process."""

from __future__ import annotations

import asyncio

import uvicorn

from leadpipe.runtime.asgi import QuietServer
from leadpipe.runtime.keystore import install_from_env
from leadpipe.runtime.logs import setup_logging
from services.console.app import create_app
from services.console.config import ConsoleSettings


async def serve(settings: ConsoleSettings) -> None:
    # aiokafka clients must be built inside the running loop.
    config = uvicorn.Config(
        create_app(settings), host=settings.console_host, port=settings.console_port, log_config=None, access_log=False
    )
    await QuietServer(config, young_threshold=settings.gc_young_threshold).serve()


def main() -> None:
    settings = ConsoleSettings()
    setup_logging("console", level=settings.log_level, json_logs=settings.log_json)
    install_from_env("console")  # privacy hook: the crypto-shredding keyring (docs/privacy.md)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
